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
