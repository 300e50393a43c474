package oauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestDevSigningKeyRotationKeepsRefreshTokensAndDCRSecrets: in development
// (no TOKEN_HMAC_SECRET, no CLIENT_SECRET_HMAC_KEY) the HMAC secrets are
// derived from the signing keys. Activating another key (key-rotation.md
// step 3) keeps the refresh tokens issued before valid, and the secrets
// dynamic registration hashed before verifying.
func TestDevSigningKeyRotationKeepsRefreshTokensAndDCRSecrets(t *testing.T) {
	dir := t.TempDir()
	for _, kid := range []string{"old", "new"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Config{SigningKeysDir: dir}
	strategy := func(active string) (*accessStrategy, *tokens.KeyRing) {
		ring, err := tokens.LoadKeyDir(dir, active)
		if err != nil {
			t.Fatal(err)
		}
		secret, rotated, err := hmacSecrets(cfg, ring)
		if err != nil {
			t.Fatal(err)
		}
		a := &accessStrategy{
			hmac:         compose.NewOAuth2HMACStrategy(&fosite.Config{GlobalSecret: secret, RotatedGlobalSecrets: rotated}),
			successorKey: []byte("successor"),
		}
		copy(a.macKey[:], secret)
		return a, ring
	}
	ctx := context.Background()
	before, oldRing := strategy("old")
	req := fosite.NewRequest()
	req.ID = "grant-1"
	tok, sig, err := before.GenerateRefreshToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	hasherBefore, err := NewSecretHasher(cfg, oldRing)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := hasherBefore.Hash(ctx, []byte("dcr-secret"))
	if err != nil {
		t.Fatal(err)
	}

	after, newRing := strategy("new")
	if got := after.RefreshTokenSignature(ctx, tok); got != sig {
		t.Errorf("refresh token issued under the previous signing key: signature %q after the rotation, want %q (invalid_grant)", got, sig)
	}
	// A token under neither key is still refused.
	forged := tok[:len(tok)-2] + "AA"
	if forged != tok && after.RefreshTokenSignature(ctx, forged) != "" {
		t.Error("a forged refresh token is accepted")
	}
	hasherAfter, err := NewSecretHasher(cfg, newRing)
	if err != nil {
		t.Fatal(err)
	}
	if err := hasherAfter.Compare(ctx, hash, []byte("dcr-secret")); err != nil {
		t.Errorf("DCR secret hashed under the previous signing key: %v after the rotation", err)
	}
	if err := hasherAfter.Compare(ctx, hash, []byte("other")); err == nil {
		t.Error("a wrong DCR secret verifies")
	}
	// Once the previous key is deleted, its tokens end (the documented
	// end of the rotation).
	if err := os.Remove(filepath.Join(dir, "old.pem")); err != nil {
		t.Fatal(err)
	}
	gone, _ := strategy("new")
	if gone.RefreshTokenSignature(ctx, tok) != "" {
		t.Error("a refresh token under a deleted signing key is still accepted")
	}
}

// TestDevSecretsComeFromTheLoadedRing: the development HMAC keys (codes
// and refresh tokens, client secrets) are derived from the signing keys
// the ring loaded, not from SIGNING_KEYS_DIR read again: a file written
// there since (an unparsable one, another key) changes neither, and
// fails neither.
func TestDevSecretsComeFromTheLoadedRing(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(kid string) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey("a")
	writeKey("b")
	cfg := config.Config{SigningKeysDir: dir}
	ring, err := tokens.LoadKeyDir(dir, "b")
	if err != nil {
		t.Fatal(err)
	}
	secret, rotated, err := hmacSecrets(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := NewSecretHasher(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := hasher.Hash(context.Background(), []byte("dcr-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 1 {
		t.Fatalf("%d rotated token secrets from a ring of two RSA keys, want 1", len(rotated))
	}

	writeKey("c")
	if err := os.WriteFile(filepath.Join(dir, "broken.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret2, rotated2, err := hmacSecrets(cfg, ring)
	if err != nil {
		t.Fatalf("token secrets of the loaded ring after SIGNING_KEYS_DIR changed: %v", err)
	}
	if !bytes.Equal(secret2, secret) || len(rotated2) != 1 || !bytes.Equal(rotated2[0], rotated[0]) {
		t.Errorf("token secrets of the loaded ring changed with SIGNING_KEYS_DIR: %d rotated, want 1", len(rotated2))
	}
	hasher2, err := NewSecretHasher(cfg, ring)
	if err != nil {
		t.Fatalf("client secret hasher of the loaded ring after SIGNING_KEYS_DIR changed: %v", err)
	}
	hash2, err := hasher2.Hash(context.Background(), []byte("dcr-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hash2, hash) {
		t.Errorf("client secret hash changed with SIGNING_KEYS_DIR: %s, want %s", hash2, hash)
	}
}
