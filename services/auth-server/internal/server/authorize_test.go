package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeRefusals: before the redirect URI is verified errors are
// answered directly (never a redirect); after, they go back to the client
// with state and iss.
func TestAuthorizeRefusals(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	pub := f.Clients["test-public"]
	noRedirect := func(status int, code string) func(*testing.T, *page) {
		return func(t *testing.T, p *page) {
			t.Helper()
			if p.Location != nil || p.Status != status {
				t.Fatalf("got %d (location %v), want %d without redirect", p.Status, p.Location, status)
			}
			if !strings.Contains(p.Body, code) {
				t.Errorf("body lacks %q:\n%s", code, p.Body)
			}
			if p.Header.Get("Cache-Control") != "no-store" {
				t.Error("error page without Cache-Control: no-store")
			}
		}
	}
	redirected := func(code string) func(*testing.T, *page) {
		return func(t *testing.T, p *page) {
			t.Helper()
			if p.Location == nil {
				t.Fatalf("no redirect: %d\n%s", p.Status, p.Body)
			}
			q := p.Location.Query()
			if q.Get("error") != code || q.Get("state") == "" || q.Get("iss") != f.Base {
				t.Fatalf("redirect %s: want error=%s with state and iss", p.Location, code)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		mod   func(a *authRequest)
		raw   func(u string) string
		check func(*testing.T, *page)
	}{
		{"unknown client", func(a *authRequest) { a.ClientID = "nobody" }, nil, noRedirect(400, "invalid_client")},
		{"missing client", func(a *authRequest) { a.ClientID = "" }, nil, noRedirect(400, "invalid_request")},
		{"unregistered redirect", func(a *authRequest) { a.RedirectURI = "https://evil.example/cb" }, nil, noRedirect(400, "invalid_request")},
		{"redirect prefix only", func(a *authRequest) { a.RedirectURI += "/extra" }, nil, noRedirect(400, "invalid_request")},
		{"duplicate parameter", nil, func(u string) string { return u + "&client_id=" + c.ClientID }, noRedirect(400, "invalid_request")},
		{"access_token in query", nil, func(u string) string { return u + "&access_token=x" }, noRedirect(400, "invalid_request")},
		{"missing PKCE", func(a *authRequest) { a.Verifier = "" }, nil, redirected("invalid_request")},
		{"plain PKCE", nil, func(u string) string {
			return strings.Replace(u, "code_challenge_method=S256", "code_challenge_method=plain", 1)
		}, redirected("invalid_request")},
		{"unknown scope", func(a *authRequest) { a.Scope = "openid admin" }, nil, redirected("invalid_scope")},
		{"resource not allowed", func(a *authRequest) { a.Resource = "https://elsewhere.example/api\"<x>" }, nil, func(t *testing.T, p *page) {
			redirected("invalid_target")(t, p)
			// What the client may use and where that is set; the refused
			// value is not echoed.
			want := "resource is not allowed for this client: it may use " + f.Base + "/mcp " + f.Base + "/actions (its resources in CLIENTS_FILE)"
			if got := p.Location.Query().Get("error_description"); got != want {
				t.Errorf("error_description %q, want %q", got, want)
			}
		}},
		{"two resources", nil, func(u string) string {
			return u + "&resource=" + url.QueryEscape(f.Base+"/mcp") + "&resource=" + url.QueryEscape(f.Base+"/actions")
		}, redirected("invalid_target")},
		{"response_type token", nil, func(u string) string { return strings.Replace(u, "response_type=code", "response_type=token", 1) }, redirected("unsupported_response_type")},
		{"prompt none", nil, func(u string) string { return u + "&prompt=none" }, redirected("login_required")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthRequest(c)
			if tc.mod != nil {
				tc.mod(a)
			}
			u := a.URL(f.Base)
			if tc.raw != nil {
				u = tc.raw(u)
			}
			b := newBrowser(t, c.RedirectURIs[0], "https://evil.example", f.IdP.Issuer)
			p := b.get(u)
			tc.check(t, p)
		})
	}
	t.Run("public client without PKCE", func(t *testing.T) {
		a := newAuthRequest(pub)
		a.Verifier = ""
		p := newBrowser(t, pub.RedirectURIs[0]).get(a.URL(f.Base))
		redirected("invalid_request")(t, p)
	})
	t.Run("default scopes", func(t *testing.T) {
		a := newAuthRequest(c)
		a.Scope = ""
		tr := f.fullFlow(c, a)
		if tr.Scope != "openid profile email" {
			t.Errorf("scope %q, want the defaults openid profile email", tr.Scope)
		}
	})
	t.Run("unknown callback state", func(t *testing.T) {
		p := newBrowser(t).get(f.Base + "/oauth/callback?state=forged&code=x")
		noRedirect(400, "invalid_request")(t, p)
	})
	t.Run("upstream error goes back to the client", func(t *testing.T) {
		// Start a login, then come back from the IdP with an error instead of a code.
		a := newAuthRequest(c)
		b := newBrowser(t, f.IdP.Issuer)
		p := b.get(a.URL(f.Base))
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize did not redirect to the IdP: %d %v", p.Status, p.Location)
		}
		state := p.Location.Query().Get("state")
		b.stopAt = []string{c.RedirectURIs[0]}
		p = b.get(f.Base + "/oauth/callback?error=access_denied&state=" + url.QueryEscape(state))
		redirected("access_denied")(t, p)
		// The state is single use.
		p = b.get(f.Base + "/oauth/callback?code=x&state=" + url.QueryEscape(state))
		noRedirect(400, "invalid_request")(t, p)
	})
}

