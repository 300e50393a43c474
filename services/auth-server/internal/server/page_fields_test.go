package server_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestRepeatedPageFieldIsNamed: a repeated parameter is refused, and the
// callback's and the consent endpoint's error pages name it only when it
// is one of the page's own fields (anyone can send a browser there with a
// parameter named with a sentence: TestErrorPagesSayOnlyOurWords). The
// list of those fields was kept by hand apart from the consent form and
// the callback: the callback's user (Sign in with Apple's form_post field,
// which it reads) was described as "a parameter of the request", and so
// would a field added to the form be. Through real HTTP: each field of a
// rendered consent page's form, and each parameter the callback reads,
// sent twice, is named by the page.
func TestRepeatedPageFieldIsNamed(t *testing.T) {
	f := startFleet(t, nil)
	redirect := "http://127.0.0.1:8976/fields-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Fields client","grant_types":["authorization_code"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	a := newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	b := newBrowser(t, redirect)
	login := b.get(a.URL(f.Base))
	p := b.submit(login, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "<form") {
		t.Fatalf("want the consent page, got %d %v: %.300s", p.Status, p.Location, p.Body)
	}
	form, _, _ := strings.Cut(p.Body[strings.Index(p.Body, "<form"):], "</form>")
	var fields []string
	for _, m := range regexp.MustCompile(`\bname="([^"]+)"`).FindAllStringSubmatch(form, -1) {
		fields = append(fields, m[1])
	}
	if !strings.Contains(strings.Join(fields, " "), "consent_id") {
		t.Fatalf("the consent form's fields %v: the test reads the wrong part of the page", fields)
	}
	named := func(where string, page *page, k string) {
		t.Helper()
		if want := "parameter " + k + " is repeated"; page.Status != http.StatusBadRequest || !strings.Contains(page.Body, want) {
			t.Errorf("%s with %s twice: %d, want a 400 page saying %q:\n%.600s", where, k, page.Status, want, page.Body)
		}
	}
	for _, k := range fields {
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent", strings.NewReader(url.Values{k: {"approve", "deny"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		named("POST /oauth/consent", newBrowser(t).do(req), k)
	}
	for _, k := range []string{"state", "code", "iss", "error", "error_description", "error_uri", "session_state", "user"} {
		named("GET /oauth/callback", newBrowser(t).get(f.Base+"/oauth/callback?"+url.Values{k: {"1", "2"}}.Encode()), k)
	}
}
