package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestIDTokenHintCodeExchange: an OpenID Connect authorization request
// carrying id_token_hint (OpenID Connect Core §3.1.2.1), through real HTTP
// and Redis to the code exchange, as docs/reference/oauth.md's rule says:
//   - the hint's user signs in: a code whose exchange gives an ID token of
//     that subject, with the request's nonce — for a fresh ID token and an
//     expired one alike (an expired ID token is a valid hint);
//   - another user signs in: login_required at the client's redirect URI
//     (with state and iss), no code;
//   - prompt=none with a valid hint: login_required before any sign-in
//     (the auth-server keeps no session of its own);
//   - a hint that is no ID token of this server — its signature altered,
//     signed by a key this server does not publish (the published key's
//     kid), HS256 or alg none, without sub, not a JWT — invalid_request
//     at the redirect URI before the sign-in, with the fixed description
//     (why is logged, never told).
func TestIDTokenHintCodeExchange(t *testing.T) {
	f := newFleet(t, nil, "", true, twoUsers)
	f.start()
	c := f.Clients["local-test"] // skip_consent: the sign-in leads to the code
	first := f.fullFlow(c, newAuthRequest(c))
	if first.IDToken == "" {
		t.Fatalf("no ID token: %+v", first)
	}
	sub := idTokenClaims(t, first.IDToken)["sub"]
	if sub == nil || sub == "" {
		t.Fatalf("ID token without sub: %s", first.IDToken)
	}
	kid := kidOf(t, first.IDToken)
	published := signingKey(t, filepath.Join(f.env["SIGNING_KEYS_DIR"], kid+".pem"))
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// sign is the first ID token's claims, edited, signed by key with alg
	// and header kid (typ JWT, as every ID token of ours).
	sign := func(alg jose.SignatureAlgorithm, key any, edit func(map[string]any)) string {
		t.Helper()
		claims := idTokenClaims(t, first.IDToken)
		if edit != nil {
			edit(claims)
		}
		return signJWT(t, alg, key, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid), claims)
	}
	expired := sign(jose.RS256, published, func(m map[string]any) {
		now := time.Now()
		m["iat"], m["exp"], m["auth_time"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
	})
	request := func(hint string, extra url.Values) *authRequest {
		a := newAuthRequest(c)
		a.Extra = url.Values{"id_token_hint": {hint}}
		for k, v := range extra {
			a.Extra[k] = v
		}
		return a
	}
	// signIn follows a's request to the IdP's login and signs in as user;
	// it returns the redirect to the client.
	signIn := func(t *testing.T, a *authRequest, user, password string) *url.URL {
		t.Helper()
		b := newBrowser(t, a.RedirectURI)
		p := b.get(a.URL(f.Base))
		if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
			t.Fatalf("want the IdP's login page, got %d at %s: %.300s", p.Status, p.URL, p.Body)
		}
		p = b.submit(p, url.Values{"username": {user}, "password": {password}})
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), a.RedirectURI) {
			t.Fatalf("after the sign-in: %d %v %.300s, want a redirect to the client", p.Status, p.Location, p.Body)
		}
		return p.Location
	}
	// refusedAtClient wants a's request answered with code at the client's
	// redirect URI — state and iss echoed, no code — saying desc.
	refusedAtClient := func(t *testing.T, a *authRequest, loc *url.URL, code, desc string) {
		t.Helper()
		q := loc.Query()
		if q.Get("error") != code || q.Get("error_description") != desc || q.Get("state") != a.State || q.Get("iss") != f.Base || q.Has("code") {
			t.Errorf("redirect %s: want error=%s, error_description %q, state and iss, no code", loc, code, desc)
		}
	}

	for name, hint := range map[string]string{"fresh": first.IDToken, "expired": expired} {
		t.Run(name+" hint, its user: a code and an ID token of the hint's subject", func(t *testing.T) {
			a := request(hint, nil)
			loc := signIn(t, a, idptest.Username, idptest.Password)
			code := loc.Query().Get("code")
			if code == "" || loc.Query().Get("state") != a.State {
				t.Fatalf("redirect %s: want a code and the state", loc)
			}
			tr := f.exchange(c, a, code)
			if tr.Status != http.StatusOK || tr.IDToken == "" {
				t.Fatalf("exchange: %d %s %s, want an ID token", tr.Status, tr.Error, tr.Description)
			}
			got := idTokenClaims(t, tr.IDToken)
			if got["sub"] != sub || got["nonce"] != a.Nonce || got["aud"] != c.ClientID && !audHas(got["aud"], c.ClientID) {
				t.Errorf("ID token claims %v: want sub %v, nonce %q, aud %s", got, sub, a.Nonce, c.ClientID)
			}
			if again := f.exchange(c, a, code); again.Status != http.StatusBadRequest || again.Error != "invalid_grant" {
				t.Errorf("the code again: %d %s, want 400 invalid_grant", again.Status, again.Error)
			}
		})
		t.Run(name+" hint, another user: login_required, no code", func(t *testing.T) {
			a := request(hint, nil)
			refusedAtClient(t, a, signIn(t, a, "eve", "eve-password"), "login_required",
				"the signed-in user is not the one id_token_hint names (OpenID Connect Core section 3.1.2.1)")
		})
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	before := func(t *testing.T, a *authRequest) *url.URL {
		t.Helper()
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), c.RedirectURIs[0]) {
			t.Fatalf("%d to %q: want a redirect to the client, before any sign-in", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc
	}
	t.Run("prompt=none with the hint: login_required before the sign-in", func(t *testing.T) {
		a := request(first.IDToken, url.Values{"prompt": {"none"}})
		refusedAtClient(t, a, before(t, a), "login_required", "prompt=none is not supported: the user must sign in at the identity provider")
	})

	parts := strings.Split(first.IDToken, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 0xff
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	const refused = "id_token_hint is not an ID token signed by this server with a published key (OpenID Connect Core section 3.1.2.1)"
	for name, hint := range map[string]string{
		"signature altered":                    parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig),
		"another key, the published key's kid": sign(jose.RS256, other, nil),
		"HS256":                                sign(jose.HS256, []byte(strings.Repeat("k", 32)), nil),
		"alg none":                             base64.RawURLEncoding.EncodeToString(header) + "." + parts[1] + ".",
		"no sub":                               sign(jose.RS256, published, func(m map[string]any) { delete(m, "sub") }),
		"expired, another key":                 sign(jose.RS256, other, func(m map[string]any) { m["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"not a JWT":                            "not-a-jwt",
		"the first ID token with its payload cut": parts[0] + "." + parts[1][:len(parts[1])/2] + "." + parts[2],
	} {
		t.Run("refused before the sign-in: "+name, func(t *testing.T) {
			a := request(hint, nil)
			refusedAtClient(t, a, before(t, a), "invalid_request", refused)
		})
	}
	if logs := f.AS.Logs.String(); !strings.Contains(logs, "id_token_hint refused") {
		t.Errorf("the refusals' reasons are not logged")
	}
}

// idTokenClaims are the claims of raw, a JWT, read without verifying it.
func idTokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := tok.UnsafeClaimsWithoutVerification(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// audHas reports whether aud, a JWT's aud claim as decoded from JSON (a
// string or an array), names id.
func audHas(aud any, id string) bool {
	if s, ok := aud.(string); ok {
		return s == id
	}
	list, _ := aud.([]any)
	for _, v := range list {
		if v == id {
			return true
		}
	}
	return false
}
