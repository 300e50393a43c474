package server_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestIDTokenHintOnlyWithOpenID: id_token_hint is an OpenID Connect
// parameter (OpenID Connect Core §3.1.2.1). In a request without openid —
// plain OAuth 2.0, where fosite ignores the hint — a hint that is no ID
// token of this server is ignored: the code is issued and redeemed (no ID
// token). With openid, asked or the default scope of a request naming
// none, the same hint is refused invalid_request before the sign-in.
// Before, the request without openid was refused too.
func TestIDTokenHintOnlyWithOpenID(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["test-public"]
	const refused = "id_token_hint is not an ID token signed by this server with a published key (OpenID Connect Core section 3.1.2.1)"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, scope := range []string{"openid profile", ""} {
		a := newAuthRequest(c)
		a.Scope = scope
		a.Extra = url.Values{"id_token_hint": {"not-a-jwt"}}
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("error_description") != refused {
			t.Errorf("scope %q: %d to %q, want the invalid_request redirect saying %q", scope, resp.StatusCode, resp.Header.Get("Location"), refused)
		}
	}
	a := newAuthRequest(c)
	a.Scope = "profile email"
	a.Extra = url.Values{"id_token_hint": {"not-a-jwt"}}
	tr := f.exchange(c, a, f.authorize(a)) // through the consent page, which test-public always gets
	if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.IDToken != "" {
		t.Errorf("exchange: %d %s %s, id_token %q; want an access token and no ID token", tr.Status, tr.Error, tr.Description, tr.IDToken)
	}
}
