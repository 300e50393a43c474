package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/fetchtest"
)

// authorizeFrom sends an authorization request naming the Client ID
// Metadata Document at docs+path from the client address from (an
// X-Forwarded-For entry: the fleet must trust 127.0.0.1 as a proxy), and
// answers its status and body.
func authorizeFrom(t *testing.T, f *fleet, docs, path, from string) (int, string) {
	t.Helper()
	resp, body := authorizeAnswer(t, f, docs, path, from, "")
	return resp.StatusCode, body
}

// authorizeAnswer is authorizeFrom's request, sent with Accept accept
// ("": none), answering the response (its body read and closed) and body;
// redirects are not followed.
func authorizeAnswer(t *testing.T, f *fleet, docs, path, from, accept string) (*http.Response, string) {
	t.Helper()
	q := url.Values{"client_id": {docs + path}, "redirect_uri": {docs + "/cb"}, "response_type": {"code"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	req, err := http.NewRequest(http.MethodGet, f.Base+"/oauth/authorize?"+q.Encode(), nil)
	if err != nil {
		t.Error(err)
		return &http.Response{Header: http.Header{}}, ""
	}
	req.Header.Set("X-Forwarded-For", from)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return &http.Response{Header: http.Header{}}, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestMetadataFetchesPerAddress (brk47): one client address holds at most
// 4 of the 16 anonymous fetch slots. With 4 of its authorization requests'
// documents hanging, its 5th is refused after a brief wait, unsent, and
// answered 503 temporarily_unavailable with Retry-After ("too many
// fetches in flight for this client address (at most 4 at once)"),
// counted in tollgate_auth_client_fetches_address_refused_total; another
// address's request still gets its document fetched. Before, one address
// took all 16 slots and every other caller's fetch was refused.
func TestMetadataFetchesPerAddress(t *testing.T) {
	docs := fetchtest.New(t, nil, nil)
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, "")

	const attacker, other = "203.0.113.7", "198.51.100.9"
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			authorizeFrom(t, f, docs.URL, fmt.Sprintf("/a/%d.json", i), attacker)
		}()
	}
	docs.AwaitHeld(t, 4)
	resp, body := authorizeAnswer(t, f, docs.URL, "/a/5.json", attacker, "")
	if want := "this server has too many fetches in flight for this client address (at most 4 at once); retry later"; resp.StatusCode != http.StatusServiceUnavailable ||
		resp.Header.Get("Retry-After") != "5" || !strings.Contains(body, `"error":"temporarily_unavailable"`) || !strings.Contains(body, want) {
		t.Errorf("the address's 5th request while its 4 fetches hang: %d Retry-After %q %s, want 503 temporarily_unavailable saying %q",
			resp.StatusCode, resp.Header.Get("Retry-After"), body, want)
	}
	if n := docs.Held(); n != 4 {
		t.Errorf("the document server got %d requests, want 4: the address's 5th fetch reached it", n)
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		authorizeFrom(t, f, docs.URL, "/b/1.json", other)
	}()
	if path := docs.Arrived(t); path != "/b/1.json" {
		t.Errorf("the document server got %s, want the other address's /b/1.json", path)
	}
	m := metricsAt(t, f.Admin()+"/metrics")
	if m["tollgate_auth_client_fetches_address_refused_total"] != 1 || m["tollgate_auth_client_fetches_refused_total"] != 0 || m["tollgate_auth_client_fetches_in_flight"] != 5 {
		t.Errorf("fetch metrics: refused for the address %v, refused %v, in flight %v; want 1, 0, 5", m["tollgate_auth_client_fetches_address_refused_total"],
			m["tollgate_auth_client_fetches_refused_total"], m["tollgate_auth_client_fetches_in_flight"])
	}
	docs.Release()
	wg.Wait()
}
