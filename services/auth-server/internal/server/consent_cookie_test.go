package server_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestConsentCookieFollowsTheIssuer: on a plain-http development issuer —
// loopback (make dev) or on another host (a PUBLIC_URL tunnel such as
// http://tollgate.test) — the consent cookie is tollgate-consent without
// Secure, as the login cookie is (on https both are __Host-, Secure: the
// unit tests TestLoginCookieName and TestConsentCookieName): a browser
// never sends a Secure cookie over plain http to another host, and Safari
// keeps none from http://localhost either, so the sign-in or the consent
// page could never complete there. The cookie is HttpOnly, SameSite=Lax,
// Path=/, without Domain, and the whole flow (sign-in at the real dev
// IdP, consent, code, token) completes in a browser that follows the
// cookie rules — Chrome's (Go's cookie jar: loopback is a secure context)
// and WebKit's (no Secure cookie kept from plain http, localhost included).
func TestConsentCookieFollowsTheIssuer(t *testing.T) {
	loopback := startFleet(t, nil)

	// The tunnel: the same kind of fleet, its issuer a plain-http name the
	// test's browser resolves to the server's loopback address.
	tunnel := newFleet(t, nil, "", true)
	_, port, _ := net.SplitHostPort(tunnel.env["HTTP_ADDR"])
	issuer := "http://tollgate.test:" + port
	idp := idptest.Start(t, idptest.Options{PublicIssuerURL: issuer})
	tunnel.env["PUBLIC_ISSUER_URL"] = issuer
	tunnel.env["UPSTREAM_ISSUER_URL"] = idp.Issuer
	tunnel.env["UPSTREAM_CLIENT_SECRET"] = idp.ClientSecret
	tunnel.start()

	for _, tc := range []struct {
		name, cookie string
		secure       bool
		f            *fleet
		base         string // where the browser reaches the issuer
		webKit       bool   // the browser keeps no Secure cookie set over http
	}{
		{"loopback issuer", "tollgate-consent", false, loopback, loopback.Base, false},
		{"loopback issuer in Safari", "tollgate-consent", false, loopback, loopback.Base, true},
		{"plain-http tunnel issuer", "tollgate-consent", false, tunnel, issuer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			redirect := "http://127.0.0.1:8977/cookie-callback"
			st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Cookie"}`)
			if st != http.StatusCreated {
				t.Fatalf("register: %d %v", st, reg)
			}
			c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
			b := newBrowser(t, redirect)
			// tollgate.test is the server's loopback address.
			b.client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, p, _ := net.SplitHostPort(addr); host == "tollgate.test" {
					addr = net.JoinHostPort("127.0.0.1", p)
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
			if tc.webKit {
				b.client.Jar = webKitJar{b.client.Jar}
			}
			a := newAuthRequest(c)
			a.Resource = f.Base + "/mcp"
			p := (&fleet{t: t, Base: tc.base}).login(b, a)
			if p.Location != nil || p.Status != http.StatusOK || !strings.Contains(p.Body, `value="approve"`) {
				t.Fatalf("want the consent page, got %d %v\n%s", p.Status, p.Location, p.Body)
			}
			pageHeader := p.Header
			p = b.submit(p, map[string][]string{"decision": {"approve"}})
			if p.Location == nil || p.Location.Query().Get("code") == "" || p.Location.Query().Get("iss") != tc.base {
				t.Fatalf("approve: %d %v, want a code from %s\n%s", p.Status, p.Location, tc.base, p.Body)
			}
			if tr := f.exchange(c, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK {
				t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
			}
			var got *http.Cookie
			for _, ck := range (&http.Response{Header: pageHeader}).Cookies() {
				if strings.HasSuffix(ck.Name, "tollgate-consent") {
					got = ck
				}
			}
			if got == nil || got.Name != tc.cookie || got.Secure != tc.secure || !got.HttpOnly ||
				got.SameSite != http.SameSiteLaxMode || got.Path != "/" || got.Domain != "" {
				t.Errorf("consent cookie %+v: want %s, Secure=%v, HttpOnly, SameSite=Lax, Path=/, no Domain", got, tc.cookie, tc.secure)
			}
		})
	}
}

// webKitJar keeps cookies as WebKit (Safari, WKWebView) does where it
// differs from Chrome, whose rules Go's cookie jar follows: a cookie marked
// Secure that comes over plain http is dropped, localhost included
// (https://bugs.webkit.org/show_bug.cgi?id=281149).
type webKitJar struct{ http.CookieJar }

func (j webKitJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	var kept []*http.Cookie
	for _, c := range cookies {
		if !c.Secure || u.Scheme == "https" {
			kept = append(kept, c)
		}
	}
	j.CookieJar.SetCookies(u, kept)
}
