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

// TestSignInStartedOnAnotherHost: a GPT Action is told to start at the
// Actions origin's /oauth/authorize (ACTIONS_OAUTH_BASE_URL), another host
// than the issuer's. The auth-server sends the browser to the same request
// on the issuer before it sets the host-only login cookie, so the upstream
// IdP's return to <issuer>/oauth/callback finds it, and the sign-in ends
// with a token, exchanged on the other host. Here the issuer is
// http://127.0.0.1:PORT and the other host http://localhost:PORT (one
// listener, two hosts to the browser's cookies).
func TestSignInStartedOnAnotherHost(t *testing.T) {
	f := startFleet(t, nil)
	other := strings.Replace(f.Base, "127.0.0.1", "localhost", 1)
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
