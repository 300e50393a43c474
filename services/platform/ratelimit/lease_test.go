package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// evalCalls is how many scripts Redis has run (INFO commandstats): one per
// rate-limit round trip.
func evalCalls(t *testing.T, r *testharness.Redis) int {
	t.Helper()
	info, err := r.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		c, _, _ := strings.Cut(rest, ",")
		v, err := strconv.Atoi(c)
		if err != nil {
			t.Fatalf("commandstats line %q", line)
		}
		n += v
	}
	return n
}

// TestLeasingNeverExceedsTheLimit: two leasing replicas and a plain one
// hammer one bucket; together they let through no more than its burst,
// and nearly all of it.
func TestLeasingNeverExceedsTheLimit(t *testing.T) {
	r := testharness.StartRedis(t)
	a := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: 10 * time.Second})
	b := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: 10 * time.Second})
	plain := ratelimit.New(r.Client())
	lim := ratelimit.Limit{Rate: 200, Burst: 200, Period: time.Hour}
	ctx := context.Background()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				var res ratelimit.Result
				var err error
				switch g % 3 {
				case 0:
					res, err = a.Allow(ctx, "token_client", "gpt-apps-mcp", lim)
				case 1:
					res, err = b.Allow(ctx, "token_client", "gpt-apps-mcp", lim)
				default:
					res, err = plain.Allow(ctx, "token_client", "gpt-apps-mcp", lim)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					allowed.Add(1)
				} else if res.RetryAfter <= 0 {
					t.Errorf("refusal without Retry-After: %+v", res)
				}
			}
		}()
	}
	wg.Wait()
	// 480 requests on a burst of 200: never more than 200; leases held
	// (at most 16 per replica, an eighth of the burst = 25) may leave a
	// few unused.
	if n := allowed.Load(); n > 200 || n < 200-2*16 {
		t.Errorf("%d allowed on a burst of 200", n)
	}
}

// TestLeasingSavesRoundTrips: a busy bucket costs a fraction of a Redis
// round trip per request.
func TestLeasingSavesRoundTrips(t *testing.T) {
	r := testharness.StartRedis(t)
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: 10 * time.Second})
	lim := ratelimit.PerMinute(100000)
	ctx := context.Background()
	before := evalCalls(t, r)
	for range 400 {
		if res, err := l.Allow(ctx, "token", "addr:192.0.2.1", lim); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
		ratelimit.WaitAhead(l) // each lease taken ahead is in before the next request
	}
	// Leases of 1 and 2 tokens, then ahead of time 4, 8, then 8 at a time
	// (topping up to 16 when 8 are left): 55 round trips, each off the
	// requests' path but the first two.
	n := evalCalls(t, r) - before
	t.Logf("%d round trips for 400 requests (MaxTokens 16)", n)
	if n > 56 {
		t.Errorf("%d round trips for 400 requests", n)
	}
	if st := l.Stats(); st.Waited != 2 {
		t.Errorf("%d requests waited for a lease, want 2 (the first two leases)", st.Waited)
	}
	// The bucket's key is the limiter's, with the subject hashed.
	for _, k := range testharness.RedisKeys(t, r.Client()) {
		if strings.Contains(k, "192.0.2.1") {
			t.Errorf("subject stored in the clear: %s", k)
		}
	}

	// A larger MaxTokens (the mcp-gateway's 64).
	big := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: 10 * time.Second, MaxTokens: 64})
	before = evalCalls(t, r)
	for range 400 {
		if res, err := big.Allow(ctx, "token", "addr:192.0.2.2", lim); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
		ratelimit.WaitAhead(big)
	}
	// 1 and 2, then ahead 4, 8, 16, then 32 at a time (topping up to 64
	// when 32 are left): 18 round trips.
	n = evalCalls(t, r) - before
	t.Logf("%d round trips for 400 requests (MaxTokens 64)", n)
	if n > 18 {
		t.Errorf("%d round trips for 400 requests with MaxTokens 64", n)
	}
}

// TestLeasingSmallLimitsAreExact: a burst under 16 is never leased; the
// limit and Retry-After are those of Limiter.Allow, and a refusal is
// remembered locally until its Retry-After.
func TestLeasingSmallLimitsAreExact(t *testing.T) {
	r := testharness.StartRedis(t)
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{})
	ctx := context.Background()
	lim := ratelimit.PerMinute(5)
	for i := range 5 {
		if res, err := l.Allow(ctx, "token", "client-1", lim); err != nil || !res.Allowed || res.Remaining != 4-i {
			t.Fatalf("request %d: %+v %v", i, res, err)
		}
	}
	res, err := l.Allow(ctx, "token", "client-1", lim)
	if err != nil || res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > 12*time.Second {
		t.Fatalf("6th request: %+v %v", res, err)
	}
	before := evalCalls(t, r)
	for range 50 {
		if res, _ := l.Allow(ctx, "token", "client-1", lim); res.Allowed || res.RetryAfter <= 0 {
			t.Fatalf("refused bucket let a request through: %+v", res)
		}
	}
	if n := evalCalls(t, r) - before; n != 0 {
		t.Errorf("a remembered refusal made %d round trips", n)
	}
	if res, _ := ratelimit.New(r.Client()).Peek(ctx, "token", "client-1", lim); res.Allowed {
		t.Error("the shared bucket is not spent")
	}
}

