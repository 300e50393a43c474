package revocation_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// eventually polls cond until it holds, within a bounded deadline. The
// waits below give 30 s: a bound for a loaded machine (CI runs every
// package with -race on 2 cores; a subscription to a Redis Cluster, its
// reload and an announcement can take seconds there), not a measurement —
// a passing run waits only as long as the condition takes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testharness.Eventually(t, within, what, func() (bool, string) { return cond(), "false" })
}

func newSet(t *testing.T, rdb *redisx.Client, o revocation.Options) *revocation.Set {
	t.Helper()
	o.Redis = rdb
	s, err := revocation.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.Start(ctx)
	return s
}

func TestAnnouncementReachesEverySubscriber(t *testing.T) {
	setups.Run(t, announcementReachesEverySubscriber)
}

func announcementReachesEverySubscriber(t *testing.T, r testharness.Clients) {
	a, b := newSet(t, r.Client(), revocation.Options{}), newSet(t, r.Client(), revocation.Options{})
	rev := revocation.NewRevoker(r.Client(), time.Hour, nil)
	// The subscriptions are established asynchronously; a grant revoked
	// before they are is still found by the reload that follows each
	// subscription confirmation.
	grant, other := "grant-1", "grant-2"
	if err := rev.Revoke(context.Background(), grant); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*revocation.Set{"a": a, "b": b} {
		eventually(t, 30*time.Second, "replica "+name+" refuses "+grant, func() bool { return s.Revoked(grant) })
		if s.Revoked(other) || s.Revoked("") {
			t.Errorf("replica %s: an unrevoked grant or an empty id counts as revoked", name)
		}
	}
}

func TestRevokerUpdatesItsOwnSetAtOnce(t *testing.T) {
	setups.Run(t, revokerUpdatesItsOwnSetAtOnce)
}

func revokerUpdatesItsOwnSetAtOnce(t *testing.T, r testharness.Clients) {
	local := newSet(t, r.Client(), revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	rev := revocation.NewRevoker(r.Client(), time.Hour, local)
	grant := "grant-local"
	if err := rev.Revoke(context.Background(), grant); err != nil {
		t.Fatal(err)
	}
	if !local.Revoked(grant) {
		t.Error("the revoking replica does not refuse the grant right after Revoke returned")
	}
}

// TestStateIsLoadedAtStart: a verifier started after the revocation (a
// restart, a new replica) refuses the grant before any announcement.
func TestStateIsLoadedAtStart(t *testing.T) {
	setups.Run(t, stateIsLoadedAtStart)
}

func stateIsLoadedAtStart(t *testing.T, r testharness.Clients) {
	if err := revocation.NewRevoker(r.Client(), time.Hour, nil).Revoke(context.Background(), "grant-old"); err != nil {
		t.Fatal(err)
	}
	s := newSet(t, r.Client(), revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour})
	if !s.Revoked("grant-old") {
		t.Error("a grant revoked before start is not refused after Start returned")
	}
}

// TestReplicaThatMissesAnnouncementsConverges: with no subscription at all,
// the periodic reconcile finds the revocation.
func TestReplicaThatMissesAnnouncementsConverges(t *testing.T) {
	setups.Run(t, replicaThatMissesAnnouncementsConverges)
}

func replicaThatMissesAnnouncementsConverges(t *testing.T, r testharness.Clients) {
	grant := "grant-missed"
	s := newSet(t, r.Client(), revocation.Options{NoSubscribe: true, ReconcileInterval: 50 * time.Millisecond})
	if s.Revoked(grant) {
		t.Fatal("revoked before Revoke")
	}
	if err := revocation.NewRevoker(r.Client(), time.Hour, nil).Revoke(context.Background(), grant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "reconcile finds "+grant, func() bool { return s.Revoked(grant) })
}

