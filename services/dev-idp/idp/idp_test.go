package idp_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/tollgate/tollgate/services/dev-idp/idp"
)

const (
	devUser     = "dev"
	devPassword = "tollgate-dev"
	devSub      = "dev-user-0001"
	// authServer stands for the auth-server's public origin; the dev IdP
	// only uses it to build the tollgate client's redirect URI.
	authServer = "http://localhost:4000"
	callback   = authServer + "/oauth/callback"
)

const usersYAML = `# written like auth-server dev-init does
users:
  - username: dev
    password: tollgate-dev
    sub: dev-user-0001
    name: Dev User
    given_name: Dev
    family_name: User
    email: dev@example.com
    email_verified: true
  - username: ada
    password: analytical-engine
    sub: ada-0002
    name: Ada Lovelace
    email: ada@example.com
`

// fixture is a dev IdP running in-process on 127.0.0.1:0.
type fixture struct {
	issuer, admin, secret string
	listen                string // http://host:port the IdP listens on
	http                  *http.Client
	logs                  *testharness.SyncBuffer
}

// devDir writes what `auth-server dev-init` writes for the dev IdP.
func devDir(t *testing.T) (dir, secret string) {
	t.Helper()
	dir = t.TempDir()
	secret = rand.Text()
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), []byte(usersYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "upstream-client-secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

func start(t *testing.T, extra map[string]string) *fixture {
	t.Helper()
	dir, secret := devDir(t)
	env := map[string]string{
		"TOLLGATE_ENV": "development", "HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
		"DEVIDP_DIR": dir, "PUBLIC_ISSUER_URL": authServer, "SHUTDOWN_TIMEOUT": testharness.ShutdownTimeout,
	}
	for k, v := range extra {
		env[k] = v
	}
	svc := testharness.RunService(t, idp.Run, env)
	f := &fixture{secret: secret, logs: svc.Logs, issuer: "http://" + svc.Addr("http"), listen: "http://" + svc.Addr("http"), admin: "http://" + svc.Addr("admin")}
	if iss := env["DEVIDP_ISSUER_URL"]; iss != "" {
		f.issuer = iss
	}
	f.http = &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return f
}

func (f *fixture) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := f.http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func (f *fixture) postForm(t *testing.T, u string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// authz is one authorization request's client-side state.
type authz struct {
	clientID, redirect, state, nonce, verifier string
}

func newAuthz(clientID, redirect string) authz {
	return authz{clientID: clientID, redirect: redirect, state: rand.Text(), nonce: rand.Text(), verifier: rand.Text() + rand.Text()}
}

func (a authz) url(issuer string) string {
	q := url.Values{
		"client_id": {a.clientID}, "redirect_uri": {a.redirect}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {a.state}, "nonce": {a.nonce},
		"code_challenge": {oidc.NewSHACodeChallenge(a.verifier)}, "code_challenge_method": {"S256"},
	}
	return issuer + "/authorize?" + q.Encode()
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-zA-Z]+)" value="([^"]*)">`)

// loginForm follows /authorize to the login page and returns its hidden fields.
func (f *fixture) loginForm(t *testing.T, a authz) (action string, form url.Values) {
	t.Helper()
	resp, body := f.get(t, a.url(f.issuer))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, want 302: %s", resp.StatusCode, body)
	}
	loginURL := resp.Header.Get("Location")
	if !strings.HasPrefix(loginURL, f.issuer+"/login?") {
		t.Fatalf("authorize redirected to %q, want the login page", loginURL)
	}
	resp, body = f.get(t, loginURL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{`name="username"`, `name="password"`, `type="password"`, `method="post"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("login page CSP = %q, want frame-ancestors 'none'", got)
	}
	form = url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("authRequestID") == "" || form.Get("csrf") == "" {
		t.Fatalf("login page lacks the hidden fields: %s", body)
	}
	return f.issuer + "/login", form
}

// signIn posts credentials and follows the callback to the client's
// redirect URI, returning the code.
func (f *fixture) signIn(t *testing.T, a authz, username, password string) string {
	t.Helper()
	action, form := f.loginForm(t, a)
	form.Set("username", username)
	form.Set("password", password)
	resp, body := f.postForm(t, action, form, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: status %d, want 302: %s", resp.StatusCode, body)
	}
	resp, body = f.get(t, resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize callback: status %d, want 302: %s", resp.StatusCode, body)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Scheme + "://" + back.Host + back.Path; got != a.redirect {
		t.Fatalf("redirected to %q, want %q", got, a.redirect)
	}
	q := back.Query()
	if q.Get("state") != a.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), a.state)
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in %s", back)
	}
	return q.Get("code")
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// exchange redeems code with client_secret_basic ("basic"),
// client_secret_post ("post") or no secret ("none").
func (f *fixture) exchange(t *testing.T, a authz, code, method, secret string) (int, tokenResponse) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {a.verifier}}
	h := http.Header{}
	switch method {
	case "basic":
		h.Set("Authorization", "Basic "+basic(a.clientID, secret))
	case "post":
		form.Set("client_id", a.clientID)
		form.Set("client_secret", secret)
	case "none":
		form.Set("client_id", a.clientID)
	}
	resp, body := f.postForm(t, f.issuer+"/oauth/token", form, h)
	var tr tokenResponse
	if err := json.Unmarshal([]byte(body), &tr); err != nil {
		t.Fatalf("token response is not JSON (status %d): %s", resp.StatusCode, body)
	}
	return resp.StatusCode, tr
}