// TestLeasingGivesBackUnusedTokens: tokens a lease did not use return to
// the shared bucket when the bucket is next leased.
func TestLeasingGivesBackUnusedTokens(t *testing.T) {
	r := testharness.StartRedis(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: time.Second, Now: clock})
	plain := ratelimit.New(r.Client())
	ctx := context.Background()
	lim := ratelimit.Limit{Rate: 160, Burst: 160, Period: time.Hour} // leases of up to 16, no refill to speak of
	// Leases of 1 and 2, then ahead of time 4 (at 1 left), 8 (at 4 left),
	// then 8 at a time (at 8 left, up to 16): 31 tokens taken, 15 unused
	// after the 16th request.
	for range 16 {
		if res, err := l.Allow(ctx, "token", "c", lim); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
		ratelimit.WaitAhead(l)
	}
	if res, _ := plain.Peek(ctx, "token", "c", lim); res.Remaining != 160-31 {
		t.Fatalf("remaining %d after the leases, want %d", res.Remaining, 160-31)
	}
	advance(2 * time.Second) // the lease ends with 15 tokens unused
	if res, err := l.Allow(ctx, "token", "c", lim); err != nil || !res.Allowed {
		t.Fatalf("%+v %v", res, err)
	}
	// 15 given back, then a lease of one token (fewer left than the last
	// lease took: what was used of it, at least one).
	if res, _ := plain.Peek(ctx, "token", "c", lim); res.Remaining != 160-31+15-1 {
		t.Errorf("remaining %d after the unused tokens came back, want %d", res.Remaining, 160-31+15-1)
	}
}

// TestLeasingLeasesAhead: once warm, a steady sequence of requests on a
// busy bucket never waits for a lease (each is taken in the background
// while requests go on with the tokens held); the bucket still lets
// through no more than its limit, nearly all of it; and when Redis goes
// away the tokens held are handed out, then every request gets the error.
func TestLeasingLeasesAhead(t *testing.T) {
	r := testharness.StartRedis(t)
	// The lease never ends on its own: only demand and the limit decide.
	now := time.Now()
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{Now: func() time.Time { return now }})
	lim := ratelimit.Limit{Rate: 800, Burst: 800, Period: 24 * time.Hour} // one token back every 108 s: none during the test
	ctx := context.Background()
	allowed := 0
	for i := 0; ; i++ {
		res, err := l.Allow(ctx, "token_client", "busy", lim)
		if err != nil {
			t.Fatal(err)
		}
		ratelimit.WaitAhead(l) // the stream is steady: each lease is in before the next request
		if !res.Allowed {
			break
		}
		allowed++
		if i == 2 {
			if st := l.Stats(); st.Waited != 2 || st.Ahead != 1 {
				t.Fatalf("warm-up: %+v, want 2 requests waiting (leases of 1 and 2), 1 lease ahead", st)
			}
		}
	}
	// Every request waited for nothing after the first two, until the
	// bucket was spent: the refused request waits for the lease that
	// found it spent.
	if st := l.Stats(); st.Waited != 3 || st.Ahead < 800/12 {
		t.Errorf("%+v after %d requests, want 3 waits (2 warming up, the refusal), at least %d leases ahead", st, allowed+1, 800/12)
	}
	if allowed > 800 || allowed < 800-16 {
		t.Errorf("%d allowed on a burst of 800 (at most 16 held unused)", allowed)
	}
	if res, _ := ratelimit.New(r.Client()).Peek(ctx, "token_client", "busy", lim); res.Allowed {
		t.Error("the shared bucket is not spent")
	}

	// Redis goes away from a warm bucket: at most the 16 tokens held are
	// handed out, then each request gets the error, not a refusal or a
	// token from nowhere.
	warm := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{Now: func() time.Time { return now }})
	for range 20 {
		if res, err := warm.Allow(ctx, "token_client", "warm", lim); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
		ratelimit.WaitAhead(warm)
	}
	r.Stop()
	served, failed := 0, 0
	for range 40 {
		res, err := warm.Allow(ctx, "token_client", "warm", lim)
		ratelimit.WaitAhead(warm)
		switch {
		case err != nil:
			failed++
		case res.Allowed && failed == 0:
			served++
		default:
			t.Fatalf("after Redis went away: %+v %v (served %d, failed %d)", res, err, served, failed)
		}
	}
	t.Logf("steady stream: %d allowed, %+v; Redis gone: %d served, then %d errors", allowed, l.Stats(), served, failed)
	if served > 16 || failed != 40-served {
		t.Errorf("Redis gone: %d served from the lease, %d errors, want at most 16 then errors", served, failed)
	}
}

func TestLeasingRedisDownIsAnError(t *testing.T) {
	r := testharness.StartRedis(t)
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{MaxBuckets: 1})
	r.Stop()
	for _, subject := range []string{"a", "b"} { // b: past MaxBuckets, not leased
		if _, err := l.Allow(context.Background(), "s", subject, ratelimit.PerMinute(1000)); err == nil {
			t.Errorf("Allow(%s) succeeded without Redis", subject)
		}
	}
}
