package server_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

// TestOneClientAuthMethodWithAssertions: RFC 6749 §2.3 — a request uses one
// client authentication method. clientauth_test.go covers Basic plus body
// credentials at the token and revocation endpoints; these are the
// combinations with private_key_jwt's client_assertion, and the
// introspection endpoint, tried by the breaker against the fleet
// (400 invalid_request each, held).
func TestOneClientAuthMethodWithAssertions(t *testing.T) {
	f := startFleet(t, nil)
	local, actions := f.Clients["local-test"], f.Clients["gpt-actions"]
	with := func(form url.Values, more url.Values) url.Values {
		out := url.Values{}
		for _, m := range []url.Values{form, more} {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	assertion := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"a.b.c"}}
	basicUser, basicPass := "local-test", url.QueryEscape(local.ClientSecret)
	token := url.Values{"token": {"not-a-token"}}
	cases := []struct {
		name string
		req  clientReq
	}{
		{"token: Basic plus client_assertion", clientReq{BasicUser: basicUser, BasicPass: basicPass, Form: with(badRefresh(), assertion)}},
		{"token: client_secret_post plus client_assertion", clientReq{Form: with(postCreds(actions, actions.ClientSecret, badRefresh()), assertion)}},
		{"introspect: Basic plus client_secret_post", clientReq{Path: "/oauth/introspect", BasicUser: basicUser, BasicPass: basicPass, Form: postCreds(local, local.ClientSecret, token)}},
		{"introspect: Basic plus client_assertion", clientReq{Path: "/oauth/introspect", BasicUser: basicUser, BasicPass: basicPass, Form: with(token, assertion)}},
		{"revoke: client_secret_post plus client_assertion", clientReq{Path: "/oauth/revoke", Form: with(postCreds(actions, actions.ClientSecret, token), assertion)}},
	}
	for i, tc := range cases {
		tc.req.ForwardFor = "203.0.113." + strconv.Itoa(230+i)
		if r := f.clientCall(tc.req); r.Status != http.StatusBadRequest || r.Error != "invalid_request" {
			t.Errorf("%s: %d %s, want 400 invalid_request", tc.name, r.Status, r.Error)
		}
	}
}
