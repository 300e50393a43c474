package server_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyRotationAsAnOperator follows docs/operations/key-rotation.md
// "Rotating without downtime" against a real auth-server (restarts stand
// for the rollouts) and checks what a client holds across it: its refresh
// token keeps working at every step (TOKEN_HMAC_SECRET set, as in
// production), refreshed access and ID tokens carry the new kid once it is
// active, the old key's access token keeps working at the auth-server's own
// endpoints until the key is retired, and an ID token of the old key is
// still accepted as id_token_hint (OpenID Connect Core §3.1.2.1) while the
// old key is published.
func TestKeyRotationAsAnOperator(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": strings.Repeat("k", 48)})
	c := f.Clients["test-public"] // a public client: its authentication does not depend on the HMAC secret
	first := f.fullFlow(c, newAuthRequest(c))
	oldKid := kidOf(t, first.AccessToken)
	if first.IDToken == "" || kidOf(t, first.IDToken) != oldKid {
		t.Fatalf("ID token %q: want one signed by %q", first.IDToken, oldKid)
	}
	keys := f.env["SIGNING_KEYS_DIR"]

	// Step 1: add the new key, keep the old one active.
	writeKey(t, keys, "2026-11")
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE": oldKid})
	for _, p := range []string{"/oauth/jwks", "/.well-known/openid-configuration"} {
		resp, err := http.Get(f.Base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
			t.Errorf("%s Cache-Control: %q, want the 5 minutes the doc's step 2 waits", p, cc)
		}
	}
	if jwks := get(t, f.Base+"/oauth/jwks"); !strings.Contains(jwks, `"`+oldKid+`"`) || !strings.Contains(jwks, `"2026-11"`) {
		t.Fatalf("step 1: JWKS must publish both keys: %s", jwks)
	}
	r1 := f.refresh(c, first.RefreshToken)
	if r1.Status != http.StatusOK || kidOf(t, r1.AccessToken) != oldKid {
		t.Fatalf("step 1 refresh: %d %s %s", r1.Status, r1.Error, r1.Description)
	}

	// Step 3: activate the new key.
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE": "2026-11"})
	// The refresh names openid (with the rest of the grant's scope), so
	// that it returns an ID token (OpenID Connect Core §12.2).
	r3 := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1.RefreshToken}, "scope": {first.Scope}})
	if r3.Status != http.StatusOK || r3.IDToken == "" {
		t.Fatalf("step 3 refresh with scope %q: %d %s %s, ID token %q", first.Scope, r3.Status, r3.Error, r3.Description, r3.IDToken)
	}
	if kidOf(t, r3.AccessToken) != "2026-11" || kidOf(t, r3.IDToken) != "2026-11" {
		t.Errorf("step 3 refresh signed by %q (ID token %q), want 2026-11", kidOf(t, r3.AccessToken), r3.IDToken)
	}
	if st, m := f.userinfo(r1.AccessToken); st != http.StatusOK {
		t.Errorf("step 3: userinfo with the old key's access token: %d %v, want 200", st, m)
	}
	for name, hint := range map[string]string{"the old key's": first.IDToken, "the new key's": r3.IDToken} {
		a := newAuthRequest(c)
		a.Extra = url.Values{"id_token_hint": {hint}}
		b := newBrowser(t, a.RedirectURI)
		p := f.loginApproving(b, a)
		if p.Location == nil || p.Location.Query().Get("code") == "" {
			loc := ""
			if p.Location != nil {
				loc = p.Location.String()
			}
			t.Errorf("step 3: id_token_hint %s ID token: %d %s %.300s, want a code", name, p.Status, loc, p.Body)
			continue
		}
		// The ID token is signed at the exchange, which decodes the hint again.
		if tr := f.exchange(c, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK || tr.IDToken == "" || kidOf(t, tr.IDToken) != "2026-11" {
			t.Errorf("step 3: exchange of the code asked with %s ID token as hint: %d %s %s", name, tr.Status, tr.Error, tr.Description)
		}
	}

	// Step 4: retire the old key.
	if err := os.Remove(filepath.Join(keys, oldKid+".pem")); err != nil {
		t.Fatal(err)
	}
	f.restart(nil)
	if st, _ := f.userinfo(r1.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("step 4: userinfo with the retired key's token: %d, want 401", st)
	}
	// A hint signed by a key no longer published is refused, as before —
	// now before the user signs in: the refusal is sent to the client at
	// once, not after a sign-in at the identity provider. So is a hint
	// that is no JWT, or one signed with another key under a published
	// kid.
	forged := withKid(t, first.IDToken, "2026-11")
	for name, hint := range map[string]string{"the retired key's ID token": first.IDToken, "no JWT": "not-a-jwt", "another key's signature": forged} {
		a := newAuthRequest(c)
		a.Extra = url.Values{"id_token_hint": {hint}}
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), a.RedirectURI) ||
			loc.Query().Get("error") != "invalid_request" ||
			loc.Query().Get("error_description") != "id_token_hint is not an ID token signed by this server with a published key (OpenID Connect Core section 3.1.2.1)" {
			t.Errorf("step 4: id_token_hint %s: %d to %q, want the invalid_request redirect before sign-in", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if r4 := f.refresh(c, r3.RefreshToken); r4.Status != http.StatusOK || kidOf(t, r4.AccessToken) != "2026-11" {
		t.Errorf("step 4 refresh: %d %s %s", r4.Status, r4.Error, r4.Description)
	}
}
