package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// Beyond the per-(subject, client) cap Create refuses with a *LimitError
// saying when the oldest session expires; DELETE and expiry free a place;
// another subject, and the same subject through another client, are not
// affected; concurrent creates on two stores (replicas) never exceed the cap.
func TestLimitPerSubject(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	a, b := session.NewStore(r.Client(), time.Minute), session.NewStore(r.Client(), time.Minute)
	a.LimitPerSubject(2)
	b.LimitPerSubject(2)
	rec := session.Record{Subject: "u1", ClientID: "app-a", Transport: session.Streamable}
	first, second := session.NewID(), session.NewID()
	if err := a.Create(ctx, first, rec); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, second, rec); err != nil {
		t.Fatal(err)
	}
	err := a.Create(ctx, session.NewID(), rec)
	var limit *session.LimitError
	if !errors.As(err, &limit) || limit.Limit != 2 || limit.RetryAfter <= 0 || limit.RetryAfter > time.Minute {
		t.Fatalf("third session: %v", err)
	}
	if err := a.Create(ctx, session.NewID(), session.Record{Subject: "u2", ClientID: "app-a"}); err != nil {
		t.Fatalf("another subject: %v", err)
	}
	// The same subject through another client has its own cap, and that
	// client's sessions take nothing from app-a's.
	other := session.Record{Subject: "u1", ClientID: "app-b", Transport: session.Streamable}
	otherIDs := []string{session.NewID(), session.NewID()}
	for _, id := range otherIDs {
		if err := b.Create(ctx, id, other); err != nil {
			t.Fatalf("same subject, another client: %v", err)
		}
	}
	if err := a.Create(ctx, session.NewID(), other); !errors.As(err, &limit) {
		t.Fatalf("app-b over its own cap: %v", err)
	}
	// A pair is not confused with another whose concatenation matches.
	if err := a.Create(ctx, session.NewID(), session.Record{Subject: "u1app-", ClientID: "a"}); err != nil {
		t.Fatalf("look-alike pair: %v", err)
	}
	// Deleting app-b's sessions frees app-b's places, not app-a's.
	for _, id := range otherIDs {
		if ok, err := a.Delete(ctx, id); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if err := a.Create(ctx, session.NewID(), rec); !errors.As(err, &limit) {
		t.Fatalf("app-a after app-b's DELETEs: %v", err)
	}
	// DELETE (through the other replica) frees a place at once.
	if ok, err := b.Delete(ctx, first); err != nil || !ok {
		t.Fatal(ok, err)
	}
	third := session.NewID()
	if err := a.Create(ctx, third, rec); err != nil {
		t.Fatalf("after DELETE: %v", err)
	}
	// Sessions that expired unused free their places.
	for _, id := range []string{second, third} {
		if ok, _ := a.Delete(ctx, id); !ok {
			t.Fatal("not deleted")
		}
	}
	short := session.NewStore(r.Client(), 300*time.Millisecond)
	short.LimitPerSubject(1)
	if err := short.Create(ctx, session.NewID(), session.Record{Subject: "u3"}); err != nil {
		t.Fatal(err)
	}
	if err := short.Create(ctx, session.NewID(), session.Record{Subject: "u3"}); !errors.As(err, &limit) {
		t.Fatalf("over the cap: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := short.Create(ctx, session.NewID(), session.Record{Subject: "u3"}); err != nil {
		t.Fatalf("after expiry: %v", err)
	}

	// Ten concurrent creates for one subject, cap 3, on two replicas.
	a.LimitPerSubject(3)
	b.LimitPerSubject(3)
	var mu sync.Mutex
	created, refused := 0, 0
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			err := s.Create(ctx, session.NewID(), session.Record{Subject: "u4"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.As(err, new(*session.LimitError)):
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if created != 3 || refused != 7 {
		t.Errorf("created %d, refused %d; want 3 and 7", created, refused)
	}
}

// What an idle session costs in Redis: its record and its entry in the
// subject's set (issue 12's budget: 512 bytes), for a client declaring no
// capabilities and for a 2025-11-25 client declaring elicitation's form and
// url modes (79 bytes of capabilities, past hash-max-listpack-value): both
// records stay listpacks (a hashtable would double the record), and the
// first — the benchmark's client — stays within the budget.
func TestIdleSessionRedisBytes(t *testing.T) {
	for _, caps := range []string{`{}`, `{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}`} {
		t.Run(fmt.Sprintf("capabilities of %d bytes", len(caps)), func(t *testing.T) {
			r := testharness.StartRedis(t)
			ctx := context.Background()
			c := r.Client()
			s := session.NewStore(c, 30*time.Minute)
			s.LimitPerSubject(100)
			const n = 50
			for range n {
				id := session.NewID()
				if err := s.Create(ctx, id, session.Record{Subject: "subject-0123456789", ClientID: "gpt-apps-mcp", Transport: session.Streamable}); err != nil {
					t.Fatal(err)
				}
				if err := s.Negotiated(ctx, id, "2025-11-25", `{"name":"openai-mcp","version":"1.0.0"}`, caps); err != nil {
					t.Fatal(err)
				}
			}
			// MEMORY USAGE counts a key's name, value and Redis' overhead for it.
			keys, err := c.Keys(ctx, "*").Result()
			if err != nil || len(keys) != n+1 {
				t.Fatalf("%d keys, %v: %v", len(keys), err, keys)
			}
			var total int64
			for _, k := range keys {
				b, err := c.Do(ctx, "MEMORY", "USAGE", k, "SAMPLES", "0").Int64()
				if err != nil {
					t.Fatal(err)
				}
				if enc := c.ObjectEncoding(ctx, k).Val(); enc != "listpack" {
					t.Errorf("%s is a %s, not a listpack", k, enc)
				}
				total += b
			}
			per := total / n
			t.Logf("Redis bytes per idle session: %d", per)
			if per > 512 && caps == `{}` {
				t.Errorf("an idle session takes %d bytes of Redis, over 512", per)
			}
		})
	}
}

// A session's entry in its pair's set is the first 16 hex digits of its
// hashed id; entries the previous version wrote (the whole hash) are still
// renewed and removed, so its sessions keep counting right after an upgrade.
func TestSubjectSetMembers(t *testing.T) {
	r := testharness.StartRedis(t)
	ctx := context.Background()
	c := r.Client()
	s := session.NewStore(c, 2*time.Second) // renewed at most every second
	s.LimitPerSubject(10)
	rec := session.Record{Subject: "u1", ClientID: "app", Transport: session.Streamable}
	id := session.NewID()
	if err := s.Create(ctx, id, rec); err != nil {
		t.Fatal(err)
	}
	sets := c.Keys(ctx, c.Key("mcp", "client-sessions", "*")).Val()
	if len(sets) != 1 {
		t.Fatalf("sets %v", sets)
	}
	set := sets[0]
	if m := c.ZRange(ctx, set, 0, -1).Val(); len(m) != 1 || m[0] != redisx.Hash(id)[:16] {
		t.Fatalf("members %v, want the first 16 digits of %s", m, redisx.Hash(id))
	}

	// A session the previous version created: its record, and its entry
	// named by the whole hash.
	old := session.NewID()
	oldKey := c.Key("mcp", "session", redisx.Tag(redisx.Hash(old)))
	c.HSet(ctx, oldKey, "created", "1764560000", "sub", "u1", "client_id", "app", "transport", session.Streamable, "version", "2025-11-25")
	c.PExpire(ctx, oldKey, 2*time.Second)
	until := float64(time.Now().Add(2 * time.Second).UnixMilli())
	c.ZAdd(ctx, set, redis.Z{Score: until, Member: redisx.Hash(old)})
	if _, err := s.Admit(ctx, old, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the renewal interval: the next Admit renews
	if _, err := s.Admit(ctx, old, nil); err != nil {
		t.Fatal(err)
	}
	if score := c.ZScore(ctx, set, redisx.Hash(old)).Val(); score <= until {
		t.Errorf("previous version's entry not renewed: score %v, was %v", score, until)
	}
	if n := c.ZCard(ctx, set).Val(); n != 2 {
		t.Errorf("%d entries after the renewal, want 2 (none added)", n)
	}
	for _, sid := range []string{old, id} {
		if ok, err := s.Delete(ctx, sid); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if m := c.ZRange(ctx, set, 0, -1).Val(); len(m) != 0 {
		t.Errorf("entries left after both sessions ended: %v", m)
	}
}
