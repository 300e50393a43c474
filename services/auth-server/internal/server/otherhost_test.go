package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// startActionsHostFleet starts a fleet whose ACTIONS_OAUTH_BASE_URL is
// the issuer's origin on another host (localhost for 127.0.0.1), and
// returns it with that origin.
func startActionsHostFleet(t *testing.T, env map[string]string) (*fleet, string) {
	t.Helper()
	f := newFleet(t, env, "", true)
	actions := strings.Replace(f.Base, "127.0.0.1", "localhost", 1)
	f.env["ACTIONS_OAUTH_BASE_URL"] = actions
	f.start()
	return f, actions
}

// authorizeOn sends a's authorization request to the fleet's listener with
// the Host header host and, unless empty, X-Forwarded-Host forwarded, and
// returns the answer's status and Location without following it.
func authorizeOn(t *testing.T, f *fleet, a *authRequest, host, forwarded string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.URL(f.Base), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if forwarded != "" {
		req.Header.Set("X-Forwarded-Host", forwarded)
	}
	noFollow := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestOnlyTheActionsHostIsSentToTheIssuer: /oauth/authorize redirects to
// the issuer only a request asked on ACTIONS_OAUTH_BASE_URL's host. A
// request whose Host is neither that nor the issuer's — a proxy that
// rewrites Host and is not in TRUSTED_PROXIES hands on the issuer's own
// requests so — is served where it is: redirected to the issuer, it would
// come back through the same proxy with the same host, in a loop.
// X-Forwarded-Host names the host asked only from a TRUSTED_PROXIES peer.
func TestOnlyTheActionsHostIsSentToTheIssuer(t *testing.T) {
	f, actions := startActionsHostFleet(t, nil)
	actionsHost := strings.TrimPrefix(actions, "http://")
	issuerHost := strings.TrimPrefix(f.Base, "http://")
	a := newAuthRequest(f.Clients["gpt-actions"])
	toIssuer := a.URL(f.Base)
	upstream := f.IdP.Issuer

	for _, c := range []struct {
		name, host, forwarded string
		redirected            bool
	}{
		{"the Actions host", actionsHost, "", true},
		{"the Actions host in upper case", strings.ToUpper(actionsHost), "", true},
		{"the issuer's host", issuerHost, "", false},
		{"a host rewritten by an untrusted proxy", "auth-server.internal:8080", "", false},
		{"another host", "elsewhere.example", "", false},
		{"X-Forwarded-Host from an untrusted peer", issuerHost, actionsHost, false},
	} {
		status, loc := authorizeOn(t, f, a, c.host, c.forwarded)
		switch {
		case c.redirected && (status != http.StatusFound || loc != toIssuer):
			t.Errorf("%s (Host %q, X-Forwarded-Host %q): %d Location %q; want 302 to %s", c.name, c.host, c.forwarded, status, loc, toIssuer)
		case !c.redirected && (status != http.StatusFound || !strings.HasPrefix(loc, upstream)):
			t.Errorf("%s (Host %q, X-Forwarded-Host %q): %d Location %q; want the sign-in served (302 to the IdP at %s)", c.name, c.host, c.forwarded, status, loc, upstream)
		}
	}

	// From a TRUSTED_PROXIES peer, X-Forwarded-Host is the host asked.
	f.restart(map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	for _, c := range []struct {
		name, host, forwarded string
		redirected            bool
	}{
		{"X-Forwarded-Host the Actions host", "auth-server.internal:8080", actionsHost, true},
		{"X-Forwarded-Host the Actions host, first of two", issuerHost, actionsHost + ", proxy.internal", true},
		{"X-Forwarded-Host the issuer's host", actionsHost, issuerHost, false},
		{"X-Forwarded-Host another host", actionsHost, "elsewhere.example", false},
	} {
		status, loc := authorizeOn(t, f, a, c.host, c.forwarded)
		switch {
		case c.redirected && (status != http.StatusFound || loc != toIssuer):
			t.Errorf("trusted peer, %s (Host %q, X-Forwarded-Host %q): %d Location %q; want 302 to %s", c.name, c.host, c.forwarded, status, loc, toIssuer)
		case !c.redirected && (status != http.StatusFound || !strings.HasPrefix(loc, upstream)):
			t.Errorf("trusted peer, %s (Host %q, X-Forwarded-Host %q): %d Location %q; want the sign-in served (302 to the IdP at %s)", c.name, c.host, c.forwarded, status, loc, upstream)
		}
	}
}

// TestNoActionsHostNoRedirect: without ACTIONS_OAUTH_BASE_URL (the Actions
// document then names the issuer) no host is sent elsewhere.
func TestNoActionsHostNoRedirect(t *testing.T) {
	f := startFleet(t, nil)
	a := newAuthRequest(f.Clients["gpt-actions"])
	other := strings.Replace(strings.TrimPrefix(f.Base, "http://"), "127.0.0.1", "localhost", 1)
	if status, loc := authorizeOn(t, f, a, other, ""); status != http.StatusFound || !strings.HasPrefix(loc, f.IdP.Issuer) {
		t.Errorf("Host %q without ACTIONS_OAUTH_BASE_URL: %d Location %q; want the sign-in served (302 to the IdP at %s)", other, status, loc, f.IdP.Issuer)
	}
}

// TestSignInStartedOnAnotherHost: a GPT Action is told to start at the
// Actions origin's /oauth/authorize (ACTIONS_OAUTH_BASE_URL), another host
// than the issuer's. The auth-server sends the browser to the same request
// on the issuer before it sets the host-only login cookie, so the upstream
// IdP's return to <issuer>/oauth/callback finds it, and the sign-in ends
// with a token, exchanged on the other host. Here the issuer is
// http://127.0.0.1:PORT and the Actions host http://localhost:PORT (one
// listener, two hosts to the browser's cookies).
func TestSignInStartedOnAnotherHost(t *testing.T) {
	f, other := startActionsHostFleet(t, nil)
	c := f.Clients["gpt-actions"]
	a := newAuthRequest(c)

	// The first answer: 302 to the issuer, query unchanged, no cookie.
	noFollow := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := a.URL(other)
	resp, err := noFollow.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantLoc := f.Base + strings.TrimPrefix(start, other)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != wantLoc || len(resp.Cookies()) != 0 {
		t.Fatalf("GET %s = %d Location %q cookies %v; want 302 to %s and no cookie", start, resp.StatusCode, resp.Header.Get("Location"), resp.Cookies(), wantLoc)
	}

	// The whole sign-in, started on the other host, gives a code.
	b := newBrowser(t, a.RedirectURI)
	p := b.get(start)
	if p.Status == http.StatusOK && strings.Contains(p.Body, `name="password"`) {
		p = b.submit(p, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
	}
	if p.Location == nil {
		t.Fatalf("no redirect to the client: status %d at %s\n%s", p.Status, p.URL, p.Body)
	}
	q := p.Location.Query()
	if q.Get("code") == "" || q.Get("state") != a.State || q.Get("iss") != f.Base {
		t.Fatalf("redirect to the client %s: want a code, state %q and iss %q", p.Location, a.State, f.Base)
	}

	// The token endpoint answers on the other host too.
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}
	resp, err = http.PostForm(other+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token on %s: %d %s", other, resp.StatusCode, body)
	}

	// X-Forwarded-Host counts only from TRUSTED_PROXIES (none here): on
	// the issuer's host the request is served, not redirected.
	req, _ := http.NewRequest(http.MethodGet, a.URL(f.Base), nil)
	req.Header.Set("X-Forwarded-Host", "attacker.example")
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, f.Base) || strings.Contains(loc, "attacker") {
		t.Errorf("X-Forwarded-Host from an untrusted peer: %d Location %q, want the sign-in served", resp.StatusCode, loc)
	}
}