// TestRedisRestartResubscribesAndReloads: Redis goes away (the subscription
// drops, announcements meanwhile are lost), comes back empty-handed for the
// announcement, and the Set still learns the revocation written while it was
// resubscribing, from the reload that follows the new subscription; the
// reconcile interval is an hour, so only the resubscription can explain it.
//
// The Set logs in as an ACL user that the restarted (empty) Redis does not
// know yet: it cannot resubscribe until the record is written and the user
// is created again, so its reload cannot come before the write (without
// that, how fast the harness's restart returned decided the outcome).
func TestRedisRestartResubscribesAndReloads(t *testing.T) {
	r := testharness.StartRedis(t)
	admin := r.Client()
	createUser := func() config.Redis {
		t.Helper()
		return r.AddUser(t, "revocation-set", "set-pw", "~*", "&*", "+@all")
	}
	setClient, err := redisx.New(createUser())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setClient.Close() })
	s := newSet(t, setClient, revocation.Options{ReconcileInterval: time.Hour})
	rev := revocation.NewRevoker(admin, time.Hour, nil)
	if err := rev.Revoke(context.Background(), "grant-before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "grant-before announced", func() bool { return s.Revoked("grant-before") })

	r.Stop()
	r.Start()
	// Written straight into the records, never announced: the Set can only
	// learn it by reloading.
	writer := r.Client()
	exp := time.Now().Add(time.Hour).UnixMilli()
	if err := writer.ZAdd(context.Background(), writer.Key("revocation", "grants"), redis.Z{Score: float64(exp), Member: "grant-during"}).Err(); err != nil {
		t.Fatal(err)
	}
	if s.Revoked("grant-during") {
		t.Fatal("grant-during known before the Set could resubscribe")
	}
	createUser()
	eventually(t, 30*time.Second, "grant-during loaded after resubscribing", func() bool { return s.Revoked("grant-during") })
	if !s.Revoked("grant-before") {
		t.Error("a restart of an empty Redis made the Set forget a grant it knew")
	}
}

// TestResubscribesSoonAfterALongOutage: however long Redis was gone, a
// grant revoked right after it is back reaches every Set within about
// ResubscribeWait — the subscription's retries wait no longer than that, and
// the reload that follows the new subscription finds the record whose
// announcement the Set could not receive. (Waits doubling up to 5 s left
// such a grant accepted for up to 5 s, measured 3.5 s through /mcp after an
// outage of 12 s.) As in TestRedisRestartResubscribesAndReloads, the Set
// logs in as an ACL user the restarted Redis does not know yet: Redis's
// ACL LOG counts its failed attempts, and the user is created right after
// the seventh, when the old waits had reached 5 s.
func TestResubscribesSoonAfterALongOutage(t *testing.T) {
	r := testharness.StartRedis(t)
	const user = "revocation-set"
	createUser := func() config.Redis {
		t.Helper()
		return r.AddUser(t, user, "set-pw", "~*", "&*", "+@all")
	}
	setClient, err := redisx.New(createUser())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setClient.Close() })
	s := newSet(t, setClient, revocation.Options{ReconcileInterval: time.Hour})
	if err := revocation.NewRevoker(r.Client(), time.Hour, nil).Revoke(context.Background(), "grant-before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "grant-before announced", func() bool { return s.Revoked("grant-before") })

	r.Stop()
	r.Start()
	admin := r.Client()
	// attempts is how often the Set failed to log in since the restart:
	// each attempt adds one to every ACL LOG entry of the user (HELLO and
	// AUTH may be logged apart).
	attempts := func() int64 {
		entries, err := admin.Do(context.Background(), "ACL", "LOG").Slice()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, e := range entries {
			m := map[any]any{} // a map in RESP3, a flat list in RESP2
			switch e := e.(type) {
			case map[any]any:
				m = e
			case []any:
				for i := 0; i+1 < len(e); i += 2 {
					m[e[i]] = e[i+1]
				}
			}
			if c, _ := m["count"].(int64); m["username"] == user && m["reason"] == "auth" && c > n {
				n = c
			}
		}
		return n
	}
	testharness.Eventually(t, 60*time.Second, "seven failed resubscriptions", func() (bool, string) {
		n := attempts()
		return n >= 7, strconv.FormatInt(n, 10) + " so far"
	})
	exp := time.Now().Add(time.Hour).UnixMilli()
	if err := admin.ZAdd(context.Background(), admin.Key("revocation", "grants"), redis.Z{Score: float64(exp), Member: "grant-after"}).Err(); err != nil {
		t.Fatal(err)
	}
	createUser()
	// The deadline bounds the wait; it is not a measurement: the old 5 s
	// wait fails it, a retry within ResubscribeWait passes with seconds to
	// spare.
	eventually(t, revocation.ResubscribeWait+2500*time.Millisecond, "grant-after loaded after the outage", func() bool { return s.Revoked("grant-after") })
	if !s.Revoked("grant-before") {
		t.Error("the Set forgot a grant it knew before the outage")
	}
}

