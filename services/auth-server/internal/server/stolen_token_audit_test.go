package server_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
)

// TestRefusedGrantRequestsNameTheGrant (brk45a): a token request refused
// on a code or refresh token the server found — and whose MAC it
// checked — is audited with that token's grant (grant_id), its user
// (subject_hash) and the client it was issued to (token_client_id), so a
// client presenting another client's current refresh token or unredeemed
// code reads as what it is (docs/security.md's audit row: "names both
// clients"), and a scope escalation (RFC 6749 §6), an audience change
// (RFC 8707 §2) or a wrong PKCE verifier says which grant and user it
// aimed at. A forged token — a real grant's id under a MAC the server did
// not make — names nothing: the record would otherwise be whatever its
// sender wrote. No record holds the token or code itself. Before: each
// was a bare {"event":"grant","result":"invalid_…","client_id":<presenter>}.
func TestRefusedGrantRequestsNameTheGrant(t *testing.T) {
	f := startFleet(t, nil)
	owner, other := f.Clients["local-test"], f.Clients["gpt-apps-mcp"]
	v := f.Verifier(f.Base+"/mcp", f.Base+"/actions")
	tr := f.fullFlow(owner, newAuthRequest(owner))
	claims, err := v.Verify(ctxT(t), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	grant, user := claims.GrantID, audit.HashSubject(claims.Subject)

	// refused sends a token request that must be refused with status and
	// code, and returns the one grant record it wrote.
	refused := func(what string, status int, code string, do func() tokenResponse, secrets ...string) map[string]any {
		t.Helper()
		n := len(auditEvents(t, f))
		if r := do(); r.Status != status || r.Error != code {
			t.Fatalf("%s: %d %s (%s), want %d %s", what, r.Status, r.Error, r.Description, status, code)
		}
		var recs []map[string]any
		for _, e := range auditEvents(t, f)[n:] {
			if e["event"] == "grant" {
				recs = append(recs, e)
			}
			for _, s := range secrets {
				if line := e["_line"].(string); strings.Contains(line, s) {
					t.Errorf("%s: an audit line holds the token or code:\n%s", what, line)
				}
			}
		}
		if len(recs) != 1 {
			t.Fatalf("%s: %d grant records, want 1: %v", what, len(recs), recs)
		}
		return recs[0]
	}
	// expect checks rec's fields (nil: absent).
	expect := func(what string, rec map[string]any, want map[string]any) {
		t.Helper()
		for k, w := range want {
			if rec[k] != w {
				t.Errorf("%s: %s = %v, want %v\n%s", what, k, rec[k], w, rec["_line"])
			}
		}
	}

	// Another client presents the owner's current refresh token.
	rec := refused("another client presenting the refresh token", http.StatusBadRequest, "invalid_grant",
		func() tokenResponse { return f.refresh(other, tr.RefreshToken) }, tr.RefreshToken)
	expect("another client's refresh token", rec, map[string]any{"grant_type": "refresh_token", "client_id": other.ClientID,
		"client_authenticated": true, "token_client_id": owner.ClientID, "grant_id": grant, "subject_hash": user})
	// The owner asks for a scope the grant does not have (RFC 6749 §6).
	rec = refused("refresh with a scope beyond the grant", http.StatusBadRequest, "invalid_scope", func() tokenResponse {
		return f.token(owner, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {"openid connections.revoke"}})
	}, tr.RefreshToken)
	expect("scope escalation", rec, map[string]any{"client_id": owner.ClientID, "token_client_id": owner.ClientID, "grant_id": grant, "subject_hash": user})
	// The owner asks for another resource than the grant's (RFC 8707 §2).
	rec = refused("refresh for another resource", http.StatusBadRequest, "invalid_target", func() tokenResponse {
		return f.token(owner, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {f.Base + "/actions"}})
	}, tr.RefreshToken)
	expect("audience change", rec, map[string]any{"client_id": owner.ClientID, "token_client_id": owner.ClientID, "grant_id": grant, "subject_hash": user})
	// A forged refresh token naming the real grant: no MAC of the server's.
	key := append(append([]byte{byte(len(grant))}, grant...), make([]byte, 32)...)
	forged := "ory_rt_" + base64.RawURLEncoding.EncodeToString(key) + "." + strings.Repeat("A", 43)
	rec = refused("a forged refresh token", http.StatusBadRequest, "invalid_grant",
		func() tokenResponse { return f.refresh(owner, forged) }, forged)
	expect("forged refresh token", rec, map[string]any{"client_id": owner.ClientID, "token_client_id": nil, "grant_id": nil, "subject_hash": nil})

	// The owner's unredeemed code: presented by another client, with a
	// wrong PKCE verifier, and altered (its MAC kept, its nonce changed:
	// the store finds the code's hash, its MAC check fails). None burns
	// the code for its owner.
	a := newAuthRequest(owner)
	code := f.authorize(a)
	rec = refused("another client redeeming the code", http.StatusBadRequest, "invalid_grant",
		func() tokenResponse { return f.exchange(other, a, code) }, code)
	codeRecs := []map[string]any{rec}
	rec = refused("a wrong PKCE verifier", http.StatusBadRequest, "invalid_grant", func() tokenResponse {
		return f.exchange(owner, &authRequest{RedirectURI: a.RedirectURI, Verifier: newAuthRequest(owner).Verifier}, code)
	}, code)
	codeRecs = append(codeRecs, rec)
	k, mac, _ := strings.Cut(strings.TrimPrefix(code, "ory_ac_"), ".")
	raw, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil || len(raw) < 33 {
		t.Fatalf("code %q: key %x, %v", code, raw, err)
	}
	raw[len(raw)-1] ^= 1
	altered := "ory_ac_" + base64.RawURLEncoding.EncodeToString(raw) + "." + mac
	rec = refused("an altered code", http.StatusBadRequest, "invalid_grant",
		func() tokenResponse { return f.exchange(owner, a, altered) }, altered, mac)
	expect("altered code", rec, map[string]any{"client_id": owner.ClientID, "token_client_id": nil, "grant_id": nil, "subject_hash": nil})

	tr2 := f.exchange(owner, a, code)
	if tr2.Status != http.StatusOK {
		t.Fatalf("the owner's exchange after the refusals: %d %s (%s)", tr2.Status, tr2.Error, tr2.Description)
	}
	c2, err := v.Verify(ctxT(t), tr2.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	expect("another client's code", codeRecs[0], map[string]any{"grant_type": "authorization_code", "client_id": other.ClientID,
		"token_client_id": owner.ClientID, "grant_id": c2.GrantID, "subject_hash": user})
	expect("wrong PKCE verifier", codeRecs[1], map[string]any{"grant_type": "authorization_code", "client_id": owner.ClientID,
		"token_client_id": owner.ClientID, "grant_id": c2.GrantID, "subject_hash": user})
}
