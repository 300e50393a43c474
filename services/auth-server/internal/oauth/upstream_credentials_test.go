package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// TestAppleSecretRenewal: Sign in with Apple's client secret is minted
// valid appleSecretTTL (an hour), kept while at least appleSecretRenew
// (half an hour) is left, then minted anew; another issuer gets its own.
func TestAppleSecretRenewal(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	a, err := newAppleSecret(config.Upstream{ClientID: "com.example.tollgate", AppleTeamID: "A1B2C3D4E5", ClientKeyID: "KEY1234567",
		ClientKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	a.signer.now = func() time.Time { return now }
	const apple = "https://appleid.apple.com"
	claims := func(s string) map[string]any {
		t.Helper()
		jws, err := jose.ParseSigned(s, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if jws.Signatures[0].Header.KeyID != "KEY1234567" {
			t.Errorf("kid %q", jws.Signatures[0].Header.KeyID)
		}
		var c map[string]any
		_ = json.Unmarshal(payload, &c)
		return c
	}
	first, _ := a.secret(apple)
	c := claims(first)
	if c["iss"] != "A1B2C3D4E5" || c["sub"] != "com.example.tollgate" || c["aud"] != apple ||
		c["iat"] != float64(t0.Unix()) || c["exp"] != float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("claims %v", c)
	}
	now = t0.Add(29 * time.Minute)
	if s, _ := a.secret(apple); s != first {
		t.Errorf("after 29 minutes a new secret was minted, want the first kept")
	}
	now = t0.Add(31 * time.Minute)
	renewed, _ := a.secret(apple)
	if renewed == first || claims(renewed)["iat"] != float64(now.Unix()) {
		t.Errorf("after 31 minutes: %v, want a new secret from now", claims(renewed))
	}
	if other, _ := a.secret("http://127.0.0.1:4500"); claims(other)["aud"] != "http://127.0.0.1:4500" {
		t.Errorf("another issuer: %v", claims(other))
	}
}
