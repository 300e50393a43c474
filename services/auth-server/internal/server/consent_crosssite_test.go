package server_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestConsentCrossSiteFormPost: with UPSTREAM_RESPONSE_MODE=form_post the
// consent cookie is SameSite=None, so a form another site posts to
// /oauth/consent carries the victim's cookie: the page's own token is then
// the defence. A cross-site post with the attacker's own consent page
// (the attacker's sign-in: login CSRF), with the victim's consent_id and
// the attacker's token, or with no token is refused 403, and the victim's
// page can still be approved.
func TestConsentCrossSiteFormPost(t *testing.T) {
	f, p := startShaped(t, idptest.Shape{NoUserinfo: true, ResponseModes: []string{"form_post"}, IDClaims: map[string]any{"email": "ada@example.com"}},
		map[string]string{"UPSTREAM_RESPONSE_MODE": "form_post"})
	redirect := "http://127.0.0.1:8977/csrf-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"CSRF"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	consentPage := func(b *siteBrowser) url.Values {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, newAuthRequest(c).URL(f.Base), nil)
		resp, _ := b.do(req, true)
		req, _ = http.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
		_, page := b.do(req, false)
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
		fields := url.Values{"decision": {"approve"}}
		for _, h := range hiddenInput.FindAllStringSubmatch(consent, -1) {
			fields.Set(h[1], htmlUnescape(h[2]))
		}
		return fields
	}
	post := func(b *siteBrowser, fields url.Values, crossSite bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent", strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if crossSite {
			req.Header.Set("Origin", "https://attacker.example")
		}
		resp, _ := b.do(req, crossSite)
		return resp
	}
	victim := &siteBrowser{t: t, cookies: map[string]*http.Cookie{}}
	attacker := &siteBrowser{t: t, cookies: map[string]*http.Cookie{}}
	mine, theirs := consentPage(victim), consentPage(attacker)
	for name, fields := range map[string]url.Values{
		"the attacker's own page":                    theirs,
		"the victim's request, the attacker's token": {"decision": {"approve"}, "consent_id": mine["consent_id"], "csrf_token": theirs["csrf_token"]},
		"the victim's request, no token":             {"decision": {"approve"}, "consent_id": mine["consent_id"]},
		"the victim's request, a guessed token":      {"decision": {"approve"}, "consent_id": mine["consent_id"], "csrf_token": {"AAAAAAAAAAAAAAAAAAAAAAAAAA"}},
	} {
		if resp := post(victim, fields, true); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d %q, want 403 without a redirect", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp := post(victim, mine, false)
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode/100 != 3 || loc.Query().Get("code") == "" {
		t.Fatalf("the victim's own approval: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// And once only: a replay of the approved form is refused.
	if resp := post(victim, mine, false); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed approval: %d, want 400", resp.StatusCode)
	}
}
