package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

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
	cfg := r.Config()
	cfg.CommandTimeout = 200 * time.Millisecond
	rdb, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
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
	evalsha := func() int {
		t.Helper()
		info, err := rdb.Info(ctx, "commandstats").Result()
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
	before := evalsha()
	r.Pause()
	resumed := false
	defer func() {
		if !resumed {
			r.Resume()
		}
	}()
	called := time.Now()
	if _, err := refreshAs(ctx, s, nil, "late-1.rt1", "late-1.rt2"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("refresh while Redis hangs: %v, want ErrUnavailable", err)
	}
	// Resume once the caller's give-up time, the clocks' allowance and the
	// grace window have all passed since the call.
	time.Sleep(time.Until(called.Add(rdb.GiveUpAfter() + time.Second + grace + 500*time.Millisecond)))
	r.Resume()
	resumed = true
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Redis did not answer after resuming")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for evalsha() < before+1 {
		if time.Now().After(deadline) {
			t.Fatal("the refresh script written while Redis hung never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The retry the 503 invited: the token is still the grant's current one.
	if _, err := refreshAs(ctx, s, nil, "late-1.rt1", "late-1.rt2"); err != nil {
		t.Fatalf("retrying the refresh after its 503: %v (the late rotation ran, the retry counted as reuse)", err)
	}
	// And the grant lives on: its new token refreshes.
	if _, err := refreshAs(ctx, s, nil, "late-1.rt2", "late-1.rt3"); err != nil {
		t.Fatalf("refresh with the new token: %v", err)
	}
}
