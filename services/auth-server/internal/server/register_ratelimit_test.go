package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestRegistrationRateLimitAnswer: a registration over
// RATE_LIMIT_REGISTER_PER_MINUTE is 429 with Retry-After and the registered
// error code temporarily_unavailable (RFC 7591 §3.2.2 and RFC 6749 §5.2
// define none for a rate limit; RFC 6749 §4.1.2.1 / §11.4 register
// temporarily_unavailable), not a code no client knows; metrics and audit
// still say rate_limited, apart from a 503.
func TestRegistrationRateLimitAnswer(t *testing.T) {
	f := startFleet(t, map[string]string{"RATE_LIMIT_REGISTER_PER_MINUTE": "1"})
	body := `{"redirect_uris":["http://127.0.0.1:8986/cb"],"token_endpoint_auth_method":"none"}`
	if st, reg := register(t, f, body); st != http.StatusCreated {
		t.Fatalf("first registration: %d %v", st, reg)
	}
	before := errorsTotal(t, f, "register", "rate_limited")
	resp, err := http.Post(f.Base+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&e)
	const desc = "too many requests; retry after the Retry-After delay"
	if resp.StatusCode != http.StatusTooManyRequests || e["error"] != "temporarily_unavailable" || e["error_description"] != desc {
		t.Errorf("second registration: %d %v, want 429 temporarily_unavailable %q", resp.StatusCode, e, desc)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want seconds", resp.Header.Get("Retry-After"))
	}
	if d := errorsTotal(t, f, "register", "rate_limited") - before; d != 1 {
		t.Errorf("tollgate_auth_errors_total{register,rate_limited} grew by %v, want 1", d)
	}
	if findEvent(auditEvents(t, f), map[string]any{"event": "registration", "result": "rate_limited"}) == nil {
		t.Error("no registration audit record with result rate_limited")
	}
}
