package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestClientCredentialsInTheQueryRefused (brk42): RFC 6749 §2.3.1 — client
// credentials "MUST NOT be included in the request URI". A client_secret
// (alone or with client_id) or a client_assertion in the query string of
// the token, revocation or introspection endpoint is refused 400
// invalid_request naming the parameter — it was a generic 401, which did
// not tell the client what was wrong — and the value reaches no log.
func TestClientCredentialsInTheQueryRefused(t *testing.T) {
	f := startFleet(t, nil)
	apps := f.Clients["gpt-apps-mcp"]
	cases := []struct {
		path, param, value string
		form               url.Values
	}{
		{"/oauth/token", "client_secret", "QS-SECRET-ALONE", postCreds(apps, apps.ClientSecret, badRefresh())},
		{"/oauth/token", "client_secret", "QS-SECRET-WITH-ID", badRefresh()},
		{"/oauth/token", "client_assertion", "QS-ASSERTION-TOKEN", badRefresh()},
		{"/oauth/revoke", "client_secret", "QS-SECRET-REVOKE", url.Values{"token": {"x"}}},
		{"/oauth/introspect", "client_secret", "QS-SECRET-INTROSPECT", url.Values{"token": {"x"}}},
	}
	// The first sends its credentials in the body too (only the secret is
	// in the query); the others name the client in the query.
	for _, c := range cases {
		q := url.Values{c.param: {c.value}}
		if c.form.Get("client_id") == "" {
			q.Set("client_id", apps.ClientID)
		}
		r := f.clientCall(clientReq{Path: c.path + "?" + q.Encode(), Form: c.form})
		if r.Status != http.StatusBadRequest || r.Error != "invalid_request" || !strings.Contains(r.Description, c.param+" in the query string") {
			t.Errorf("%s?%s: %d %s %q, want 400 invalid_request naming %s", c.path, q.Encode(), r.Status, r.Error, r.Description, c.param)
		}
		if strings.Contains(r.Description, c.value) {
			t.Errorf("%s: the answer repeats the credential: %q", c.path, r.Description)
		}
	}
	// The same secret in the body is accepted.
	if r := f.clientCall(clientReq{Form: postCreds(apps, apps.ClientSecret, badRefresh())}); r.Error != "invalid_grant" {
		t.Errorf("secret in the body: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
	logs := f.AS.Logs.String()
	for _, c := range cases {
		if strings.Contains(logs, c.value) {
			t.Errorf("the logs hold the query-string credential %s", c.value)
		}
	}
}
