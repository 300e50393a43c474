package tokens_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// countingSource counts the fetches that started and ended.
type countingSource struct {
	real           tokens.KeySource
	started, ended atomic.Int64
}

func (c *countingSource) FetchKeySet(ctx context.Context) (tokens.KeySet, error) {
	c.started.Add(1)
	defer c.ended.Add(1)
	return c.real.FetchKeySet(ctx)
}

// TestUnknownKidDoesNotWaitForAHungAuthServer: with a key set cached and
// the auth-server hung (its gRPC port accepts and never answers), tokens
// naming a kid the set lacks — a key activated during the hang, or
// made-up kids — are answered ErrKeysUnavailable (503) after at most
// tokens.UnknownKeyWait, not after the whole fetch (tokens.FetchTimeout):
// every one of them returns while the single forced fetch they share is
// still hung, though each request's own deadline is far longer. Tokens of
// a cached kid verify meanwhile, and once the forced fetch has failed a
// new unknown kid starts no fetch.
func TestUnknownKidDoesNotWaitForAHungAuthServer(t *testing.T) {
	if tokens.UnknownKeyWait*3 > tokens.FetchTimeout {
		t.Fatalf("UnknownKeyWait %s is not well below FetchTimeout %s: this test could not tell them apart", tokens.UnknownKeyWait, tokens.FetchTimeout)
	}
	iss := tokentest.Start(t, issuer)
	proxy := testharness.StartHungProxy(t, iss.Addr)
	conn, err := grpc.NewClient(proxy.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	src := &countingSource{real: tokens.NewGRPCKeySource(conn)}
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: src, Audiences: []string{mcpAud}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Ready(ctx); err != nil {
		t.Fatalf("first key fetch: %v", err)
	}
	known := iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "u", IssuedAt: time.Now(), ExpiresIn: time.Hour})

	a, b := tokentest.Keys()
	ring, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": a, "key-b": b}, "key-b")
	if err != nil {
		t.Fatal(err)
	}
	iss.SetRing(ring) // a key activated during the hang: this verifier has not seen it
	proxy.Hang()
	newKid := iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "u", IssuedAt: time.Now(), ExpiresIn: time.Hour})
	before := src.started.Load()

	const n = 20
	type answer struct {
		err        error
		fetchEnded bool
	}
	answers := make(chan answer, n)
	for i := range n {
		tok := newKid
		if i > 0 {
			tok = signedAs(t, fmt.Sprintf("junk-%d", i), i) // a flood of made-up kids
		}
		go func() {
			// A request's own deadline, far past FetchTimeout.
			rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer rcancel()
			_, err := v.Verify(rctx, tok)
			answers <- answer{err, src.ended.Load() > before}
		}()
	}
	for range n {
		a := <-answers
		if !errors.Is(a.err, tokens.ErrKeysUnavailable) {
			t.Errorf("unknown kid with the auth-server hung: %v, want ErrKeysUnavailable (503)", a.err)
		}
		if a.fetchEnded {
			t.Errorf("an unknown kid's request waited until the hung fetch ended (FetchTimeout %s) instead of at most UnknownKeyWait %s", tokens.FetchTimeout, tokens.UnknownKeyWait)
		}
	}
	if got := src.started.Load() - before; got != 1 {
		t.Errorf("%d unknown-kid requests started %d fetches, want 1 (shared)", n, got)
	}
	if _, err := v.Verify(ctx, known); err != nil {
		t.Errorf("a cached kid's token with the auth-server hung: %v", err)
	}

	// Once the forced fetch has failed, an unknown kid is answered at once
	// from that failure (MinRefreshInterval) and starts no fetch.
	testharness.Eventually(t, 20*time.Second, "the hung fetch fails", func() (bool, string) {
		return src.ended.Load() > before, fmt.Sprintf("%d fetches ended", src.ended.Load())
	})
	if _, err := v.Verify(ctx, signedAs(t, "junk-after", 99)); !errors.Is(err, tokens.ErrKeysUnavailable) {
		t.Errorf("unknown kid after the failed fetch: %v, want ErrKeysUnavailable", err)
	}
	if got := src.started.Load() - before; got != 1 {
		t.Errorf("an unknown kid after the failed fetch started a fetch (%d in all)", got)
	}
}
