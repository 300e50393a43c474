package session_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// listenPrefix begins the stream id of the gateway's GET /mcp streams.
const listenPrefix = "listen-"

// A GET /mcp stream's events are renewed by the stream while it is open
// (Events.Renew), not with the session: 49c8c02 renewed, in the script
// that renewed the session, every GET stream the session had ever opened,
// so a client opening a new GET each time instead of resuming made each
// renewal renew one more key, for as long as the session lived (2000
// GETs: 2002 keys per renewal, in one blocking script). Here a session
// has 50 closed GET streams and one open, and is used for over two idle
// TTLs while the open stream renews itself: the closed streams' events
// expire, the open one's and the index live, and their TTL is never
// beyond the idle TTL; unused, everything expires. On a Redis Cluster
// too: Renew's keys share the session's slot.
func TestOnlyOpenStreamsAreRenewed(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			rdb := testharness.RedisClient(t, setup)
			// The TTL leaves the set-up (51 events) and each turn of the
			// loop below a wide margin on a loaded machine under -race: a
			// turn slower than a TTL would let the session expire (seen
			// with 600 ms).
			const ttl = 2 * time.Second
			s := session.NewStore(rdb, ttl)
			ev := session.NewEvents(rdb, s, 10)
			if got := ev.RenewEvery(); got != ttl/2 {
				t.Errorf("RenewEvery %v, want half the TTL", got)
			}
			sid := session.NewID()
			if err := s.Create(ctx, sid, session.Record{Subject: "u", Transport: session.Streamable}); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if _, err := ev.StoreEvent(ctx, sid, fmt.Sprintf("%sclosed%02d", listenPrefix, i), nil); err != nil {
					t.Fatal(err)
				}
			}
			const open = listenPrefix + "open"
			prime, err := ev.StoreEvent(ctx, sid, open, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := len(testharness.RedisKeys(t, rdb))
			for range 7 { // 7 × TTL/3: over two TTLs
				if _, err := s.Get(ctx, sid); err != nil {
					t.Fatalf("session in use: %v", err)
				}
				if err := ev.Renew(ctx, sid, open); err != nil {
					t.Fatal(err)
				}
				time.Sleep(ttl / 3)
			}
			if err := ev.Known(ctx, sid, prime); err != nil {
				t.Errorf("the open stream's priming event after two TTLs: %v", err)
			}
			keys := testharness.RedisKeys(t, rdb)
			if len(keys) != 4 { // the session, its index and sizes, the open stream
				t.Errorf("%d keys (%d before), want the session's, its index, its sizes and the open stream's: %v", len(keys), before, keys)
			}
			if !slices.ContainsFunc(keys, func(k string) bool { return len(k) > len(open) && k[len(k)-len(open):] == open }) {
				t.Errorf("keys %v, want the open stream's", keys)
			}
			for _, k := range keys {
				if d := rdb.PTTL(ctx, k).Val(); d <= 0 || d > ttl {
					t.Errorf("%s: TTL %v", k, d)
				}
			}
			// Renewing a stream that is gone makes no key.
			if err := ev.Renew(ctx, sid, listenPrefix+"closed00"); err != nil {
				t.Fatal(err)
			}
			// Unused, all of it expires.
			testharness.Eventually(t, 10*time.Second, "the session and its events expired", func() (bool, string) {
				keys := testharness.RedisKeys(t, rdb)
				return len(keys) == 0, fmt.Sprint(keys)
			})
		})
	}
}
