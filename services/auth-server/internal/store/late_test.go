package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A refresh answered 503 while Redis hung changes nothing, even though its
// script, written to Redis's socket, runs when Redis resumes: the client's
// retry with the same refresh token, after the grace window, refreshes
// instead of counting as reuse and revoking the grant (found by the
// session-13 breaker: with the rotation run late and stamped with the
// caller's time, the retry revoked the grant and logged the user out).
func TestRotationAfterItsCallerGaveUpIsRefused(t *testing.T) {
	ctx := context.Background()
	r := testharness.StartRedis(t)
	rdb := shortCommandClient(t, r)
	const grace = 2 * time.Second
	s := newStoreOn(t, rdb, grace)
	grant := func(id string) {
		t.Helper()
		req := request(t, s, id)
		if err := s.CreateAuthorizeCodeSession(ctx, id+".c", req); err != nil {
			t.Fatal(err)
		}
		if err := redeem(ctx, s, id+".c", req, id+".rt1"); err != nil {
			t.Fatal(err)
		}
	}
	grant("late-0")
	grant("late-1")
	// Another grant's refresh loads the script into Redis, so that the
	// hung call is the script itself (EVALSHA), not a NOSCRIPT probe.
	if _, err := refreshAs(ctx, s, nil, "late-0.rt1", "late-0.rt2"); err != nil {
		t.Fatal(err)
	}

	// Redis's count of EVALSHA calls: the hung one must have run before
	// the retry, or the test would prove nothing.
	before := evalshaCalls(t, rdb)
	r.Pause() // and resumed when the test ends, should it fail first
	called := time.Now()
	if _, err := refreshAs(ctx, s, nil, "late-1.rt1", "late-1.rt2"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("refresh while Redis hangs: %v, want ErrUnavailable", err)
	}
	// Resume once the caller's give-up time, the clocks' allowance and the
	// grace window have all passed since the call.
	resumeAfterScript(t, r, rdb, called.Add(rdb.GiveUpAfter()+time.Second+grace+500*time.Millisecond), before, "the refresh script written while Redis hung")
	// The retry the 503 invited: the token is still the grant's current one.
	if _, err := refreshAs(ctx, s, nil, "late-1.rt1", "late-1.rt2"); err != nil {
		t.Fatalf("retrying the refresh after its 503: %v (the late rotation ran, the retry counted as reuse)", err)
	}
	// And the grant lives on: its new token refreshes.
	if _, err := refreshAs(ctx, s, nil, "late-1.rt2", "late-1.rt3"); err != nil {
		t.Fatalf("refresh with the new token: %v", err)
	}
}

// resumeAfterScript resumes the paused r at at, waits for rdb to answer
// and for Redis to have run script, the EVALSHA call written while it hung
// (its count of EVALSHA calls past before): without that call run, what
// the test goes on to check would prove nothing.
func resumeAfterScript(t *testing.T, r *testharness.Redis, rdb *redisx.Client, at time.Time, before int, script string) {
	t.Helper()
	time.Sleep(time.Until(at))
	r.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Redis did not answer after resuming")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for evalshaCalls(t, rdb) < before+1 {
		if time.Now().After(deadline) {
			t.Fatal(script + " never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// evalshaCalls is Redis's count of EVALSHA calls (INFO commandstats).
func evalshaCalls(t *testing.T, rdb *redisx.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(info, "cmdstat_evalsha:calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	return n
}

// A code exchange answered 503 while Redis hung leaves the code
// unredeemed, even though its redemption script, written to Redis's
// socket, runs when Redis resumes: the client's retry, as Retry-After
// invites, redeems the code instead of replaying it — which would revoke
// the grant the late redemption created and send the user to sign in
// again (docs/reference/oauth.md, "Codes").
func TestRedemptionAfterItsCallerGaveUpIsRefused(t *testing.T) {
	ctx := context.Background()
	r := testharness.StartRedis(t)
	rdb := shortCommandClient(t, r)
	s := newStoreOn(t, rdb, 2*time.Second)
	// exchange is a code grant in fosite's order: the code's read (which
	// answers ErrInvalidatedAuthorizeCode when the code was used), then
	// the redemption with the grant and its refresh token.
	exchange := func(id string) error {
		rctx := store.WithRequestScope(ctx)
		req, err := s.GetAuthorizeCodeSession(rctx, id+".c", oauth.NewSession())
		if err != nil {
			return err
		}
		return redeem(rctx, s, id+".c", req, id+".rt1")
	}
	for _, id := range []string{"late-code-0", "late-code-1"} {
		if err := s.CreateAuthorizeCodeSession(ctx, id+".c", request(t, s, id)); err != nil {
			t.Fatal(err)
		}
	}
	// Another code's redemption loads the script into Redis, so that the
	// hung call is the script itself (EVALSHA), not a NOSCRIPT probe.
	if err := exchange("late-code-0"); err != nil {
		t.Fatal(err)
	}
	// The hung redemption's code, read before Redis hangs (a read that
	// times out first leaves nothing in Redis's socket to redeem).
	rctx := store.WithRequestScope(ctx)
	req, err := s.GetAuthorizeCodeSession(rctx, "late-code-1.c", oauth.NewSession())
	if err != nil {
		t.Fatal(err)
	}

	before := evalshaCalls(t, rdb)
	r.Pause() // and resumed when the test ends, should it fail first
	called := time.Now()
	if err := redeem(rctx, s, "late-code-1.c", req, "late-code-1.rt1"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("redemption while Redis hangs: %v, want ErrUnavailable", err)
	}
	// Resume once the caller's give-up time and the clocks' allowance have
	// passed since the call.
	resumeAfterScript(t, r, rdb, called.Add(rdb.GiveUpAfter()+time.Second+500*time.Millisecond), before, "the redemption script written while Redis hung")
	// The retry the 503 invited: the code is redeemed, not replayed.
	if err := exchange("late-code-1"); err != nil {
		t.Fatalf("retrying the code exchange after its 503: %v (the late redemption ran, the retry counted as a replay)", err)
	}
	// And the grant lives: it is read, and its refresh token refreshes.
	if _, err := s.GetRefreshTokenSession(ctx, "late-code-1.rt1", oauth.NewSession()); err != nil {
		t.Fatalf("the retry's grant: %v", err)
	}
	if _, err := refreshAs(ctx, s, nil, "late-code-1.rt1", "late-code-1.rt2"); err != nil {
		t.Fatalf("refresh with the retry's token: %v", err)
	}
	// The code is single use still: a third use is a replay.
	if err := exchange("late-code-1"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("a third use of the code: %v, want ErrInvalidatedAuthorizeCode", err)
	}
}

// shortCommandClient is a private client of r, as r.Client(), whose
// commands give up after 200 ms (REDIS_COMMAND_TIMEOUT) instead of the
// harness's second: a caller of a paused Redis gives up, as one answered
// 503 does, well before the test resumes it.
func shortCommandClient(t *testing.T, r *testharness.Redis) *redisx.Client {
	t.Helper()
	cfg := r.Config()
	cfg.CommandTimeout = 200 * time.Millisecond
	rdb, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
