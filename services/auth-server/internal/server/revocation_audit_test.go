package server_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"testing"
)

// TestRevocationAuditNamesAuthenticatedClient: every revocation audit
// record of /oauth/revoke names the client that authenticated — also a
// private_key_jwt client that sends no client_id (RFC 7523 §3), whose
// claimed id is empty: a grant it revoked, a token that has no active
// grant (200, RFC 7009 §2.2) and another client's token (400
// unauthorized_client, RFC 7009 §2.1). A request whose authentication
// failed is a client_authentication_failure with the claimed id marked
// client_authenticated:false, and no revocation record names it.
func TestRevocationAuditNamesAuthenticatedClient(t *testing.T) {
	redirect := "http://127.0.0.1:8977/pkj-revoke-callback"
	registry, sign := keyJWTClient(t, "pkj-revoker", redirect)
	// Each request comes "from" its own address (X-Forwarded-For), which
	// finds its records.
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, registry)
	// assertion authenticates pkj-revoker (aud: the token endpoint, as
	// fosite checks it at every endpoint).
	assertion := func(aud string, extra ...string) url.Values {
		return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {sign(aud, rand.Text(), extra...)}}
	}
	with := func(form url.Values, more url.Values) url.Values {
		for k, v := range more {
			form[k] = v
		}
		return form
	}
	tokenURL := f.Base + "/oauth/token"

	c := devClient{ClientID: "pkj-revoker", RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
	a := newAuthRequest(c)
	code := f.authorize(a)
	own := f.token(c, with(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}}, assertion(tokenURL)))
	if own.Status != http.StatusOK {
		t.Fatalf("pkj-revoker's token: %d %s %s", own.Status, own.Error, own.Description)
	}
	other := f.Clients["local-test"]
	others := f.fullFlow(other, newAuthRequest(other))

	for _, tc := range []struct {
		name, addr string
		form       url.Values
		status     int
		want       map[string]any
	}{
		{"another client's token", "198.51.100.61", with(url.Values{"token": {others.AccessToken}}, assertion(tokenURL)),
			http.StatusBadRequest, map[string]any{"event": "revocation", "result": "unauthorized_client"}},
		{"a token without an active grant", "198.51.100.62", with(url.Values{"token": {"unknown-" + rand.Text()}}, assertion(tokenURL)),
			http.StatusOK, map[string]any{"event": "revocation", "result": "ok", "reason": "no active grant for the token (RFC 7009 §2.2: answered 200)"}},
		{"its own token", "198.51.100.63", with(url.Values{"token": {own.RefreshToken}}, assertion(tokenURL)),
			http.StatusOK, map[string]any{"event": "revocation", "result": "ok", "reason": "revocation request (RFC 7009)"}},
		{"another client's token, client_id sent", "198.51.100.64",
			with(url.Values{"token": {others.RefreshToken}, "client_id": {"pkj-revoker"}}, assertion(tokenURL)),
			http.StatusBadRequest, map[string]any{"event": "revocation", "result": "unauthorized_client"}},
		// fosite reads exactly "sub"; a second decoding of the payload
		// (encoding/json matches names case-insensitively, the last one
		// wins) would name local-test, which did not authenticate.
		{"an assertion that also carries Sub naming another client", "198.51.100.66",
			with(url.Values{"token": {others.AccessToken}}, assertion(tokenURL, `"Sub":"local-test"`)),
			http.StatusBadRequest, map[string]any{"event": "revocation", "result": "unauthorized_client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.clientCall(clientReq{Path: "/oauth/revoke", Form: tc.form, ForwardFor: tc.addr})
			if r.Status != tc.status {
				t.Fatalf("revoke: %d %s %s, want %d", r.Status, r.Error, r.Description, tc.status)
			}
			want := map[string]any{"client_address": tc.addr, "endpoint": "revoke"}
			for k, v := range tc.want {
				want[k] = v
			}
			e := findEvent(auditEvents(t, f), want)
			if e == nil {
				t.Fatalf("no audit record %v; records: %v", want, eventsFrom(t, f, tc.addr))
			}
			if e["client_id"] != "pkj-revoker" || e["client_authenticated"] != true {
				t.Errorf("the record names client_id %v (client_authenticated %v), want the authenticated pkj-revoker: %s",
					e["client_id"], e["client_authenticated"], e["_line"])
			}
		})
	}
	if st, _ := f.userinfo(others.AccessToken); st != http.StatusOK {
		t.Errorf("local-test's access token after pkj-revoker tried to revoke it: %d", st)
	}
	if st, _ := f.userinfo(own.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("pkj-revoker's access token after it revoked its grant: %d, want 401", st)
	}

	// Refused: an assertion for another audience fails authentication. The
	// claimed id (the client_id sent) is audited as unverified, and no
	// revocation record names it.
	addr := "198.51.100.65"
	r := f.clientCall(clientReq{Path: "/oauth/revoke", ForwardFor: addr,
		Form: with(url.Values{"token": {others.AccessToken}, "client_id": {"pkj-revoker"}}, assertion("https://elsewhere.example/token"))})
	if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
		t.Fatalf("wrong audience: %d %s, want 401 invalid_client", r.Status, r.Error)
	}
	events := auditEvents(t, f)
	if e := findEvent(events, map[string]any{"event": "client_authentication_failure", "client_address": addr, "endpoint": "revoke",
		"result": "invalid_client", "client_id": "pkj-revoker", "client_authenticated": false}); e == nil {
		t.Errorf("no client_authentication_failure with the claimed id unverified; records: %v", eventsFrom(t, f, addr))
	}
	if e := findEvent(events, map[string]any{"event": "revocation", "client_address": addr}); e != nil {
		t.Errorf("a revocation record for a request whose client failed to authenticate: %s", e["_line"])
	}
	if st, _ := f.userinfo(others.AccessToken); st != http.StatusOK {
		t.Errorf("local-test's access token after a failed revocation: %d", st)
	}
}
