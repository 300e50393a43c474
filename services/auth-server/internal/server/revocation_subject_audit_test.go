package server_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
)

// TestRevocationAuditNamesTheUser (brk45a NIT): an RFC 7009 request's
// revocation record names the user of the token's grant (subject_hash)
// whenever the server found the grant — a grant revoked by its refresh
// token or by its access token, and another client's token refused with
// unauthorized_client, whose user is the one whose token leaked — so an
// investigator need not follow grant_id back to code_issued. A token
// without an active grant names nobody. Before: no revocation record of
// /oauth/revoke had a subject_hash.
func TestRevocationAuditNamesTheUser(t *testing.T) {
	f := startFleet(t, nil)
	owner, other := f.Clients["local-test"], f.Clients["gpt-apps-mcp"]
	v := f.Verifier(f.Base+"/mcp", f.Base+"/actions")
	first := f.fullFlow(owner, newAuthRequest(owner))
	second := f.fullFlow(owner, newAuthRequest(owner))
	claims, err := v.Verify(ctxT(t), first.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	user := audit.HashSubject(claims.Subject)

	for _, tc := range []struct {
		name   string
		client devClient
		token  string
		status int
		want   map[string]any
	}{
		{"another client's access token", other, first.AccessToken, http.StatusBadRequest,
			map[string]any{"result": "unauthorized_client", "client_id": other.ClientID, "token_client_id": owner.ClientID, "subject_hash": user}},
		{"its own refresh token", owner, first.RefreshToken, http.StatusOK,
			map[string]any{"result": "ok", "client_id": owner.ClientID, "grant_id": claims.GrantID, "subject_hash": user}},
		{"its own access token", owner, second.AccessToken, http.StatusOK,
			map[string]any{"result": "ok", "client_id": owner.ClientID, "subject_hash": user, "reason": "revocation request (RFC 7009)"}},
		{"a token without an active grant", owner, "unknown-" + rand.Text(), http.StatusOK,
			map[string]any{"result": "ok", "client_id": owner.ClientID, "subject_hash": nil, "grant_id": nil}},
	} {
		n := len(auditEvents(t, f))
		resp, body := f.post("/oauth/revoke", tc.client, url.Values{"token": {tc.token}})
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		var recs []map[string]any
		for _, e := range auditEvents(t, f)[n:] {
			if e["event"] == "revocation" {
				recs = append(recs, e)
			}
		}
		if len(recs) != 1 {
			t.Fatalf("%s: %d revocation records, want 1: %v", tc.name, len(recs), recs)
		}
		for k, w := range tc.want {
			if recs[0][k] != w {
				t.Errorf("%s: %s = %v, want %v\n%s", tc.name, k, recs[0][k], w, recs[0]["_line"])
			}
		}
	}
}
