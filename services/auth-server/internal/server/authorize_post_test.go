package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestAuthorizeByPost: OpenID Connect Core 1.0 §3.1.2.1 — the
// authorization server MUST support POST at the authorization endpoint
// (form-serialized parameters). POST /oauth/authorize answered 405 Allow:
// GET. It now answers 303 See Other to the issuer's GET /oauth/authorize
// with the same parameters, so the sign-in completes as the GET's does,
// and an invalid request fails as the GET's does. Parameters in both the
// query and the body, a body that is not a form and an over-long body are
// refused on the error page.
func TestAuthorizeByPost(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	post := func(b *browser, target, ct, body string) *page {
		req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		return b.do(req)
	}
	params := func(a *authRequest) string {
		u, _ := url.Parse(a.URL(f.Base))
		return u.RawQuery
	}

	t.Run("the sign-in completes", func(t *testing.T) {
		a := newAuthRequest(c)
		// First answer only: 303 to the GET with the same parameters.
		first := post(newBrowser(t, f.Base), f.Base+"/oauth/authorize", "application/x-www-form-urlencoded", params(a))
		want, _ := url.Parse(a.URL(f.Base))
		if first.Status != http.StatusSeeOther || first.Location == nil || first.Location.Path != "/oauth/authorize" ||
			first.Location.Host != want.Host || first.Location.Query().Encode() != want.Query().Encode() || first.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("POST: %d Location %v, want 303 to %s", first.Status, first.Location, want)
		}
		// The whole flow, the browser following the 303.
		b := newBrowser(t, a.RedirectURI)
		p := post(b, f.Base+"/oauth/authorize", "application/x-www-form-urlencoded; charset=UTF-8", params(a))
		if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
			t.Fatalf("after the 303: %d %s\n%.400s", p.Status, p.URL, p.Body)
		}
		p = b.submit(p, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
		if p.Location == nil || p.Location.Query().Get("code") == "" || p.Location.Query().Get("state") != a.State {
			t.Fatalf("no code for the client: %d %v\n%.400s", p.Status, p.Location, p.Body)
		}
		if tr := f.exchange(c, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK || tr.AccessToken == "" {
			t.Errorf("exchange: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
	})

	t.Run("an invalid request fails as the GET does", func(t *testing.T) {
		a := newAuthRequest(c)
		a.RedirectURI = "https://evil.example/cb"
		p := post(newBrowser(t, "https://evil.example"), f.Base+"/oauth/authorize", "application/x-www-form-urlencoded", params(a))
		if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "<code>invalid_request</code>") {
			t.Errorf("unregistered redirect_uri by POST: %d %v\n%.400s", p.Status, p.Location, p.Body)
		}
		if st, code, desc := authorizeJSON(t, f.Base+"/oauth/authorize", "application/x-www-form-urlencoded", params(a)); st != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(desc, "is not registered for client") {
			t.Errorf("unregistered redirect_uri by POST, JSON: %d %s %q", st, code, desc)
		}
	})

	for name, tc := range map[string]struct {
		target, ct, body string
		status           int
		says             string
	}{
		"parameters in the query and the body": {"/oauth/authorize?client_id=local-test", "application/x-www-form-urlencoded", "response_type=code", 400, "in the body only, not also in the query"},
		"a JSON body":                          {"/oauth/authorize", "application/json", `{"client_id":"local-test"}`, 400, "send Content-Type: application/x-www-form-urlencoded"},
		"a body without Content-Type":          {"/oauth/authorize", "", "client_id=local-test", 400, "send Content-Type: application/x-www-form-urlencoded"},
		"a body that does not decode":          {"/oauth/authorize", "application/x-www-form-urlencoded", "client_id=%zz", 400, "not a valid form"},
		"a body over 16 KiB":                   {"/oauth/authorize", "application/x-www-form-urlencoded", "client_id=local-test&state=" + strings.Repeat("a", 16<<10), 413, "larger than 16384 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			p := post(newBrowser(t, f.Base), f.Base+tc.target, tc.ct, tc.body)
			if p.Status != tc.status || p.Location != nil || !strings.Contains(p.Body, "invalid_request") {
				t.Errorf("%d %v, want %d invalid_request\n%.400s", p.Status, p.Location, tc.status, p.Body)
			}
			if st, code, desc := authorizeJSON(t, f.Base+tc.target, tc.ct, tc.body); st != tc.status || code != "invalid_request" || !strings.Contains(desc, tc.says) {
				t.Errorf("JSON %d %s %q, want %d invalid_request saying %q", st, code, desc, tc.status, tc.says)
			}
		})
	}

	t.Run("other methods are 405 naming GET and POST", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, f.Base+"/oauth/authorize", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("PUT: %d Allow %q, want 405 Allow: GET, POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}
