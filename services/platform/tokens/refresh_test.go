package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// hangingSource passes fetches to the real KeySetService until hang is
// set; then every fetch blocks until its context ends, as an auth-server
// that accepts connections and never answers.
type hangingSource struct {
	real    tokens.KeySource
	hang    atomic.Bool
	fetches atomic.Int64
}

func (h *hangingSource) FetchKeySet(ctx context.Context) (tokens.KeySet, error) {
	h.fetches.Add(1)
	if h.hang.Load() {
		<-ctx.Done()
		return tokens.KeySet{}, ctx.Err()
	}
	return h.real.FetchKeySet(ctx)
}

// TestAuthServerOutageNeverStopsVerification: with the auth-server hung,
// tokens signed by a cached key verify indefinitely (long after
// KeysMaxAge) without waiting for it; the refresh runs in the background
// on its own context, and Ready reports the stale set without failing
// verification. Once the auth-server answers again, the set is refreshed
// (at the first check MinRefreshInterval after the failed fetch).
func TestAuthServerOutageNeverStopsVerification(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	src := &hangingSource{real: tokens.NewGRPCKeySource(dialIssuer(t, iss))}
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: src, Audiences: []string{mcpAud}, KeysMaxAge: time.Minute,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go v.KeepFresh(ctx)
	testharness.Eventually(t, 20*time.Second, "first key fetch", func() (bool, string) { err := v.Ready(ctx); return err == nil, fmt.Sprint(err) })

	src.hang.Store(true)
	clock.Store(now.Add(24 * time.Hour).UnixNano()) // a day later: the set is long stale
	for i := range 20 {
		tok := iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "u", IssuedAt: time.Unix(0, clock.Load()), ExpiresIn: time.Hour})
		vctx, vcancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := v.Verify(vctx, tok)
		vcancel()
		if err != nil {
			t.Fatalf("verify %d with the auth-server hung: %v", i, err)
		}
	}
	if err := v.Ready(ctx); err == nil {
		t.Error("Ready reports a day-old key set as fresh")
	}
	if src.fetches.Load() < 2 {
		t.Error("no background refresh was attempted for the stale set")
	}

	src.hang.Store(false)
	// A failed fetch is not retried for requests within MinRefreshInterval
	// (10s): once the hung fetch has failed, past that the next check
	// refreshes.
	testharness.Eventually(t, 20*time.Second, "the hung fetch fails", func() (bool, string) {
		err := v.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "refresh failing"), fmt.Sprint(err)
	})
	clock.Store(now.Add(24*time.Hour + 11*time.Second).UnixNano())
	testharness.Eventually(t, 20*time.Second, "refresh after the auth-server returns", func() (bool, string) { err := v.Ready(ctx); return err == nil, fmt.Sprint(err) })
}

// TestFirstFetchWaitsOnlyForTheCaller: before any key set is cached a
// request waits for the fetch at most until its own deadline, and the
// fetch it started is not cancelled with it.
func TestFirstFetchWaitsOnlyForTheCaller(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	src := &hangingSource{real: tokens.NewGRPCKeySource(dialIssuer(t, iss))}
	src.hang.Store(true)
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: src, Audiences: []string{mcpAud}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, iss.Mint(t, tokentest.Token{Audience: mcpAud}))
	if !errors.Is(err, tokens.ErrKeysUnavailable) {
		t.Fatalf("verify before any key set with the auth-server hung: %v, want ErrKeysUnavailable", err)
	}
}

func dialIssuer(t *testing.T, iss *tokentest.Issuer) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(iss.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
