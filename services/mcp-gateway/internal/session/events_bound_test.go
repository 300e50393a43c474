package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A session's recorded streams are bounded (SessionStreams, SessionEventBytes):
// a client that asked for progress on every tools/call made a new Redis
// stream per call, each kept for the idle TTL, with no bound on their
// number or bytes. Past the count the oldest stream is forgotten; past the
// bytes the oldest other streams are dropped, or the event's own stream
// when it alone is over; a dropped stream's later events are refused
// (ErrStreamDropped: sent live without an id) and its earlier ids are
// unknown, never replayed with a gap.
func TestEventsBounded(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) { eventsBounded(t, testharness.RedisClient(t, setup)) })
	}
}

func eventsBounded(t *testing.T, rdb *redisx.Client) {
	ctx := context.Background()
	streams, bytes := session.SessionStreams, session.SessionEventBytes
	t.Cleanup(func() { session.SessionStreams, session.SessionEventBytes = streams, bytes })
	session.SessionStreams, session.SessionEventBytes = 4, 1000
	s := session.NewStore(rdb, time.Minute)
	ev := session.NewEvents(rdb, s, 10)
	sid := session.NewID()
	if err := s.Create(ctx, sid, session.Record{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	msg := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }
	store := func(stream string, n int) (string, error) { return ev.StoreEvent(ctx, sid, stream, msg(n)) }
	must := func(stream string, n int) string {
		t.Helper()
		id, err := store(stream, n)
		if err != nil {
			t.Fatalf("%s, %d bytes: %v", stream, n, err)
		}
		return id
	}
	known := func(id string, want bool) {
		t.Helper()
		err := ev.Known(ctx, sid, id)
		if want && err != nil || !want && !errors.Is(err, server.ErrUnknownEventID) {
			t.Errorf("Known(%s) = %v, want known %v", id, err, want)
		}
	}
	ids := map[string]string{}
	for _, st := range []string{"s1", "s2", "s3", "s4"} {
		ids[st] = must(st, 100)
	}
	// A fifth stream: the oldest (s1) is forgotten.
	ids["s5"] = must("s5", 100)
	known(ids["s1"], false)
	known(ids["s2"], true)
	// 400 bytes recorded; 700 more drop the oldest other stream (s2).
	last5 := must("s5", 700)
	known(ids["s2"], false)
	known(ids["s3"], true)
	n := 0
	if _, err := ev.ReplayEventsAfter(ctx, sid, ids["s5"], func(string, json.RawMessage) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("s5 replay: %v, %d events", err, n)
	}
	// An event over the bytes by itself drops its own stream only.
	if _, err := store("s3", 1001); !errors.Is(err, session.ErrStreamDropped) {
		t.Errorf("s3, 1001 bytes: %v, want ErrStreamDropped", err)
	}
	known(ids["s3"], false)
	known(last5, true)
	known(ids["s4"], true)
	// Its later events are not recorded either: no gap behind a known id.
	if _, err := store("s3", 10); !errors.Is(err, session.ErrStreamDropped) {
		t.Errorf("s3 after its drop: %v, want ErrStreamDropped", err)
	}

	// The breaker's amplification: 200 streams of 50 KB events (10 MB
	// sent) leave at most the bound, plus Redis's overhead, in Redis.
	session.SessionStreams, session.SessionEventBytes = streams, bytes // the defaults
	sid = session.NewID()
	if err := s.Create(ctx, sid, session.Record{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	tag := redisx.Tag(redisx.Hash(sid))
	for i := range 200 {
		st := fmt.Sprintf("c%03d", i)
		must(st, 50_000)
		keys = append(keys, rdb.Key("mcp", "events", tag, st))
	}
	keys = append(keys, rdb.Key("mcp", "events", tag), rdb.Key("mcp", "eventsizes", tag))
	usage := func() (int64, int) {
		var used int64
		n := 0
		for _, k := range keys {
			u, err := rdb.MemoryUsage(ctx, k).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			used += u
			n++
		}
		return used, n
	}
	used, n := usage()
	if limit := int64(bytes) * 5 / 4; used > limit || n > streams+2 {
		t.Errorf("200 streams of 50 KB: %d keys, MEMORY USAGE %d bytes, want at most %d keys and %d bytes (the bound and allocator overhead)", n, used, streams+2, limit)
	}
	t.Logf("200 streams of 50 KB: %d keys, MEMORY USAGE %d bytes", n, used)
	// PurgeSession leaves nothing of them.
	if _, err := s.Delete(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if err := ev.PurgeSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if used, n := usage(); n != 0 {
		t.Errorf("after PurgeSession: %d keys, %d bytes", n, used)
	}
}
