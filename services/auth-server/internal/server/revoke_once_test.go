package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRevocationRevokesOnce: an RFC 7009 revocation request for a grant's
// refresh token or access token answers 200 and revokes the grant once —
// one announcement to the fleet (the revocation record's ZADD and its
// PUBLISH), one revocation mark and one deletion of the grant's record,
// as the real redis-server runs them (MONITOR), and one audit record —
// and every token of the grant then fails.
//
// fosite's revocation handler revokes a grant's refresh token, then its
// access token; the store revokes the whole grant for each, so without the
// request's scope (store.WithRequestScope, which keeps a grant revoked in
// a request from being written again) the grant was announced and deleted
// twice per request (the audit record stayed one: auditingRevoker writes a
// request's grant once).
func TestRevocationRevokesOnce(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	for _, tc := range []struct {
		name, hint string
		access     bool // revoke the access token, not the refresh token
	}{
		{"refresh token", "", false},
		{"refresh token, hinted", "refresh_token", false},
		{"access token", "", true},
		{"access token, hinted", "access_token", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := f.fullFlow(c, newAuthRequest(c))
			id := grantIDOf(t, tr.AccessToken)
			form := url.Values{"token": {tr.RefreshToken}}
			if tc.access {
				form.Set("token", tr.AccessToken)
			}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			m := monitorRedis(t, f.Redis)
			if resp, body := f.post("/oauth/revoke", c, form); resp.StatusCode != http.StatusOK {
				t.Fatalf("revocation: %d %s", resp.StatusCode, body)
			}
			assertRevokedOnce(t, f, m, id, "revoke", "revocation request (RFC 7009)")
			assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
			// Revoked again: 200 (RFC 7009 §2.2), nothing written.
			m.commands()
			if resp, body := f.post("/oauth/revoke", c, form); resp.StatusCode != http.StatusOK {
				t.Fatalf("revocation again: %d %s", resp.StatusCode, body)
			}
			for _, cmd := range m.commands() {
				if cmd[0] == "publish" || cmd[0] == "del" || cmd[0] == "set" && len(cmd) > 1 && strings.Contains(cmd[1], ":revoked:") {
					t.Errorf("revoking a revoked grant wrote %q", cmd)
				}
			}
		})
	}
}

// assertRevokedOnce checks that grant id was revoked once by the requests
// m watched: one announcement to the fleet (PUBLISH), one revocation
// record (ZADD), one revocation mark (SET) and one deletion of the grant's
// record, as redis-server ran them, and one audit record of the revocation
// naming endpoint and reason.
func assertRevokedOnce(t *testing.T, f *fleet, m *redisMonitor, id, endpoint, reason string) {
	t.Helper()
	var announced, recorded, marked, deleted int
	for _, cmd := range m.commands() {
		switch {
		case cmd[0] == "publish" && len(cmd) == 3 && strings.HasPrefix(cmd[2], id+" "):
			announced++
		case cmd[0] == "zadd" && len(cmd) > 1 && strings.HasSuffix(cmd[1], "revocation:grants") && cmd[len(cmd)-1] == id:
			recorded++
		case cmd[0] == "set" && len(cmd) > 1 && cmd[1] == "tollgate:as:revoked:{"+id+"}":
			marked++
		case cmd[0] == "del" && len(cmd) > 1 && cmd[1] == grantKey(id):
			deleted++
		}
	}
	if announced != 1 || recorded != 1 || marked != 1 || deleted != 1 {
		t.Errorf("the revocation in Redis: %d announcements, %d records, %d marks, %d deletions of the grant; want 1 each",
			announced, recorded, marked, deleted)
	}
	n := 0
	for _, e := range auditEvents(t, f) {
		if e["event"] == "revocation" && e["grant_id"] == id {
			n++
			if e["endpoint"] != endpoint || e["reason"] != reason {
				t.Errorf("the revocation's audit record: %s", e["_line"])
			}
		}
	}
	if n != 1 {
		t.Errorf("%d revocation audit records of the grant, want 1", n)
	}
}
