package server_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestGuardRefusalsAudited: a token or revocation request the guard
// refuses before its handler runs — a repeated parameter, the per-address
// rate limit (and, the same path, its limiter unavailable) — still writes
// its event: a `grant` record at the token endpoint, a `revocation` record
// with endpoint "revoke", the claimed client_id marked
// client_authenticated:false (docs/operations/audit-log.md). Before, only
// the authorization and registration endpoints' refusals were recorded, so
// a Redis outage or a flood at /oauth/token left no audit trace.
func TestGuardRefusalsAudited(t *testing.T) {
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "2"}, "")
	c := f.Clients["local-test"]
	if r := f.clientCall(clientReq{ForwardFor: "198.51.100.91", BasicUser: c.ClientID, BasicPass: c.ClientSecret,
		Form: url.Values{"grant_type": {"refresh_token", "refresh_token"}, "refresh_token": {"x"}}}); r.Status != http.StatusBadRequest || r.Error != "invalid_request" {
		t.Fatalf("repeated grant_type: %d %s %s", r.Status, r.Error, r.Description)
	}
	if r := f.clientCall(clientReq{Path: "/oauth/revoke", ForwardFor: "198.51.100.92", BasicUser: c.ClientID, BasicPass: c.ClientSecret,
		Form: url.Values{"token": {"a", "b"}}}); r.Status != http.StatusBadRequest || r.Error != "invalid_request" {
		t.Fatalf("repeated token: %d %s %s", r.Status, r.Error, r.Description)
	}
	var limited int
	for range 6 {
		r := f.clientCall(clientReq{ForwardFor: "198.51.100.93",
			Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"claimed-client"}}})
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("no 429 from 6 token requests of one address at 2 per minute")
	}

	events := auditEvents(t, f)
	for _, tc := range []struct {
		name string
		want map[string]any
	}{
		{"token, repeated parameter", map[string]any{"event": "grant", "result": "invalid_request", "grant_type": "refresh_token", "client_id": "local-test", "client_authenticated": false, "client_address": "198.51.100.91"}},
		{"revoke, repeated parameter", map[string]any{"event": "revocation", "result": "invalid_request", "endpoint": "revoke", "client_id": "local-test", "client_authenticated": false, "client_address": "198.51.100.92"}},
		{"token, rate limited", map[string]any{"event": "grant", "result": "rate_limited", "grant_type": "refresh_token", "client_id": "claimed-client", "client_authenticated": false, "client_address": "198.51.100.93"}},
	} {
		if findEvent(events, tc.want) == nil {
			t.Errorf("%s: no audit record %v in:\n%v", tc.name, tc.want, events)
		}
	}
	var n int
	for _, e := range events {
		if e["result"] == "rate_limited" && e["client_address"] == "198.51.100.93" {
			n++
		}
	}
	if n != limited {
		t.Errorf("%d rate-limited answers, %d rate_limited records", limited, n)
	}
}
