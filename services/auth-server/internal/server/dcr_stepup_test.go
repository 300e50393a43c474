package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestDynamicClientStepUp: an MCP client that registers itself (RFC 7591)
// with the scopes of its first 401 challenge can later ask for a wider
// scope, as the MCP TypeScript SDK does after a 403 insufficient_scope
// (MCP 2025-11-25, Scope Challenge Handling). The registration states every
// supported scope (RFC 7591 §2, §3.2.1); the user approves the wider scope
// on the consent page, and remembered consent does not cover a scope it
// never saw. A scope the server does not support stays refused, at
// registration and at authorization.
func TestDynamicClientStepUp(t *testing.T) {
	f := startFleet(t, nil)
	supported := scopesSupported(t, f)
	if !slices.Contains(supported, "connections.revoke") {
		t.Fatalf("scopes_supported %v lacks connections.revoke (the auth-server's GrantsService declares it)", supported)
	}
	redirect := "http://127.0.0.1:8979/mcp-sdk-callback"
	// Confidential, so that the approval is remembered for its loopback
	// redirect URI (a public client's is not: RFC 8252 §8.6).
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"MCP SDK client","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"scope":"openid profile email"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	// The response states the registered scopes: every supported one.
	if got, _ := reg["scope"].(string); !sameScopes(got, supported) {
		t.Errorf("registration scope %q, want the supported scopes %v", got, supported)
	}
	c := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirect}, AuthMethod: "client_secret_basic"}

	// The first authorization, with the challenge's scopes.
	a := newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	b, p := consentPage(t, f, a)
	if strings.Contains(p.Body, "Disconnect apps from your account") {
		t.Errorf("first consent page names a scope not asked for:\n%s", p.Body)
	}
	tr := f.exchange(c, a, approve(t, b, p))
	if tr.Status != http.StatusOK || tr.Scope != "openid profile email" {
		t.Fatalf("first token: %d %s %s scope %q", tr.Status, tr.Error, tr.Description, tr.Scope)
	}

	// The step-up: the remembered consent does not cover connections.revoke,
	// so the page asks again, naming it.
	stepUp := "openid profile email connections.revoke"
	a = newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	a.Scope = stepUp
	b, p = consentPage(t, f, a)
	if !strings.Contains(p.Body, "<li>Disconnect apps from your account</li>") {
		t.Errorf("step-up consent page does not name connections.revoke:\n%s", p.Body)
	}
	tr = f.exchange(c, a, approve(t, b, p))
	if tr.Status != http.StatusOK || tr.Scope != stepUp {
		t.Fatalf("step-up token: %d %s %s scope %q", tr.Status, tr.Error, tr.Description, tr.Scope)
	}
	claims, err := f.Verifier(f.Base+"/mcp").Verify(ctxT(t), tr.AccessToken)
	if err != nil || !slices.Contains(claims.Scopes, "connections.revoke") {
		t.Fatalf("step-up access token: %v %v", claims, err)
	}
	// Approved once, the step-up scope is remembered …
	a = newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	a.Scope = stepUp
	if code := f.authorize(a); code == "" {
		t.Fatal("no code for the approved step-up scope")
	}
	// … and covers nothing wider: connections.read brings the page back.
	a = newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	a.Scope = "openid connections.read"
	if _, p = consentPage(t, f, a); !strings.Contains(p.Body, "<li>See which apps are connected to your account</li>") {
		t.Errorf("consent page for connections.read does not name it:\n%s", p.Body)
	}

	// A scope the server does not support is refused at authorization …
	a = newAuthRequest(c)
	a.Scope = "openid profile email orders.write"
	if p := newBrowser(t, a.RedirectURI).get(a.URL(f.Base)); p.Location == nil || p.Location.Query().Get("error") != "invalid_scope" {
		t.Errorf("unsupported scope at authorization: %d %v, want invalid_scope", p.Status, p.Location)
	}
	// … and at registration, naming it.
	st, m := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","scope":"openid admin"}`)
	if desc, _ := m["error_description"].(string); st != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || !strings.HasPrefix(desc, `scope 'admin' is not supported`) {
		t.Errorf("register with an unsupported scope: %d %v, want 400 invalid_client_metadata naming it", st, m)
	}

	// A registration stored with a narrower scope (before registrations
	// were given the supported scopes) may step up too.
	st, reg = register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Older MCP client"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	old := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	narrowRegistration(t, f, old.ClientID, "openid profile email")
	a = newAuthRequest(old)
	a.Scope = stepUp
	b, p = consentPage(t, f, a)
	if tr := f.exchange(old, a, approve(t, b, p)); tr.Status != http.StatusOK || tr.Scope != stepUp {
		t.Fatalf("step-up of an older registration: %d %s %s scope %q", tr.Status, tr.Error, tr.Description, tr.Scope)
	}
}

// sameScopes reports whether the space-separated scope s names exactly want.
func sameScopes(s string, want []string) bool {
	got := strings.Fields(s)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	return slices.Equal(got, w)
}

// consentPage signs in for a and fails unless the consent page is shown.
func consentPage(t *testing.T, f *fleet, a *authRequest) (*browser, *page) {
	t.Helper()
	b := newBrowser(t, a.RedirectURI)
	p := f.login(b, a)
	if p.Location != nil || p.Status != http.StatusOK || !strings.Contains(p.Body, `value="approve"`) {
		t.Fatalf("scope %q: want the consent page, got %d %v\n%s", a.Scope, p.Status, p.Location, p.Body)
	}
	return b, p
}

// approve submits the consent page and returns the code.
func approve(t *testing.T, b *browser, p *page) string {
	t.Helper()
	p = b.submit(p, url.Values{"decision": {"approve"}})
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("no code after consent: %d %v\n%s", p.Status, p.Location, p.Body)
	}
	return p.Location.Query().Get("code")
}

// narrowRegistration rewrites the stored registration of id with scope, as
// a registration made when the requested scope was the registered one.
func narrowRegistration(t *testing.T, f *fleet, id, scope string) {
	t.Helper()
	rewriteRegistration(t, f, id, func(md map[string]any) { md["scope"] = scope })
}
