package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// queue runs one Queue in a pipeline of its own next to another command,
// as the mcp-gateway does.
func queue(t *testing.T, l *ratelimit.Limiter, rdb *redisx.Client, subject string, lim ratelimit.Limit) (ratelimit.Result, error) {
	t.Helper()
	ctx := context.Background()
	p := rdb.Pipeline()
	pending := l.Queue(ctx, p, "mcp", subject, lim)
	ping := p.Ping(ctx)
	_, _ = p.Exec(ctx)
	if err := ping.Err(); err != nil {
		return ratelimit.Result{}, err
	}
	return pending.Result(ctx)
}

func TestQueuedBucketsAreSharedAndPerSubject(t *testing.T) {
	r := testharness.StartRedis(t)
	ca, cb := r.Client(), r.Client()
	a, b := ratelimit.New(ca), ratelimit.New(cb)
	lim := ratelimit.PerMinute(3)
	allowed := 0
	for i := range 6 {
		l, c := a, ca
		if i%2 == 1 {
			l, c = b, cb
		}
		res, err := queue(t, l, c, "client-1", lim)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			allowed++
			if want := 3 - allowed; res.Remaining != want {
				t.Errorf("remaining %d after %d taken, want %d", res.Remaining, allowed, want)
			}
		} else if res.RetryAfter <= 0 || res.RetryAfter > 20*time.Second+time.Second {
			// One token comes back every 20s at 3/minute.
			t.Errorf("refusal with RetryAfter %s", res.RetryAfter)
		}
	}
	if allowed != 3 {
		t.Errorf("%d allowed across replicas, want 3", allowed)
	}
	if res, _ := queue(t, a, ca, "client-2", lim); !res.Allowed {
		t.Error("another subject was limited")
	}
	// The bucket expires once it would be full again (3 tokens: 60s).
	keys, _ := ca.Keys(context.Background(), "*rl:mcp:*").Result()
	for _, k := range keys {
		if ttl := ca.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("%s: TTL %s", k, ttl)
		}
	}
}

// A Redis that lost its scripts (restart, SCRIPT FLUSH) still answers.
func TestQueueLoadsItsScript(t *testing.T) {
	r := testharness.StartRedis(t)
	c := r.Client()
	l := ratelimit.New(c)
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res, err := queue(t, l, c, "s", ratelimit.PerMinute(10)); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
	}
}

func TestQueueRedisDownIsAnError(t *testing.T) {
	r := testharness.StartRedis(t)
	c := r.Client()
	l := ratelimit.New(c)
	r.Stop()
	ctx := context.Background()
	p := c.Pipeline()
	pending := l.Queue(ctx, p, "mcp", "s", ratelimit.PerMinute(10))
	_, _ = p.Exec(ctx)
	if _, err := pending.Result(ctx); err == nil {
		t.Fatal("no error with Redis down")
	}
}
