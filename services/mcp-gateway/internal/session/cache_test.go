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

// Admit reads a record once per replica, then only asks Redis whether the
// session lives: a DELETE through another replica's store, or an expiry, is
// seen on the next call.
func TestAdmitRemembersRecordsButAsksLiveness(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	a := session.NewStore(r.Client(), 4*time.Minute)
	b := session.NewStore(r.Client(), 4*time.Minute)
	var hits, misses int
	b.OnLookup(func(l session.Lookup) {
		switch l {
		case session.LookupHit:
			hits++
		case session.LookupMiss:
			misses++
		default:
			t.Errorf("lookup %s while not following terminations", l)
		}
	})
	id := session.NewID()
	if err := a.Create(ctx, id, session.Record{Subject: "u1", ClientID: "c1", Transport: session.Streamable}); err != nil {
		t.Fatal(err)
	}
	// Before initialize has settled the version, the record is read every time.
	for range 2 {
		if rec, err := b.Admit(ctx, id, nil); err != nil || rec.Subject != "u1" {
			t.Fatalf("%+v %v", rec, err)
		}
	}
	if misses != 2 || b.Cached() != 0 {
		t.Fatalf("misses %d, cached %d before negotiation", misses, b.Cached())
	}
	if err := a.Negotiated(ctx, id, "2025-11-25", `{"name":"x"}`, `{}`); err != nil {
		t.Fatal(err)
	}
	queued := 0
	for range 3 {
		rec, err := b.Admit(ctx, id, func(p redis.Pipeliner) { p.Ping(ctx); queued++ })
		// The client's name is kept in memory (a check of ChatGPT's
		// clientInfo.name reads it on every request), its info is not.
		if err != nil || rec.Subject != "u1" || rec.ClientID != "c1" || rec.ProtocolVersion != "2025-11-25" || rec.Transport != session.Streamable ||
			rec.ClientName != "x" {
			t.Fatalf("%+v %v", rec, err)
		}
	}
	if misses != 3 || hits != 2 || queued != 3 || b.Cached() != 1 {
		t.Fatalf("misses %d, hits %d, queued %d, cached %d", misses, hits, queued, b.Cached())
	}
	// The idle TTL is not renewed again within the renewal interval (2m here).
	key := r.Client().Key("mcp", "session", redisx.Tag(redisx.Hash(id)))
	if err := r.Client().PExpire(ctx, key, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	if ttl := r.Client().PTTL(ctx, key).Val(); ttl > time.Minute {
		t.Errorf("TTL renewed to %s within the renewal interval", ttl)
	}
	// DELETE through A: B sees it on its next call, without any announcement.
	if ok, err := a.Delete(ctx, id); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := b.Admit(ctx, id, nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after DELETE elsewhere: %v", err)
	}
	if b.Cached() != 0 {
		t.Error("a deleted session stayed in memory")
	}
	if _, err := b.Admit(ctx, "", nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("empty id: %v", err)
	}
}

// A record is renewed once the renewal interval has passed; Forget drops it.
func TestAdmitRenewsAndForgets(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	s := session.NewStore(r.Client(), 2*time.Second) // renewal interval 1s
	id := session.NewID()
	if err := s.Create(ctx, id, session.Record{Subject: "u1", Transport: session.LegacySSE}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Admit(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	key := r.Client().Key("mcp", "session", redisx.Tag(redisx.Hash(id)))
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Admit(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	if ttl := r.Client().PTTL(ctx, key).Val(); ttl < 1500*time.Millisecond {
		t.Errorf("TTL %s: not renewed after the interval", ttl)
	}
	s.Forget(redisx.Hash(id))
	if s.Cached() != 0 {
		t.Error("Forget kept the record")
	}
	// Expiry is seen like a DELETE.
	if _, err := s.Admit(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	r.Client().Del(ctx, key)
	if _, err := s.Admit(ctx, id, nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after expiry: %v", err)
	}
}

// While the store follows terminations, a confirmed session is admitted
// from memory without a Redis command until its renewal is due; what ends
// it is the announcement (Forget), a new subscription (Follow) makes every
// session confirmed again first, and an expiry is seen at the renewal.
func TestAdmitFromMemoryWhileFollowing(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	a := session.NewStore(r.Client(), 4*time.Minute)
	b := session.NewStore(r.Client(), 2*time.Second) // renewal interval 1s
	var lookups []session.Lookup
	b.OnLookup(func(l session.Lookup) { lookups = append(lookups, l) })
	expect := func(step string, want ...session.Lookup) {
		t.Helper()
		if len(lookups) != len(want) {
			t.Fatalf("%s: lookups %v, want %v", step, lookups, want)
		}
		for i := range want {
			if lookups[i] != want[i] {
				t.Fatalf("%s: lookups %v, want %v", step, lookups, want)
			}
		}
		lookups = nil
	}
	admit := func(id string) {
		t.Helper()
		if rec, err := b.Admit(ctx, id, nil); err != nil || rec.Subject != "u1" {
			t.Fatalf("%+v %v", rec, err)
		}
	}
	newSession := func() string {
		id := session.NewID()
		if err := a.Create(ctx, id, session.Record{Subject: "u1", Transport: session.Streamable}); err != nil {
			t.Fatal(err)
		}
		if err := a.Negotiated(ctx, id, "2025-11-25", `{}`, `{}`); err != nil {
			t.Fatal(err)
		}
		return id
	}
	b.Follow(true)
	id := newSession()
	admit(id)
	admit(id)
	admit(id)
	expect("following", session.LookupMiss, session.LookupMemory, session.LookupMemory)
	// A caller that adds commands of its own always goes to Redis.
	if _, err := b.Admit(ctx, id, func(p redis.Pipeliner) { p.Ping(ctx) }); err != nil {
		t.Fatal(err)
	}
	expect("with queued commands", session.LookupHit)

	// The announcement is what ends it here.
	if ok, err := a.Delete(ctx, id); err != nil || !ok {
		t.Fatal(ok, err)
	}
	b.Forget(redisx.Hash(id))
	if _, err := b.Admit(ctx, id, nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after the announced DELETE: %v", err)
	}
	expect("after Forget", session.LookupMiss)

	// A new subscription (which may have missed announcements): confirmed again once.
	id = newSession()
	admit(id)
	b.Follow(true)
	admit(id)
	admit(id)
	expect("resubscribed", session.LookupMiss, session.LookupHit, session.LookupMemory)
	// Not following: Redis is asked every time.
	b.Follow(false)
	admit(id)
	admit(id)
	expect("not following", session.LookupHit, session.LookupHit)
	b.Follow(true)
	admit(id)
	admit(id)
	expect("following again", session.LookupHit, session.LookupMemory)

	// An expiry (the key gone without an announcement) is seen when the
	// renewal is due, before the idle TTL could have run out.
	key := r.Client().Key("mcp", "session", redisx.Tag(redisx.Hash(id)))
	r.Client().Del(ctx, key)
	time.Sleep(1100 * time.Millisecond)
	if _, err := b.Admit(ctx, id, nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after expiry: %v", err)
	}
	expect("expired", session.LookupHit)
}

// Redis down is an error, not a missing session.
func TestAdmitRedisDown(t *testing.T) {
	r := testharness.StartRedis(t)
	s := session.NewStore(r.Client(), time.Minute)
	r.Stop()
	if _, err := s.Admit(context.Background(), session.NewID(), nil); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Fatalf("got %v", err)
	}
}
