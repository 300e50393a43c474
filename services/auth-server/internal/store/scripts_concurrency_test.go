package store_test

// Properties of the redemption and refresh scripts that the token endpoint
// cannot reach deterministically over HTTP: two redemptions that both read
// the code before either commits, a format-1 grant refreshed by many
// requests at once while it is rewritten, and Redis hanging between a
// request's read and its commit.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// readCode is the first half of a code redemption as fosite makes it: the
// code read in the request's scope (the read the commit relies on).
func readCode(t *testing.T, ctx context.Context, s *store.Store, sig string) context.Context {
	t.Helper()
	rctx := store.WithRequestScope(ctx)
	if _, err := s.GetAuthorizeCodeSession(rctx, sig, oauth.NewSession()); err != nil {
		t.Fatalf("reading the unused code: %v", err)
	}
	return rctx
}

// The redemption and refresh scripts keep their guarantees when another
// request, a revocation or a Redis hang falls between a request's read and
// its commit (the cases below), in every Redis mode.
func TestScriptsHoldWhenInterleaved(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) { scriptsHoldWhenInterleaved(t, setup) })
	}
}

func scriptsHoldWhenInterleaved(t *testing.T, setup testharness.RedisSetup) {
	ctx := context.Background()

	// Both read the code while it was unused; the first commits. The second
	// used the code too (OAuth 2.1 §4.1.3): it fails and revokes what the
	// first got, as a replay after the commit does. Broken on purpose (the
	// loser returning ErrCodeReplayed without RevokeGrant, as before this
	// test) the winner's refresh token stays live.
	t.Run("a redemption that read the code before the winner's commit revokes the winner's grant", func(t *testing.T) {
		s, rdb := newStore(t, setup, 30*time.Second)
		req := request(t, s, "race-1")
		_, sig := code("race-1", "c")
		if err := s.CreateAuthorizeCodeSession(ctx, sig, req); err != nil {
			t.Fatal(err)
		}
		first, second := readCode(t, ctx, s, sig), readCode(t, ctx, s, sig)
		if err := redeem(first, s, sig, req, "race-1.rt1"); err != nil {
			t.Fatalf("first redemption: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "race-1.rt1", oauth.NewSession()); err != nil {
			t.Fatalf("the winner's refresh token before the second commit: %v", err)
		}
		if err := redeem(second, s, sig, req, "race-1.rt1"); !errors.Is(err, store.ErrCodeReplayed) {
			t.Fatalf("second redemption: %v, want ErrCodeReplayed", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "race-1.rt1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("the winner's refresh token after the second redemption: %v, want not found (revoked)", err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "race-1.1900000000", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("the winner's access token after the second redemption: %v, want not found", err)
		}
		if n := rdb.Exists(ctx, rdb.Key("as", "grant2", redisx.Tag("race-1"))).Val(); n != 0 {
			t.Error("the grant's record survived")
		}
	})

	// A format-1 grant (a hash) refreshed by 20 requests with its current
	// token at once, while 10 more read it for access tokens: the first
	// rotation rewrites it as format 2; all 20 succeed with the one
	// successor; one record, no hash left; after the window the successor
	// is the only live token. Broken on purpose (migrateScript answering
	// -1 where a concurrent request already migrated to the same
	// successor) the late refreshes fail.
	t.Run("a format-1 grant refreshed concurrently during its upgrade", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		id, fields := mainRecord(t)
		req := request(t, s, id)
		old := rdb.Key("as", "grant", redisx.Tag(id))
		if err := rdb.HSet(ctx, old, fields).Err(); err != nil {
			t.Fatal(err)
		}
		rdb.Expire(ctx, old, time.Hour)
		clk.ms.Store(rotatedAt(t, fields) + time.Minute.Milliseconds()) // rt1's window is over; rt2 is current
		const n, readers = 20, 10
		errs := make([]error, n+readers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; _, errs[i] = refreshAs(ctx, s, req, id+".rt2", id+".rt3") }()
		}
		for i := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[n+i] = s.GetAccessTokenSession(ctx, id+".1900000000", oauth.NewSession())
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		if rdb.Exists(ctx, old).Val() != 0 {
			t.Error("the format-1 hash is still there")
		}
		rec := rdb.Get(ctx, rdb.Key("as", "grant2", redisx.Tag(id))).Val()
		lines := strings.SplitN(rec, "\n", 4)
		if len(lines) != 4 || lines[1] != "rt3" || lines[2] != "rt2" {
			t.Fatalf("the rewritten record: %q, want current rt3, previous rt2", rec)
		}
		if _, err := s.GetRefreshTokenSession(ctx, id+".rt2", oauth.NewSession()); err != nil {
			t.Errorf("rt2 within its window: %v", err)
		}
		clk.add(31 * time.Second)
		for _, h := range []string{"rt1", "rt2"} {
			if _, err := s.GetRefreshTokenSession(ctx, id+"."+h, oauth.NewSession()); !errors.Is(err, fosite.ErrInactiveToken) {
				t.Errorf("%s after the window: %v, want reuse", h, err)
			}
		}
		if _, err := s.GetRefreshTokenSession(ctx, id+".rt3", oauth.NewSession()); err != nil {
			t.Errorf("the successor after the window: %v", err)
		}
	})

	// A grant stored under its key from before hash tags is moved on first
	// use: DUMP of the old key, RESTORE in the grant's slot. A revocation
	// that lands after the DUMP and before the RESTORE (here: run by a hook
	// right after the DUMP's answer) is final: the move does not bring the
	// grant back. Broken on purpose (the move as DUMP, RESTORE, DEL without
	// the revocation mark, as before this test) the refresh succeeds with
	// the revoked grant, restored for its TTL.
	t.Run("a revocation between a legacy grant's DUMP and RESTORE is final", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		id0, fields := mainRecord(t)
		id := "legacy-rv"
		legacy := rdb.Key("as", "grant", id)
		f := map[string]string{}
		for k, v := range fields {
			f[k] = strings.ReplaceAll(v, id0, id)
		}
		if err := rdb.HSet(ctx, legacy, f).Err(); err != nil {
			t.Fatal(err)
		}
		rdb.Expire(ctx, legacy, time.Hour)
		clk.ms.Store(rotatedAt(t, fields) + time.Minute.Milliseconds())
		var revoked atomic.Bool
		var revokeErr error
		rdb.AddHook(afterCommand{name: "dump", key: legacy, fn: func() {
			if revoked.CompareAndSwap(false, true) {
				revokeErr = s.RevokeGrant(context.Background(), id)
			}
		}})
		if _, err := refreshAs(ctx, s, request(t, s, id), id+".rt2", id+".rt3"); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("refresh of a legacy grant revoked during its move: %v, want not found", err)
		}
		if !revoked.Load() || revokeErr != nil {
			t.Fatalf("the revocation after the DUMP: ran %v, %v", revoked.Load(), revokeErr)
		}
		for _, k := range []string{legacy, rdb.Key("as", "grant", redisx.Tag(id)), rdb.Key("as", "grant2", redisx.Tag(id))} {
			if rdb.Exists(ctx, k).Val() != 0 {
				t.Errorf("%s exists after the revocation", k)
			}
		}
		if _, err := s.GetAccessTokenSession(ctx, id+".1900000000", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("access token of the revoked grant: %v, want not found", err)
		}
	})

	if setup.Mode() != config.RedisStandalone {
		return // the hang below runs once, on a server of its own
	}

	// Redis hangs (SIGSTOP) after a request read the code or the grant and
	// before its commit reaches Redis. The commit is ErrUnavailable; once
	// Redis continues, what it had received may run, but atomically: the
	// code is both used and its grant created, or neither; the refresh
	// token is rotated or not, never half. The state afterwards says what
	// the client's retry meets (docs/reference/oauth.md, "State in Redis").
	t.Run("Redis hangs between the read and the commit", func(t *testing.T) {
		r := testharness.StartRedis(t)
		rdb := r.Client()
		s := newStoreOn(t, rdb, 5*time.Minute)
		req := request(t, s, "hang-1")
		_, sig := code("hang-1", "c")
		if err := s.CreateAuthorizeCodeSession(ctx, sig, req); err != nil {
			t.Fatal(err)
		}
		rctx := readCode(t, ctx, s, sig)
		r.Pause()
		if err := redeem(rctx, s, sig, req, "hang-1.rt1"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("redemption with Redis hung: %v, want ErrUnavailable", err)
		}
		r.Resume()
		codeKey, grantKey := rdb.Key("as", "code", redisx.Tag("hang-1"), "c"), rdb.Key("as", "grant2", redisx.Tag("hang-1"))
		var used, granted bool
		testharness.Eventually(t, 10*time.Second, "Redis answers again", func() (bool, string) {
			u, err := rdb.HGet(ctx, codeKey, "used").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return false, err.Error()
			}
			used, granted = u != "", rdb.Exists(ctx, grantKey).Val() == 1
			return true, ""
		})
		if used != granted {
			t.Fatalf("after the hung redemption: code used %v, grant created %v — not atomic", used, granted)
		}
		_, err := s.GetAuthorizeCodeSession(ctx, sig, oauth.NewSession())
		switch {
		case used && !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
			t.Errorf("retry after a redemption whose answer was lost: %v, want the replay error", err)
		case !used && err != nil:
			t.Errorf("retry after a redemption that never ran: %v, want the code usable", err)
		}
		t.Logf("the hung redemption ran once Redis continued: %v", used)
		if !used {
			if err := redeem(readCode(t, ctx, s, sig), s, sig, req, "hang-1.rt1"); err != nil {
				t.Fatal(err)
			}
		}

		// A refresh whose script is sent while Redis hangs.
		rctx = store.WithRequestScope(ctx)
		store.ExpectRefresh(rctx, "hang-1.rt1", intent("hang-1.rt2"))
		r.Pause()
		if _, err := s.GetRefreshTokenSession(rctx, "hang-1.rt1", oauth.NewSession()); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("refresh with Redis hung: %v, want ErrUnavailable", err)
		}
		r.Resume()
		var rec string
		testharness.Eventually(t, 10*time.Second, "Redis answers again", func() (bool, string) {
			v, err := rdb.Get(ctx, grantKey).Result()
			if err != nil {
				return false, err.Error()
			}
			rec = v
			return true, ""
		})
		lines := strings.SplitN(rec, "\n", 4)
		rotated := lines[1] == "rt2" && lines[2] == "rt1"
		if !rotated && !(lines[1] == "rt1" && lines[2] == "") {
			t.Fatalf("after the hung refresh the record is %q: neither rotated nor as before", rec)
		}
		t.Logf("the hung refresh's script ran once Redis continued: %v", rotated)
		// The retry with the same token gets the one successor either way.
		if _, err := refreshAs(ctx, s, req, "hang-1.rt1", "hang-1.rt2"); err != nil {
			t.Fatalf("retry of the refresh: %v", err)
		}
		if v := rdb.Get(ctx, grantKey).Val(); !strings.HasPrefix(v, "g2\nrt2\nrt1\n") {
			t.Fatalf("after the retry: %q", v)
		}
	})
}
