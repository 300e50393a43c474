package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestUnsupportedScopeRefusals (auth49 #1): a scope this server does not
// support at all (not in discovery's scopes_supported) is refused
// invalid_scope saying so — at the authorization endpoint (RFC 6749
// §4.1.2.1) and in a refresh's scope parameter (§5.2) — apart from a
// supported scope the client may not request (fosite's "not allowed to
// request scope") and one its grant does not hold. fosite answered
// "admin" as a scope the client was not allowed, as if another could be.
func TestUnsupportedScopeRefusals(t *testing.T) {
	f := startFleetWith(t, nil, `- client_id: narrow-app
  client_name: Narrow app
  redirect_uris: ["http://127.0.0.1:8978/narrow-cb"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
  scopes: [openid, profile]
`)
	supported := scopesSupported(t, f)
	if slices.Contains(supported, "admin") || !slices.Contains(supported, "email") || !slices.Contains(supported, "offline_access") {
		t.Fatalf("scopes_supported %v: want email and offline_access, not admin", supported)
	}
	narrow := devClient{ClientID: "narrow-app", RedirectURIs: []string{"http://127.0.0.1:8978/narrow-cb"}, AuthMethod: "none"}
	const notSupported = "The requested scope is invalid, unknown, or malformed. The scope 'admin' is not supported by this server: scopes_supported in its metadata lists the scopes it supports now."
	for _, tc := range []struct {
		name, scope, want string
		c                 devClient
	}{
		{"a scope this server does not support", "openid admin", notSupported, narrow},
		{"an unsupported scope before one the client may not request", "openid admin email", notSupported, narrow},
		{"an unsupported scope of a client allowed every supported one", "openid admin", notSupported, f.Clients["local-test"]},
		{"a supported scope the client may not request", "openid email", "The requested scope is invalid, unknown, or malformed. The OAuth 2.0 Client is not allowed to request scope 'email'.", narrow},
	} {
		a := newAuthRequest(tc.c)
		a.Scope = tc.scope
		p := newBrowser(t, a.RedirectURI).get(a.URL(f.Base))
		if p.Location == nil {
			t.Errorf("%s: %d, no redirect\n%s", tc.name, p.Status, p.Body)
			continue
		}
		q := p.Location.Query()
		if q.Get("error") != "invalid_scope" || q.Get("error_description") != tc.want || q.Get("state") != a.State {
			t.Errorf("%s (scope %q): %v\nwant invalid_scope %q with the state", tc.name, tc.scope, p.Location, tc.want)
		}
	}

	// A refresh (RFC 6749 §6, §5.2): a scope not supported, and one
	// supported that the grant lacks, are each refused in their words; the
	// refresh token still works.
	c := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c))
	for _, tc := range []struct{ scope, want string }{
		{"openid admin", notSupported},
		{"openid offline_access", "The scope 'offline_access' was not granted to this grant"},
	} {
		r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {tc.scope}})
		if r.Status != http.StatusBadRequest || r.Error != "invalid_scope" || !strings.Contains(r.Description, tc.want) {
			t.Errorf("refresh with scope %q: %d %s %q, want 400 invalid_scope %q", tc.scope, r.Status, r.Error, r.Description, tc.want)
		}
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("refresh after the refusals: %d %s %s", r.Status, r.Error, r.Description)
	}
}
