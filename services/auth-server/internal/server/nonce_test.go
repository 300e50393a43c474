package server_test

import (
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamNonceMismatchIsRefused: the ID token the upstream returns must
// carry the nonce stored with the pending login. The test alters the stored
// nonce in Redis between the redirect to the IdP and the callback (as a
// replayed or injected upstream response would), and the callback must end
// in an OAuth error for the client, with no code.
func TestUpstreamNonceMismatchIsRefused(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	b := newBrowser(t, c.RedirectURIs[0])
	login := b.get(a.URL(f.Base))
	if login.Status != 200 {
		t.Fatalf("no login page: %d %s", login.Status, login.Body)
	}

	editPendingSignIn(t, f, func(p map[string]any) {
		if p["nonce"] == "" {
			t.Fatalf("pending record without a nonce: %v", p)
		}
		p["nonce"] = "not-the-nonce-sent-upstream"
	})

	end := b.submit(login, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
	if end.Location == nil {
		t.Fatalf("no redirect to the client: %d %s", end.Status, end.Body)
	}
	q := end.Location.Query()
	if q.Get("code") != "" || q.Get("error") == "" || q.Get("state") != a.State || q.Get("iss") != f.Base {
		t.Fatalf("callback with a mismatched nonce redirected to %s; want an error with state and iss, and no code", end.Location)
	}
	t.Logf("refused with %s: %s", q.Get("error"), q.Get("error_description"))
}
