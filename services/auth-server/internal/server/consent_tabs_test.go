package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// consentFields are the hidden fields of a consent page's form.
func consentFields(t *testing.T, p *page) url.Values {
	t.Helper()
	form := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(p.Body, -1) {
		form.Set(h[1], htmlUnescape(h[2]))
	}
	if form.Get("consent_id") == "" || form.Get("csrf_token") == "" {
		t.Fatalf("no consent form on %s:\n%s", p.URL, p.Body)
	}
	return form
}

// postConsent posts form to base's consent endpoint from browser b (its
// cookies) as a JSON-accepting client and returns the status and error.
func postConsent(t *testing.T, b *browser, base string, form url.Values) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/consent", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return sendForError(t, b.client, req)
}

const (
	csrfFailed      = "the consent form is not valid for this browser (CSRF check failed)"
	consentNotFound = "unknown, expired or already used consent request"
)

// TestConsentPagesInTwoTabs: consent pages shown to one browser in two
// tabs can both be approved, in either order — the consent cookie holds one
// value per browser, and each page's form its own token; a second page
// once replaced the first one's cookie value, so the first tab's Allow
// failed the CSRF check. The checks stay: a form posted with another
// page's token, or by another browser, or without the cookie, is 403
// access_denied and leaves the request to its page; a form posted again
// after its decision is 400 invalid_request.
func TestConsentPagesInTwoTabs(t *testing.T) {
	f := startFleet(t, nil)
	redirect := "http://127.0.0.1:8977/tabs-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Tabs"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	tab := func(t *testing.T, b *browser) (*authRequest, *page) {
		t.Helper()
		a := newAuthRequest(c)
		// The approval is remembered after the first: prompt=consent asks
		// again (OpenID Connect Core §3.1.2.1).
		a.Extra = url.Values{"prompt": {"consent"}}
		p := f.login(b, a)
		if p.Location != nil || p.Status != http.StatusOK || !strings.Contains(p.Body, `value="approve"`) {
			t.Fatalf("want the consent page, got %d %v\n%s", p.Status, p.Location, p.Body)
		}
		return a, p
	}
	approveTab := func(t *testing.T, b *browser, a *authRequest, p *page) {
		t.Helper()
		code := approve(t, b, p)
		if tr := f.exchange(c, a, code); tr.Status != http.StatusOK {
			t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
	}
	for _, order := range []string{"first tab first", "second tab first"} {
		t.Run(order, func(t *testing.T) {
			b := newBrowser(t, redirect)
			a1, p1 := tab(t, b)
			a2, p2 := tab(t, b)
			if order == "first tab first" {
				approveTab(t, b, a1, p1)
				approveTab(t, b, a2, p2)
			} else {
				approveTab(t, b, a2, p2)
				approveTab(t, b, a1, p1)
			}
			// Each form counts once.
			if st, code, desc := postConsent(t, b, f.Base, withDecision(consentFields(t, p1), "approve")); st != http.StatusBadRequest || code != "invalid_request" || desc != consentNotFound {
				t.Errorf("replayed form: %d %s %q, want 400 invalid_request %q", st, code, desc, consentNotFound)
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		b := newBrowser(t, redirect)
		a1, p1 := tab(t, b)
		a2, p2 := tab(t, b)
		f1, f2 := consentFields(t, p1), consentFields(t, p2)
		refused := func(what string, from *browser, form url.Values) {
			t.Helper()
			if st, code, desc := postConsent(t, from, f.Base, withDecision(form, "approve")); st != http.StatusForbidden || code != "access_denied" || desc != csrfFailed {
				t.Errorf("%s: %d %s %q, want 403 access_denied %q", what, st, code, desc, csrfFailed)
			}
		}
		// The second tab's request with the first tab's token.
		refused("another page's token", b, url.Values{"consent_id": {f2.Get("consent_id")}, "csrf_token": {f1.Get("csrf_token")}})
		// Another browser, signed in and shown its own consent page (its
		// own consent cookie), posts this browser's forms.
		other := newBrowser(t, redirect)
		tab(t, other)
		refused("another browser", other, f1)
		// A browser without a consent cookie.
		refused("no consent cookie", newBrowser(t, redirect), f2)
		// The refusals left both requests to their own tabs.
		approveTab(t, b, a2, p2)
		approveTab(t, b, a1, p1)
	})
}

func withDecision(form url.Values, decision string) url.Values {
	out := url.Values{"decision": {decision}}
	for k, v := range form {
		out[k] = v
	}
	return out
}
