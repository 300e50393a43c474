package tokens_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// failingKeySet is a real gRPC KeySetService that answers at once with
// UNAVAILABLE while fail is set — an auth-server that is overloaded or
// starting up, behind a proxy that answers for it — and counts every call.
type failingKeySet struct {
	authv1.UnimplementedKeySetServiceServer
	ring  *tokens.KeyRing
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *failingKeySet) GetKeySet(context.Context, *authv1.GetKeySetRequest) (*authv1.GetKeySetResponse, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, status.Error(codes.Unavailable, "overloaded")
	}
	return &authv1.GetKeySetResponse{Issuer: issuer, JwksJson: f.ring.PublicJWKSJSON(), ActiveKeyId: f.ring.ActiveKeyID()}, nil
}

func startFailingKeySet(t *testing.T) (*failingKeySet, tokens.KeySource) {
	t.Helper()
	a, _ := tokentest.Keys()
	ring, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": a}, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	ks := &failingKeySet{ring: ring}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	authv1.RegisterKeySetServiceServer(srv, ks)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ks, tokens.NewGRPCKeySource(conn)
}

// testClock is a clock the test moves by hand (Add); it starts at the
// wall clock's time. Verifiers read it through VerifierOptions.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// verifierOfFailingKeySet starts a failingKeySet, failing from the start
// when failing, and a verifier of mcpAud tokens that fetches its keys
// there, on the clock now (nil: the wall clock).
func verifierOfFailingKeySet(t *testing.T, failing bool, now func() time.Time) (*failingKeySet, *tokens.Verifier) {
	t.Helper()
	ks, src := startFailingKeySet(t)
	ks.fail.Store(failing)
	return ks, tokens.NewVerifier(tokens.VerifierOptions{Source: src, Audiences: []string{mcpAud}, Now: now})
}

// forgedWithKnownKid is a token naming the published kid "key-a" whose
// signature is not key-a's: anyone can make one, and the verifier looks
// its kid up before it checks the signature.
func forgedWithKnownKid(t *testing.T, i int) string { return signedAs(t, "key-a", i) }

// signedWithUnknownKid is a token under kid "key-new", which the
// failing auth-server does not publish: a key the verifier has not
// learned, or a made-up kid.
func signedWithUnknownKid(t *testing.T, i int) string { return signedAs(t, "key-new", i) }

// signedAs is an access token for mcpAud with jti i, signed under kid by
// tokentest's second key.
func signedAs(t *testing.T, kid string, i int) string {
	t.Helper()
	_, b := tokentest.Keys()
	ring, _ := tokens.NewKeyRing(map[string]*rsa.PrivateKey{kid: b}, kid)
	raw, err := ring.Sign(tokens.AccessTokenType, map[string]any{"iss": issuer, "sub": "x", "aud": mcpAud, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "client_id": "c", "jti": i})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestFailingAuthServerIsNotRefetchedPerRequest: while the auth-server
// answers key-set fetches with errors, requests do not make the verifier
// fetch again and again — neither with a stale set (each request naming a
// published kid would start a background refresh as soon as the previous
// one failed) nor before the first set (each request would fetch). Within
// MinRefreshInterval of a failed fetch, requests start no fetch; a stale
// set still verifies, no set answers ErrKeysUnavailable. Once the interval
// has passed, a request fetches again and the set comes back.
func TestFailingAuthServerIsNotRefetchedPerRequest(t *testing.T) {
	const requests = 60
	clock := newTestClock()

	t.Run("stale set", func(t *testing.T) {
		ks, v := verifierOfFailingKeySet(t, false, clock.Now)
		if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, -1)); !errors.Is(err, tokens.ErrInvalidToken) {
			t.Fatalf("first fetch: %v", err)
		}
		ks.fail.Store(true)
		clock.Add(6 * time.Minute) // past KeysMaxAge (5m)
		before := ks.calls.Load()
		var wg sync.WaitGroup
		for i := range requests {
			if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, i)); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "bad signature") {
				t.Fatalf("forged token with a stale set: %v, want bad signature", err)
			}
			// Let the background fetch it may have started fail first, as
			// requests spread over time would.
			wg.Add(1)
			go func() { defer wg.Done(); _ = v.Ready(ctxT(t)) }()
			time.Sleep(5 * time.Millisecond)
		}
		wg.Wait()
		if got := ks.calls.Load() - before; got > 2 {
			t.Errorf("%d key-set fetches for %d requests against a failing auth-server within MinRefreshInterval, want at most 2", got, requests)
		}
		ks.fail.Store(false)
		clock.Add(11 * time.Second)
		_, _ = v.Verify(ctxT(t), forgedWithKnownKid(t, requests))
		testharness.Eventually(t, 10*time.Second, "refresh once the interval has passed", func() (bool, string) {
			err := v.Ready(ctxT(t))
			return err == nil, errString(err)
		})
	})

	t.Run("no set yet", func(t *testing.T) {
		ks, v := verifierOfFailingKeySet(t, true, clock.Now)
		for i := range requests {
			if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, i)); !errors.Is(err, tokens.ErrKeysUnavailable) {
				t.Fatalf("verify before any key set with a failing auth-server: %v, want ErrKeysUnavailable", err)
			}
		}
		if got := ks.calls.Load(); got > 1 {
			t.Errorf("%d key-set fetches for %d requests before the first set, want 1", got, requests)
		}
		ks.fail.Store(false)
		clock.Add(11 * time.Second)
		if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, requests)); !errors.Is(err, tokens.ErrInvalidToken) {
			t.Fatalf("verify after the interval with the auth-server back: %v, want the set fetched (bad signature)", err)
		}
	})
}

