package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A code redemption whose listing under the subject fails while its script
// redeems the code still succeeds (code.go, redeem): answering 503 there
// would make the client's retry a replay that revokes the grant. The
// subject's index is made a string, so that its ZADD fails (WRONGTYPE) in
// the same pipeline as the script.
func TestRedemptionIsDecidedByItsScriptNotItsListing(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s := newStoreOn(t, rdb, 2*time.Second)
	index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
	if err := rdb.Set(ctx, index, "not a sorted set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, index).Err(); err == nil {
		t.Fatal("the index accepted ZADD: the listing would not fail, the test would prove nothing")
	}

	req := request(t, s, "wl-1")
	if err := s.CreateAuthorizeCodeSession(ctx, "wl-1.c", req); err != nil {
		t.Fatal(err)
	}
	if err := redeem(ctx, s, "wl-1.c", req, "wl-1.rt1"); err != nil {
		t.Fatalf("redemption with its listing failing: %v, want it redeemed (the script's answer decides)", err)
	}
	// The grant exists and refreshes.
	if _, err := s.GetRefreshTokenSession(store.WithRequestScope(ctx), "wl-1.rt1", oauth.NewSession()); err != nil {
		t.Fatalf("the redeemed grant's refresh token: %v", err)
	}
	// The grant is listed again in the background once the key is fixed.
	if err := rdb.Del(ctx, index).Err(); err != nil {
		t.Fatal(err)
	}
	testharness.Eventually(t, 5*time.Second, "the grant whose listing failed listed again", func() (bool, string) {
		list, err := s.Grants(ctx, "user-1", func() fosite.Session { return oauth.NewSession() })
		if err != nil {
			return false, err.Error()
		}
		for _, g := range list {
			if g.ID == "wl-1" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("listed: %v", list)
	})
	// The code was redeemed once: using it again is a replay.
	if err := redeem(ctx, s, "wl-1.c", req, "wl-1.rt9"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) && !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("second redemption: %v, want a replay", err)
	}
}

// A listing that stays broken — the index keeps its wrong type past the
// background re-listing — leaves the redemption succeeded and its grant
// live: the re-listing never fails the request. The failed re-listing is
// logged at warn, naming the grant by its id and the subject by its hash,
// with no token and not the subject itself, and counted.
func TestRedemptionSucceedsWhenItsRelistingFails(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s, logs, reg := newLoggedStore(t, rdb)
	index := redeemUnlisted(t, s, rdb, "wl-2")
	// Past the re-listing (1 s), which fails again and says so.
	line := waitForRelistLog(t, logs, "wl-2")
	if line["level"] != "WARN" || line["result"] != "failed" || line["subject_hash"] != redisx.Hash("user-1") ||
		!strings.Contains(fmt.Sprint(line["error"]), "WRONGTYPE") {
		t.Errorf("re-listing log line: %v; want level WARN, result failed, the subject's hash and the WRONGTYPE error", line)
	}
	for _, secret := range []string{"wl-2.c", "wl-2.rt1", "user-1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q (a token or the subject in clear):\n%s", secret, logs)
		}
	}
	if n := relistCount(t, reg, "failed"); n != 1 {
		t.Errorf("tollgate_auth_grant_relists_total{result=failed} = %v, want 1", n)
	}
	if v, err := rdb.Get(ctx, index).Result(); err != nil || v != "not a sorted set" {
		t.Fatalf("the wrong-typed index: %q, %v; want it left as it was", v, err)
	}
	if _, err := s.GetRefreshTokenSession(store.WithRequestScope(ctx), "wl-2.rt1", oauth.NewSession()); err != nil {
		t.Fatalf("the redeemed grant's refresh token after its re-listing failed: %v", err)
	}
}

