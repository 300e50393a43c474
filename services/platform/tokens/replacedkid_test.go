package tokens_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// slowSource answers every fetch after the first one delay late.
type slowSource struct {
	real  tokens.KeySource
	delay time.Duration
	n     atomic.Int64
}

func (s *slowSource) FetchKeySet(ctx context.Context) (tokens.KeySet, error) {
	if s.n.Add(1) > 1 {
		time.Sleep(s.delay)
	}
	return s.real.FetchKeySet(ctx)
}

// TestReplacedKidWithASlowAuthServerIsNotInvalidToken: a token of a kid
// reused for new key material, verified while the auth-server answers the
// forced refetch in 2 s (under FetchTimeout, over UnknownKeyWait), is
// answered ErrKeysUnavailable (503, Retry-After), as UnknownKeyWait says,
// or verified — never "bad signature" (401 invalid_token, which tells the
// client its valid token is bad and sends it to authorize again).
func TestReplacedKidWithASlowAuthServerIsNotInvalidToken(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	a, b := tokentest.Keys()
	ringA, _ := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": a}, "key-a")
	iss.SetRing(ringA)
	conn, err := grpc.NewClient(iss.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: &slowSource{real: tokens.NewGRPCKeySource(conn), delay: 2 * time.Second}, Audiences: []string{mcpAud}})
	old := iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "before"})
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	ringB, _ := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": b}, "key-a")
	iss.SetRing(ringB)
	fresh := iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "after"})
	_, err = v.Verify(context.Background(), fresh)
	if err != nil && !errors.Is(err, tokens.ErrKeysUnavailable) {
		t.Fatalf("valid token of the reused kid, auth-server answering in 2 s: %v, want it verified or ErrKeysUnavailable (503)", err)
	}
}
