package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestSignInBoundToTheBrowser: the auth-server's upstream state is bound to
// the browser that started the authorization by the __Host-tollgate-login
// cookie (RFC 6749 §10.12, RFC 9700 §4.7.1), so a callback delivered to
// another browser is refused and consumed — in both directions of login
// CSRF: the attacker's signed-in callback opened by the victim (the
// victim's app would be linked to the attacker's account), and the
// attacker's IdP link signed in by the victim.
func TestSignInBoundToTheBrowser(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	callback := f.Base + "/oauth/callback"
	refused := func(t *testing.T, p *page) {
		t.Helper()
		if p.Location != nil || p.Status != http.StatusBadRequest {
			t.Fatalf("callback in another browser: %d (location %v), want 400 without redirect\n%s", p.Status, p.Location, p.Body)
		}
		if !strings.Contains(p.Body, "not started in this browser") {
			t.Errorf("the page does not say why:\n%s", p.Body)
		}
	}
	// signedInCallback runs the attacker's sign-in up to the callback URL
	// the IdP sends the attacker's browser to, and returns it unvisited.
	signedInCallback := func(t *testing.T, a *authRequest) (string, *browser) {
		t.Helper()
		attacker := newBrowser(t, callback)
		p := f.login(attacker, a)
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), callback) || p.Location.Query().Get("code") == "" {
			t.Fatalf("no callback with an upstream code: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		return p.Location.String(), attacker
	}

	t.Run("the cookie", func(t *testing.T) {
		b := newBrowser(t, f.IdP.Issuer)
		p := b.get(newAuthRequest(c).URL(f.Base))
		var got *http.Cookie
		for _, ck := range (&http.Response{Header: p.Header}).Cookies() {
			if ck.Name == "__Host-tollgate-login" {
				got = ck
			}
		}
		if got == nil || !got.Secure || !got.HttpOnly || got.Path != "/" || got.Domain != "" || got.SameSite != http.SameSiteLaxMode || got.MaxAge <= 0 || got.MaxAge > 3600 {
			t.Fatalf("login cookie %+v: want __Host- (Secure, Path=/, no Domain), HttpOnly, SameSite=Lax, Max-Age the login TTL", got)
		}
	})

	t.Run("attacker's callback opened by the victim", func(t *testing.T) {
		u, attacker := signedInCallback(t, newAuthRequest(c))
		refused(t, newBrowser(t, c.RedirectURIs[0]).get(u))
		// The state is consumed: not even the attacker's browser can use it now.
		attacker.stopAt = []string{c.RedirectURIs[0]}
		if p := attacker.get(u); p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already used") {
			t.Errorf("replayed callback: %d %v, want 400 unknown state\n%s", p.Status, p.Location, p.Body)
		}
	})

	t.Run("victim with a sign-in of its own", func(t *testing.T) {
		victim := newBrowser(t, f.IdP.Issuer)
		if p := victim.get(newAuthRequest(c).URL(f.Base)); p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize: %d %v", p.Status, p.Location)
		}
		u, _ := signedInCallback(t, newAuthRequest(c))
		victim.stopAt = []string{c.RedirectURIs[0]}
		refused(t, victim.get(u))
	})

	t.Run("attacker's IdP link signed in by the victim", func(t *testing.T) {
		attacker := newBrowser(t, f.IdP.Issuer)
		p := attacker.get(newAuthRequest(c).URL(f.Base))
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize: %d %v", p.Status, p.Location)
		}
		victim := newBrowser(t, callback)
		p = victim.get(p.Location.String())
		p = victim.submit(p, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), callback) {
			t.Fatalf("IdP login: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		victim.stopAt = []string{c.RedirectURIs[0]}
		refused(t, victim.get(p.Location.String()))
	})

	t.Run("a value not the server's is replaced", func(t *testing.T) {
		b := newBrowser(t, c.RedirectURIs[0])
		base, _ := url.Parse(f.Base)
		b.client.Jar.SetCookies(base, []*http.Cookie{{Name: "__Host-tollgate-login", Value: "chosen-by-someone", Path: "/", Secure: true}})
		a := newAuthRequest(c)
		if p := f.login(b, a); p.Location == nil || p.Location.Query().Get("code") == "" {
			t.Fatalf("sign-in: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		for _, ck := range b.client.Jar.Cookies(base) {
			if ck.Name == "__Host-tollgate-login" && ck.Value == "chosen-by-someone" {
				t.Error("the request's own value was kept")
			}
		}
	})

	t.Run("two sign-ins in one browser both complete", func(t *testing.T) {
		b := newBrowser(t, callback)
		a1, a2 := newAuthRequest(c), newAuthRequest(c)
		p1 := f.login(b, a1)
		p2 := f.login(b, a2)
		b.stopAt = []string{c.RedirectURIs[0]}
		for i, p := range []*page{p1, p2} {
			if p.Location == nil {
				t.Fatalf("sign-in %d: %d\n%s", i+1, p.Status, p.Body)
			}
			end := b.get(p.Location.String())
			if end.Location == nil || end.Location.Query().Get("code") == "" || end.Location.Query().Get("state") != []*authRequest{a1, a2}[i].State {
				t.Errorf("sign-in %d: %d %v\n%s", i+1, end.Status, end.Location, end.Body)
			}
		}
	})
}