// TestRedisDownAtStart: the Set starts empty without failing, keeps the
// verifier serving, and loads the records once Redis answers.
func TestRedisDownAtStart(t *testing.T) {
	r := testharness.StartRedis(t)
	if err := revocation.NewRevoker(r.Client(), time.Hour, nil).Revoke(context.Background(), "grant-x"); err != nil {
		t.Fatal(err)
	}
	// Redis without persistence loses the record on restart; write it
	// again after the restart below.
	r.Stop()
	rdb, err := redisx.New(r.Config()) // r.Client would ping
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	s := newSet(t, rdb, revocation.Options{ReconcileInterval: 50 * time.Millisecond, Metrics: reg})
	if s.Revoked("grant-x") {
		t.Fatal("revoked without any state")
	}
	if n := counterValue(t, reg, "tollgate_revocation_sync_failures_total"); n < 1 {
		t.Errorf("sync failures = %v, want ≥ 1 after a start without Redis", n)
	}
	r.Start()
	// The client's circuit breaker opened during the outage (the Set's
	// reconciles kept failing): it lets a command through again after its
	// open interval, so the write is retried until Redis takes it.
	testharness.Eventually(t, 30*time.Second, "grant-x written once Redis is back", func() (bool, string) {
		lastErr := revocation.NewRevoker(rdb, time.Hour, nil).Revoke(context.Background(), "grant-x")
		return lastErr == nil, fmt.Sprint(lastErr)
	})
	eventually(t, 30*time.Second, "grant-x loaded once Redis is back", func() bool { return s.Revoked("grant-x") })
}

func TestRecordsExpire(t *testing.T) {
	setups.Run(t, recordsExpire)
}

