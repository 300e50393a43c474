package server_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestCodeConcurrentRedemption: 50 concurrent redemptions of one code give
// exactly one success; the rest get invalid_grant, never a 5xx.
func TestCodeConcurrentRedemption(t *testing.T) {
	f := startFleet(t, nil)
	// A public client: 50 bcrypt checks would measure bcrypt, not the store.
	c := f.Clients["test-public"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	const n = 50
	results := make([]tokenResponse, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = f.exchange(c, a, code)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.Status == http.StatusOK:
			ok++
		case r.Status == http.StatusBadRequest && r.Error == "invalid_grant":
		default:
			t.Errorf("redemption answered %d %s (%s); want 200 once, else 400 invalid_grant", r.Status, r.Error, r.Description)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want exactly 1", ok, n)
	}
}

// TestCodeRefusals: a wrong verifier, client or redirect URI fails without
// consuming the code; a replay fails and revokes what the code issued.
func TestCodeRefusals(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	other := f.Clients["gpt-actions"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	form := func(mod func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}
		mod(v)
		return v
	}
	for _, tc := range []struct {
		name   string
		client devClient
		form   url.Values
		status int
		err    string
	}{
		{"wrong verifier", c, form(func(v url.Values) { v.Set("code_verifier", oauth2.GenerateVerifier()) }), 400, "invalid_grant"},
		{"missing verifier", c, form(func(v url.Values) { v.Del("code_verifier") }), 400, "invalid_grant"},
		{"wrong client", other, form(func(url.Values) {}), 400, "invalid_grant"},
		{"wrong redirect uri", c, form(func(v url.Values) { v.Set("redirect_uri", c.RedirectURIs[1]) }), 400, "invalid_grant"},
		{"unknown code", c, form(func(v url.Values) { v.Set("code", "ory_ac_unknown.unknown") }), 400, "invalid_grant"},
		{"wrong secret", devClient{ClientID: c.ClientID, ClientSecret: "nope", AuthMethod: "client_secret_basic"}, form(func(url.Values) {}), 401, "invalid_client"},
		{"resource not the grant's", c, form(func(v url.Values) { v.Set("resource", f.Base+"/actions") }), 400, "invalid_target"},
		{"unsupported grant", c, form(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type"},
		{"repeated parameter", c, form(func(v url.Values) { v["code"] = []string{code, code} }), 400, "invalid_request"},
		{"plain verifier", c, form(func(v url.Values) { v.Set("code_verifier", challenge(a.Verifier)) }), 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.token(tc.client, tc.form)
			if r.Status != tc.status || r.Error != tc.err {
				t.Fatalf("got %d %s (%s), want %d %s", r.Status, r.Error, r.Description, tc.status, tc.err)
			}
			if tc.err == "invalid_client" && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("failed Basic authentication without WWW-Authenticate")
			}
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Error("error response without Cache-Control: no-store")
			}
		})
	}
	// Two Authorization headers are refused before anything else.
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(form(func(url.Values) {}).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.ClientID+":"+c.ClientSecret)))
	req.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.ClientID+":"+c.ClientSecret)))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("two Authorization headers: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// The rightful redemption still works after all of those.
	tr := f.exchange(c, a, code)
	if tr.Status != http.StatusOK {
		t.Fatalf("rightful redemption after refusals: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	// A replay fails and revokes the grant: the access token no longer
	// reaches userinfo and the refresh token is dead.
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo before replay: %d", st)
	}
	if r := f.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("replay: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("userinfo after replay: %d, want 401", st)
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("refresh after replay: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
}

// TestRefreshRotation: rotation on every use; reuse after the grace window
// revokes the family; another client cannot use the token and leaves it
// usable; concurrent refreshes within the grace window keep the family.
func TestRefreshRotation(t *testing.T) {
	t.Run("reuse revokes the family", func(t *testing.T) {
		f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "0s"})
		c := f.Clients["gpt-apps-mcp"]
		tr := f.fullFlow(c, newAuthRequest(c))
		// Another client: refused, and the owner can still refresh.
		if r := f.refresh(f.Clients["gpt-actions"], tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("refresh by another client: %d %s", r.Status, r.Error)
		}
		r1 := f.refresh(c, tr.RefreshToken)
		if r1.Status != http.StatusOK {
			t.Fatalf("first refresh: %d %s %s", r1.Status, r1.Error, r1.Description)
		}
		r2 := f.refresh(c, r1.RefreshToken)
		if r2.Status != http.StatusOK {
			t.Fatalf("second refresh: %d %s", r2.Status, r2.Error)
		}
		// Reusing the first, rotated token: refused, and the whole family dies.
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("reuse: %d %s, want invalid_grant", r.Status, r.Error)
		}
		if r := f.refresh(c, r2.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("latest token after reuse: %d %s, want invalid_grant (family revoked)", r.Status, r.Error)
		}
		if st, _ := f.userinfo(r2.AccessToken); st != http.StatusUnauthorized {
			t.Errorf("access token after reuse: userinfo %d, want 401", st)
		}
	})
	t.Run("grace window", func(t *testing.T) {
		f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "2m"})
		c := f.Clients["gpt-apps-mcp"]
		tr := f.fullFlow(c, newAuthRequest(c))
		const n = 5
		res := make([]tokenResponse, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = f.refresh(c, tr.RefreshToken) }()
		}
		wg.Wait()
		for i, r := range res {
			if r.Status != http.StatusOK {
				t.Fatalf("concurrent refresh %d: %d %s %s", i, r.Status, r.Error, r.Description)
			}
		}
		// The family survives: every new refresh token works.
		for i, r := range res {
			if r2 := f.refresh(c, r.RefreshToken); r2.Status != http.StatusOK {
				t.Errorf("refresh with token %d after concurrent refreshes: %d %s", i, r2.Status, r2.Error)
			}
		}
	})
}

// TestAudiences: the resource selects the audience; a token for one
// audience is refused by the other service's verifier; a refresh keeps it.
func TestAudiences(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	mcp, actions := f.Base+"/mcp", f.Base+"/actions"
	a := newAuthRequest(c)
	a.Resource = actions
	tr := f.fullFlow(c, a)
	if _, err := f.Verifier(actions).Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Fatalf("actions verifier: %v", err)
	}
	if _, err := f.Verifier(mcp).Verify(ctxT(t), tr.AccessToken); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("mcp verifier accepted an actions token: %v", err)
	}
	r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {mcp}})
	if r.Status != http.StatusBadRequest || r.Error != "invalid_target" {
		t.Fatalf("refresh to another resource: %d %s, want invalid_target", r.Status, r.Error)
	}
	r = f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {actions}})
	if r.Status != http.StatusOK {
		t.Fatalf("refresh naming the same resource: %d %s", r.Status, r.Error)
	}
	if _, err := f.Verifier(actions).Verify(ctxT(t), r.AccessToken); err != nil {
		t.Fatalf("refreshed token lost its audience: %v", err)
	}
}
