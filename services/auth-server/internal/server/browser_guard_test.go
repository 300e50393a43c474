package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Regression guards of the browser flows (each held before it was written):
// upstream code injection, state echoed exactly, and the consent form bound
// to its own browser.

// TestUpstreamCodeInjection: an upstream code issued for another sign-in
// (the attacker's own, at the same IdP and for our same upstream client)
// delivered with the victim's state in the victim's browser does not sign
// the victim in as the attacker: the upstream PKCE verifier and nonce are
// the victim's request's, so the IdP's answer is refused (server_error),
// never a code.
func TestUpstreamCodeInjection(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	callback := f.Base + "/oauth/callback"
	attacker := newBrowser(t, callback)
	pa := f.login(attacker, newAuthRequest(c))
	victim := newBrowser(t, callback)
	a := newAuthRequest(c)
	pv := f.login(victim, a)
	if pa.Location == nil || pv.Location == nil {
		t.Fatalf("no callbacks: %d %d", pa.Status, pv.Status)
	}
	injected := pv.Location.Query()
	injected.Set("code", pa.Location.Query().Get("code"))
	victim.stopAt = []string{c.RedirectURIs[0]}
	p := victim.get(callback + "?" + injected.Encode())
	if p.Location == nil || p.Location.Query().Get("code") != "" || p.Location.Query().Get("error") != "server_error" ||
		p.Location.Query().Get("state") != a.State || p.Location.Query().Get("iss") != f.Base {
		t.Fatalf("injected upstream code: %d %v, want error=server_error with state and iss, no code", p.Status, p.Location)
	}
}

// TestStateEchoedExactly: state is returned byte for byte (RFC 6749 §4.1.2,
// §4.1.2.1) — with the code and with an error, whatever it holds (spaces,
// &, #, +, %, CR LF, markup, non-ASCII) — always percent-encoded in the
// Location, never a raw line break, and iss beside it (RFC 9207 §2).
func TestStateEchoedExactly(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	state := "a b&c=d#e+f%0D%0A\r\nSet-Cookie: x=y<script>é\"'"
	a := newAuthRequest(c)
	a.State = state
	if code := f.authorize(a); code == "" { // checks state and iss
		t.Fatal("no code")
	}
	a = newAuthRequest(c)
	a.State = state
	a.Scope = "openid admin"
	p := newBrowser(t, c.RedirectURIs[0]).get(a.URL(f.Base))
	if p.Location == nil || p.Location.Query().Get("error") != "invalid_scope" || p.Location.Query().Get("state") != state || p.Location.Query().Get("iss") != f.Base {
		t.Fatalf("error redirect %v: want invalid_scope with the state unchanged and iss", p.Location)
	}
	if loc := p.Header.Get("Location"); strings.ContainsAny(loc, "\r\n <>\"") {
		t.Errorf("Location %q is not percent-encoded", loc)
	}
	if _, ok := p.Header["Set-Cookie"]; ok && strings.Contains(strings.Join(p.Header["Set-Cookie"], ";"), "x=y") {
		t.Error("the state set a cookie")
	}
}

