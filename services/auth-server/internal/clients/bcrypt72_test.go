package clients

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestBcryptSecretReadWhole: bcrypt reads only the first 72 bytes of a
// password, and golang.org/x/crypto's CompareHashAndPassword does not
// refuse a longer one (only GenerateFromPassword does). An operator
// secret longer than 72 bytes — 96 hex digits, 88 base64 characters of 64
// random bytes, what a "long random secret" often is — stored as bcrypt
// (made by htpasswd or Python's bcrypt, which truncate) then verifies for
// any secret sharing its first 72 bytes: a wrong secret is accepted, and
// cached as verified (brk42).
func TestBcryptSecretReadWhole(t *testing.T) {
	secret := strings.Repeat("0123456789abcdef", 6) // 96 bytes
	// What a truncating tool stores for it: the hash of its first 72 bytes.
	stored, err := bcrypt.GenerateFromPassword([]byte(secret[:72]), 4)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewSecretHasher(SecretHasherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wrong := secret[:72] + "-not-the-secret"
	if err := h.Compare(context.Background(), stored, []byte(wrong)); !errors.Is(err, ErrSecretMismatch) {
		t.Errorf("a %d-byte secret sharing only the first 72 bytes of the stored one: %v, want ErrSecretMismatch", len(wrong), err)
	}
	if err := h.Compare(context.Background(), stored, []byte(secret[:72]+"x")); !errors.Is(err, ErrSecretMismatch) {
		t.Errorf("73 bytes against a bcrypt hash: %v, want ErrSecretMismatch (bcrypt cannot tell it from its first 72)", err)
	}
}
