package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizeParameterChecksWhateverTheContentType: a GET authorization
// request carrying a Content-Type: application/json header (it has no body;
// any HTTP client can add the header) gets the same request hygiene as
// without it: an empty parameter is treated as omitted (RFC 6749 §3.1) and
// a repeated client_id is refused on a page. Before, guard skipped form
// parsing — and with it both checks — for any request declaring JSON, so
// "resource=" was refused invalid_target and a repeated client_id reached
// the handler.
func TestAuthorizeParameterChecksWhateverTheContentType(t *testing.T) {
	f := startFleet(t, nil)
	pub := f.Clients["test-public"]
	get := func(u string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Content-Type", "application/json")
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	a := newAuthRequest(pub)
	resp := get(a.URL(f.Base) + "&resource=")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), f.IdP.Issuer) {
		t.Errorf("empty resource: %d to %q, want the IdP's sign-in (the resource omitted)", resp.StatusCode, resp.Header.Get("Location"))
	}
	a = newAuthRequest(pub)
	resp = get(a.URL(f.Base) + "&client_id=" + url.QueryEscape(pub.ClientID))
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("repeated client_id: %d to %q, want 400 on a page", resp.StatusCode, resp.Header.Get("Location"))
	}
}
