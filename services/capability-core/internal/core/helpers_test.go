package core_test

import (
	"crypto/rsa"
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

func mustRing(t *testing.T, k *rsa.PrivateKey) *tokens.KeyRing {
	t.Helper()
	r, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": k}, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	return r
}
