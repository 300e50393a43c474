package ratelimit_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

func TestBucketsAreSharedAndPerSubject(t *testing.T) {
	setups.Run(t, bucketsAreSharedAndPerSubject)
}

func bucketsAreSharedAndPerSubject(t *testing.T, r testharness.Clients) {
	// Two limiters over two clients behave like two replicas.
	a, b := ratelimit.New(r.Client()), ratelimit.New(r.Client())
	ctx := context.Background()
	lim := ratelimit.PerMinute(3)
	allowed := 0
	for i := range 6 {
		l := a
		if i%2 == 1 {
			l = b
		}
		res, err := l.Allow(ctx, "token", "client-1", lim)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			allowed++
		} else if res.RetryAfter <= 0 || res.RetryAfter > time.Minute {
			t.Errorf("refusal with RetryAfter %s", res.RetryAfter)
		}
	}
	if allowed != 3 {
		t.Errorf("%d allowed across replicas, want 3", allowed)
	}
	if res, _ := a.Allow(ctx, "token", "client-2", lim); !res.Allowed {
		t.Error("another subject was limited")
	}
	keys := testharness.RedisKeys(t, r.Client())
	for _, k := range keys {
		if strings.Contains(k, "client-1") {
			t.Errorf("subject stored in the clear: %s", k)
		}
	}
	h := http.Header{}
	ratelimit.SetHeaders(h, ratelimit.Result{Allowed: false, RetryAfter: 1500 * time.Millisecond})
	if h.Get("Retry-After") != "2" {
		t.Errorf("Retry-After = %q", h.Get("Retry-After"))
	}
	ratelimit.SetHeaders(h, ratelimit.Result{Allowed: true, Remaining: 7})
	if got := h.Values("RateLimit-Remaining"); len(got) != 1 || got[0] != "7" {
		t.Errorf("RateLimit-Remaining = %q, want one value 7", got)
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	r := testharness.StartRedis(t)
	l := ratelimit.New(r.Client())
	r.Stop()
	if _, err := l.Allow(context.Background(), "s", "x", ratelimit.PerMinute(1)); err == nil {
		t.Error("Allow succeeded without Redis")
	}
}

// Peek never takes a token and reports the same verdict Allow would.
func TestPeek(t *testing.T) {
	setups.Run(t, peek)
}

func peek(t *testing.T, r testharness.Clients) {
	l := ratelimit.New(r.Client())
	ctx := context.Background()
	lim := ratelimit.Limit{Rate: 3, Burst: 3, Period: time.Hour}
	for range 5 {
		if res, err := l.Peek(ctx, "fail", "c|a", lim); err != nil || !res.Allowed {
			t.Fatalf("peek of a fresh bucket: %+v %v", res, err)
		}
	}
	for range 3 {
		if res, _ := l.Allow(ctx, "fail", "c|a", lim); !res.Allowed {
			t.Fatal("take refused before the burst was spent")
		}
	}
	res, err := l.Peek(ctx, "fail", "c|a", lim)
	if err != nil || res.Allowed {
		t.Fatalf("peek of an empty bucket: %+v %v", res, err)
	}
	if res.RetryAfter <= 0 || res.RetryAfter > 20*time.Minute+time.Second {
		t.Errorf("RetryAfter %s, want about one emission interval (20m)", res.RetryAfter)
	}
	if res, _ := l.Allow(ctx, "fail", "c|a", lim); res.Allowed {
		t.Error("Allow succeeded where Peek said no")
	}
}

// setups are the shared standalone, Sentinel and Cluster deployments the
// contract tests run against.
var setups testharness.RedisSetups

func TestMain(m *testing.M) { testharness.MainWithRedisSetups(m, &setups) }

// TestAllowN: a weighted request takes n tokens at once or none — a
// refused one leaves the bucket as it was — and a weight above the burst is
// never allowed.
func TestAllowN(t *testing.T) {
	setups.Run(t, func(t *testing.T, r testharness.Clients) {
		l := ratelimit.New(r.Client())
		ctx := context.Background()
		lim := ratelimit.PerMinute(10)
		for _, step := range []struct {
			n       int
			allowed bool
		}{{6, true}, {5, false}, {4, true}, {1, false}, {11, false}} {
			res, err := l.AllowN(ctx, "bytes", "addr:192.0.2.1", lim, step.n)
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed != step.allowed {
				t.Fatalf("AllowN(%d) allowed=%v (remaining %d), want %v", step.n, res.Allowed, res.Remaining, step.allowed)
			}
			if !res.Allowed && res.RetryAfter <= 0 {
				t.Errorf("AllowN(%d) refused without a RetryAfter", step.n)
			}
		}
		if res, _ := l.AllowN(ctx, "bytes", "addr:192.0.2.1", lim, 11); res.Allowed {
			t.Error("a weight above the burst was allowed")
		}
		if res, _ := l.AllowN(ctx, "bytes", "addr:192.0.2.2", lim, 10); !res.Allowed {
			t.Error("another subject's full bucket refused its burst")
		}
	})
}

// TestRefund: a refunded token is as if never taken — Peek and Allow see it
// back, a bucket with one token taken is full again (no key left), and a
// refund never fills a bucket past its burst.
func TestRefund(t *testing.T) {
	setups.Run(t, func(t *testing.T, r testharness.Clients) {
		l := ratelimit.New(r.Client())
		ctx := context.Background()
		lim := ratelimit.Limit{Rate: 3, Burst: 3, Period: time.Hour}
		remaining := func() int {
			t.Helper()
			res, err := l.Peek(ctx, "fail", "c|a", lim)
			if err != nil {
				t.Fatal(err)
			}
			return res.Remaining
		}
		if err := l.Refund(ctx, "fail", "c|a", lim); err != nil {
			t.Fatal(err)
		}
		if got := remaining(); got != 3 {
			t.Fatalf("a refund to a full bucket: %d remaining, want 3", got)
		}
		// One token taken and given back: full, and no key kept.
		if res, _ := l.Allow(ctx, "fail", "c|a", lim); !res.Allowed {
			t.Fatal("first take refused")
		}
		if err := l.Refund(ctx, "fail", "c|a", lim); err != nil {
			t.Fatal(err)
		}
		if got := remaining(); got != 3 {
			t.Errorf("after one take and its refund: %d remaining, want 3", got)
		}
		if keys := testharness.RedisKeys(t, r.Client()); len(keys) != 0 {
			t.Errorf("a full bucket left keys %q", keys)
		}
		// Spent, then one refund buys exactly one more take.
		for range 3 {
			if res, _ := l.Allow(ctx, "fail", "c|a", lim); !res.Allowed {
				t.Fatal("take refused before the burst was spent")
			}
		}
		if res, _ := l.Allow(ctx, "fail", "c|a", lim); res.Allowed {
			t.Fatal("a fourth take of a burst of 3 was allowed")
		}
		if err := l.Refund(ctx, "fail", "c|a", lim); err != nil {
			t.Fatal(err)
		}
		if got := remaining(); got != 1 {
			t.Errorf("after a refund to a spent bucket: %d remaining, want 1", got)
		}
		if res, _ := l.Allow(ctx, "fail", "c|a", lim); !res.Allowed {
			t.Error("the refunded token could not be taken")
		}
		if res, _ := l.Allow(ctx, "fail", "c|a", lim); res.Allowed {
			t.Error("a refund gave back more than one token")
		}
	})
}