// TestUnknownKidAfterFailedRefreshIsNotFetched: with a stale set whose
// background refresh has just failed, a token with an unknown kid does
// not force a fetch within MinRefreshInterval of the failure (it did: one
// synchronous fetch, then 503); it is answered ErrKeysUnavailable (503:
// the kid may be a new key the verifier could not learn), while tokens
// naming a cached kid still verify against the stale set. Once the
// interval has passed, an unknown kid fetches again.
func TestUnknownKidAfterFailedRefreshIsNotFetched(t *testing.T) {
	clock := newTestClock()
	ks, v := verifierOfFailingKeySet(t, false, clock.Now)
	if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, -1)); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("first fetch: %v", err)
	}
	ks.fail.Store(true)
	clock.Add(6 * time.Minute)                          // past KeysMaxAge (5m)
	_, _ = v.Verify(ctxT(t), forgedWithKnownKid(t, -2)) // starts the background refresh
	testharness.Eventually(t, 10*time.Second, "the background refresh fails", func() (bool, string) {
		err := v.Ready(ctxT(t))
		return err != nil && strings.Contains(err.Error(), "refresh failing"), errString(err)
	})
	clock.Add(300 * time.Millisecond)
	before := ks.calls.Load()
	for i := range 20 {
		_, err := v.Verify(ctxT(t), signedWithUnknownKid(t, i))
		if got := ks.calls.Load() - before; got != 0 {
			t.Fatalf("unknown kid %d just after a failed refresh: %d key-set fetches (%v), want none within MinRefreshInterval", i, got, err)
		}
		if !errors.Is(err, tokens.ErrKeysUnavailable) || !strings.Contains(err.Error(), "overloaded") {
			t.Fatalf("unknown kid just after a failed refresh: %v, want ErrKeysUnavailable with the fetch's error", err)
		}
		if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, i)); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("known kid with the stale set: %v, want bad signature", err)
		}
	}
	if got := ks.calls.Load() - before; got != 0 {
		t.Errorf("%d key-set fetches within MinRefreshInterval of a failed one, want 0", got)
	}

	ks.fail.Store(false)
	clock.Add(10 * time.Second)
	if _, err := v.Verify(ctxT(t), signedWithUnknownKid(t, 100)); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "unknown kid") {
		t.Fatalf("unknown kid after the interval with the auth-server back: %v, want a fetch and unknown kid", err)
	}
	if got := ks.calls.Load() - before; got != 1 {
		t.Errorf("%d key-set fetches after the interval, want 1", got)
	}
	if err := v.Ready(ctxT(t)); err != nil {
		t.Errorf("Ready after the refetch: %v", err)
	}
}

