package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRepeatedAuthorizeParameterGoesToTheClient: an authorization request
// whose client and redirect URI are each named once is answered at that
// URI when another parameter is repeated (RFC 6749 §4.1.2.1: invalid_request
// "includes a parameter more than once"), with iss (RFC 9207) and the state
// when it is not the repeated one; a repeated client_id or redirect_uri,
// which leave nothing verified to redirect to, is refused on a page (400,
// no redirect). Before, every repeated parameter was refused on the page:
// the client never learned why its request failed.
func TestRepeatedAuthorizeParameterGoesToTheClient(t *testing.T) {
	f := startFleet(t, nil)
	pub := f.Clients["test-public"]
	for _, param := range []string{"scope", "state", "nonce", "code_challenge", "prompt", "response_type"} {
		t.Run(param, func(t *testing.T) {
			a := newAuthRequest(pub)
			u, _ := url.Parse(a.URL(f.Base))
			q := u.Query()
			if !q.Has(param) {
				q.Set(param, "login")
			}
			q.Add(param, "other")
			u.RawQuery = q.Encode()
			p := newBrowser(t, a.RedirectURI).get(u.String())
			if p.Location == nil || !strings.HasPrefix(p.Location.String(), a.RedirectURI+"?") {
				t.Fatalf("status %d, no redirect to the client:\n%.300s", p.Status, p.Body)
			}
			got := p.Location.Query()
			if got.Get("error") != "invalid_request" || got.Get("error_description") != "parameter "+param+" is repeated" || got.Get("iss") != f.Base {
				t.Errorf("redirect %s: want invalid_request, 'parameter %s is repeated' and iss %s", p.Location, param, f.Base)
			}
			wantState := a.State
			if param == "state" {
				wantState = "" // no exact value to return
			}
			if got.Has("code") || got.Get("state") != wantState || len(got["state"]) > 1 {
				t.Errorf("redirect %s: want no code and state %q", p.Location, wantState)
			}
		})
	}
	for _, param := range []string{"client_id", "redirect_uri"} {
		t.Run(param, func(t *testing.T) {
			a := newAuthRequest(pub)
			u := a.URL(f.Base) + "&" + param + "=" + url.QueryEscape(map[string]string{"client_id": pub.ClientID, "redirect_uri": a.RedirectURI}[param])
			p := newBrowser(t, a.RedirectURI).get(u)
			if p.Status != http.StatusBadRequest || p.Location != nil || !strings.Contains(p.Body, "<code>invalid_request</code>") {
				t.Fatalf("status %d, location %v, want 400 invalid_request on the page:\n%.300s", p.Status, p.Location, p.Body)
			}
			if st, code, desc := authorizeJSON(t, u, "", ""); st != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(desc, "parameter "+param+" is repeated") {
				t.Fatalf("JSON %d %s %q, want 400 invalid_request saying %q", st, code, desc, "parameter "+param+" is repeated")
			}
		})
	}
}
