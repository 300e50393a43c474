package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuthorizeErrorPageLogBounded (auth49 #4): the authorization
// endpoint's error page (a redirect URI that is not registered, an
// unknown client) is logged at most once a minute — the first at once,
// with its description — however many browsers anyone sends there; each
// request still gets its page, and a caller asking for JSON the
// description. Before, every page wrote an INFO line: an anonymous
// caller filled the log at the rate limits' pace.
func TestAuthorizeErrorPageLogBounded(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	const burst = 30
	for i := range burst {
		a := newAuthRequest(devClient{ClientID: c.ClientID, RedirectURIs: []string{"https://evil.example/page-" + string(rune('a'+i%26))}})
		p := newBrowser(t).get(a.URL(f.Base))
		if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "<code>invalid_request</code>") {
			t.Fatalf("page %d: %d %v, want the 400 error page", i, p.Status, p.Location)
		}
	}
	const line = "authorization error shown on a page"
	logs := f.AS.Logs.String()
	if n := strings.Count(logs, line); n != 1 {
		t.Errorf("%d pages wrote %d %q lines, want 1 (at most one a minute)", burst, n, line)
	}
	if !strings.Contains(logs, `redirect_uri \"https://evil.example/page-a\" is not registered`) && !strings.Contains(logs, `redirect_uri "https://evil.example/page-a" is not registered`) {
		t.Errorf("the first page's description is not in the log")
	}
	// Each caller asking for JSON still gets the description.
	a := newAuthRequest(devClient{ClientID: c.ClientID, RedirectURIs: []string{"https://evil.example/json"}})
	if status, code, desc := authorizeJSON(t, a.URL(f.Base), "", ""); status != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(desc, `'https://evil.example/json' is not registered`) {
		t.Errorf("JSON after the burst: %d %s %q", status, code, desc)
	}
}