// TestReadyBeforeFirstSetDoesNotHammer: before the first key set, Ready
// (every pod's readiness probe, the dependency metrics) does not fetch
// within MinRefreshInterval of a failed fetch (it fetched on each call);
// it answers with that failure at once. KeepFresh keeps retrying on its
// own back-off, so once the auth-server answers the pod is ready within
// seconds, without waiting for the interval.
func TestReadyBeforeFirstSetDoesNotHammer(t *testing.T) {
	clock := newTestClock()
	ks, v := verifierOfFailingKeySet(t, true, clock.Now)
	for i := range 30 {
		err := v.Ready(ctxT(t))
		if err == nil || !strings.Contains(err.Error(), "no key set yet") || !strings.Contains(err.Error(), "overloaded") {
			t.Fatalf("Ready %d with a failing auth-server: %v, want no key set yet with the fetch's error", i, err)
		}
	}
	if got := ks.calls.Load(); got != 1 {
		t.Errorf("%d key-set fetches for 30 readiness checks within MinRefreshInterval, want 1", got)
	}

	// The auth-server is back; the clock stays within the interval.
	// KeepFresh's retry (1s, 2s, ... apart) makes the pod ready.
	ks.fail.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go v.KeepFresh(ctx)
	start := time.Now()
	testharness.Eventually(t, 10*time.Second, "ready once KeepFresh fetches", func() (bool, string) {
		err := v.Ready(ctxT(t))
		return err == nil, errString(err)
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ready %s after the auth-server came back, want within KeepFresh's first retries", d)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestFirstSetIsRetriedEverySecond: a verifier that has never fetched a
// key set refuses every token, so it tries again a second after a failed
// fetch — a request or a Ready check past that second fetches, and
// KeepFresh does not back off — instead of holding the failure for
// MinRefreshInterval (10s) with KeepFresh backing off to 30s. A gateway
// pod that started before the auth-server's Service had a ready endpoint
// answered 503 for the first tools/call after every pod was Ready
// (the real-cluster test, once).
func TestFirstSetIsRetriedEverySecond(t *testing.T) {
	t.Run("requests and Ready", func(t *testing.T) {
		clock := newTestClock()
		ks, v := verifierOfFailingKeySet(t, true, clock.Now)
		if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, 0)); !errors.Is(err, tokens.ErrKeysUnavailable) {
			t.Fatalf("verify with the auth-server failing: %v, want ErrKeysUnavailable", err)
		}
		clock.Add(900 * time.Millisecond)
		if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, 1)); !errors.Is(err, tokens.ErrKeysUnavailable) {
			t.Fatalf("verify 0.9s after the failed fetch: %v, want ErrKeysUnavailable", err)
		}
		if err := v.Ready(ctxT(t)); err == nil || !strings.Contains(err.Error(), "no key set yet") {
			t.Fatalf("Ready 0.9s after the failed fetch: %v, want no key set yet", err)
		}
		if got := ks.calls.Load(); got != 1 {
			t.Fatalf("%d key-set fetches within a second of the failed one, want 1", got)
		}

		ks.fail.Store(false) // the auth-server is back
		clock.Add(200 * time.Millisecond)
		if err := v.Ready(ctxT(t)); err != nil {
			t.Fatalf("Ready 1.1s after the failed fetch, with the auth-server back: %v, want the set fetched", err)
		}
		if _, err := v.Verify(ctxT(t), forgedWithKnownKid(t, 2)); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("verify once the set is fetched: %v, want bad signature", err)
		}

		// With a set, a failed refresh is held for MinRefreshInterval as before.
		ks.fail.Store(true)
		clock.Add(6 * time.Minute) // past KeysMaxAge: Ready refreshes
		testharness.Eventually(t, 10*time.Second, "the stale set's refresh fails", func() (bool, string) {
			err := v.Ready(ctxT(t))
			return err != nil && strings.Contains(err.Error(), "refresh failing"), errString(err)
		})
		before := ks.calls.Load()
		clock.Add(2 * time.Second)
		_ = v.Ready(ctxT(t))
		if _, err := v.Verify(ctxT(t), signedWithUnknownKid(t, 3)); !errors.Is(err, tokens.ErrKeysUnavailable) {
			t.Fatalf("unknown kid 2s after a failed refresh of a set: %v, want ErrKeysUnavailable", err)
		}
		if got := ks.calls.Load() - before; got != 0 {
			t.Errorf("%d key-set fetches 2s after a failed refresh of a set, want 0 within MinRefreshInterval", got)
		}
	})

	t.Run("KeepFresh", func(t *testing.T) {
		ks, v := verifierOfFailingKeySet(t, true, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go v.KeepFresh(ctx)
		// Five fetches: 0, 1, 2, 3, 4 s; backing off (1, 2, 4, 8 s) the
		// fifth came 15 s after the first.
		testharness.Eventually(t, 12*time.Second, "KeepFresh's fifth fetch before the first set", func() (bool, string) {
			n := ks.calls.Load()
			return n >= 5, fmt.Sprintf("%d fetches", n)
		})
		ks.fail.Store(false)
		testharness.Eventually(t, 5*time.Second, "ready once the auth-server is back", func() (bool, string) {
			err := v.Ready(ctxT(t))
			return err == nil, errString(err)
		})
	})
}

// TestWrongClaimTypesAreNoBadSignature: a token the published key did
// sign, whose claims do not decode into their types (exp a string, aud a
// number, client_id an object), is refused invalid_claims at once, with
// no key-set fetch — the key set holds the right key, so a refetch could
// change nothing. It was taken for a bad signature: refused bad_signature
// after a forced refetch from the auth-server (a real gRPC
// KeySetService, counting its calls).
func TestWrongClaimTypesAreNoBadSignature(t *testing.T) {
	ks, v := verifierOfFailingKeySet(t, false, nil)
	ctx := context.Background()
	good := map[string]any{"iss": issuer, "sub": "x", "aud": mcpAud, "exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix(), "client_id": "c"}
	raw, err := ks.ring.Sign(tokens.AccessTokenType, good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatalf("a well-typed token: %v", err)
	}
	fetches := ks.calls.Load()
	for name, wrong := range map[string]map[string]any{
		"exp a string":        {"exp": "tomorrow"},
		"aud a number":        {"aud": 7},
		"client_id an object": {"client_id": map[string]any{"id": "c"}},
	} {
		claims := maps.Clone(good)
		maps.Copy(claims, wrong)
		raw, err := ks.ring.Sign(tokens.AccessTokenType, claims)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(ctx, raw)
		if c != nil || tokens.RefusalCode(err) != tokens.ReasonInvalidClaims || tokens.RefusalReason(err) != "a claim is not of its type" {
			t.Errorf("%s: claims %v, %v (code %q); want invalid_claims, \"a claim is not of its type\"", name, c, err, tokens.RefusalCode(err))
		}
	}
	if n := ks.calls.Load() - fetches; n != 0 {
		t.Errorf("tokens with wrong claim types made %d key-set fetches, want 0", n)
	}
}
