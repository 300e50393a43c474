package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// The events of a GET stream (ListenStreamPrefix) live as long as their
// session: each renewal of the session (Get here; Admit's, in the same
// command) renews them, while a POST's answer stream expires one idle TTL
// after its last event and leaves the index. On a Redis Cluster too: the
// renewal script reaches the streams through the session's hash tag.
func TestGetStreamEventsLiveWithTheSession(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			rdb := testharness.RedisClient(t, setup)
			const ttl = 600 * time.Millisecond
			s := session.NewStore(rdb, ttl)
			ev := session.NewEvents(rdb, s, 10)
			sid := session.NewID()
			if err := s.Create(ctx, sid, session.Record{Subject: "u", Transport: session.Streamable}); err != nil {
				t.Fatal(err)
			}
			listen, err := ev.StoreEvent(ctx, sid, session.ListenStreamPrefix+"a", nil)
			if err != nil {
				t.Fatal(err)
			}
			answer, err := ev.StoreEvent(ctx, sid, "post1", json.RawMessage(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			for range 8 { // 1.6 s: over two TTLs
				if _, err := s.Get(ctx, sid); err != nil {
					t.Fatalf("session in use: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err := ev.Known(ctx, sid, listen); err != nil {
				t.Errorf("a GET stream's event after two TTLs of use: %v", err)
			}
			if err := ev.Known(ctx, sid, answer); !errors.Is(err, server.ErrUnknownEventID) {
				t.Errorf("a POST stream's event after two TTLs without one: %v", err)
			}
			keys := testharness.RedisKeys(t, rdb)
			if len(keys) != 3 { // the session, its index, its GET stream
				t.Errorf("keys %v, want the session's, its index and its GET stream's", keys)
			}
			for _, k := range keys {
				if d := rdb.PTTL(ctx, k).Val(); d <= 0 || d > ttl {
					t.Errorf("%s: TTL %v", k, d)
				}
			}
			for _, k := range keys {
				if strings.Contains(k, ":mcp:events:") && strings.HasSuffix(k, "}") {
					if n := rdb.SCard(ctx, k).Val(); n != 1 {
						t.Errorf("the index names %d streams, want the GET stream only", n)
					}
				}
			}
			// Unused, all of it expires.
			testharness.Eventually(t, 10*time.Second, "the session and its events expired", func() (bool, string) {
				keys := testharness.RedisKeys(t, rdb)
				return len(keys) == 0, ""
			})
		})
	}
}
