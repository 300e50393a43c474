package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// errorsTotal reads tollgate_auth_errors_total{endpoint, error} from the
// auth-server's admin /metrics (0 when the series does not exist yet).
func errorsTotal(t *testing.T, f *fleet, endpoint, code string) int {
	t.Helper()
	return int(metricsAt(t, f.Admin()+"/metrics")[fmt.Sprintf(`tollgate_auth_errors_total{endpoint=%q,error=%q}`, endpoint, code)])
}

// TestGuardRefusalsRecordedAsAnswered: a request the client-authentication
// guard answers 429 or 503 instead of what fosite's handler wrote (failure
// back-off, the per-client limit, the limiter's Redis failing after the
// client authenticated) is recorded with the code it was answered — in the
// audit record (docs/operations/audit-log.md: "the OAuth error code
// answered"), the service log and tollgate_auth_errors_total, counted once —
// and a limiter failure logs its cause. Found re-running issue 10 against
// make dev: a back-off 429 was audited and counted as invalid_client (and
// counted again as rate_limited), and a Redis timeout of the per-client
// bucket answered 503 while the log, the audit record and the metrics said
// rate_limited for a client "not authenticated", with no error logged.
func TestGuardRefusalsRecordedAsAnswered(t *testing.T) {
	f := startFleet(t, map[string]string{
		"TRUSTED_PROXIES": "127.0.0.1/32", "CLIENT_AUTH_FAILURE_LIMIT": "2", "RATE_LIMIT_TOKEN_PER_MINUTE": "3",
	})
	apps := f.Clients["gpt-apps-mcp"]   // client_secret_post
	actions := f.Clients["gpt-actions"] // client_secret_post
	local := f.Clients["local-test"]    // client_secret_basic
	event := func(want map[string]any) map[string]any { return findEvent(auditEvents(t, f), want) }

	t.Run("failure back-off", func(t *testing.T) {
		const addr = "198.51.100.7"
		for i := range 2 {
			if r := f.clientCall(clientReq{Form: postCreds(apps, "wrong", badRefresh()), ForwardFor: addr}); r.Status != http.StatusUnauthorized {
				t.Fatalf("wrong secret %d: %d %s", i, r.Status, r.Error)
			}
		}
		invalid, limited := errorsTotal(t, f, "token", "invalid_client"), errorsTotal(t, f, "token", "rate_limited")
		assertLimited(t, "wrong secret in back-off", f.clientCall(clientReq{Form: postCreds(apps, "wrong", badRefresh()), ForwardFor: addr}))
		if d := errorsTotal(t, f, "token", "invalid_client") - invalid; d != 0 {
			t.Errorf("errors_total{token,invalid_client} grew by %d for a 429 answer, want 0", d)
		}
		if d := errorsTotal(t, f, "token", "rate_limited") - limited; d != 1 {
			t.Errorf("errors_total{token,rate_limited} grew by %d for one 429 answer, want 1", d)
		}
		if e := event(map[string]any{"event": "client_authentication_failure", "client_address": addr, "result": "rate_limited",
			"client_id": apps.ClientID, "client_authenticated": false}); e == nil {
			t.Errorf("no client_authentication_failure audit record with result rate_limited for the 429; records from %s: %v", addr, eventsFrom(t, f, addr))
		}
	})

	t.Run("per-client limit", func(t *testing.T) {
		limited := errorsTotal(t, f, "token", "rate_limited")
		var last tokenResponse
		for i := range 4 {
			last = f.clientCall(clientReq{BasicUser: local.ClientID, BasicPass: url.QueryEscape(local.ClientSecret), Form: badRefresh(), ForwardFor: fmt.Sprintf("203.0.113.%d", 10+i)})
		}
		assertLimited(t, "4th request of local-test", last)
		if d := errorsTotal(t, f, "token", "rate_limited") - limited; d != 1 {
			t.Errorf("errors_total{token,rate_limited} grew by %d for one 429 answer, want 1", d)
		}
		if e := event(map[string]any{"event": "grant", "client_address": "203.0.113.13", "result": "rate_limited",
			"client_id": local.ClientID, "client_authenticated": true}); e == nil {
			t.Errorf("no grant audit record rate_limited for the authenticated client; records: %v", eventsFrom(t, f, "203.0.113.13"))
		}
	})

	t.Run("per-client limiter unavailable", func(t *testing.T) {
		// The client's bucket holds a value of another type: Redis answers
		// WRONGTYPE to the limiter for it alone, after the address bucket
		// (a good key) let the request in and the client authenticated.
		sum := sha256.Sum256([]byte(actions.ClientID))
		key := "rate:tollgate:rl:token_client:" + hex.EncodeToString(sum[:])
		if err := f.Redis.Client().HSet(ctxT(t), key, "x", "y").Err(); err != nil {
			t.Fatal(err)
		}
		limited, unavailable := errorsTotal(t, f, "token", "rate_limited"), errorsTotal(t, f, "token", "temporarily_unavailable")
		const addr = "203.0.113.77"
		r := f.clientCall(clientReq{Form: postCreds(actions, actions.ClientSecret, badRefresh()), ForwardFor: addr})
		if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("authenticated client, its bucket unreadable: %d %s Retry-After %q, want 503 temporarily_unavailable with Retry-After", r.Status, r.Error, r.Header.Get("Retry-After"))
		}
		if d := errorsTotal(t, f, "token", "temporarily_unavailable") - unavailable; d != 1 {
			t.Errorf("errors_total{token,temporarily_unavailable} grew by %d, want 1", d)
		}
		if d := errorsTotal(t, f, "token", "rate_limited") - limited; d != 0 {
			t.Errorf("errors_total{token,rate_limited} grew by %d for a 503 answer, want 0", d)
		}
		if e := event(map[string]any{"event": "grant", "client_address": addr, "result": "temporarily_unavailable",
			"client_id": actions.ClientID, "client_authenticated": true}); e == nil {
			t.Errorf("no grant audit record temporarily_unavailable for the authenticated client; records: %v", eventsFrom(t, f, addr))
		}
		logged := false
		for _, line := range strings.Split(f.AS.Logs.String(), "\n") {
			if strings.Contains(line, `msg="rate limiter unavailable"`) && strings.Contains(line, "WRONGTYPE") && strings.Contains(line, "client_id="+actions.ClientID) {
				logged = true
			}
			if strings.Contains(line, "token request refused") && strings.Contains(line, "client_id="+actions.ClientID) && strings.Contains(line, "error=rate_limited") {
				t.Errorf("the 503 is logged as rate_limited: %s", line)
			}
		}
		if !logged {
			t.Error(`the per-client limiter's error is not logged ("rate limiter unavailable" with the client and the Redis error)`)
		}
		f.Redis.Client().Del(ctxT(t), key)
	})

	t.Run("revocation and introspection", func(t *testing.T) {
		// Spent per-client buckets at the other two endpoints: one 429
		// each, counted once and audited as what was answered.
		for _, ep := range []struct{ path, name string }{{"/oauth/revoke", "revoke"}, {"/oauth/introspect", "introspect"}} {
			limited := errorsTotal(t, f, ep.name, "rate_limited")
			invalid := errorsTotal(t, f, ep.name, "invalid_client")
			var last tokenResponse
			for i := range 4 {
				last = f.clientCall(clientReq{Path: ep.path, Form: postCreds(apps, apps.ClientSecret, url.Values{"token": {"unknown"}}),
					ForwardFor: fmt.Sprintf("203.0.113.%d", 150+i)})
			}
			assertLimited(t, "4th "+ep.name+" of gpt-apps-mcp", last)
			if d := errorsTotal(t, f, ep.name, "rate_limited") - limited; d != 1 {
				t.Errorf("errors_total{%s,rate_limited} grew by %d for one 429, want 1", ep.name, d)
			}
			if d := errorsTotal(t, f, ep.name, "invalid_client") - invalid; d != 0 {
				t.Errorf("errors_total{%s,invalid_client} grew by %d; the client authenticated", ep.name, d)
			}
			if e := event(map[string]any{"event": "client_authentication_failure", "client_address": "203.0.113.153", "endpoint": ep.name}); e != nil {
				t.Errorf("%s: the authenticated client's 429 is audited as a client authentication failure: %s", ep.name, e["_line"])
			}
			if ep.name == "revoke" {
				if e := event(map[string]any{"event": "revocation", "client_address": "203.0.113.153", "result": "rate_limited", "client_authenticated": true,
					"client_id": apps.ClientID}); e == nil { // the client that authenticated
					t.Errorf("no revocation audit record rate_limited for the 429; records: %v", eventsFrom(t, f, "203.0.113.153"))
				}
			}
		}
	})
}

func eventsFrom(t *testing.T, f *fleet, addr string) []any {
	var out []any
	for _, e := range auditEvents(t, f) {
		if e["client_address"] == addr {
			out = append(out, e["_line"])
		}
	}
	return out
}
