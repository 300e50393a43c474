package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// ageEntries moves every entry of set d into the past (as if last used d
// earlier), as a replica's renewal would have left it.
func ageEntries(t *testing.T, c *redisx.Client, set string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	for _, z := range c.ZRangeWithScores(ctx, set, 0, -1).Val() {
		z.Score -= float64(d.Milliseconds())
		if err := c.ZAddXX(ctx, set, z).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// A session's entry leaves its pair's set only after its record is gone:
// an entry whose record a stopped gateway deleted (before taking the entry
// out) is chosen again by the next Create and taken out then, reported
// not Ended; an entry that names no record (the 16-digit form, written
// while eviction was off or by an earlier version) is never chosen, so
// its session, which may be in use, keeps counting until it expires.
func TestEvictionTakesAnEntryOutOnlyOnceItsRecordIsGone(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	c := r.Client()
	s := session.NewStore(c, 30*time.Minute)
	s.LimitPerSubject(1)
	s.EvictIdleAfter(2 * time.Minute)
	var evicted []session.Evicted
	s.OnEvict(func(_ context.Context, e session.Evicted) { evicted = append(evicted, e) })
	rec := session.Record{Subject: "u1", ClientID: "app", Transport: session.Streamable}

	a := session.NewID()
	if err := s.Create(ctx, a, rec); err != nil {
		t.Fatal(err)
	}
	set := c.Keys(ctx, c.Key("mcp", "client-sessions", "*")).Val()[0]
	ageEntries(t, c, set, 5*time.Minute)
	// A gateway deleted a's record and stopped before taking its entry out.
	c.Del(ctx, c.Key("mcp", "session", redisx.Tag(redisx.Hash(a))))
	b := session.NewID()
	if err := s.Create(ctx, b, rec); err != nil {
		t.Fatalf("Create at the cap, the idle entry's record gone: %v", err)
	}
	if len(evicted) != 1 || evicted[0].Hash != redisx.Hash(a) || evicted[0].Ended || evicted[0].Err != nil {
		t.Errorf("evicted %+v, want a's hash, not Ended (its record was gone), no error", evicted)
	}
	if m := c.ZRange(ctx, set, 0, -1).Val(); len(m) != 1 || m[0] != redisx.Hash(b) {
		t.Errorf("members %v, want b's alone", m)
	}

	// b's entry in the short form, idle: it names no record to delete.
	z := c.ZRangeWithScores(ctx, set, 0, -1).Val()[0]
	c.ZRem(ctx, set, redisx.Hash(b))
	c.ZAdd(ctx, set, redis.Z{Score: z.Score - float64((10 * time.Minute).Milliseconds()), Member: redisx.Hash(b)[:16]})
	evicted = nil
	err := s.Create(ctx, session.NewID(), rec)
	var limit *session.LimitError
	if !errors.As(err, &limit) || limit.RetryAfter < 15*time.Minute {
		t.Fatalf("Create at the cap, the idle entry of the short form: %v, want a LimitError until it expires (about 20 min)", err)
	}
	if len(evicted) != 0 {
		t.Errorf("evicted %+v", evicted)
	}
	if ok, err := s.Exists(ctx, b); err != nil || !ok {
		t.Errorf("b after the refused Create: live %v, %v", ok, err)
	}
}