func basic(id, secret string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func TestDiscoveryAndJWKS(t *testing.T) {
	f := start(t, nil)
	resp, body := f.get(t, f.issuer+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: status %d: %s", resp.StatusCode, body)
	}
	var d oidc.DiscoveryConfiguration
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"issuer":                 {d.Issuer, f.issuer},
		"authorization_endpoint": {d.AuthorizationEndpoint, f.issuer + "/authorize"},
		"token_endpoint":         {d.TokenEndpoint, f.issuer + "/oauth/token"},
		"userinfo_endpoint":      {d.UserinfoEndpoint, f.issuer + "/userinfo"},
		"jwks_uri":               {d.JwksURI, f.issuer + "/keys"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	has := func(name string, list []string, want ...string) {
		for _, w := range want {
			found := false
			for _, v := range list {
				found = found || v == w
			}
			if !found {
				t.Errorf("%s = %v, lacks %q", name, list, w)
			}
		}
	}
	var methods, challenges, authMethods []string
	for _, m := range d.CodeChallengeMethodsSupported {
		challenges = append(challenges, string(m))
	}
	for _, m := range d.TokenEndpointAuthMethodsSupported {
		authMethods = append(authMethods, string(m))
	}
	methods = append(methods, d.ResponseTypesSupported...)
	has("code_challenge_methods_supported", challenges, "S256")
	has("token_endpoint_auth_methods_supported", authMethods, "client_secret_basic", "client_secret_post")
	has("response_types_supported", methods, "code")
	has("id_token_signing_alg_values_supported", d.IDTokenSigningAlgValuesSupported, "RS256")
	has("scopes_supported", d.ScopesSupported, "openid", "profile", "email")
	has("claims_supported", d.ClaimsSupported, "sub", "name", "email", "email_verified", "nonce")

	resp, body = f.get(t, d.JwksURI)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: status %d", resp.StatusCode)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &jwks); err != nil {
		t.Fatal(err)
	}
	if len(jwks.Keys) != 1 {
		t.Fatalf("jwks has %d keys, want 1: %s", len(jwks.Keys), body)
	}
	k := jwks.Keys[0]
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] == "" || k["d"] != nil {
		t.Errorf("jwks key = %v, want a public RSA RS256 signing key with a kid", k)
	}

	resp, body = f.get(t, f.admin+"/healthz/ready")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("readiness: status %d: %s", resp.StatusCode, body)
	}
}

