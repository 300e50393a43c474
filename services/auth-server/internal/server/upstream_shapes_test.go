package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// The upstream bridge against the wire shapes of real OpenID Providers:
// each subtest runs a provider of one shape (idptest.StartShape: real HTTP,
// real signed JWTs) and the real sign-in through the auth-server (real
// Redis, real HTTP): /authorize → the provider → /oauth/callback → the
// client's code → /oauth/token. docs/guides/upstream-idp.md has the table.

// startShaped runs a fleet whose upstream is a provider of shape.
func startShaped(t *testing.T, shape idptest.Shape, env map[string]string) (*fleet, *idptest.Shaped) {
	t.Helper()
	f := newFleet(t, nil, "", true)
	p := idptest.StartShape(t, shape, f.Base+"/oauth/callback")
	f.env["UPSTREAM_ISSUER_URL"] = p.Issuer
	f.env["UPSTREAM_CLIENT_ID"] = p.ClientID
	f.env["UPSTREAM_CLIENT_SECRET"] = p.ClientSecret
	maps.Copy(f.env, env)
	f.start()
	return f, p
}

// signIn runs the whole flow and returns the access token's claims.
func (f *fleet) signIn(t *testing.T) *tokens.Claims {
	t.Helper()
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	claims, err := f.Verifier(c.Audience).Verify(ctxT(t), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

// refused runs the sign-in and requires the client to get server_error
// (the ID token did not verify) and no code.
func (f *fleet) refused(t *testing.T) {
	t.Helper()
	f.refusedWith(t, "server_error")
}

// refusedWith runs the sign-in and requires the client to get error code
// with the state and no code.
func (f *fleet) refusedWith(t *testing.T, code string) {
	t.Helper()
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	b := newBrowser(t, c.RedirectURIs[0])
	p := reloadKept(b, f.login(b, a))
	if p.Location == nil {
		t.Fatalf("no redirect to the client: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	if q := p.Location.Query(); q.Get("error") != code || q.Get("code") != "" || q.Get("state") != a.State {
		t.Fatalf("redirect %s, want error=%s with the state and no code", p.Location, code)
	}
}

// reloadKept reloads, as its user would, the callback page p while it
// keeps the sign-in for a reload (a 503 "reload this page": the token
// endpoint did not answer, TestCallbackKeptWhileTheTokenEndpointIsDown),
// at most twice — the third unanswered exchange goes to the client — and
// returns the last page: p itself when it kept nothing.
func reloadKept(b *browser, p *page) *page {
	for i := 0; i < 2 && p.Location == nil && p.Status == http.StatusServiceUnavailable && strings.Contains(p.Body, "reload this page"); i++ {
		p = b.get(p.URL.String())
	}
	return p
}

var fullProfile = map[string]any{"email": "ada@example.com", "email_verified": true, "name": "Ada Lovelace",
	"given_name": "Ada", "family_name": "Lovelace", "preferred_username": "ada"}

func wantProfile(t *testing.T, c *tokens.Claims, sub, email string, verified bool, name string) {
	t.Helper()
	if c.Subject != sub || c.Profile.Email != email || c.Profile.EmailVerified != verified || c.Profile.Name != name {
		t.Errorf("sub %q email %q verified %v name %q; want %q %q %v %q", c.Subject, c.Profile.Email, c.Profile.EmailVerified, c.Profile.Name,
			sub, email, verified, name)
	}
}

// TestUpstreamShapeAuth0: the issuer ends in a slash in the setting, the
// discovery document and the ID token (Auth0's https://<tenant>.auth0.com/)
// and is compared character for character (OpenID Connect Discovery 1.0
// §4.3). Before, the setting lost its slash and no ID token verified.
func TestUpstreamShapeAuth0(t *testing.T) {
	f, p := startShaped(t, idptest.Shape{Path: "/", Subject: "auth0|64f1c0ffee", UserinfoClaims: fullProfile}, nil)
	if !strings.HasSuffix(p.Issuer, "/") {
		t.Fatalf("issuer %q", p.Issuer)
	}
	wantProfile(t, f.signIn(t), "auth0|64f1c0ffee", "ada@example.com", true, "Ada Lovelace")

	t.Run("token iss without the slash is refused", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{Path: "/", TokenIssuer: "{base}", UserinfoClaims: fullProfile}, nil)
		f.refused(t)
	})
}

// TestUpstreamShapeTrailingSlashSetting: an issuer set with a trailing slash
// for a provider whose issuer has none (Keycloak) keeps working: the
// discovery document's spelling is taken (the same document either way).
func TestUpstreamShapeTrailingSlashSetting(t *testing.T) {
	f, p := startShaped(t, idptest.Shape{Path: "/realms/acme", UserinfoClaims: fullProfile}, nil)
	f.restart(map[string]string{"UPSTREAM_ISSUER_URL": p.Issuer + "/"})
	wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
}

// TestUpstreamShapeEntraMultiTenant: with …/common/v2.0 the discovery
// document's issuer is the template …/{tenantid}/v2.0 and the ID token's iss
// names the user's tenant, as does its tid; there is no email and no
// email_verified, preferred_username is the UPN. The tenant must be a GUID
// in UPSTREAM_ALLOWED_TENANTS and equal tid.
func TestUpstreamShapeEntraMultiTenant(t *testing.T) {
	const tenant, other = "72f988bf-86f1-41af-91ab-2d7cd011db47", "9188040d-6c67-4c5b-b112-36a304b66dad"
	entra := func(issTenant, tid string) idptest.Shape {
		return idptest.Shape{
			Path: "/common/v2.0", DiscoveryIssuer: "{base}/{tenantid}/v2.0", TokenIssuer: "{base}/" + issTenant + "/v2.0",
			Subject:        "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
			IDClaims:       map[string]any{"tid": tid, "oid": "00000000-0000-0000-66f3-3332eca7ea81", "preferred_username": "ada@contoso.onmicrosoft.com", "name": "Ada Lovelace"},
			UserinfoClaims: map[string]any{"name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace"},
		}
	}
	allow := map[string]string{"UPSTREAM_ALLOWED_TENANTS": tenant}
	f, _ := startShaped(t, entra(tenant, tenant), allow)
	c := f.signIn(t)
	wantProfile(t, c, "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "", false, "Ada Lovelace")
	if c.Profile.PreferredUsername != "ada@contoso.onmicrosoft.com" {
		t.Errorf("preferred_username %q, want the UPN", c.Profile.PreferredUsername)
	}

	t.Run("any tenant with *", func(t *testing.T) {
		f, _ := startShaped(t, entra(other, other), map[string]string{"UPSTREAM_ALLOWED_TENANTS": "*"})
		f.signIn(t)
	})
	t.Run("a tenant not allowed is refused", func(t *testing.T) {
		f, _ := startShaped(t, entra(other, other), allow)
		f.refused(t)
	})
	t.Run("tid not the issuer's tenant is refused", func(t *testing.T) {
		f, _ := startShaped(t, entra(tenant, other), map[string]string{"UPSTREAM_ALLOWED_TENANTS": "*"})
		f.refused(t)
	})
	t.Run("an iss that is not a tenant id is refused", func(t *testing.T) {
		f, _ := startShaped(t, entra("common", "common"), map[string]string{"UPSTREAM_ALLOWED_TENANTS": "*"})
		f.refused(t)
	})
	t.Run("the template itself as iss is refused", func(t *testing.T) {
		f, _ := startShaped(t, entra("{tenantid}", tenant), map[string]string{"UPSTREAM_ALLOWED_TENANTS": "*"})
		f.refused(t)
	})
}

// TestUpstreamShapeCognito: email_verified is the string "true" or "false"
// in userinfo and the ID token; only "true" makes a verified email, and
// userinfo's value wins over the ID token's.
func TestUpstreamShapeCognito(t *testing.T) {
	cognito := func(idVerified, infoVerified string) idptest.Shape {
		return idptest.Shape{
			Subject:        "4e2c1a7e-1111-2222-3333-444455556666",
			IDClaims:       map[string]any{"email": "ada@example.com", "email_verified": idVerified, "cognito:username": "ada", "token_use": "id"},
			UserinfoClaims: map[string]any{"email": "ada@example.com", "email_verified": infoVerified, "username": "ada"},
		}
	}
	for _, tc := range []struct {
		id, info string
		want     bool
	}{{"true", "true", true}, {"false", "false", false}, {"true", "false", false}} {
		t.Run("id "+tc.id+" userinfo "+tc.info, func(t *testing.T) {
			f, _ := startShaped(t, cognito(tc.id, tc.info), nil)
			wantProfile(t, f.signIn(t), "4e2c1a7e-1111-2222-3333-444455556666", "ada@example.com", tc.want, "")
		})
	}
}

// TestUpstreamShapeEmailVerifiedSpelling: email_verified is a boolean
// (OpenID Connect Core §5.1), or the string "true"/"false" that Cognito and
// others send, in the ID token, userinfo, or a claim UPSTREAM_CLAIM_MAP
// names; any other value refuses the sign-in with server_error saying so,
// rather than passing for unverified or failing as an unverifiable
// response.
func TestUpstreamShapeEmailVerifiedSpelling(t *testing.T) {
	mapped := map[string]string{"UPSTREAM_CLAIM_MAP": "email_verified=custom:email_verified"}
	for name, tc := range map[string]struct {
		shape idptest.Shape
		env   map[string]string
		want  bool
	}{
		"mapped string true":  {idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@example.com", "custom:email_verified": "true"}}, mapped, true},
		"mapped string false": {idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@example.com", "custom:email_verified": "false"}}, mapped, false},
		"mapped boolean":      {idptest.Shape{IDClaims: map[string]any{"email": "ada@example.com", "custom:email_verified": true}}, mapped, true},
		"absent":              {idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@example.com"}}, nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := startShaped(t, tc.shape, tc.env)
			wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", tc.want, "")
		})
	}
	for name, tc := range map[string]struct {
		shape idptest.Shape
		env   map[string]string
	}{
		"userinfo yes":      {idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@example.com", "email_verified": "yes"}}, nil},
		"ID token True":     {idptest.Shape{IDClaims: map[string]any{"email": "ada@example.com", "email_verified": "True"}}, nil},
		"userinfo number 1": {idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@example.com", "email_verified": 1}}, nil},
		"mapped string 1":   {idptest.Shape{UserinfoClaims: map[string]any{"email": "ada@example.com", "custom:email_verified": "1"}}, mapped},
		"mapped object":     {idptest.Shape{IDClaims: map[string]any{"email": "ada@example.com", "custom:email_verified": map[string]any{"v": true}}}, mapped},
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			f, _ := startShaped(t, tc.shape, tc.env)
			c := f.Clients["local-test"]
			a := newAuthRequest(c)
			p := f.login(newBrowser(t, c.RedirectURIs[0]), a)
			if p.Location == nil {
				t.Fatalf("no redirect to the client: %d %s\n%s", p.Status, p.URL, p.Body)
			}
			if q := p.Location.Query(); q.Get("error") != "server_error" || q.Get("code") != "" ||
				!strings.Contains(q.Get("error_description"), "email_verified is neither true nor false") {
				t.Fatalf("redirect %s, want server_error saying email_verified is neither true nor false", p.Location)
			}
		})
	}
}

// TestUpstreamShapeNoUserinfo: a discovery document without
// userinfo_endpoint (Apple's; OPTIONAL in Discovery 1.0 §3): the profile is
// the ID token's. Before, every sign-in failed on the missing endpoint.
func TestUpstreamShapeNoUserinfo(t *testing.T) {
	f, _ := startShaped(t, idptest.Shape{NoUserinfo: true, Subject: "001234.abcdef", IDClaims: fullProfile}, nil)
	wantProfile(t, f.signIn(t), "001234.abcdef", "ada@example.com", true, "Ada Lovelace")
}

// TestUpstreamShapeTokenEndpoint: a provider that takes only
// client_secret_post or only client_secret_basic, and one answering
// token_type "bearer".
func TestUpstreamShapeTokenEndpoint(t *testing.T) {
	for name, shape := range map[string]idptest.Shape{
		"client_secret_post only":  {AuthMethods: []string{"client_secret_post"}, UserinfoClaims: fullProfile},
		"client_secret_basic only": {AuthMethods: []string{"client_secret_basic"}, UserinfoClaims: fullProfile},
		"token_type bearer":        {TokenType: "bearer", UserinfoClaims: fullProfile},
	} {
		t.Run(name, func(t *testing.T) {
			f, p := startShaped(t, shape, nil)
			wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
			if p.UserinfoCalls() != 1 {
				t.Errorf("%d userinfo calls answered, want 1", p.UserinfoCalls())
			}
		})
	}
}

// TestUpstreamShapeSigning: ID tokens signed ES256, PS256, ES384 or RS512
// (the algorithms the discovery document names, Discovery 1.0 §3), a JWKS whose keys have no kid, a
// key rotated in upstream (a new kid: the JWKS is fetched again), a clock
// running a few seconds ahead; and a forged signature or a foreign iss
// refused.
func TestUpstreamShapeSigning(t *testing.T) {
	for name, shape := range map[string]idptest.Shape{
		"ES256":                 {Alg: "ES256", UserinfoClaims: fullProfile},
		"PS256":                 {Alg: "PS256", UserinfoClaims: fullProfile},
		"ES384":                 {Alg: "ES384", UserinfoClaims: fullProfile},
		"RS512":                 {Alg: "RS512", UserinfoClaims: fullProfile},
		"no kid":                {OmitKid: true, UserinfoClaims: fullProfile},
		"clock 10s ahead":       {Skew: 10 * time.Second, UserinfoClaims: fullProfile},
		"ES256 clock 10s ahead": {Alg: "ES256", Skew: 10 * time.Second, UserinfoClaims: fullProfile},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := startShaped(t, shape, nil)
			wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
		})
	}
	t.Run("key rotation", func(t *testing.T) {
		f, p := startShaped(t, idptest.Shape{UserinfoClaims: fullProfile}, nil)
		f.signIn(t) // the JWKS is cached with the first key
		p.Rotate()
		wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
	})
	for name, shape := range map[string]idptest.Shape{
		"forged signature":         {ForgeSignature: true, IDClaims: fullProfile},
		"forged signature, no kid": {ForgeSignature: true, OmitKid: true, IDClaims: fullProfile},
		"foreign iss":              {TokenIssuer: "https://evil.example", IDClaims: fullProfile},
		// Google's exception (Core §15.6.2) is Google's alone.
		"iss without scheme":    {TokenIssuer: "{host}", IDClaims: fullProfile},
		"clock 5 minutes ahead": {Skew: 5 * time.Minute, IDClaims: fullProfile},
		// Only the algorithms discovery names are accepted.
		"alg not in discovery": {Alg: "ES256", AdvertisedAlgs: []string{"RS256"}, IDClaims: fullProfile},
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			f, _ := startShaped(t, shape, nil)
			f.refused(t)
		})
	}
}

