package server_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizeParametersAsAdvertised: the authorization endpoint accepts
// what the metadata advertises and answers what it does not as the
// standards say, back at the verified redirect URI with state and iss
// (RFC 9207 §2):
//
//   - response_mode=query (response_modes_supported: ["query"]) works end
//     to end — fosite refused it (unsupported_response_mode) for clients
//     that declare no response modes, i.e. all of them; other modes are
//     invalid_request (docs/reference/oauth.md);
//   - request and request_uri (request_parameter_supported and
//     request_uri_parameter_supported: false) are request_not_supported /
//     request_uri_not_supported (OpenID Connect Core §6.1, §6.2) — for a
//     private_key_jwt client fosite decoded an unsigned request object
//     (alg "none") and went on to sign-in;
//   - prompt=none with another value is invalid_request (OpenID Connect
//     Core §3.1.2.1).
func TestAuthorizeParametersAsAdvertised(t *testing.T) {
	redirect := "http://127.0.0.1:8983/oauthbreak-callback"
	registry, _ := keyJWTClient(t, "pkj-break", redirect)
	f := startFleetWith(t, nil, registry)
	keyed := devClient{ClientID: "pkj-break", RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
	pub := f.Clients["test-public"]

	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"client_id":"pkj-break","response_type":"code","redirect_uri":"`+redirect+`","scope":"openid"}`)) + "."
	for _, tc := range []struct {
		name   string
		client devClient
		extra  url.Values
		code   string
	}{
		{"response_mode=fragment", pub, url.Values{"response_mode": {"fragment"}}, "invalid_request"},
		{"response_mode=form_post", pub, url.Values{"response_mode": {"form_post"}}, "invalid_request"},
		{"unsigned request object, keyed client", keyed, url.Values{"request": {unsigned}}, "request_not_supported"},
		{"request object, public client", pub, url.Values{"request": {unsigned}}, "request_not_supported"},
		{"request_uri", keyed, url.Values{"request_uri": {"https://client.example/request.jwt"}}, "request_uri_not_supported"},
		{"prompt none with login", pub, url.Values{"prompt": {"none login"}}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthRequest(tc.client)
			a.Extra = tc.extra
			p := newBrowser(t, tc.client.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base))
			if p.Location == nil || !strings.HasPrefix(p.Location.String(), tc.client.RedirectURIs[0]) {
				t.Fatalf("%d %v, want a redirect to %s", p.Status, p.Location, tc.client.RedirectURIs[0])
			}
			q := p.Location.Query()
			if q.Get("error") != tc.code || q.Get("state") != a.State || q.Get("iss") != f.Base || q.Has("code") {
				t.Errorf("redirect %s: want error=%s with state %q and iss %q", p.Location, tc.code, a.State, f.Base)
			}
		})
	}

	// Last: fullFlow stops the test when the flow fails.
	a := newAuthRequest(pub)
	a.Extra = url.Values{"response_mode": {"query"}}
	if tr := f.fullFlow(pub, a); tr.IDToken == "" {
		t.Errorf("response_mode=query: no ID token")
	}
}
