package server_test

import (
	"net/http"
	"testing"
)

// TestCodeStoreFailureAtTheCallbackGoesToTheClient: the user signed in at
// the IdP, the callback took the sign-in's state and redeemed the upstream
// code, and then the authorization code cannot be stored (here an ACL
// makes the code keys read-only: NOPERM; on a loaded replica a command
// timeout does the same). The state is spent — a reload of the page could
// only answer "unknown, expired or already used sign-in state" — and the
// redirect URI is verified, so the error goes to the client
// (error=temporarily_unavailable with state and iss, RFC 6749 §4.1.2.1,
// RFC 9207), which can start again; before, it stayed on a 503 page of
// its own and the client (ChatGPT, a GPT) was never told (brk44).
// Nothing is issued: the client's next authorization completes.
func TestCodeStoreFailureAtTheCallbackGoesToTheClient(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	restore := f.Redis.RestrictKeys(t, "tollgate:as:code:", "%R")
	b := newBrowser(t, a.RedirectURI)
	p := f.login(b, a)
	restore()
	if p.Location == nil {
		t.Fatalf("the callback answered %d on a page of its own (%s, Retry-After %q), not a redirect to the client with error=temporarily_unavailable\n%s",
			p.Status, p.URL.Path, p.Header.Get("Retry-After"), p.Body)
	}
	q := p.Location.Query()
	if p.Status != http.StatusFound || q.Get("error") != "temporarily_unavailable" || q.Get("state") != a.State || q.Get("iss") != f.Base || q.Get("code") != "" {
		t.Fatalf("%d %s: want 302 with error=temporarily_unavailable, state %q, iss %q and no code", p.Status, p.Location, a.State, f.Base)
	}

	// The client starts again, and the sign-in completes.
	again := newAuthRequest(c)
	again.Resource = f.Base + "/mcp"
	p = f.login(newBrowser(t, again.RedirectURI), again)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("the next authorization: %d %v\n%s", p.Status, p.Location, p.Body)
	}
	if tr := f.exchange(c, again, p.Location.Query().Get("code")); tr.Status != http.StatusOK {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
}