func TestCodeFlow(t *testing.T) {
	f := start(t, map[string]string{
		"DEVIDP_CLIENTS": fmt.Sprintf(`[{"client_id":"poster","client_secret":"s3cret","redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"client_secret_post"},
			{"client_id":"public","redirect_uris":["http://127.0.0.1:9/public"],"token_endpoint_auth_method":"none"}]`),
	})
	cases := []struct {
		name, clientID, redirect, method, secret, user, password, sub, email string
	}{
		{"tollgate client_secret_basic", "tollgate", callback, "basic", f.secret, devUser, devPassword, devSub, "dev@example.com"},
		{"tollgate client_secret_post", "tollgate", callback, "post", f.secret, devUser, devPassword, devSub, "dev@example.com"},
		{"extra client_secret_post", "poster", "http://127.0.0.1:9/cb", "post", "s3cret", "ada", "analytical-engine", "ada-0002", "ada@example.com"},
		{"extra client_secret_basic", "poster", "http://127.0.0.1:9/cb", "basic", "s3cret", devUser, devPassword, devSub, "dev@example.com"},
		{"public client", "public", "http://127.0.0.1:9/public", "none", "", devUser, devPassword, devSub, "dev@example.com"},
	}
	keys := rp.NewRemoteKeySet(f.http, f.issuer+"/keys")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newAuthz(c.clientID, c.redirect)
			code := f.signIn(t, a, c.user, c.password)
			status, tr := f.exchange(t, a, code, c.method, c.secret)
			if status != http.StatusOK {
				t.Fatalf("token: status %d: %s %s", status, tr.Error, tr.Description)
			}
			if tr.TokenType != "Bearer" || tr.AccessToken == "" || tr.IDToken == "" || tr.ExpiresIn <= 0 {
				t.Fatalf("token response = %+v", tr)
			}
			v := rp.NewIDTokenVerifier(f.issuer, c.clientID, keys,
				rp.WithNonce(func(context.Context) string { return a.nonce }),
				rp.WithSupportedSigningAlgorithms("RS256"))
			claims, err := rp.VerifyTokens[*oidc.IDTokenClaims](context.Background(), tr.AccessToken, tr.IDToken, v)
			if err != nil {
				t.Fatalf("ID token does not verify: %v", err)
			}
			if claims.Subject != c.sub || claims.Email != c.email || claims.Nonce != a.nonce || claims.PreferredUsername != c.user {
				t.Errorf("ID token claims sub=%q email=%q nonce=%q preferred_username=%q", claims.Subject, claims.Email, claims.Nonce, claims.PreferredUsername)
			}
			if claims.AccessTokenHash == "" || claims.CodeHash == "" || claims.AuthTime == 0 || len(claims.AuthenticationMethodsReferences) != 1 || claims.AuthenticationMethodsReferences[0] != "pwd" {
				t.Errorf("ID token lacks at_hash, c_hash, auth_time or amr [pwd]: %+v", claims)
			}
			// A nonce that is not ours fails verification.
			wrong := rp.NewIDTokenVerifier(f.issuer, c.clientID, keys, rp.WithNonce(func(context.Context) string { return "other" }))
			if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](context.Background(), tr.IDToken, wrong); !errors.Is(err, oidc.ErrNonceInvalid) {
				t.Errorf("verify with another nonce: %v, want ErrNonceInvalid", err)
			}
			// As does another audience.
			other := rp.NewIDTokenVerifier(f.issuer, "someone-else", keys, rp.WithNonce(func(context.Context) string { return a.nonce }))
			if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](context.Background(), tr.IDToken, other); !errors.Is(err, oidc.ErrAudience) {
				t.Errorf("verify for another client: %v, want ErrAudience", err)
			}

			req, _ := http.NewRequest(http.MethodGet, f.issuer+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
			resp, err := f.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("userinfo: status %d: %s", resp.StatusCode, body)
			}
			var ui oidc.UserInfo
			if err := json.Unmarshal([]byte(body), &ui); err != nil {
				t.Fatal(err)
			}
			if ui.Subject != claims.Subject || ui.Email != c.email || ui.Name == "" || ui.PreferredUsername != c.user {
				t.Errorf("userinfo = %s, want sub %q and the profile claims", body, claims.Subject)
			}
		})
	}
}

