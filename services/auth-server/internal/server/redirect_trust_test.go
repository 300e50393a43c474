package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// continueLink is the interstitial's link to the error response.
var continueLink = regexp.MustCompile(`<a class="continue" rel="noreferrer" href="([^"]*)">`)

// interstitial fails unless p is the page an error response for an
// untrusted redirect URI is shown on (RFC 9700 §4.11.2): 200, no
// Location, the destination host named, and a link to the error response
// whose error, state and iss are exactly code, state and the issuer, to
// redirect (its scheme, host and path); it returns the link.
func interstitial(t *testing.T, f *fleet, p *page, redirect, host, code, state string) *url.URL {
	t.Helper()
	if p.Status != http.StatusOK || p.Location != nil || p.Header.Get("Location") != "" {
		t.Fatalf("want the interstitial (200, no Location), got %d %v\n%s", p.Status, p.Location, p.Body)
	}
	if cc := p.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q lacks frame-ancestors 'none'", csp)
	}
	if !strings.Contains(p.Body, "<strong>"+host+"</strong>") || !strings.Contains(p.Body, "Continue to "+host) {
		t.Errorf("the page does not name the destination host %q:\n%s", host, p.Body)
	}
	if !strings.Contains(p.Body, "<code>"+code+"</code>") {
		t.Errorf("the page does not say the error %q:\n%s", code, p.Body)
	}
	m := continueLink.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no continue link:\n%s", p.Body)
	}
	link, err := url.Parse(htmlUnescape(m[1]))
	if err != nil {
		t.Fatalf("link %q: %v", m[1], err)
	}
	q := link.Query()
	if to, _, _ := strings.Cut(link.String(), "?"); to != redirect {
		t.Errorf("link %s does not lead to %s", link, redirect)
	}
	if q.Get("error") != code || q.Get("iss") != f.Base || len(q["state"]) != 1 || q.Get("state") != state || q.Get("error_description") == "" {
		t.Errorf("link %s: want error=%s, state=%q, iss=%s and an error_description", link, code, state, f.Base)
	}
	return link
}

// redirected fails unless p is the error response code redirected to
// redirect with state and iss, as before TRUSTED_REDIRECT_ORIGINS.
func redirected(t *testing.T, f *fleet, p *page, redirect, code, state string) {
	t.Helper()
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), redirect+"?") {
		t.Fatalf("want a redirect to %s, got %d %v\n%s", redirect, p.Status, p.Location, p.Body)
	}
	q := p.Location.Query()
	if q.Get("error") != code || q.Get("state") != state || q.Get("iss") != f.Base {
		t.Errorf("redirect %s: want error=%s, state=%q, iss=%s", p.Location, code, state, f.Base)
	}
}

// registerPublic registers a public client (DCR) with redirect and
// returns it.
func registerPublic(t *testing.T, f *fleet, redirect string) devClient {
	t.Helper()
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Redirect trust test"}`)
	if st != http.StatusCreated {
		t.Fatalf("register %s: %d %v", redirect, st, reg)
	}
	return devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
}

// TestUntrustedRedirectErrorsAreShownNotRedirected: RFC 9700 §4.11.2. A
// client anyone can make — registered dynamically (RFC 7591) or known by a
// Client ID Metadata Document — names its own redirect URI, so an error
// response is not redirected to it automatically unless its origin is in
// TRUSTED_REDIRECT_ORIGINS (default https://chatgpt.com): the three
// attacks of §4.11.2 — an erroneous request (invalid_scope), a consent the
// user denies (access_denied), a silent request (prompt=none,
// login_required) — each end on this server's page naming the host, with
// the error response as a link. An operator-registered client (its URI
// outside the list: gpt-actions' chat.openai.com), a self-registered one
// on https://chatgpt.com (ChatGPT's connectors) and one on loopback (RFC
// 8252 native apps) are redirected as before.
func TestUntrustedRedirectErrorsAreShownNotRedirected(t *testing.T) {
	f := startFleet(t, nil)
	const evil = "https://evil.example/cb"
	const chatgpt = "https://chatgpt.com/connector_platform_oauth_redirect"
	const loopback = "http://127.0.0.1:8979/trust-callback"
	untrusted := registerPublic(t, f, evil)
	trusted := map[string]devClient{
		"operator":          f.Clients["gpt-actions"],
		"chatgpt":           registerPublic(t, f, chatgpt),
		"loopback":          registerPublic(t, f, loopback),
		"operator-loopback": f.Clients["test-public"],
	}
	if r := trusted["operator"].RedirectURIs[0]; !strings.HasPrefix(r, "https://chat.openai.com/") {
		t.Fatalf("gpt-actions' first redirect URI %s: the test wants one outside TRUSTED_REDIRECT_ORIGINS", r)
	}

	t.Run("invalid_scope", func(t *testing.T) {
		a := newAuthRequest(untrusted)
		a.Scope = "openid no.such.scope"
		p := newBrowser(t, evil).get(a.URL(f.Base))
		interstitial(t, f, p, evil, "evil.example", "invalid_scope", a.State)
		for name, c := range trusted {
			a := newAuthRequest(c)
			a.Scope = "openid no.such.scope"
			t.Log(name)
			redirected(t, f, newBrowser(t, a.RedirectURI).get(a.URL(f.Base)), a.RedirectURI, "invalid_scope", a.State)
		}
	})

	t.Run("prompt=none", func(t *testing.T) {
		a := newAuthRequest(untrusted)
		a.Extra = url.Values{"prompt": {"none"}}
		interstitial(t, f, newBrowser(t, evil).get(a.URL(f.Base)), evil, "evil.example", "login_required", a.State)
		for _, c := range []devClient{trusted["chatgpt"], trusted["operator"]} {
			a := newAuthRequest(c)
			a.Extra = url.Values{"prompt": {"none"}}
			redirected(t, f, newBrowser(t, a.RedirectURI).get(a.URL(f.Base)), a.RedirectURI, "login_required", a.State)
		}
	})

	t.Run("consent denied", func(t *testing.T) {
		a := newAuthRequest(untrusted)
		b, p := consentPage(t, f, a)
		if !strings.Contains(p.Body, "<strong>evil.example</strong>") {
			t.Errorf("the consent page does not name the redirect host:\n%s", p.Body)
		}
		interstitial(t, f, b.submit(p, url.Values{"decision": {"deny"}}), evil, "evil.example", "access_denied", a.State)
		a = newAuthRequest(trusted["chatgpt"])
		b, p = consentPage(t, f, a)
		redirected(t, f, b.submit(p, url.Values{"decision": {"deny"}}), chatgpt, "access_denied", a.State)
	})

	t.Run("no state", func(t *testing.T) {
		// A request without state gets none back in the link either.
		a := newAuthRequest(untrusted)
		a.Scope, a.State = "openid no.such.scope", ""
		p := newBrowser(t, evil).get(a.URL(f.Base))
		if m := continueLink.FindStringSubmatch(p.Body); m == nil || strings.Contains(m[1], "state=") {
			t.Errorf("want a link without state, got %d %v", p.Status, m)
		}
	})

	t.Run("approved", func(t *testing.T) {
		// The successful response is redirected as before: the user signed
		// in and approved on this server's page naming the host.
		a := newAuthRequest(untrusted)
		b, p := consentPage(t, f, a)
		if code := approve(t, b, p); code == "" {
			t.Fatal("no code")
		}
	})
}

