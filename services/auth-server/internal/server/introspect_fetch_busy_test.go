package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// TestIntrospectionWhileFetchBoundFull (brk48): a resource server
// introspects a valid access token of a Client ID Metadata Document client
// whose document is no longer cached, while anonymous callers (4
// addresses) hold the 16 anonymous fetch slots. The token's client cannot
// be looked up (ErrFetchBusy); the server is busy, the token is not
// inactive: the answer must be 503 temporarily_unavailable with
// Retry-After, never {"active":false}, which tells the resource server to
// refuse a valid token — and userinfo's never 401 invalid_token.
func TestIntrospectionWhileFetchBoundFull(t *testing.T) {
	redirect := "http://127.0.0.1:8978/cimd-cb"
	docs := fetchtest.New(t, fetchtest.PathPrefix("/hang/"), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"brk48 app","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, fetchtest.URL(r), redirect)
	})
	extra, cs := standardsClients(t)
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, extra)
	c := devClient{ClientID: docs.URL + "/app.json", RedirectURIs: []string{redirect}, AuthMethod: "none"}
	tr := approvedTokens(t, f, c, newAuthRequest(c), "the document's client")
	introspect := func() (int, http.Header, map[string]any) {
		resp, b := f.post("/oauth/introspect", cs["test-rs"], url.Values{"token": {tr.AccessToken}})
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, resp.Header, m
	}
	userinfo := func() (int, http.Header, map[string]any) { return f.userinfoAnswer(tr.AccessToken) }
	if status, _, m := introspect(); status != http.StatusOK || m["active"] != true {
		t.Fatalf("introspection with the document cached: %d %v", status, m)
	}
	// The document's cache entry ends (its max-age, CIMD_CACHE_TTL).
	f.uncacheDocuments()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			authorizeFrom(t, f, docs.URL, fmt.Sprintf("/hang/%d.json", i), fmt.Sprintf("203.0.113.%d", i/4+1))
		}()
	}
	docs.AwaitHeld(t, 16)
	// The server is busy; nothing about the token was judged: 503
	// temporarily_unavailable with the bound's Retry-After, never
	// {"active":false} (RFC 7662 §2.2: the token is not active) nor 401
	// invalid_token.
	for _, tc := range []struct {
		name string
		call func() (int, http.Header, map[string]any)
	}{{"introspection", introspect}, {"userinfo", userinfo}} {
		status, h, m := tc.call()
		if status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || h.Get("Retry-After") != "5" {
			t.Errorf("%s of a valid token while 16 anonymous fetches hang: %d Retry-After %q %v; want 503 temporarily_unavailable, Retry-After 5 (the server is busy; the fetch timeout), not inactive", tc.name, status, h.Get("Retry-After"), m)
		}
	}
	docs.Release()
	wg.Wait()
	if status, _, m := introspect(); status != http.StatusOK || m["active"] != true {
		t.Errorf("introspection once the fetches ended: %d %v, want active", status, m)
	}
}
