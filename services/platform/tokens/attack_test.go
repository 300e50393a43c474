package tokens_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// signed signs claims with key under alg, naming kid and typ at+jwt.
func signed(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid).WithType(tokens.AccessTokenType))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestVerifyRefusesAttackerShapes: tokens an attacker can make without a
// signing key are refused — HS256 keyed with the published RSA key (the
// RS/HS confusion), ES256 under the RSA key's kid, an issuer spelt with a
// trailing slash — and a token whose kid is huge is refused before the key
// lookup: no refetch of the key set, and a reason of bounded size (it is
// answered in error_description and the JSON body).
func TestVerifyRefusesAttackerShapes(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	v := newVerifier(t, iss, tokens.VerifierOptions{})
	if _, err := v.Verify(context.Background(), iss.Mint(t, tokentest.Token{Audience: mcpAud})); err != nil {
		t.Fatal(err)
	}
	a, _ := tokentest.Keys()
	pubDER, _ := x509.MarshalPKIXPublicKey(&a.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	claims := func(iss string) map[string]any {
		return map[string]any{"iss": iss, "sub": "x", "aud": mcpAud, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "client_id": "c"}
	}
	cases := map[string]struct {
		raw  string
		want string
	}{
		"HS256 keyed with the public key PEM": {signed(t, jose.HS256, pubPEM, "key-a", claims(issuer)), "malformed"},
		"HS256 keyed with the modulus":        {signed(t, jose.HS256, a.PublicKey.N.Bytes(), "key-a", claims(issuer)), "malformed"},
		"ES256 under an RSA kid":              {signed(t, jose.ES256, ec, "key-a", claims(issuer)), "published for RS256"},
		"issuer with a trailing slash":        {iss.Mint(t, tokentest.Token{Audience: mcpAud, Issuer: issuer + "/"}), "wrong issuer"},
		"huge kid":                            {signed(t, jose.RS256, a, strings.Repeat("k", 64<<10), claims(issuer)), "kid longer than"},
	}
	fetches := iss.Calls()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.raw)
			if !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %.200v, want invalid token containing %q", err, tc.want)
			}
			if err != nil && len(err.Error()) > 512 {
				t.Errorf("refusal reason of %d bytes, want it bounded (it is echoed to the client)", len(err.Error()))
			}
		})
	}
	if got := iss.Calls() - fetches; got != 0 {
		t.Errorf("%d key-set fetches for tokens naming a published or an impossible kid, want 0", got)
	}
}
