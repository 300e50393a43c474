package server_test

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// siteBrowser keeps cookies with their SameSite attribute and sends them
// as a browser would: every cookie on a same-site request, and on a
// cross-site one only what sentCrossSite allows (Go's cookie jar has no
// SameSite rules).
type siteBrowser struct {
	t       *testing.T
	cookies map[string]*http.Cookie
}

func (b *siteBrowser) do(req *http.Request, crossSite bool) (*http.Response, string) {
	b.t.Helper()
	for _, c := range b.cookies {
		if !crossSite || sentCrossSite(req.Method, c) {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	req.Header.Set("Accept", "text/html")
	resp, err := noFollow.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		b.cookies[c.Name] = c
	}
	return resp, string(body)
}

// TestConsentPagesInTwoTabsFormPost: with UPSTREAM_RESPONSE_MODE=form_post
// the provider's page POSTs to the callback cross-site, and the consent
// page is that POST's answer: the consent cookie has the login cookie's
// SameSite=None; Secure, so the browser sends it there and both tabs'
// pages stay approvable (a Lax consent cookie was not sent, each page set
// a new value, and the first tab's Allow was refused).
func TestConsentPagesInTwoTabsFormPost(t *testing.T) {
	f, p := startShaped(t, idptest.Shape{NoUserinfo: true, ResponseModes: []string{"form_post"}, IDClaims: map[string]any{"email": "ada@example.com"}},
		map[string]string{"UPSTREAM_RESPONSE_MODE": "form_post"})
	redirect := "http://127.0.0.1:8977/formpost-tabs-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Form post tabs"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	// tab opens an authorization from the client's site and returns the
	// consent page the provider's form POST is answered with.
	tab := func(t *testing.T, b *siteBrowser) (*authRequest, string) {
		t.Helper()
		a := newAuthRequest(c)
		a.Extra = url.Values{"prompt": {"consent"}}
		req, _ := http.NewRequest(http.MethodGet, a.URL(f.Base), nil)
		resp, _ := b.do(req, true)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %d", resp.StatusCode)
		}
		req, _ = http.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
		_, page := b.do(req, false) // the provider's own site
		m := idptest.FormPostAction.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("provider page without a form:\n%s", page)
		}
		form := url.Values{}
		for _, h := range idptest.FormPostFields.FindAllStringSubmatch(page, -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		req, _ = http.NewRequest(http.MethodPost, html.UnescapeString(m[1]), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", p.Server.URL)
		resp, consent := b.do(req, true)
		if resp.StatusCode != http.StatusOK || !strings.Contains(consent, "consent_id") {
			t.Fatalf("callback: %d, want the consent page\n%s", resp.StatusCode, consent)
		}
		return a, consent
	}
	approveTab := func(t *testing.T, b *siteBrowser, a *authRequest, consent string) {
		t.Helper()
		form := url.Values{"decision": {"approve"}}
		for _, h := range hiddenInput.FindAllStringSubmatch(consent, -1) {
			form.Set(h[1], htmlUnescape(h[2]))
		}
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := b.do(req, false) // the consent page's own form
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("approve: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if tr := f.exchange(c, a, loc.Query().Get("code")); tr.Status != http.StatusOK {
			t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
	}
	for _, first := range []bool{true, false} {
		b := &siteBrowser{t: t, cookies: map[string]*http.Cookie{}}
		a1, p1 := tab(t, b)
		a2, p2 := tab(t, b)
		if k := b.cookies["__Host-tollgate-consent"]; k == nil || k.SameSite != http.SameSiteNoneMode || !k.Secure {
			t.Errorf("consent cookie %v: want __Host-, SameSite=None, Secure", k)
		}
		if first {
			approveTab(t, b, a1, p1)
			approveTab(t, b, a2, p2)
		} else {
			approveTab(t, b, a2, p2)
			approveTab(t, b, a1, p1)
		}
	}
}