// Close abandons a re-listing not yet due, at once: no command of it
// reaches the client closed right after (as the server closes them,
// run.go), and the grant left unlisted is logged and counted.
func TestCloseAbandonsPendingRelisting(t *testing.T) {
	rdb := testharness.StartRedis(t).Client()
	s, logs, reg := newLoggedStore(t, rdb)
	index := redeemUnlisted(t, s, rdb, "wl-3")
	var late atomic.Int32 // the index's ZADDs from now on: the re-listing's
	rdb.AddHook(afterCommand{name: "zadd", key: index, fn: func() { late.Add(1) }})
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v: it waited for the re-listing's timer", d)
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	line := waitForRelistLog(t, logs, "wl-3")
	if line["level"] != "WARN" || line["result"] != "closed" {
		t.Errorf("re-listing log line: %v; want level WARN, result closed", line)
	}
	if n := relistCount(t, reg, "closed"); n != 1 {
		t.Errorf("tollgate_auth_grant_relists_total{result=closed} = %v, want 1", n)
	}
	time.Sleep(2 * time.Second) // past the re-listing's time (1 s)
	if n := late.Load(); n != 0 {
		t.Fatalf("the re-listing sent %d ZADD after Close, on the closed client", n)
	}
}

// redeemUnlisted redeems the code "<id>.c" of grant id (refresh token
// "<id>.rt1") while its listing fails: user-1's index is made a string,
// so that its ZADD fails (WRONGTYPE). It returns the index's key, left
// wrong-typed.
func redeemUnlisted(t *testing.T, s *store.Store, rdb *redisx.Client, id string) string {
	t.Helper()
	ctx := context.Background()
	index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
	if err := rdb.Set(ctx, index, "not a sorted set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	req := request(t, s, id)
	if err := s.CreateAuthorizeCodeSession(ctx, id+".c", req); err != nil {
		t.Fatal(err)
	}
	if err := redeem(ctx, s, id+".c", req, id+".rt1"); err != nil {
		t.Fatalf("redemption with its listing failing: %v, want it redeemed", err)
	}
	return index
}

// newLoggedStore is newStoreOn with its log (JSON) and metrics kept.
func newLoggedStore(t *testing.T, rdb *redisx.Client) (*store.Store, *testharness.SyncBuffer, *prometheus.Registry) {
	t.Helper()
	logs := &testharness.SyncBuffer{}
	s := newStoreOn(t, rdb, 2*time.Second, store.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	reg := prometheus.NewRegistry()
	if err := s.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs, reg
}

// waitForRelistLog waits for the log line of grant id's re-listing.
func waitForRelistLog(t *testing.T, logs *testharness.SyncBuffer, id string) map[string]any {
	t.Helper()
	var line map[string]any
	testharness.Eventually(t, 5*time.Second, "the re-listing of "+id+" logged", func() (bool, string) {
		for _, l := range strings.Split(logs.String(), "\n") {
			line = nil
			if json.Unmarshal([]byte(l), &line) == nil && line["grant_id"] == id {
				return true, ""
			}
		}
		return false, logs.String()
	})
	return line
}

// relistCount is tollgate_auth_grant_relists_total{result} on reg.
func relistCount(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_auth_grant_relists_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Grants drops an index member whose grant record is gone, but never one
// younger than the sweep's minimum age: a redemption lists its grant
// before its script writes the record (one pipeline, not a transaction;
// in a Redis Cluster the index is on another node), so a listing read in
// between would otherwise unlist a grant being created, and a later
// revocation of the subject's grants would miss it.
func TestGrantsSparesYoungMembersWithoutRecord(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s := newStoreOn(t, rdb, 2*time.Second)
	index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
	now := time.Now()
	if err := rdb.ZAdd(ctx, index,
		redis.Z{Score: float64(now.UnixMilli()), Member: "being-created"},
		redis.Z{Score: float64(now.Add(-2 * time.Minute).UnixMilli()), Member: "long-gone"},
	).Err(); err != nil {
		t.Fatal(err)
	}
	list, err := s.Grants(ctx, "user-1", func() fosite.Session { return oauth.NewSession() })
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("listed %v, want nothing (neither member has a record)", list)
	}
	if err := rdb.ZScore(ctx, index, "being-created").Err(); err != nil {
		t.Errorf("the young member without a record was dropped from the index (%v), want it kept", err)
	}
	if err := rdb.ZScore(ctx, index, "long-gone").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("the old member without a record: %v, want it dropped (redis: nil)", err)
	}
}
