package server_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestRefreshReuseByAnotherClientAudited: a rotated refresh token
// presented again at the token endpoint by a client it was not issued to
// is reuse (RFC 9700 §4.14.2: evidence the token was stolen) — fosite
// detects it before its owner check — and revokes the owner's grant: 400
// invalid_grant, the owner's newest tokens refused. The security owner
// reads it in the audit log: a refresh_reuse_detected record and the
// token endpoint's revocation record, each naming the grant, the
// presenting client (client_id, authenticated) and the client the token
// was issued to (token_client_id). The same token at /oauth/revoke from
// that client is refused (400 unauthorized_client, RFC 7009 §2.1) and
// revokes nothing; its revocation record names the presenting client and
// the token's, and no grant. Before, no record named the token's client:
// the reuse read as the presenting client's own.
func TestRefreshReuseByAnotherClientAudited(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "0s"})
	owner, other := f.Clients["local-test"], f.Clients["gpt-apps-mcp"]
	v := f.Verifier(f.Base+"/mcp", f.Base+"/actions")
	tr := f.fullFlow(owner, newAuthRequest(owner))
	next := f.refresh(owner, tr.RefreshToken)
	if next.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", next.Status, next.Error)
	}
	claims, err := v.Verify(ctxT(t), next.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	grant := claims.GrantID

	// /oauth/revoke: refused, nothing revoked.
	resp, b := f.post("/oauth/revoke", other, url.Values{"token": {tr.RefreshToken}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("%s revoking %s's rotated token: %d %s, want 400 unauthorized_client", other.ClientID, owner.ClientID, resp.StatusCode, b)
	}
	if st, _ := f.userinfo(next.AccessToken); st != http.StatusOK {
		t.Fatalf("the owner's access token after another client's revocation request: %d, want 200", st)
	}

	// /oauth/token: reuse, the grant revoked.
	if r := f.refresh(other, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("%s presenting %s's rotated token: %d %s, want 400 invalid_grant", other.ClientID, owner.ClientID, r.Status, r.Error)
	}
	if st, _ := f.userinfo(next.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("the owner's newest access token after the reuse: %d, want 401", st)
	}
	if r := f.refresh(owner, next.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("the owner's newest refresh token after the reuse: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}

	events := auditEvents(t, f)
	for _, want := range []map[string]any{
		{"event": "refresh_reuse_detected", "result": "invalid_grant", "grant_id": grant, "client_id": other.ClientID, "client_authenticated": true, "token_client_id": owner.ClientID},
		{"event": "revocation", "result": "ok", "endpoint": "token", "grant_id": grant, "client_id": other.ClientID, "client_authenticated": true, "token_client_id": owner.ClientID},
		{"event": "revocation", "result": "unauthorized_client", "endpoint": "revoke", "client_id": other.ClientID, "client_authenticated": true, "token_client_id": owner.ClientID},
	} {
		if findEvent(events, want) == nil {
			var got []string
			for _, e := range events {
				if e["event"] == want["event"] {
					got = append(got, e["_line"].(string))
				}
			}
			t.Errorf("no audit record %v; %s records:\n%v", want, want["event"], got)
		}
	}
	if e := findEvent(events, map[string]any{"event": "revocation", "endpoint": "revoke", "client_id": other.ClientID}); e != nil && e["grant_id"] != nil {
		t.Errorf("the refused revocation request names a grant: %v", e["_line"])
	}
}
