package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestUpstreamFailures: the upstream's problems reach the client as OAuth
// errors on its redirect URI, never as 500s.
func TestUpstreamFailures(t *testing.T) {
	t.Run("idp unreachable", func(t *testing.T) {
		f := startFleet(t, map[string]string{"UPSTREAM_ISSUER_URL": "http://" + testharness.ClosedAddr(t)})
		c := f.Clients["local-test"]
		p := newBrowser(t, c.RedirectURIs[0]).get(newAuthRequest(c).URL(f.Base))
		if p.Location == nil || p.Location.Query().Get("error") != "temporarily_unavailable" || p.Location.Query().Get("iss") != f.Base {
			t.Fatalf("got %d %v, want a redirect with temporarily_unavailable", p.Status, p.Location)
		}
	})
	t.Run("wrong upstream client secret", func(t *testing.T) {
		f := startFleet(t, map[string]string{"UPSTREAM_CLIENT_SECRET": "not-the-secret"})
		c := f.Clients["local-test"]
		a := newAuthRequest(c)
		p := f.login(newBrowser(t, c.RedirectURIs[0]), a)
		if p.Location == nil {
			t.Fatalf("no redirect to the client: %d\n%s", p.Status, p.Body)
		}
		q := p.Location.Query()
		if q.Get("error") != "server_error" || q.Get("state") != a.State || q.Get("code") != "" {
			t.Fatalf("redirect %s, want error=server_error with the state and no code", p.Location)
		}
	})
}

// TestClaimMapping: UPSTREAM_CLAIM_MAP takes a profile claim from another
// upstream claim.
func TestClaimMapping(t *testing.T) {
	f := startFleet(t, map[string]string{"UPSTREAM_CLAIM_MAP": "name=preferred_username"})
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	claims, err := f.Verifier(c.Audience).Verify(ctxT(t), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Profile.Name != "dev" {
		t.Errorf("name = %q, want the upstream preferred_username %q", claims.Profile.Name, "dev")
	}
}

// TestIntrospectionCORSAndConsentRevocation covers the smaller endpoints.
func TestIntrospectionCORSAndConsentRevocation(t *testing.T) {
	f := startFleet(t, map[string]string{"ALLOWED_ORIGINS": "https://inspector.example"})
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))

	resp, body := f.post("/oauth/introspect", c, url.Values{"token": {tr.AccessToken}})
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	if resp.StatusCode != 200 || m["active"] != true || m["client_id"] != "local-test" {
		t.Errorf("introspect: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.post("/oauth/introspect", devClient{ClientID: "local-test", ClientSecret: "wrong"}, url.Values{"token": {tr.AccessToken}})
	if resp.StatusCode != 401 {
		t.Errorf("introspect with a wrong secret: %d, want 401", resp.StatusCode)
	}

	for origin, allowed := range map[string]bool{"https://inspector.example": true, "https://evil.example": false} {
		req, _ := http.NewRequest(http.MethodOptions, f.Base+"/oauth/token", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin") == origin; got != allowed {
			t.Errorf("CORS for %s: allowed=%v, want %v", origin, got, allowed)
		}
	}

	// Consent revocation needs the user's token and a client id.
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent/revoke", strings.NewReader("client_id=local-test"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("consent revocation without a token: %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, f.Base+"/oauth/consent/revoke", strings.NewReader("client_id=local-test"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("consent revocation: %d, want 204", resp.StatusCode)
	}
}
