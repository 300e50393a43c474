package server_test

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestIDTokenHintOnlyOurIDTokens: id_token_hint is "an ID Token
// previously issued by the Authorization Server" (OpenID Connect Core
// §3.1.2.1). The key ring that signs our ID tokens signs our access
// tokens too (typ at+jwt, RFC 9068 §2.1), and the same keys may sign for
// another issuer; both name a subject and carry a published key's
// signature. Through real HTTP, an authorization request whose hint is
// our access token, a token of our key with another iss, or one with a
// typ other than JWT (or none: every ID token we issue has typ JWT) is
// refused invalid_request at the client's redirect URI, before the
// sign-in; our ID token, and a token of our key shaped exactly like one
// (typ JWT, our iss — the control that the forgeries fail only by what
// they change), are accepted and lead to the IdP's login.
func TestIDTokenHintOnlyOurIDTokens(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	if tr.IDToken == "" {
		t.Fatal("no ID token")
	}
	forge := func(typ any, iss string) string { return reSignIDToken(t, f, tr.IDToken, typ, iss) }
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(hint string) (*http.Response, *url.URL) {
		t.Helper()
		a := newAuthRequest(c)
		a.Extra = url.Values{"id_token_hint": {hint}}
		resp, err := noFollow.Get(a.URL(f.Base))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return resp, loc
	}
	const refused = "id_token_hint is not an ID token signed by this server with a published key (OpenID Connect Core section 3.1.2.1)"
	for name, hint := range map[string]string{
		"our access token (typ at+jwt)":       tr.AccessToken,
		"another issuer's, signed by our key": forge("JWT", "https://other-issuer.example"),
		"typ at+jwt, our iss":                 forge("at+jwt", f.Base),
		"typ application/at+jwt, our iss":     forge("application/at+jwt", f.Base),
		"typ logout+jwt, our iss":             forge("logout+jwt", f.Base),
		"no typ, our iss":                     forge(nil, f.Base),
	} {
		resp, loc := send(hint)
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), c.RedirectURIs[0]) ||
			loc.Query().Get("error") != "invalid_request" || loc.Query().Get("error_description") != refused {
			t.Errorf("%s: %d to %q, want the invalid_request redirect to the client saying %q", name, resp.StatusCode, resp.Header.Get("Location"), refused)
		}
	}
	for name, hint := range map[string]string{
		"our ID token":              tr.IDToken,
		"typ JWT, our iss (forged)": forge("JWT", f.Base),
		"typ jwt (case), our iss":   forge("jwt", f.Base),
	} {
		resp, loc := send(hint)
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") != "" || strings.HasPrefix(loc.String(), c.RedirectURIs[0]) {
			t.Errorf("%s: %d to %q, want the redirect to the IdP's login", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// reSignIDToken is the ID token idToken of f's server signed again with
// the same key (its kid) and claims, but with the JOSE header typ typ (a
// string; nil: no typ) and the claim iss.
func reSignIDToken(t *testing.T, f *fleet, idToken string, typ any, iss string) string {
	t.Helper()
	kid := kidOf(t, idToken)
	var claims map[string]any
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(idToken, ".")[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		t.Fatalf("ID token payload: %v", err)
	}
	key := signingKey(t, filepath.Join(f.env["SIGNING_KEYS_DIR"], kid+".pem"))
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != nil {
		opts = opts.WithType(jose.ContentType(typ.(string)))
	}
	claims["iss"] = iss
	return signJWT(t, jose.RS256, key, opts, claims)
}

// signJWT is claims as a JWS in compact serialization, signed by key with
// alg and the header parameters opts sets.
func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signingKey reads the RSA private key at path (a SIGNING_KEYS_DIR file,
// named by its kid).
func signingKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tokens.ParsePrivateKey(b)
	rk, ok := k.(*rsa.PrivateKey)
	if err != nil || !ok {
		t.Fatalf("%s: not an RSA private key: %v", path, err)
	}
	return rk
}