func TestWrongPasswordIsRefusedClearly(t *testing.T) {
	f := start(t, nil)
	a := newAuthz("tollgate", callback)
	action, form := f.loginForm(t, a)
	for _, cred := range [][2]string{{devUser, "not-the-password"}, {"nobody", devPassword}, {devUser, ""}} {
		form.Set("username", cred[0])
		form.Set("password", cred[1])
		resp, body := f.postForm(t, action, form, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%q/%q: status %d, want 401", cred[0], cred[1], resp.StatusCode)
		}
		if resp.Header.Get("Location") != "" {
			t.Errorf("a refused sign-in redirects to %q", resp.Header.Get("Location"))
		}
		if !strings.Contains(body, "Wrong username or password.") {
			t.Errorf("%q/%q: page lacks the error message: %s", cred[0], cred[1], body)
		}
		if !strings.Contains(body, `name="password"`) {
			t.Errorf("the form is not shown again after a refusal")
		}
	}
	// The same request still signs in with the right password.
	form.Set("username", devUser)
	form.Set("password", devPassword)
	resp, body := f.postForm(t, action, form, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("right password after wrong ones: status %d: %s", resp.StatusCode, body)
	}
	if !strings.Contains(f.logs.String(), "sign-in refused") {
		t.Errorf("refused sign-ins are not logged")
	}
	// A finished request cannot be signed in again.
	resp, body = f.postForm(t, action, form, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unknown, finished or expired") {
		t.Errorf("second sign-in on one request: status %d: %s", resp.StatusCode, body)
	}
}

// forgedPosts opens a sign-in on a fresh dev-idp and returns its form's
// action, the genuine form filled with the dev user's credentials, a copy
// of it with a guessed form token (forged), and a post for a sign-in that
// does not exist but carries the genuine form token (unknown).
func forgedPosts(t *testing.T) (f *fixture, action string, form, forged, unknown url.Values) {
	t.Helper()
	f = start(t, nil)
	action, form = f.loginForm(t, newAuthz("tollgate", callback))
	form.Set("username", devUser)
	form.Set("password", devPassword)
	forged = url.Values{}
	for k, v := range form {
		forged[k] = slices.Clone(v)
	}
	forged.Set("csrf", "guessed")
	unknown = url.Values{"authRequestID": {"nope"}, "csrf": {form.Get("csrf")}, "username": {devUser}, "password": {devPassword}}
	return f, action, form, forged, unknown
}

func TestLoginFormRefusesForgedPosts(t *testing.T) {
	f, action, form, forged, unknown := forgedPosts(t)
	if resp, body := f.postForm(t, action, forged, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "form token") {
		t.Errorf("wrong form token: status %d: %s", resp.StatusCode, body)
	}
	forged.Del("csrf")
	if resp, _ := f.postForm(t, action, forged, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("missing form token: status %d, want 403", resp.StatusCode)
	}
	h := http.Header{"Origin": {"https://evil.example"}}
	if resp, _ := f.postForm(t, action, form, h); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin post: status %d, want 403", resp.StatusCode)
	}
	h = http.Header{"Referer": {"https://evil.example/page"}}
	if resp, _ := f.postForm(t, action, form, h); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site referer: status %d, want 403", resp.StatusCode)
	}
	// A browser sends "Origin: null" for a form posted from an opaque
	// origin (a sandboxed frame, a data: URL): not a same-origin post.
	h = http.Header{"Origin": {"null"}, "Referer": {f.issuer + "/login"}}
	if resp, _ := f.postForm(t, action, form, h); resp.StatusCode != http.StatusForbidden {
		t.Errorf("post with Origin: null: status %d, want 403", resp.StatusCode)
	}
	if resp, body := f.postForm(t, action, unknown, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unknown, finished or expired") {
		t.Errorf("unknown request: status %d: %s", resp.StatusCode, body)
	}
	if resp, _ := f.get(t, f.issuer+"/login?authRequestID=nope"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("login page for an unknown request: status %d, want 400", resp.StatusCode)
	}
	// The genuine post from the issuer's own origin still works.
	h = http.Header{"Origin": {f.issuer}}
	if resp, body := f.postForm(t, action, form, h); resp.StatusCode != http.StatusFound {
		t.Errorf("same-origin post: status %d: %s", resp.StatusCode, body)
	}
}