// TestClientMetadataDocumentRedirectIsUntrusted: a client known by its
// Client ID Metadata Document is self-registered too: its error response
// to an https redirect URI outside TRUSTED_REDIRECT_ORIGINS is shown.
func TestClientMetadataDocumentRedirectIsUntrusted(t *testing.T) {
	const evil = "https://cimd-evil.example/cb"
	var id string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":"` + id + `","client_name":"CIMD trust","redirect_uris":["` + evil + `"],"token_endpoint_auth_method":"none"}`))
	}))
	defer srv.Close()
	id = srv.URL + "/client.json"
	f := startFleet(t, nil)
	a := newAuthRequest(devClient{ClientID: id, RedirectURIs: []string{evil}, AuthMethod: "none"})
	a.Scope = "openid no.such.scope"
	interstitial(t, f, newBrowser(t, evil).get(a.URL(f.Base)), evil, "cimd-evil.example", "invalid_scope", a.State)
}

// TestTrustedRedirectOriginsSetting: TRUSTED_REDIRECT_ORIGINS replaces
// the default list: with https://evil.example:443 listed (the default port
// written out), that origin's client is redirected and ChatGPT's is not;
// with none, no self-registered client off loopback is.
func TestTrustedRedirectOriginsSetting(t *testing.T) {
	const evil = "https://evil.example/cb"
	const chatgpt = "https://chatgpt.com/connector_platform_oauth_redirect"
	for setting, want := range map[string]map[string]bool{
		"https://EVIL.example:443": {evil: true, chatgpt: false},
		"none":                     {evil: false, chatgpt: false},
	} {
		t.Run(setting, func(t *testing.T) {
			f := startFleet(t, map[string]string{"TRUSTED_REDIRECT_ORIGINS": setting})
			for redirect, trusted := range want {
				a := newAuthRequest(registerPublic(t, f, redirect))
				a.Scope = "openid no.such.scope"
				p := newBrowser(t, redirect).get(a.URL(f.Base))
				if trusted {
					redirected(t, f, p, redirect, "invalid_scope", a.State)
				} else {
					u, _ := url.Parse(redirect)
					interstitial(t, f, p, redirect, u.Host, "invalid_scope", a.State)
				}
			}
		})
	}
}

// TestErrorInterstitialEscapes: the page says what went wrong in fixed
// words, not the error description (which quotes the requested scope: a
// sender's text on this server's page, review2); what it shows from the
// request — the state in the link — is HTML-escaped: no markup of the
// request's reaches the page, and the link still carries the state
// exactly. (A registered host is a DNS
// name or an IP address: it holds no markup.)
func TestErrorInterstitialEscapes(t *testing.T) {
	f := startFleet(t, nil)
	const redirect = "https://evil.example/cb"
	a := newAuthRequest(registerPublic(t, f, redirect))
	a.Scope = "openid <script>alert(2)</script>"
	a.State = `"><img src=x onerror=alert(3)>`
	p := newBrowser(t, redirect).get(a.URL(f.Base))
	interstitial(t, f, p, redirect, "evil.example", "invalid_scope", a.State)
	// The page says what went wrong in its own words: the description,
	// which quotes the scope the sender chose, is only in the link — no
	// sender's text on this server's page, escaped or not.
	if !strings.Contains(p.Body, "The app asked for permissions this server does not grant it.") {
		t.Errorf("the page does not say what invalid_scope means:\n%s", p.Body)
	}
	if strings.Contains(p.Body, "alert(2)") {
		t.Errorf("the page shows the request's scope:\n%s", p.Body)
	}
	for _, raw := range []string{"<script", "<img"} {
		if strings.Contains(p.Body, raw) {
			t.Errorf("the page holds %q unescaped:\n%s", raw, p.Body)
		}
	}
}
