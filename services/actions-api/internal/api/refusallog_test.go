package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestRefusedBearerTokenLogged: a refused bearer token gets one warn line
// with the reason, the trusted client address and the request id — never
// the token — and a flood of refusals writes at most 10 such lines a
// second, the rest counted on the next line ("suppressed").
func TestRefusedBearerTokenLogged(t *testing.T) {
	f := start(t, nil)
	expired := f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: allScopes, IssuedAt: time.Now().Add(-3 * time.Hour), ExpiresIn: time.Hour})
	h := bearer(expired)
	h.Set("X-Request-Id", "fixaudit-refused-1")
	if r := f.do(t, http.MethodGet, "/actions/profile", h); r.status != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", r.status)
	}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(f.logs.String(), "\n") {
			m := map[string]any{}
			if i := strings.IndexByte(line, '{'); i >= 0 && json.Unmarshal([]byte(line[i:]), &m) == nil && m["msg"] == "access token refused" {
				out = append(out, m)
			}
		}
		return out
	}
	got := lines()
	if len(got) != 1 || got[0]["level"] != "WARN" || got[0]["reason"] != "token expired" || got[0]["client_address"] != "127.0.0.1" || got[0]["request_id"] != "fixaudit-refused-1" {
		t.Fatalf("refusal lines %v, want one warn line with reason token expired, client_address 127.0.0.1, request_id fixaudit-refused-1", got)
	}
	if strings.Contains(f.logs.String(), expired) {
		t.Error("the refused token is in the log")
	}
	time.Sleep(1100 * time.Millisecond) // a fresh second
	for range 60 {
		_ = f.do(t, http.MethodGet, "/actions/profile", bearer("garbage"))
	}
	if n := len(lines()) - 1; n > 20 || n < 1 {
		t.Errorf("60 refusals in a burst wrote %d lines, want 1 to 20 (10 a second)", n)
	}
}