// TestRefusalPagesOfferNoDeadForm: a page that refuses a post (wrong form
// token, another site's origin, a finished or unknown sign-in) tells the
// user to start again from the application, and shows no form: it showed
// "Signing in to ." (no client) above a form without the sign-in's id and
// token, whose every post was refused the same way. The page for a wrong
// password keeps its form, which signs in.
func TestRefusalPagesOfferNoDeadForm(t *testing.T) {
	f, action, form, forged, unknown := forgedPosts(t)
	check := func(name string, resp *http.Response, body string, status int, msg string) {
		t.Helper()
		if resp.StatusCode != status || !strings.Contains(body, msg) {
			t.Errorf("%s: status %d, want %d with %q: %s", name, resp.StatusCode, status, msg, body)
		}
		if strings.Contains(body, "<form") || strings.Contains(body, `name="password"`) {
			t.Errorf("%s: the refusal shows a form that cannot sign in: %s", name, body)
		}
		if strings.Contains(body, "Signing in to <strong></strong>") {
			t.Errorf("%s: the page names no client: %s", name, body)
		}
	}
	resp, body := f.postForm(t, action, forged, nil)
	check("wrong form token", resp, body, http.StatusForbidden, "form token")
	resp, body = f.postForm(t, action, form, http.Header{"Origin": {"https://evil.example"}})
	check("cross-origin post", resp, body, http.StatusForbidden, "posted from another site")
	resp, body = f.postForm(t, action, unknown, nil)
	check("unknown sign-in", resp, body, http.StatusBadRequest, "unknown, finished or expired")
	resp, body = f.get(t, f.issuer+"/login?authRequestID=nope")
	check("login page of an unknown sign-in", resp, body, http.StatusBadRequest, "unknown, finished or expired")

	// A wrong password keeps the form and the client's name, and the
	// same form then signs in.
	wrong := url.Values{}
	for k, v := range form {
		wrong[k] = v
	}
	wrong.Set("password", "not-the-password")
	resp, body = f.postForm(t, action, wrong, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `name="password"`) || !strings.Contains(body, "Signing in to <strong>tollgate</strong>") {
		t.Errorf("wrong password: status %d, want 401 with the form again: %s", resp.StatusCode, body)
	}
	if resp, body := f.postForm(t, action, form, nil); resp.StatusCode != http.StatusFound {
		t.Errorf("the right password after the refusals: status %d: %s", resp.StatusCode, body)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	f := start(t, nil)
	t.Run("unknown client", func(t *testing.T) {
		resp, body := f.get(t, newAuthz("stranger", callback).url(f.issuer))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("status %d location %q, want 400 without redirect", resp.StatusCode, resp.Header.Get("Location"))
		}
		if !strings.Contains(body, "unable to retrieve client by id") {
			t.Errorf("body = %q", body)
		}
	})
	t.Run("unregistered redirect URI", func(t *testing.T) {
		for _, r := range []string{"http://localhost:4000/oauth/callback/evil", "https://evil.example/oauth/callback", "http://localhost:4000/oauth/callback?x=1"} {
			resp, body := f.get(t, newAuthz("tollgate", r).url(f.issuer))
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("%s: status %d location %q, want 400 without redirect", r, resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(body, "redirect_uri is missing in the client configuration") {
				t.Errorf("%s: body = %q", r, body)
			}
		}
	})
	// After the redirect URI is verified, errors go back to the client.
	redirected := func(t *testing.T, u, wantErr, wantDesc string) {
		t.Helper()
		resp, body := f.get(t, u)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("status %d, want 302: %s", resp.StatusCode, body)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if !strings.HasPrefix(loc.String(), callback+"?") || loc.Query().Get("error") != wantErr || !strings.Contains(loc.Query().Get("error_description"), wantDesc) {
			t.Errorf("redirect = %s, want error %s (%s)", loc, wantErr, wantDesc)
		}
	}
	t.Run("no PKCE", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		u, _ := url.Parse(a.url(f.issuer))
		q := u.Query()
		q.Del("code_challenge")
		q.Del("code_challenge_method")
		u.RawQuery = q.Encode()
		redirected(t, u.String(), "invalid_request", "code_challenge is required")
	})
	t.Run("plain PKCE", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		u, _ := url.Parse(a.url(f.issuer))
		q := u.Query()
		q.Set("code_challenge_method", "plain")
		q.Set("code_challenge", a.verifier)
		u.RawQuery = q.Encode()
		redirected(t, u.String(), "invalid_request", "S256")
	})
	t.Run("prompt none", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		redirected(t, a.url(f.issuer)+"&prompt=none", "login_required", "no session")
	})
	t.Run("implicit flow", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		u, _ := url.Parse(a.url(f.issuer))
		q := u.Query()
		q.Set("response_type", "id_token token")
		u.RawQuery = q.Encode()
		resp, _ := f.get(t, u.String())
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "error=unauthorized_client") {
			t.Errorf("status %d location %q, want unauthorized_client", resp.StatusCode, loc)
		}
	})
}

