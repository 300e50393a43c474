package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestStoredIDTokenHintOnlyOurIDTokens: a sign-in pending in Redis that
// holds its request's id_token_hint — stored by a server before requests
// were parked without it, and still there during an upgrade for LOGIN_TTL
// — has the hint decoded again when the code is issued (fosite's OpenID
// Connect request validator) and at the code exchange (its ID token
// strategy). There it was taken when signed by a published key with the
// user's subject: our access token (typ at+jwt), a token of our key for
// another issuer, or one without typ got the user a code, which the
// hint's first receipt refuses (TestIDTokenHintOnlyOurIDTokens). Through
// real HTTP and the test's redis-server, each such hint written into the
// pending record is refused after the sign-in: an error for the client,
// with state and iss, and no code. Our own ID token, written the same way,
// still gets a code whose exchange gives an ID token: the control that the
// record written is the one the callback reads.
func TestStoredIDTokenHintOnlyOurIDTokens(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"] // skip_consent: the code follows the sign-in
	tr := f.fullFlow(c, newAuthRequest(c))
	if tr.IDToken == "" || tr.AccessToken == "" {
		t.Fatal("no ID token or access token")
	}
	// signIn starts an authorization, writes hint into the pending
	// sign-in's stored request, signs the user in and returns where the
	// callback sent the browser.
	signIn := func(a *authRequest, hint string) *url.URL {
		t.Helper()
		b := newBrowser(t, c.RedirectURIs[0])
		login := b.get(a.URL(f.Base))
		if login.Status != http.StatusOK {
			t.Fatalf("no login page: %d %.300s", login.Status, login.Body)
		}
		editPendingSignIn(t, f, func(p map[string]any) {
			q, err := url.ParseQuery(p["query"].(string))
			if err != nil || q.Get("scope") == "" {
				t.Fatalf("pending record's query %q: %v", p["query"], err)
			}
			q.Set("id_token_hint", hint)
			p["query"] = q.Encode()
		})
		end := b.submit(login, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
		if end.Location == nil {
			t.Fatalf("no redirect to the client: %d %.300s", end.Status, end.Body)
		}
		return end.Location
	}

	for name, hint := range map[string]string{
		"our access token (typ at+jwt)":       tr.AccessToken,
		"another issuer's, signed by our key": reSignIDToken(t, f, tr.IDToken, "JWT", "https://other-issuer.example"),
		"no typ, our iss":                     reSignIDToken(t, f, tr.IDToken, nil, f.Base),
	} {
		a := newAuthRequest(c)
		q := signIn(a, hint).Query()
		if q.Get("code") != "" || q.Get("error") != "invalid_request" || q.Get("state") != a.State || q.Get("iss") != f.Base {
			t.Errorf("%s, stored as the hint: sent to %s?%s; want invalid_request with state and iss, and no code", name, c.RedirectURIs[0], q.Encode())
		}
	}

	a := newAuthRequest(c)
	q := signIn(a, tr.IDToken).Query()
	if q.Get("code") == "" {
		t.Fatalf("our ID token, stored as the hint: %s, want a code", q.Encode())
	}
	if got := f.exchange(c, a, q.Get("code")); got.Status != http.StatusOK || got.IDToken == "" {
		t.Errorf("our ID token, stored as the hint: exchange %d %s %s, want an ID token", got.Status, got.Error, got.Description)
	}
}