// TestConsentFormOfAnotherBrowser: the consent decision is bound to the
// browser shown the page (its tollgate-consent value, SameSite=Lax,
// with the page's own form token): the fields of one user's consent page
// posted with another browser's consent cookie are refused (403) and leave
// the page's own request intact, which its browser can still approve.
func TestConsentFormOfAnotherBrowser(t *testing.T) {
	f := startFleet(t, nil)
	redirect := "http://127.0.0.1:8977/guard-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Guard"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	consentPage := func() (*browser, *page, *http.Cookie) {
		b := newBrowser(t, redirect)
		p := f.login(b, newAuthRequest(c))
		if p.Status != http.StatusOK || !strings.Contains(p.Body, "consent_id") {
			t.Fatalf("want the consent page: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		for _, ck := range (&http.Response{Header: p.Header}).Cookies() {
			if ck.Name == "tollgate-consent" {
				if ck.SameSite != http.SameSiteLaxMode || ck.Secure || !ck.HttpOnly {
					t.Errorf("consent cookie %+v: want HttpOnly, SameSite=Lax, not Secure on a plain-http issuer", ck)
				}
				return b, p, &http.Cookie{Name: ck.Name, Value: ck.Value}
			}
		}
		t.Fatal("no consent cookie")
		return nil, nil, nil
	}
	victim, victimPage, _ := consentPage()
	attacker, _, attackerCookie := consentPage()
	attacker.client.Jar = nil
	if p := attacker.submit(victimPage, url.Values{"decision": {"approve"}}, attackerCookie); p.Status != http.StatusForbidden || p.Location != nil {
		t.Fatalf("another browser's consent cookie: %d %v, want 403", p.Status, p.Location)
	}
	if p := victim.submit(victimPage, url.Values{"decision": {"approve"}}); p.Location == nil || p.Location.Query().Get("code") == "" || p.Location.Query().Get("iss") != f.Base {
		t.Fatalf("the page's own browser: %d %v\n%s", p.Status, p.Location, p.Body)
	}
}

// TestNoEndSessionRedirect: the auth-server keeps no login session, so it
// offers no RP-initiated logout: discovery names no end_session_endpoint
// and the usual logout paths are 404s, never a redirect to a
// post_logout_redirect_uri (no open redirect, OpenID Connect RP-Initiated
// Logout §3).
func TestNoEndSessionRedirect(t *testing.T) {
	f := startFleet(t, nil)
	resp, err := http.Get(f.Base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	for _, k := range []string{"end_session_endpoint", "frontchannel_logout_supported", "backchannel_logout_supported", "check_session_iframe"} {
		if _, ok := doc[k]; ok {
			t.Errorf("discovery has %s", k)
		}
	}
	b := newBrowser(t, "https://evil.example")
	for _, path := range []string{"/oauth/end_session", "/oauth/logout", "/logout", "/oauth/authorize/logout"} {
		p := b.get(f.Base + path + "?post_logout_redirect_uri=" + url.QueryEscape("https://evil.example/x"))
		if p.Location != nil || p.Status/100 == 3 {
			t.Errorf("%s redirected to %v", path, p.Location)
		}
	}
}

// TestConsentPageEscapesClientText: what a self-registered client chose —
// its name, its redirect URI's host and path — reaches the consent page as
// text only (html/template), never markup.
func TestConsentPageEscapesClientText(t *testing.T) {
	f := startFleet(t, nil)
	redirect := "http://127.0.0.1:8977/cb/%3Cscript%3E"
	name := `Evil</h1><script>alert(1)</script><img src=x onerror=alert(2)>`
	body, _ := json.Marshal(map[string]any{"redirect_uris": []string{redirect}, "token_endpoint_auth_method": "none", "client_name": name})
	st, reg := register(t, f, string(body))
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	p := f.login(newBrowser(t, redirect), newAuthRequest(c))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "consent_id") {
		t.Fatalf("want the consent page: %d %v\n%s", p.Status, p.Location, p.Body)
	}
	for _, raw := range []string{"<script>", "<img", "</h1><"} {
		if strings.Contains(p.Body, raw) {
			t.Errorf("consent page has %q unescaped:\n%s", raw, p.Body)
		}
	}
	if !strings.Contains(p.Body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the name is not shown escaped:\n%s", p.Body)
	}
	if ct, nosniff := p.Header.Get("Content-Type"), p.Header.Get("X-Content-Type-Options"); ct != "text/html; charset=utf-8" || nosniff != "nosniff" ||
		p.Header.Get("Referrer-Policy") != "no-referrer" || p.Header.Get("Cache-Control") != "no-store" || p.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("consent page headers %v", p.Header)
	}
}