// noFollow is an HTTP client that stops at every redirect.
var noFollow = &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// upstreamAnswer is what the provider sent the browser back to
// /oauth/callback with, and the login cookie the authorization set.
type upstreamAnswer struct {
	Callback string     // the form's action, or the redirect without its query
	Params   url.Values // the form's fields, or the redirect's query
	Cookie   *http.Cookie
}

// startUpstreamLogin sends the browser to /oauth/authorize and on to the
// provider, and returns the provider's answer: a form_post page's form, or
// a redirect's query.
func (f *fleet) startUpstreamLogin(t *testing.T, a *authRequest) upstreamAnswer {
	t.Helper()
	resp, err := noFollow.Get(a.URL(f.Base))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ans upstreamAnswer
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "tollgate-login") {
			ans.Cookie = c
		}
	}
	if resp.StatusCode != http.StatusFound || ans.Cookie == nil {
		t.Fatalf("authorize: %d, Location %s, cookies %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	resp, err = noFollow.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		m := idptest.FormPostAction.FindStringSubmatch(string(body))
		if m == nil {
			t.Fatalf("provider page without a form:\n%s", body)
		}
		ans.Callback, ans.Params = html.UnescapeString(m[1]), url.Values{}
		for _, h := range idptest.FormPostFields.FindAllStringSubmatch(string(body), -1) {
			ans.Params.Set(h[1], html.UnescapeString(h[2]))
		}
	case http.StatusFound:
		u, _ := url.Parse(resp.Header.Get("Location"))
		ans.Params, u.RawQuery = u.Query(), ""
		ans.Callback = u.String()
	default:
		t.Fatalf("provider: %d\n%s", resp.StatusCode, body)
	}
	return ans
}

