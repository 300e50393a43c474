package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPortlessLocalhostRedirectAnyPort: a client that registered
// http://localhost/callback without a port — as Claude Code's published
// Client ID Metadata Document does, next to http://127.0.0.1/callback —
// signs in with http://localhost:<any port>/callback: RFC 8252 §7.3's
// any-port rule, which applied to loopback IP literals only, so the
// authorization endpoint answered 400 asking to "add exactly this URI",
// which the vendor's document cannot. The path and query must still be
// the registered ones, a registered localhost port stays exact, and
// localhost never stands for 127.0.0.1 (nor the reverse).
func TestPortlessLocalhostRedirectAnyPort(t *testing.T) {
	f := startFleetWith(t, nil, `- client_id: cc-like
  redirect_uris: ["http://localhost/callback", "http://127.0.0.1/callback", "http://localhost:6274/oauth/callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
- client_id: localhost-only
  redirect_uris: ["http://localhost/callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
`)
	cc := devClient{ClientID: "cc-like", AuthMethod: "none", RedirectURIs: []string{"http://localhost:54321/callback"}}
	for _, uri := range []string{"http://localhost:54321/callback", "http://localhost:1/callback", "http://localhost/callback", "http://127.0.0.1:40000/callback", "http://localhost:6274/oauth/callback"} {
		a := newAuthRequest(cc)
		a.RedirectURI = uri
		code := f.authorize(a)
		if tr := f.exchange(cc, a, code); tr.Status != http.StatusOK || tr.AccessToken == "" {
			t.Errorf("%s: exchange %d %s %s", uri, tr.Status, tr.Error, tr.Description)
		}
	}

	for id, uris := range map[string][]string{
		"cc-like": {"http://localhost:54321/other", "http://localhost:54321/callback?x=1", "http://LOCALHOST:54321/callback",
			"https://localhost:54321/callback", "http://localhost:6275/oauth/callback", "http://localhost:054321/callback"},
		"localhost-only": {"http://127.0.0.1:54321/callback", "http://[::1]:54321/callback", "http://127.0.0.1/callback"},
	} {
		for _, uri := range uris {
			a := newAuthRequest(devClient{ClientID: id, RedirectURIs: []string{uri}})
			p := newBrowser(t, "http://localhost", "http://127.0.0.1", "http://[::1]", "https://localhost", "http://LOCALHOST").get(a.URL(f.Base))
			if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "invalid_request") {
				t.Errorf("%s with %s: %d %v, want 400 invalid_request on the error page:\n%.400s", id, uri, p.Status, p.Location, p.Body)
			}
			if st, _, desc := authorizeJSON(t, a.URL(f.Base), "", ""); st != http.StatusBadRequest || !strings.Contains(desc, "is not registered") && !strings.Contains(desc, "leading zero") {
				t.Errorf("%s with %s: JSON %d %q, want it not registered", id, uri, st, desc)
			}
		}
	}
}
