package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A hung Redis (SIGSTOP: connections accepted, nothing answered) while a
// busy bucket is leased ahead of time: concurrent requests are served from
// the tokens held (at most the cap) and then get errors — none waits on
// the stuck lease forever and none is refused as if the bucket were
// spent; the background lease gives up while Redis is still hung (its own
// deadline: WaitAhead returns, so no goroutine is left behind); once
// Redis answers again the bucket serves again. Bounded loops, no timing
// asserted.
func TestLeasingAheadRedisHung(t *testing.T) {
	r := testharness.StartRedis(t)
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: time.Minute})
	lim := ratelimit.Limit{Rate: 100000, Burst: 100000, Period: time.Hour}
	ctx := context.Background()
	for range 40 { // warm: leases of 2, 4, 8, 16 and leases ahead
		if res, err := l.Allow(ctx, "token_client", "hung", lim); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
		ratelimit.WaitAhead(l)
	}
	if l.Stats().Ahead == 0 {
		t.Fatal("no lease taken ahead while warming up")
	}
	r.Pause()
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 6 {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				res, err := l.Allow(rctx, "token_client", "hung", lim)
				cancel()
				switch {
				case err != nil:
					failed.Add(1)
				case res.Allowed:
					served.Add(1)
				default:
					t.Errorf("Redis hung: refused as if spent: %+v", res)
				}
			}
		}()
	}
	wg.Wait()
	// Every background lease has ended while Redis is still hung.
	ratelimit.WaitAhead(l)
	t.Logf("Redis hung: %d served from the leases, %d errors, %+v", served.Load(), failed.Load(), l.Stats())
	if served.Load() > 16 || failed.Load() == 0 {
		t.Errorf("Redis hung: %d served, %d errors; want at most the 16 held, then errors", served.Load(), failed.Load())
	}
	r.Resume()
	var err error
	for range 100 { // the client's breaker may stay open a moment
		var res ratelimit.Result
		if res, err = l.Allow(ctx, "token_client", "hung", lim); err == nil {
			if !res.Allowed {
				t.Fatalf("after Redis resumed: refused %+v", res)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after Redis resumed: %v", err)
	}
}

// The tokens one replica holds of a bucket never exceed the lease cap
// (docs/security.md, leasing row), leases ahead included, with many
// goroutines on one bucket: after each round of 16 goroutines × 25
// requests (and the leases ahead it started are in), what Redis handed
// out minus what was admitted is at most 16. The bucket refills one token
// an hour, so Redis's remaining count is what was taken.
func TestLeasingHoldsAtMostTheCap(t *testing.T) {
	r := testharness.StartRedis(t)
	l := ratelimit.New(r.Client()).Leasing(ratelimit.LeaseOptions{TTL: time.Minute})
	plain := ratelimit.New(r.Client())
	lim := ratelimit.Limit{Rate: 1, Burst: 10000, Period: time.Hour}
	ctx := context.Background()
	var admitted atomic.Int64
	for round := range 8 {
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					res, err := l.Allow(ctx, "token_client", "cap", lim)
					if err != nil || !res.Allowed {
						t.Errorf("%+v %v", res, err)
						return
					}
					admitted.Add(1)
				}
			}()
		}
		wg.Wait()
		ratelimit.WaitAhead(l)
		peek, err := plain.Peek(ctx, "token_client", "cap", lim)
		if err != nil {
			t.Fatal(err)
		}
		if held := int64(lim.Burst-peek.Remaining) - admitted.Load(); held < 0 || held > 16 {
			t.Fatalf("round %d: Redis handed out %d, %d admitted: %d held (cap 16)", round, lim.Burst-peek.Remaining, admitted.Load(), held)
		}
	}
	if l.Stats().Ahead == 0 {
		t.Error("no lease taken ahead")
	}
	t.Logf("%d admitted, %+v", admitted.Load(), l.Stats())
}