// TestDiscovery checks both metadata documents and the JWKS.
func TestDiscovery(t *testing.T) {
	f := startFleet(t, nil)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		resp, err := http.Get(f.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 200 || m["issuer"] != f.Base || m["token_endpoint"] != f.Base+"/oauth/token" ||
			m["authorization_response_iss_parameter_supported"] != true || m["client_id_metadata_document_supported"] != true ||
			m["registration_endpoint"] != f.Base+"/oauth/register" {
			t.Errorf("%s: %d %v", path, resp.StatusCode, m)
		}
		if got := m["code_challenge_methods_supported"].([]any); len(got) != 1 || got[0] != "S256" {
			t.Errorf("%s: code_challenge_methods_supported %v, want [S256]", path, got)
		}
	}
	for _, path := range []string{"/oauth/jwks", "/.well-known/openid-configuration"} {
		resp, err := http.Get(f.Base + path + "?access_token=x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s with access_token in the query: %d, want 400 no-store", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(f.Base + "/oauth/jwks")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"kid"`) || strings.Contains(string(b), `"d"`) {
		t.Errorf("jwks: %d %s", resp.StatusCode, b)
	}
}

// TestDiscoveryWithoutDCR: no registration_endpoint when DCR is off.
func TestDiscoveryWithoutDCR(t *testing.T) {
	f := startFleet(t, map[string]string{"DCR_ENABLED": "false"})
	resp, err := http.Get(f.Base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if _, ok := m["registration_endpoint"]; ok {
		t.Error("registration_endpoint advertised with DCR_ENABLED=false")
	}
	r, _ := f.post("/oauth/register", devClient{AuthMethod: "none"}, url.Values{})
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("register with DCR off: %d, want 404", r.StatusCode)
	}
}

// TestUserinfoRefusals covers the bearer rules of /oauth/userinfo.
func TestUserinfoRefusals(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	do := func(mod func(*http.Request)) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, f.Base+"/oauth/userinfo", nil)
		mod(req)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	auth := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}
	for _, tc := range []struct {
		name   string
		mod    func(*http.Request)
		status int
		desc   string // part of the body; "" = not checked
	}{
		{"no token", func(*http.Request) {}, 401, `"no bearer token"`},
		{"another scheme", auth("Basic dXNlcjpwYXNz"), 401, `"no bearer token"`},
		// The Bearer scheme without a usable token: said as it is (brk50a
		// finding 2), still a challenge without an error code.
		{"Bearer alone", auth("Bearer"), 401, `"the Bearer token is empty"`},
		{"Bearer with a space", auth("Bearer " + tr.AccessToken + " x"), 401, `the Authorization header is malformed`},
		{"garbage token", auth("Bearer x.y.z"), 401, ""},
		{"two Authorization headers", func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+tr.AccessToken)
			r.Header.Add("Authorization", "Bearer "+tr.AccessToken)
		}, 400, ""},
		{"token in query", func(r *http.Request) { r.URL.RawQuery = "access_token=" + tr.AccessToken }, 400, ""},
		{"valid", auth("Bearer " + tr.AccessToken), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(tc.mod)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.desc != "" {
				if !strings.Contains(body, tc.desc) {
					t.Errorf("body %s, want it to say %s", body, tc.desc)
				}
				if ch := resp.Header.Get("WWW-Authenticate"); strings.Contains(ch, "error=") {
					t.Errorf("challenge %q: no authentication information has no error code (RFC 6750 §3.1)", ch)
				}
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Error("no Cache-Control: no-store")
			}
			if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Error("401 without a Bearer challenge")
			}
		})
	}
	// Revocation (RFC 7009) kills the grant: userinfo refuses the token.
	r, _ := f.post("/oauth/revoke", c, url.Values{"token": {tr.RefreshToken}})
	if r.StatusCode != 200 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if st, _ := f.userinfo(tr.AccessToken); st != 401 {
		t.Errorf("userinfo after revocation: %d, want 401", st)
	}
	if rr := f.refresh(c, tr.RefreshToken); rr.Error != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %s", rr.Status, rr.Error)
	}
}
