package revocation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestBackendACLUser runs what a capability backend runs against Redis — a
// revocation Set that loads the records, follows the announcements and
// pings its subscription — as an ACL user with exactly the rules the chart
// creates, and checks that the user can do nothing else: no write (it
// could un-revoke a grant), no read of another key (codes, grants), no
// other channel, no server configuration.
func TestBackendACLUser(t *testing.T) {
	srv := testharness.StartRedis(t)
	fleet := srv.Client() // the default user: the fleet's credential
	defer fleet.Close()
	ctx := context.Background()

	srv.AddBackendUser(t, fleet.Prefix(), "tollgate-backend", "backend-password")
	cfg := srv.Config()
	cfg.URL = "redis://tollgate-backend:backend-password@" + srv.Addr() + "/0"
	backend, err := redisx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()

	rev := revocation.NewRevoker(fleet, time.Hour, nil)
	if err := rev.Revoke(ctx, "grant-before"); err != nil {
		t.Fatal(err)
	}
	// A reconcile far away: what the Set learns, it learns by its load and
	// its subscription, both under the backend's user.
	set := newSet(t, backend, revocation.Options{ReconcileInterval: time.Hour})
	eventually(t, 30*time.Second, "the backend's Set loads grant-before", func() bool { return set.Revoked("grant-before") })
	if err := set.Reload(ctx); err != nil {
		t.Fatalf("reload under the backend's user: %v", err)
	}
	if err := rev.Revoke(ctx, "grant-after"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the backend's Set hears of grant-after", func() bool { return set.Revoked("grant-after") })
	// A removed client: the record is under the readable revocation:*
	// keys and its announcement on the one channel the user may follow.
	if err := rev.RemoveClients(ctx, time.Now(), "removed-client"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the backend's Set hears of removed-client", func() bool {
		return set.ClientRemoved("removed-client", time.Now().Add(-time.Second))
	})
	if err := backend.Ping(ctx); err != nil {
		t.Errorf("PING under the backend's user: %v", err)
	}

	// Everything else is refused with NOPERM.
	if err := fleet.Set(ctx, fleet.Key("as", "grant2", "{g1}"), "record", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	records := backend.Key("revocation", "grants")
	refused := map[string]*redis.Cmd{
		"ZREM of the revocation set (un-revoking a grant)": backend.Do(ctx, "ZREM", records, "grant-before"),
		"ZADD to the revocation set":                       backend.Do(ctx, "ZADD", records, "1", "x"),
		"ZREM of a removed client's record":                backend.Do(ctx, "ZREM", backend.Key("revocation", "clients"), "x"),
		"DEL of the revocation set":                        backend.Do(ctx, "DEL", records),
		"GET of a grant record":                            backend.Do(ctx, "GET", backend.Key("as", "grant2", "{g1}")),
		"ZRANGE of a key outside revocation:":              backend.Do(ctx, "ZRANGE", backend.Key("as", "subject", "{s}"), "0", "-1"),
		"KEYS":                                             backend.Do(ctx, "KEYS", "*"),
		"SCAN":                                             backend.Do(ctx, "SCAN", "0"),
		"PUBLISH on the revocation channel":                backend.Do(ctx, "PUBLISH", backend.Key("revocation"), "grant-x 1"),
		"CONFIG GET requirepass":                           backend.Do(ctx, "CONFIG", "GET", "requirepass"),
		"CLIENT LIST":                                      backend.Do(ctx, "CLIENT", "LIST"),
		"FLUSHALL":                                         backend.Do(ctx, "FLUSHALL"),
		"EVAL":                                             backend.Do(ctx, "EVAL", "return 1", "0"),
	}
	for what, cmd := range refused {
		if err := cmd.Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("%s under the backend's user: got %v, want NOPERM", what, err)
		}
	}
	ps := backend.Subscribe(ctx, backend.Key("as", "events"))
	defer ps.Close()
	if _, err := ps.ReceiveTimeout(ctx, 2*time.Second); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SUBSCRIBE to another channel under the backend's user: got %v, want NOPERM", err)
	}
	if n, err := fleet.ZCard(ctx, records).Result(); err != nil || n != 2 {
		t.Errorf("the revocation set holds %d records (%v) after the backend's refused writes, want 2", n, err)
	}
}
