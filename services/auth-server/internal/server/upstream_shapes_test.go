package server_test

import (
	"maps"
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
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	p := f.login(newBrowser(t, c.RedirectURIs[0]), a)
	if p.Location == nil {
		t.Fatalf("no redirect to the client: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	if q := p.Location.Query(); q.Get("error") != "server_error" || q.Get("code") != "" || q.Get("state") != a.State {
		t.Fatalf("redirect %s, want error=server_error with the state and no code", p.Location)
	}
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