func TestTokenRefusals(t *testing.T) {
	f := start(t, map[string]string{"DEVIDP_CLIENTS": `[{"client_id":"other","client_secret":"x","redirect_uris":["http://127.0.0.1:9/cb"]}]`})
	expect := func(t *testing.T, status int, tr tokenResponse, wantStatus int, wantErr string) {
		t.Helper()
		if status != wantStatus || tr.Error != wantErr || tr.AccessToken != "" {
			t.Errorf("status %d error %q (%s), want %d %s", status, tr.Error, tr.Description, wantStatus, wantErr)
		}
	}
	t.Run("code replay", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		code := f.signIn(t, a, devUser, devPassword)
		if status, tr := f.exchange(t, a, code, "basic", f.secret); status != http.StatusOK {
			t.Fatalf("first exchange: %d %s", status, tr.Error)
		}
		status, tr := f.exchange(t, a, code, "basic", f.secret)
		expect(t, status, tr, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("concurrent redemption gives one success", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		code := f.signIn(t, a, devUser, devPassword)
		const n = 50
		var wg sync.WaitGroup
		statuses := make(chan int, n)
		// Requests are built first and released together, so they race at
		// the token endpoint rather than arrive one after the other.
		begin := make(chan struct{})
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
		defer c.CloseIdleConnections()
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {a.verifier},
					"client_id": {"tollgate"}, "client_secret": {f.secret}}
				<-begin
				resp, err := c.PostForm(f.issuer+"/oauth/token", form)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		close(begin)
		wg.Wait()
		close(statuses)
		ok := 0
		for s := range statuses {
			if s == http.StatusOK {
				ok++
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d concurrent redemptions succeeded, want exactly 1", ok, n)
		}
	})
	t.Run("wrong code_verifier", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		code := f.signIn(t, a, devUser, devPassword)
		a.verifier = rand.Text() + rand.Text()
		status, tr := f.exchange(t, a, code, "basic", f.secret)
		expect(t, status, tr, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("wrong secret", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		code := f.signIn(t, a, devUser, devPassword)
		status, tr := f.exchange(t, a, code, "basic", "wrong")
		expect(t, status, tr, http.StatusUnauthorized, "invalid_client")
		status, tr = f.exchange(t, a, code, "post", "wrong")
		expect(t, status, tr, http.StatusBadRequest, "invalid_grant") // the first attempt used the code up
	})
	t.Run("another client", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		code := f.signIn(t, a, devUser, devPassword)
		a.clientID = "other"
		status, tr := f.exchange(t, a, code, "basic", "x")
		expect(t, status, tr, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("another redirect_uri", func(t *testing.T) {
		a := newAuthz("tollgate", callback)
		code := f.signIn(t, a, devUser, devPassword)
		a.redirect = authServer + "/elsewhere"
		status, tr := f.exchange(t, a, code, "basic", f.secret)
		expect(t, status, tr, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("unknown code", func(t *testing.T) {
		status, tr := f.exchange(t, newAuthz("tollgate", callback), "made-up", "basic", f.secret)
		expect(t, status, tr, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("bad access token at userinfo", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer made-up")
		resp, err := f.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
}

func TestExpiredCodeIsRefused(t *testing.T) {
	f := start(t, map[string]string{"DEVIDP_CODE_TTL": "1ns"})
	a := newAuthz("tollgate", callback)
	code := f.signIn(t, a, devUser, devPassword)
	if status, tr := f.exchange(t, a, code, "basic", f.secret); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("expired code: status %d error %q, want 400 invalid_grant", status, tr.Error)
	}
}

func TestExplicitIssuer(t *testing.T) {
	// The explicit issuer is not the address the IdP listens on (as behind a
	// proxy): discovery must name it, not the Host the request came to.
	const iss = "http://idp.tollgate.test"
	f := start(t, map[string]string{"DEVIDP_ISSUER_URL": iss + "/"})
	resp, body := f.get(t, f.listen+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"issuer":"`+iss+`"`) {
		t.Errorf("discovery: status %d: %s", resp.StatusCode, body)
	}
}

func TestRefusesProduction(t *testing.T) {
	dir, _ := devDir(t)
	for _, env := range []string{"production", "Production"} {
		listened := false
		err := idp.Run(context.Background(), func(k string) string {
			return map[string]string{"TOLLGATE_ENV": env, "HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
				"DEVIDP_DIR": dir, "PUBLIC_ISSUER_URL": "https://tollgate.example"}[k]
		}, io.Discard, func(map[string]net.Addr) { listened = true })
		if err == nil || !strings.Contains(err.Error(), "refuses to start with TOLLGATE_ENV=production") {
			t.Errorf("TOLLGATE_ENV=%s: err = %v", env, err)
		}
		if listened {
			t.Errorf("TOLLGATE_ENV=%s: it listened before refusing", env)
		}
	}
}

func TestConfigProblemsAreListedTogether(t *testing.T) {
	empty := t.TempDir()
	_, err := idp.LoadConfig(func(k string) string {
		return map[string]string{
			"DEVIDP_DIR": empty, "PUBLIC_ISSUER_URL": "localhost:4000", "DEVIDP_ISSUER_URL": "http://localhost:4500/idp",
			"DEVIDP_CODE_TTL": "0s",
			"DEVIDP_CLIENTS": `[{"client_id":"a","redirect_uris":["/relative"]},{"client_id":"a","client_secret":"x","redirect_uris":["http://x/cb"],"token_endpoint_auth_method":"private_key_jwt"},
				{"client_id":"p","client_secret":"x","redirect_uris":["http://x/cb"],"token_endpoint_auth_method":"none"}]`,
		}[k]
	})
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{
		`PUBLIC_ISSUER_URL: "localhost:4000" is not an absolute http(s) URL`,
		"UPSTREAM_CLIENT_SECRET: not set and " + filepath.Join(empty, "upstream-client-secret") + " is unreadable",
		"DEVIDP_ISSUER_URL: \"http://localhost:4500/idp\" must not have a path",
		"DEVIDP_CODE_TTL: must be positive",
		"DEVIDP_CLIENTS[0]: client_secret is required for client_secret_basic",
		`DEVIDP_CLIENTS[0]: redirect URI "/relative" is not an absolute http(s) URL`,
		`DEVIDP_CLIENTS[1]: client_id "a" is registered twice`,
		`DEVIDP_CLIENTS[1]: token_endpoint_auth_method "private_key_jwt" is not`,
		"DEVIDP_CLIENTS[2]: a public client (none) has no client_secret",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	_, err = idp.LoadConfig(func(k string) string { return map[string]string{"DEVIDP_DIR": empty}[k] })
	if err == nil || !strings.Contains(err.Error(), "no client: set PUBLIC_ISSUER_URL") {
		t.Errorf("no client: err = %v", err)
	}
	_, err = idp.LoadConfig(func(k string) string { return map[string]string{"DEVIDP_CLIENTS": "{"}[k] })
	if err == nil || !strings.Contains(err.Error(), "DEVIDP_CLIENTS: not a JSON array") {
		t.Errorf("bad JSON: err = %v", err)
	}
}

func TestLoadUsers(t *testing.T) {
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "users.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	u, err := idp.LoadUsers(write(usersYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := u.Authenticate(devUser, devPassword); !ok || got.Subject != devSub || !got.EmailVerified {
		t.Errorf("Authenticate(dev) = %+v, %v", got, ok)
	}
	if _, ok := u.Authenticate(devUser, devPassword+"x"); ok {
		t.Error("a wrong password authenticates")
	}
	if _, ok := u.Authenticate("nobody", ""); ok {
		t.Error("an unknown user with an empty password authenticates")
	}

	for name, c := range map[string]struct{ yaml, want string }{
		"empty":          {"users: []\n", "no users"},
		"missing fields": {"users:\n  - name: x\n", "users[0]: username is required"},
		"no password":    {"users:\n  - username: a\n    sub: a\n", "users[0]: password is required"},
		"duplicate":      {"users:\n  - {username: a, password: p, sub: s1}\n  - {username: a, password: p, sub: s1}\n", `users[1]: username "a" is listed twice`},
		"dup sub":        {"users:\n  - {username: a, password: p, sub: s1}\n  - {username: b, password: p, sub: s1}\n", `users[1]: sub "s1" is listed twice`},
		"colon in sub":   {"users:\n  - {username: a, password: p, sub: 'x:y'}\n", "must not contain ':'"},
		"unknown field":  {"users:\n  - {username: a, password: p, sub: s, role: admin}\n", `unknown field "role"`},
	} {
		if _, err := idp.LoadUsers(write(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
	if _, err := idp.LoadUsers(filepath.Join(t.TempDir(), "absent.yaml")); err == nil || !strings.Contains(err.Error(), "auth-server dev-init") {
		t.Errorf("missing file: err = %v", err)
	}
}

// TestLoginPageHeaders: the login page lets a browser post it and follow
// the answer's redirects. Its Referrer-Policy is same-origin, so the POST
// carries the page's real Origin (under no-referrer it is "null", Fetch
// "append a request Origin header", which the same-origin check refuses);
// its form-action is 'self' plus the origin of this sign-in's redirect
// URI, which CSP3 checks on the redirect that ends the sign-in — and
// nothing else.
func TestLoginPageHeaders(t *testing.T) {
	f := start(t, map[string]string{"DEVIDP_CLIENTS": `[{"client_id":"other","client_secret":"x","redirect_uris":["https://RP.example:8443/cb?x=1"]}]`})
	const base = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	check := func(t *testing.T, what string, resp *http.Response, wantCSP string) {
		t.Helper()
		if got := resp.Header.Get("Referrer-Policy"); got != "same-origin" {
			t.Errorf("%s: Referrer-Policy %q, want same-origin", what, got)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != wantCSP {
			t.Errorf("%s: Content-Security-Policy\n%q, want\n%q", what, got, wantCSP)
		}
		if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q, want DENY", what, got)
		}
	}
	for _, c := range []struct{ client, redirect, origin string }{
		{"tollgate", callback, authServer},
		{"other", "https://RP.example:8443/cb?x=1", "https://RP.example:8443"},
	} {
		t.Run(c.client, func(t *testing.T) {
			action, form := f.loginForm(t, newAuthz(c.client, c.redirect))
			resp, _ := f.get(t, action+"?authRequestID="+url.QueryEscape(form.Get("authRequestID")))
			check(t, "login page", resp, base+" "+c.origin)
			form.Set("username", devUser)
			form.Set("password", "wrong")
			resp, _ = f.postForm(t, action, form, http.Header{"Origin": {f.issuer}})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password: status %d, want 401", resp.StatusCode)
			}
			check(t, "form shown again", resp, base+" "+c.origin)
		})
	}
	t.Run("no sign-in", func(t *testing.T) {
		resp, _ := f.get(t, f.issuer+"/login?authRequestID=nope")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
		check(t, "unknown sign-in", resp, base)
	})
}