func recordsExpire(t *testing.T, r testharness.Clients) {
	rdb := r.Client()
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := revocation.New(revocation.Options{Redis: rdb, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	rev := revocation.NewRevoker(rdb, time.Minute, s)
	if err := rev.Revoke(context.Background(), "grant-short"); err != nil {
		t.Fatal(err)
	}
	if !s.Revoked("grant-short") {
		t.Fatal("not revoked")
	}
	// The Redis key itself carries a TTL (every key has one).
	if ttl := rdb.PTTL(context.Background(), rdb.Key("revocation", "grants")).Val(); ttl <= 0 || ttl > 2*time.Minute {
		t.Errorf("records key TTL = %s, want (0, 2m]", ttl)
	}
	now = now.Add(2 * time.Minute)
	if s.Revoked("grant-short") {
		t.Error("a record past its retention still refuses the grant")
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after a reload past every record's expiry, want 0 (memory is bounded)", s.Len())
	}
}

func TestRevokeRefusesBadGrantIDs(t *testing.T) {
	r := testharness.StartRedis(t)
	rev := revocation.NewRevoker(r.Client(), time.Hour, nil)
	for _, id := range []string{"", "has space", strings.Repeat("x", revocation.MaxGrantIDLength+1), "new\nline"} {
		if err := rev.Revoke(context.Background(), id); !errors.Is(err, revocation.ErrInvalidGrantID) {
			t.Errorf("Revoke(%q) = %v, want ErrInvalidGrantID", id, err)
		}
	}
}

// TestMalformedAnnouncementsAreIgnored: only well-formed announcements
// change the Set.
func TestMalformedAnnouncementsAreIgnored(t *testing.T) {
	r := testharness.StartRedis(t)
	rdb := r.Client()
	reg := prometheus.NewRegistry()
	s := newSet(t, rdb, revocation.Options{ReconcileInterval: time.Hour, Metrics: reg})
	ch := rdb.Key("revocation")
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	// Wait until the subscription is up: a well-formed announcement lands.
	eventually(t, 30*time.Second, "subscribed", func() bool {
		rdb.Publish(context.Background(), ch, "probe "+exp)
		return s.Revoked("probe")
	})
	for _, p := range []string{"", "no-expiry", "bad-expiry abc", "neg -5", "sp ace " + exp} {
		rdb.Publish(context.Background(), ch, p)
	}
	rdb.Publish(context.Background(), ch, "last "+exp)
	eventually(t, 30*time.Second, "last announcement", func() bool { return s.Revoked("last") })
	for _, id := range []string{"no-expiry", "bad-expiry", "neg", "sp"} {
		if s.Revoked(id) {
			t.Errorf("malformed announcement revoked %q", id)
		}
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// setups are the shared standalone, Sentinel and Cluster deployments the
// contract tests run against.
var setups testharness.RedisSetups

func TestMain(m *testing.M) { testharness.MainWithRedisSetups(m, &setups) }

// TestShorterRetentionNeverCutsLongerRecords: two revokers with different
// retentions (replicas with different ACCESS_TOKEN_TTL during a rollout)
// share the records key. The shorter one revoking last must not shorten
// the key's expiry under the longer one's records (RFC 7009 §2.2: a
// revoked token stays unusable), for grants and removed clients alike.
func TestShorterRetentionNeverCutsLongerRecords(t *testing.T) {
	setups.Run(t, shorterRetentionNeverCutsLongerRecords)
}

func shorterRetentionNeverCutsLongerRecords(t *testing.T, r testharness.Clients) {
	rdb, ctx := r.Client(), context.Background()
	long := revocation.NewRevoker(rdb, 2*time.Hour, nil)
	short := revocation.NewRevoker(rdb, time.Minute, nil)
	if err := long.Revoke(ctx, "grant-long"); err != nil {
		t.Fatal(err)
	}
	if err := long.RemoveClients(ctx, time.Now(), "client-long"); err != nil {
		t.Fatal(err)
	}
	if err := short.Revoke(ctx, "grant-short"); err != nil {
		t.Fatal(err)
	}
	if err := short.RemoveClients(ctx, time.Now(), "client-short"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{rdb.Key("revocation", "grants"), rdb.Key("revocation", "clients")} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl < 2*time.Hour {
			t.Errorf("%s: TTL %s after a revoker retaining 1m wrote it, want ≥ 2h (the other revoker's records)", key, ttl)
		}
	}
	// A verifier reloading an hour later still refuses the long record's
	// grant: it is in Redis, not only in the memory of those that heard it.
	later := time.Now().Add(time.Hour)
	s := newSet(t, rdb, revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour, Now: func() time.Time { return later }})
	if !s.Revoked("grant-long") || s.Revoked("grant-short") {
		t.Errorf("an hour on: grant-long revoked %v (want true), grant-short %v (want false)", s.Revoked("grant-long"), s.Revoked("grant-short"))
	}
	// A key written by the short revoker alone gets its own expiry (EXPIRE
	// NX), and a longer one later extends it (EXPIRE GT).
	if err := rdb.Del(ctx, rdb.Key("revocation", "grants")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := short.Revoke(ctx, "grant-short"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, rdb.Key("revocation", "grants")).Val(); ttl <= 0 || ttl > 2*time.Minute {
		t.Errorf("fresh key TTL %s, want (0, 2m]", ttl)
	}
	if err := long.Revoke(ctx, "grant-long"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, rdb.Key("revocation", "grants")).Val(); ttl < 2*time.Hour {
		t.Errorf("TTL %s after the long revoker, want ≥ 2h", ttl)
	}
}
