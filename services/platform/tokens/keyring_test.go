package tokens_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// ringSource serves a ring's public keys, as the auth-server does in-process.
type ringSource struct{ ring *tokens.KeyRing }

func (s ringSource) FetchKeySet(context.Context) (tokens.KeySet, error) {
	return tokens.KeySet{Issuer: issuer, Keys: s.ring.PublicJWKS()}, nil
}

func ecRing(t *testing.T, rsaKid, ecKid string) *tokens.KeyRing {
	t.Helper()
	a, _ := tokentest.Keys()
	ring, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{rsaKid: a}, rsaKid)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err = ring.WithECKeys(map[string]*ecdsa.PrivateKey{ecKid: ec}, ecKid)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func claims() map[string]any {
	return map[string]any{"iss": issuer, "sub": "u", "aud": mcpAud, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "client_id": "c"}
}

// Both access-token algorithms verify; a key is used only with the
// algorithm it is published for.
func TestVerifyES256AndRS256(t *testing.T) {
	ring := ecRing(t, "key-a", "ec-1")
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: ringSource{ring}, Audiences: []string{mcpAud}})
	for _, alg := range tokens.AccessTokenAlgorithms {
		raw, err := ring.SignWith(alg, tokens.AccessTokenType, claims())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	set := ring.PublicJWKS()
	if len(set.Keys) != 2 || set.Key("ec-1")[0].Algorithm != "ES256" || set.Key("key-a")[0].Algorithm != "RS256" {
		t.Errorf("JWKS = %+v", set)
	}
	// An ES256 token whose kid names the RSA key (an EC key under the same
	// kid elsewhere) is refused, and so is a key published for another alg.
	confused := ecRing(t, "key-x", "key-a")
	raw, _ := confused.SignWith(jose.ES256, tokens.AccessTokenType, claims())
	if _, err := v.Verify(context.Background(), raw); err == nil || !strings.Contains(err.Error(), "published for RS256") {
		t.Errorf("ES256 token naming an RSA kid: %v", err)
	}
	if _, err := ring.SignWith(jose.PS256, "", claims()); err == nil {
		t.Error("signed with an unsupported algorithm")
	}
	a, _ := tokentest.Keys()
	rsaOnly, _ := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"k": a}, "k")
	if rsaOnly.Supports(jose.ES256) || !rsaOnly.Supports(jose.RS256) {
		t.Error("an RSA-only ring claims ES256")
	}
	if _, err := rsaOnly.SignWith(jose.ES256, "", claims()); err == nil {
		t.Error("an RSA-only ring signed ES256")
	}
}

// LoadKeyDir reads RSA and EC keys in every PEM form; EnsureDevKey writes
// one of each kind once.
func TestLoadKeyDirWithECKeys(t *testing.T) {
	dir := t.TempDir()
	if err := tokens.EnsureDevKey(dir); err != nil {
		t.Fatal(err)
	}
	if err := tokens.EnsureDevKey(dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.pem")); len(m) != 2 {
		t.Fatalf("EnsureDevKey wrote %d keys, want one RSA and one EC", len(m))
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ec)
	if err := os.WriteFile(filepath.Join(dir, "sec1.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.LoadKeyDir(dir, "", "sec1")
	if err != nil {
		t.Fatal(err)
	}
	if ring.ActiveES256KeyID() != "sec1" || !ring.Supports(jose.ES256) || len(ring.PublicJWKS().Keys) != 3 {
		t.Fatalf("active ES256 %q, keys %d", ring.ActiveES256KeyID(), len(ring.PublicJWKS().Keys))
	}
	if _, err := tokens.LoadKeyDir(dir, "", "missing"); err == nil {
		t.Error("an unknown active ES256 kid was accepted")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(p384)
	_ = os.WriteFile(filepath.Join(dir, "p384.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if _, err := tokens.LoadKeyDir(dir, ""); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("a P-384 key: %v", err)
	}
}
