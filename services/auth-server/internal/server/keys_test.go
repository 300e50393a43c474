package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

func writeKey(t *testing.T, dir, kid string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	writeFile(t, filepath.Join(dir, kid+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].KeyID
}

// TestKeyRotation follows docs/operations/key-rotation.md: add a key,
// make it active, and tokens of the old key stay verifiable while the old
// key is published; once it is removed they are refused.
func TestKeyRotation(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	aud := c.Audience
	old := f.fullFlow(c, newAuthRequest(c))
	oldKid := kidOf(t, old.AccessToken)

	keys := f.env["SIGNING_KEYS_DIR"]
	// Step 1: publish the new key, keep signing with the old one.
	writeKey(t, keys, "rotated-2")
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE": oldKid})
	if jwks := get(t, f.Base+"/oauth/jwks"); !strings.Contains(jwks, oldKid) || !strings.Contains(jwks, "rotated-2") {
		t.Fatalf("JWKS must publish both keys: %s", jwks)
	}
	// Step 2: sign with the new key.
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE": "rotated-2"})
	fresh := f.fullFlow(c, newAuthRequest(c))
	if kidOf(t, fresh.AccessToken) != "rotated-2" {
		t.Fatalf("new tokens signed with %q", kidOf(t, fresh.AccessToken))
	}
	v := f.Verifier(aud)
	for name, tok := range map[string]string{"old": old.AccessToken, "new": fresh.AccessToken} {
		if _, err := v.Verify(ctxT(t), tok); err != nil {
			t.Errorf("%s token while both keys are published: %v", name, err)
		}
	}
	// Step 3: retire the old key after its tokens expired.
	if err := os.Remove(filepath.Join(keys, oldKid+".pem")); err != nil {
		t.Fatal(err)
	}
	f.restart(nil)
	v = f.Verifier(aud)
	if _, err := v.Verify(ctxT(t), old.AccessToken); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Errorf("old token after its key was retired: %v, want invalid", err)
	}
	if _, err := v.Verify(ctxT(t), fresh.AccessToken); err != nil {
		t.Errorf("new token after retiring the old key: %v", err)
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