// sentCrossSite is what a browser sends of c with a request another site
// started: a cookie without SameSite=None (Lax, Strict, or none, which
// browsers take as Lax) stays home on a cross-site POST (RFC 6265bis
// §5.7.3.3), and SameSite=None is kept only when Secure.
func sentCrossSite(method string, c *http.Cookie) bool {
	if method == http.MethodGet {
		return c.SameSite != http.SameSiteStrictMode // a top-level navigation
	}
	return c.SameSite == http.SameSiteNoneMode && c.Secure
}

// deliver sends the provider's answer to /oauth/callback as a browser on
// the provider's page would — a POST of the form, or a GET of the
// redirect — with the login cookie if the browser would send it, and
// returns the response (a redirect to the client, or an error page).
func (f *fleet) deliver(t *testing.T, method string, ans upstreamAnswer, providerOrigin string) (*http.Response, string) {
	t.Helper()
	var req *http.Request
	if method == http.MethodPost {
		req, _ = http.NewRequest(method, ans.Callback, strings.NewReader(ans.Params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", providerOrigin)
	} else {
		req, _ = http.NewRequest(method, ans.Callback+"?"+ans.Params.Encode(), nil)
	}
	req.Header.Set("Accept", "text/html")
	if ans.Cookie != nil && sentCrossSite(method, ans.Cookie) {
		req.AddCookie(&http.Cookie{Name: ans.Cookie.Name, Value: ans.Cookie.Value})
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// codeFrom requires a redirect to the client with a code and returns it.
func codeFrom(t *testing.T, a *authRequest, resp *http.Response, body string) string {
	t.Helper()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if (resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther) || loc == nil || !strings.HasPrefix(loc.String(), a.RedirectURI) {
		t.Fatalf("callback: %d, Location %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if q := loc.Query(); q.Get("code") == "" || q.Get("state") != a.State {
		t.Fatalf("redirect %s: want a code and the state", loc)
	}
	return loc.Query().Get("code")
}

// TestUpstreamShapeFormPost: Sign in with Apple answers with
// response_mode=form_post when name or email is asked (OAuth 2.0 Form
// Post Response Mode §2): the provider's page POSTs code and state — and
// on a user's first sign-in a user field with the name — to
// /oauth/callback from the provider's site. With
// UPSTREAM_RESPONSE_MODE=form_post the auth-server asks for it, takes the
// POST, and its login cookie is SameSite=None; Secure, since a browser
// sends no Lax cookie with a cross-site POST; the name comes from the user
// field (Apple's ID token has none), sub and email from the ID token only.
func TestUpstreamShapeFormPost(t *testing.T) {
	const user = `{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"mallory@example.com"}`
	apple := idptest.Shape{NoUserinfo: true, Subject: "001234.abcdef0123456789.1234", ResponseModes: []string{"query", "fragment", "form_post"},
		IDClaims: map[string]any{"email": "ada@privaterelay.appleid.com", "email_verified": "true", "is_private_email": "true"}, User: user}
	formPost := map[string]string{"UPSTREAM_RESPONSE_MODE": "form_post"}
	f, p := startShaped(t, apple, formPost)
	c := f.Clients["local-test"]

	a := newAuthRequest(c)
	ans := f.startUpstreamLogin(t, a)
	if k := ans.Cookie; !k.Secure || !k.HttpOnly || k.SameSite != http.SameSiteNoneMode || k.Path != "/" || k.Name != "__Host-tollgate-login" {
		t.Errorf("login cookie %s: want __Host-, Secure, HttpOnly, SameSite=None, Path=/", k)
	}
	if ans.Params.Get("user") != user || ans.Params.Get("code") == "" {
		t.Fatalf("the provider's form %v", ans.Params)
	}
	resp, body := f.deliver(t, http.MethodPost, ans, p.Server.URL)
	tr := f.exchange(c, a, codeFrom(t, a, resp, body))
	if tr.AccessToken == "" {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	claims, err := f.Verifier(c.Audience).Verify(ctxT(t), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	wantProfile(t, claims, apple.Subject, "ada@privaterelay.appleid.com", true, "Ada Lovelace")
	if claims.Profile.GivenName != "Ada" || claims.Profile.FamilyName != "Lovelace" {
		t.Errorf("given %q family %q", claims.Profile.GivenName, claims.Profile.FamilyName)
	}

	t.Run("a later sign-in without the user field has no name", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{NoUserinfo: true, ResponseModes: []string{"form_post"}, IDClaims: map[string]any{"email": "ada@example.com"}}, formPost)
		wantProfile(t, f.signInFormPost(t), idptest.Subject, "ada@example.com", false, "")
	})
	t.Run("a user field not Apple's shape is ignored", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{NoUserinfo: true, User: `{"name":"Ada"}`, IDClaims: map[string]any{"email": "ada@example.com"}}, formPost)
		wantProfile(t, f.signInFormPost(t), idptest.Subject, "ada@example.com", false, "")
	})
	t.Run("the ID token's name wins over the user field", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{NoUserinfo: true, User: user, IDClaims: map[string]any{"name": "Ada King"}}, formPost)
		wantProfile(t, f.signInFormPost(t), idptest.Subject, "", false, "Ada King")
	})

	t.Run("the consent page after the POST, approved from it", func(t *testing.T) {
		redirect := "http://127.0.0.1:8977/form-post-callback"
		st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Form post"}`)
		if st != http.StatusCreated {
			t.Fatalf("register: %d %v", st, reg)
		}
		dyn := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
		a := newAuthRequest(dyn)
		ans := f.startUpstreamLogin(t, a)
		resp, body := f.deliver(t, http.MethodPost, ans, p.Server.URL)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="approve"`) {
			t.Fatalf("want the consent page: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		var consent *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "__Host-tollgate-consent" {
				consent = &http.Cookie{Name: ck.Name, Value: ck.Value}
			}
		}
		if consent == nil {
			t.Fatal("no consent cookie")
		}
		// The approval is a same-site POST from the consent page: its
		// SameSite=Strict cookie goes along.
		cb, _ := url.Parse(ans.Callback)
		got := newBrowser(t, redirect).submit(&page{Status: resp.StatusCode, Body: body, Header: resp.Header, URL: cb}, url.Values{"decision": {"approve"}}, consent)
		if got.Location == nil || got.Location.Query().Get("code") == "" || got.Location.Query().Get("state") != a.State {
			t.Fatalf("no code after consent: %d %v\n%s", got.Status, got.Location, got.Body)
		}
	})

	t.Run("the user cancelling at Apple is access_denied", func(t *testing.T) {
		f, p := startShaped(t, idptest.Shape{AuthorizeError: "user_cancelled_authorize", IDClaims: fullProfile}, formPost)
		a := newAuthRequest(f.Clients["local-test"])
		resp, body := f.deliver(t, http.MethodPost, f.startUpstreamLogin(t, a), p.Server.URL)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if q := loc.Query(); q.Get("error") != "access_denied" || q.Get("state") != a.State {
			t.Fatalf("callback %d %s, want access_denied with the state\n%s", resp.StatusCode, loc, body)
		}
	})

	refusedAtCallback := func(t *testing.T, resp *http.Response, body, want string) {
		t.Helper()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(html.UnescapeString(body), want) {
			t.Fatalf("callback %d, want 400 saying %q:\n%s", resp.StatusCode, want, body)
		}
	}
	t.Run("refused: a GET callback in form_post mode", func(t *testing.T) {
		ans := f.startUpstreamLogin(t, newAuthRequest(c))
		resp, body := f.deliver(t, http.MethodGet, ans, p.Server.URL)
		refusedAtCallback(t, resp, body, "takes it as a form POST (UPSTREAM_RESPONSE_MODE=form_post)")
	})
	t.Run("refused: another browser's POST", func(t *testing.T) {
		a := newAuthRequest(c)
		ans := f.startUpstreamLogin(t, a)
		ans.Cookie.Value = f.startUpstreamLogin(t, newAuthRequest(c)).Cookie.Value
		resp, body := f.deliver(t, http.MethodPost, ans, p.Server.URL)
		refusedAtCallback(t, resp, body, "not started in this browser")
	})
	t.Run("refused: a POST without the cookie (Lax would not send it)", func(t *testing.T) {
		ans := f.startUpstreamLogin(t, newAuthRequest(c))
		ans.Cookie.SameSite = http.SameSiteLaxMode
		resp, body := f.deliver(t, http.MethodPost, ans, p.Server.URL)
		refusedAtCallback(t, resp, body, "not started in this browser")
	})
	t.Run("refused: parameters in the POST's URL", func(t *testing.T) {
		ans := f.startUpstreamLogin(t, newAuthRequest(c))
		ans.Callback += "?error=access_denied"
		resp, body := f.deliver(t, http.MethodPost, ans, p.Server.URL)
		refusedAtCallback(t, resp, body, "a form_post answer has them in the body only")
	})
	t.Run("refused: a POST in query mode", func(t *testing.T) {
		f, p := startShaped(t, idptest.Shape{UserinfoClaims: fullProfile}, nil)
		a := newAuthRequest(c)
		ans := f.startUpstreamLogin(t, a)
		if ans.Cookie.SameSite != http.SameSiteLaxMode {
			t.Errorf("login cookie %s: want SameSite=Lax in query mode", ans.Cookie)
		}
		ans.Cookie.SameSite = http.SameSiteNoneMode // whatever the browser sends
		resp, body := f.deliver(t, http.MethodPost, ans, p.Server.URL)
		refusedAtCallback(t, resp, body, "takes it in the query of a GET (UPSTREAM_RESPONSE_MODE=query)")
		// The state was not spent on the refused POST.
		resp, body = f.deliver(t, http.MethodGet, ans, p.Server.URL)
		codeFrom(t, a, resp, body)
	})
	t.Run("refused: a provider whose discovery lists no form_post", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{ResponseModes: []string{"query", "fragment"}, UserinfoClaims: fullProfile}, formPost)
		a := newAuthRequest(c)
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if q := loc.Query(); q.Get("error") != "server_error" || !strings.Contains(q.Get("error_description"), "UPSTREAM_RESPONSE_MODE") {
			t.Fatalf("authorize: %d %s, want server_error naming UPSTREAM_RESPONSE_MODE", resp.StatusCode, loc)
		}
	})
}

// signInFormPost runs the sign-in with the provider's form POSTed back and
// returns the access token's claims.
func (f *fleet) signInFormPost(t *testing.T) *tokens.Claims {
	t.Helper()
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	ans := f.startUpstreamLogin(t, a)
	resp, body := f.deliver(t, http.MethodPost, ans, "https://provider.example")
	tr := f.exchange(c, a, codeFrom(t, a, resp, body))
	claims, err := f.Verifier(c.Audience).Verify(ctxT(t), tr.AccessToken)
	if err != nil {
		t.Fatalf("%v (token response %d %s %s)", err, tr.Status, tr.Error, tr.Description)
	}
	return claims
}

// clientKeyFile writes a PKCS#8 PEM of key for UPSTREAM_CLIENT_KEY_FILE.
func clientKeyFile(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "upstream-client-key.pem")
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return path
}

// TestUpstreamShapePrivateKeyJWT: the auth-server authenticates to the
// token endpoint with a private_key_jwt assertion (OpenID Connect Core §9,
// RFC 7523 §2.2, §3) signed RS256 or ES256 by UPSTREAM_CLIENT_KEY_FILE,
// with the kid UPSTREAM_CLIENT_KEY_ID: iss = sub = the client id, aud the
// token endpoint URL, a short exp and a fresh jti, and no client secret.
// The provider verifies it (idptest); a key it does not know, or a
// provider whose discovery does not list private_key_jwt, refuses.
func TestUpstreamShapePrivateKeyJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]crypto.Signer{"RS256": rsaKey, "ES256": ecKey} {
		t.Run(name, func(t *testing.T) {
			shape := idptest.Shape{AuthMethods: []string{"private_key_jwt"}, ClientKey: key.Public(), ClientKeyID: "tollgate-2026", UserinfoClaims: fullProfile}
			f, p := startShaped(t, shape, map[string]string{"UPSTREAM_CLIENT_SECRET": "",
				"UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, key), "UPSTREAM_CLIENT_KEY_ID": "tollgate-2026"})
			start := time.Now()
			wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
			f.signIn(t)
			as := p.Assertions()
			if len(as) != 2 {
				t.Fatalf("%d assertions accepted, want 2", len(as))
			}
			for _, a := range as {
				c := a.Claims
				exp, _ := c["exp"].(float64)
				if a.Header.Algorithm != name || a.Header.KeyID != "tollgate-2026" || c["iss"] != p.ClientID || c["sub"] != p.ClientID ||
					exp > float64(start.Add(5*time.Minute).Unix()) || c["jti"] == "" {
					t.Errorf("assertion %+v %v", a.Header, c)
				}
				if aud := fmt.Sprint(c["aud"]); aud != "["+p.TokenEndpoint()+"]" && aud != p.TokenEndpoint() {
					t.Errorf("aud %v, want the token endpoint %s", c["aud"], p.TokenEndpoint())
				}
			}
			if as[0].Claims["jti"] == as[1].Claims["jti"] {
				t.Errorf("jti %v used twice", as[0].Claims["jti"])
			}
		})
	}
	t.Run("refused: a key the provider does not know", func(t *testing.T) {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		f, _ := startShaped(t, idptest.Shape{AuthMethods: []string{"private_key_jwt"}, ClientKey: ecKey.Public(), IDClaims: fullProfile},
			map[string]string{"UPSTREAM_CLIENT_SECRET": "", "UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, other)})
		f.refused(t)
	})
	t.Run("refused: a provider whose discovery lists no private_key_jwt", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{ClientKey: ecKey.Public(), IDClaims: fullProfile},
			map[string]string{"UPSTREAM_CLIENT_SECRET": "", "UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, ecKey)})
		a := newAuthRequest(f.Clients["local-test"])
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if q := loc.Query(); q.Get("error") != "server_error" || !strings.Contains(q.Get("error_description"), "UPSTREAM_CLIENT_KEY_FILE") {
			t.Fatalf("authorize: %d %s, want server_error naming UPSTREAM_CLIENT_KEY_FILE", resp.StatusCode, loc)
		}
	})
}

// clientCert issues a self-signed certificate for key and writes its PEM
// for UPSTREAM_CLIENT_CERT_FILE.
func clientCert(t *testing.T, key crypto.Signer, serial int64) (*x509.Certificate, string) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "tollgate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "upstream-client-cert.pem")
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return cert, path
}

// TestUpstreamShapeEntraCertificate: Microsoft Entra ID's certificate
// credentials — a private_key_jwt assertion whose header names the
// certificate by x5t#S256, the base64url SHA-256 of its DER (RFC 7515
// §4.1.8; "Microsoft identity platform application authentication
// certificate credentials", Assertion format), signed PS256 by
// UPSTREAM_CLIENT_KEY_FILE with UPSTREAM_CLIENT_CERT_FILE; the claims are
// private_key_jwt's. The provider (idptest, ClientCert) verifies the
// thumbprints and the signature with the certificate's key. Before, the
// header had no thumbprint and every sign-in was refused.
func TestUpstreamShapeEntraCertificate(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, certFile := clientCert(t, key, 1)
	shape := idptest.Shape{AuthMethods: []string{"private_key_jwt"}, ClientCert: cert, UserinfoClaims: fullProfile}
	t.Run("signed with the thumbprint", func(t *testing.T) {
		f, p := startShaped(t, shape, map[string]string{"UPSTREAM_CLIENT_SECRET": "",
			"UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, key), "UPSTREAM_CLIENT_CERT_FILE": certFile})
		start := time.Now()
		wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
		as := p.Assertions()
		if len(as) != 1 {
			t.Fatalf("%d assertions accepted, want 1", len(as))
		}
		s256 := sha256.Sum256(cert.Raw)
		s1 := sha1.Sum(cert.Raw) //nolint:gosec // x5t is SHA-1 by definition
		h, c := as[0].Header, as[0].Claims
		if h.Algorithm != "PS256" || h.KeyID != "" || h.ExtraHeaders["typ"] != "JWT" ||
			h.ExtraHeaders["x5t#S256"] != base64.RawURLEncoding.EncodeToString(s256[:]) ||
			h.ExtraHeaders["x5t"] != base64.RawURLEncoding.EncodeToString(s1[:]) {
			t.Errorf("header %+v", h)
		}
		exp, _ := c["exp"].(float64)
		iat, _ := c["iat"].(float64)
		if c["iss"] != p.ClientID || c["sub"] != p.ClientID || c["aud"] != p.TokenEndpoint() || c["jti"] == "" ||
			exp > float64(start.Add(3*time.Minute).Unix()) || iat < float64(start.Unix()-1) || exp-iat != 120 {
			t.Errorf("claims %v", c)
		}
	})
	t.Run("refused: the key without its certificate (no x5t#S256)", func(t *testing.T) {
		f, _ := startShaped(t, shape, map[string]string{"UPSTREAM_CLIENT_SECRET": "", "UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, key)})
		f.refused(t)
	})
	t.Run("refused: another certificate of the same key", func(t *testing.T) {
		_, otherFile := clientCert(t, key, 2)
		f, _ := startShaped(t, shape, map[string]string{"UPSTREAM_CLIENT_SECRET": "",
			"UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, key), "UPSTREAM_CLIENT_CERT_FILE": otherFile})
		f.refused(t)
	})
}

// TestUpstreamShapeAppleClientSecret: Sign in with Apple's client secret is
// a JWT the auth-server mints itself with UPSTREAM_APPLE_TEAM_ID and the
// Sign in with Apple key (UPSTREAM_CLIENT_KEY_FILE, P-256) and key id
// (UPSTREAM_CLIENT_KEY_ID): ES256, kid the key id, iss the team id, sub the
// client id, aud the issuer, exp an hour after iat; sent as client_secret
// in the form (client_secret_post) and kept for the next sign-in. The
// provider (idptest, AppleTeamID) verifies it. Before, the operator signed
// it by hand; the settings did nothing and every sign-in was refused.
func TestUpstreamShapeAppleClientSecret(t *testing.T) {
	const team, kid = "A1B2C3D4E5", "KEY1234567"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	shape := idptest.Shape{AuthMethods: []string{"client_secret_post"}, AppleTeamID: team, ClientKey: key.Public(), ClientKeyID: kid,
		NoUserinfo: true, IDClaims: fullProfile}
	env := func(k crypto.Signer) map[string]string {
		return map[string]string{"UPSTREAM_CLIENT_SECRET": "", "UPSTREAM_APPLE_TEAM_ID": team,
			"UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, k), "UPSTREAM_CLIENT_KEY_ID": kid}
	}
	t.Run("minted, sent by client_secret_post, kept", func(t *testing.T) {
		f, p := startShaped(t, shape, env(key))
		start := time.Now()
		wantProfile(t, f.signIn(t), idptest.Subject, "ada@example.com", true, "Ada Lovelace")
		f.signIn(t)
		as := p.Assertions()
		if len(as) != 2 {
			t.Fatalf("%d client secrets accepted, want 2", len(as))
		}
		h, c := as[0].Header, as[0].Claims
		iat, _ := c["iat"].(float64)
		exp, _ := c["exp"].(float64)
		if h.Algorithm != "ES256" || h.KeyID != kid || c["iss"] != team || c["sub"] != p.ClientID || c["aud"] != p.Issuer ||
			iat < float64(start.Unix()-1) || exp-iat != 3600 || c["jti"] != nil {
			t.Errorf("client secret %+v %v", h, c)
		}
		if fmt.Sprint(as[1].Claims) != fmt.Sprint(c) {
			t.Errorf("the second sign-in minted another secret %v, want the first one kept", as[1].Claims)
		}
	})
	t.Run("refused: a key Apple does not know", func(t *testing.T) {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		f, _ := startShaped(t, shape, env(other))
		f.refused(t)
	})
	t.Run("refused: a provider whose discovery lists no client_secret_post", func(t *testing.T) {
		basic := shape
		basic.AuthMethods = []string{"client_secret_basic"}
		f, _ := startShaped(t, basic, env(key))
		a := newAuthRequest(f.Clients["local-test"])
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if q := loc.Query(); q.Get("error") != "server_error" {
			t.Fatalf("authorize: %d %s, want server_error", resp.StatusCode, loc)
		}
		if logs := f.AS.Logs.String(); !strings.Contains(logs, "UPSTREAM_APPLE_TEAM_ID is set (a client secret JWT sent by client_secret_post)") {
			t.Errorf("the log does not name UPSTREAM_APPLE_TEAM_ID:\n%s", logs)
		}
	})
}

// TestUpstreamUndecodableAnswerIsNotLogged: a userinfo answer the library
// cannot decode (here email_verified 1) fails the sign-in, and the log says
// why without the body zitadel/oidc appends to its decoding error — the
// user's email and name. Before, "upstream login failed" carried the body.
func TestUpstreamUndecodableAnswerIsNotLogged(t *testing.T) {
	f, _ := startShaped(t, idptest.Shape{UserinfoClaims: map[string]any{
		"email": "ada.private@example.com", "email_verified": 1, "name": "Ada Private"}}, nil)
	f.refused(t)
	logs := f.AS.Logs.String()
	if !strings.Contains(logs, "upstream login failed") || !strings.Contains(logs, "response body not logged") {
		t.Fatalf("want the failure logged without its body:\n%s", logs)
	}
	for _, personal := range []string{"ada.private@example.com", "Ada Private"} {
		if strings.Contains(logs, personal) {
			t.Errorf("the log holds %q from the provider's answer", personal)
		}
	}
}

// TestUpstreamRefusedCodeExchange: when the provider's token endpoint
// refuses the exchange, the client's error_description says which way —
// the operator's client credentials (invalid_client), or another
// registered code — instead of "the response could not be verified"; with
// a client secret (golang.org/x/oauth2) and with private_key_jwt
// (zitadel/oidc's own client) alike.
func TestUpstreamRefusedCodeExchange(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		shape idptest.Shape
		env   map[string]string
	}{
		"a wrong client secret": {idptest.Shape{UserinfoClaims: fullProfile}, map[string]string{"UPSTREAM_CLIENT_SECRET": "not-the-secret"}},
		"a key the provider does not know": {idptest.Shape{AuthMethods: []string{"private_key_jwt"}, ClientKey: key.Public(), UserinfoClaims: fullProfile},
			map[string]string{"UPSTREAM_CLIENT_SECRET": "", "UPSTREAM_CLIENT_KEY_FILE": clientKeyFile(t, other)}},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := startShaped(t, tc.shape, tc.env)
			c := f.Clients["local-test"]
			p := f.login(newBrowser(t, c.RedirectURIs[0]), newAuthRequest(c))
			if p.Location == nil {
				t.Fatalf("no redirect to the client: %d %s\n%s", p.Status, p.URL, p.Body)
			}
			q := p.Location.Query()
			if q.Get("error") != "server_error" || q.Get("code") != "" ||
				q.Get("error_description") != "the identity provider refused this server's client credentials (invalid_client); the operator must check the upstream client settings" {
				t.Fatalf("redirect %s, want server_error naming invalid_client", p.Location)
			}
		})
	}
}
