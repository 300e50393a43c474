package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Leasing puts a process-local front on a Limiter's buckets so that a busy
// bucket does not cost a Redis round trip per request: it takes tokens from
// the shared Redis bucket a few at a time (a lease) and hands them out
// locally until they are spent or the lease ends. The buckets, their keys
// and their Redis format are the Limiter's, so leasing and non-leasing
// replicas (or services) share them.
//
// What it changes, and what it does not:
//   - A bucket never lets more requests through than its limit: every token
//     handed out was taken from Redis first.
//   - A replica holds at most LeaseOptions.MaxTokens unused tokens of a
//     bucket at any time, and at most an eighth of its burst (limits under
//     16 a burst are never leased); they stay usable until TTL after the
//     bucket's last lease (a lease taken ahead of time, below, keeps the
//     tokens still held usable with its own); tokens a lease did not use
//     are given back to the bucket when it is next leased (a bucket not
//     used again keeps them spent).
//     Lease sizes follow demand: a lease is twice the last one when that
//     was used up, and as large as what was used of it otherwise, so a
//     bucket seeing one request now and then takes one token at a time,
//     exactly as Limiter.Allow.
//   - A busy bucket is leased ahead of time: once a lease of 2 or more was
//     used up (demand is there), the request that leaves half of the next
//     lease size or less starts one lease in the background (one per
//     bucket at a time, topping the tokens held up to the caps above) and
//     goes on with a token it holds; so a steady stream of requests does
//     not wait for Redis once warm. Only a request that finds no token
//     left waits for a lease (its own, or the one under way).
//   - Near the limit a request can be refused while another replica still
//     holds unused tokens of the bucket: at most an eighth of the burst per
//     replica, usable for at most TTL after its last lease.
//   - A refusal is remembered until its Retry-After (at most TTL), so a
//     flood on a spent bucket costs no Redis round trips either.
//   - Remaining (RateLimit-Remaining) is Redis's count at the last lease
//     plus the tokens this replica still holds.
//   - Redis unreachable: a request that needs a lease gets the error, as
//     from Limiter.Allow (tokens already held are handed out until spent
//     or TTL); a failed lease ahead of time is dropped, and the next lease
//     is taken by a request, which gets the error.
//
// Use it where requests on one bucket are frequent (the token endpoint's
// per-client bucket of a client every user shares, a proxy's address);
// buckets keyed on rare subjects gain nothing and lose nothing.
type Leasing struct {
	l          *Limiter
	maxTokens  int
	ttl        time.Duration
	maxBuckets int
	now        func() time.Time

	// ahead counts the leases taken ahead of time still under way, waited
	// and started the requests that waited for a lease and the leases
	// taken ahead of time (Stats).
	ahead           sync.WaitGroup
	waited, started atomic.Int64

	mu sync.Mutex
	// buckets by (scope, subject) as given, so that a request finds its
	// bucket without hashing the subject into the Redis key (the key is
	// made once, when the bucket is first held).
	buckets map[bucketID]*lease
}

// LeaseStats counts how a Leasing's requests were served.
type LeaseStats struct {
	// Waited is the number of requests that waited for a lease from Redis
	// (their own, or one under way).
	Waited int64
	// Ahead is the number of leases taken ahead of time, in the
	// background.
	Ahead int64
}

// Stats returns the counts so far.
func (p *Leasing) Stats() LeaseStats {
	return LeaseStats{Waited: p.waited.Load(), Ahead: p.started.Load()}
}

// aheadTimeout bounds a lease taken ahead of time, which no request's
// context bounds.
const aheadTimeout = time.Second

type bucketID struct{ scope, subject string }

// LeaseOptions configure Leasing; zero values take the defaults.
type LeaseOptions struct {
	// MaxTokens is the most tokens one lease takes (default 16).
	MaxTokens int
	// TTL is how long leased tokens stay usable (default 250 ms).
	TTL time.Duration
	// MaxBuckets bounds the buckets held in memory (default 4096); past
	// it, a new bucket is not leased (one round trip per request).
	MaxBuckets int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Leasing returns l's buckets behind leases (see Leasing).
func (l *Limiter) Leasing(o LeaseOptions) *Leasing {
	p := &Leasing{l: l, maxTokens: o.MaxTokens, ttl: o.TTL, maxBuckets: o.MaxBuckets, now: o.Now, buckets: map[bucketID]*lease{}}
	if p.maxTokens <= 0 {
		p.maxTokens = 16
	}
	if p.ttl <= 0 {
		p.ttl = 250 * time.Millisecond
	}
	if p.maxBuckets <= 0 {
		p.maxBuckets = 4096
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// lease is one bucket's local state.
type lease struct {
	key       string // the bucket's Redis key (Limiter.key)
	mu        sync.Mutex
	tokens    int           // leased, not yet handed out
	size      int           // tokens the last lease took
	until     time.Time     // the lease's tokens are usable until then
	remaining int           // Redis's remaining count at the last lease
	refused   time.Time     // the bucket refuses until then
	fetching  chan struct{} // closed when a lease under way is taken
}

// idle reports whether the bucket holds nothing worth keeping at now.
func (b *lease) idle(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fetching == nil && !now.Before(b.until) && !now.Before(b.refused)
}

// Allow takes one token from bucket (scope, subject) as Limiter.Allow
// does, from this replica's lease when it holds one. An error means Redis
// could not be asked; callers answer 503.
func (p *Leasing) Allow(ctx context.Context, scope, subject string, lim Limit) (Result, error) {
	b := p.bucket(scope, subject)
	if b == nil {
		return p.l.Allow(ctx, scope, subject, lim)
	}
	key := b.key
	waited := false
	for {
		b.mu.Lock()
		now := p.now()
		if now.Before(b.refused) {
			retry := b.refused.Sub(now)
			b.mu.Unlock()
			return Result{Allowed: false, RetryAfter: retry}, nil
		}
		if b.tokens > 0 && now.Before(b.until) {
			b.tokens--
			res := Result{Allowed: true, Remaining: b.remaining + b.tokens}
			p.leaseAhead(ctx, b, lim)
			b.mu.Unlock()
			return res, nil
		}
		if !waited {
			waited = true
			p.waited.Add(1)
		}
		if wait := b.fetching; wait != nil {
			b.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Result{}, fmt.Errorf("rate limit: %w", ctx.Err())
			}
		}
		// Size the next lease on what the last one saw: used up (before
		// or at its end) doubles it, leftovers shrink it to what was used.
		// A lease holds at most an eighth of the burst, so small limits
		// are taken one token at a time.
		n := 1
		if b.size > 0 {
			if b.tokens == 0 {
				n = 2 * b.size
			} else {
				n = b.size - b.tokens
			}
		}
		n = max(min(n, p.maxTokens, lim.Burst/8), 1)
		leftover := b.tokens
		b.tokens, b.fetching = 0, make(chan struct{})
		b.mu.Unlock()

		rl := redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}
		var res *redis_rate.Result
		var err error
		if leftover > 0 {
			// Give back what the ended lease did not use (GCRA: the
			// bucket's time moves back; a full bucket stays full).
			_, err = p.l.l.AllowN(ctx, key, rl, -leftover)
		}
		if err == nil {
			res, err = p.l.l.AllowAtMost(ctx, key, rl, n)
		}

		b.mu.Lock()
		close(b.fetching)
		b.fetching = nil
		if err != nil {
			b.size = 0
			b.mu.Unlock()
			return Result{}, fmt.Errorf("rate limit: %w", err)
		}
		now = p.now()
		if res.Allowed <= 0 {
			b.size = 0
			retry := max(res.RetryAfter, time.Millisecond)
			b.refused = now.Add(min(retry, p.ttl))
			b.mu.Unlock()
			return Result{Allowed: false, RetryAfter: retry}, nil
		}
		b.size, b.tokens, b.until, b.remaining = res.Allowed, res.Allowed-1, now.Add(p.ttl), res.Remaining
		out := Result{Allowed: true, Remaining: b.remaining + b.tokens}
		b.mu.Unlock()
		return out, nil
	}
}

// leaseAhead starts a lease of bucket b in the background when its last
// lease (of 2 or more: demand) leaves half of the next lease size or less,
// and no lease is under way; b.mu is held. The lease tops the
// tokens held up to the caps; its tokens join those held, and all stay
// usable until TTL from it. A refusal or an error is dropped (the next
// lease, taken by a request, gets it again) and the next lease restarts at
// one token.
func (p *Leasing) leaseAhead(ctx context.Context, b *lease, lim Limit) {
	if b.fetching != nil || b.size < 2 {
		return
	}
	capacity := min(p.maxTokens, lim.Burst/8)
	next := min(2*b.size, capacity)
	if b.tokens > next/2 {
		return
	}
	n := min(next, capacity-b.tokens)
	if n < 1 {
		return
	}
	done := make(chan struct{})
	b.fetching = done
	p.started.Add(1)
	p.ahead.Add(1)
	rl := redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}
	go func() {
		defer p.ahead.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), aheadTimeout)
		defer cancel()
		res, err := p.l.l.AllowAtMost(ctx, b.key, rl, n)
		b.mu.Lock()
		defer b.mu.Unlock()
		close(done)
		b.fetching = nil
		if err != nil || res.Allowed <= 0 {
			b.size = 0
			return
		}
		b.size, b.tokens, b.until, b.remaining = res.Allowed, b.tokens+res.Allowed, p.now().Add(p.ttl), res.Remaining
	}()
}

// bucket returns the local state of bucket (scope, subject), or nil when
// MaxBuckets busy buckets are held already.
func (p *Leasing) bucket(scope, subject string) *lease {
	id := bucketID{scope, subject}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.buckets[id]; ok {
		return b
	}
	if len(p.buckets) >= p.maxBuckets {
		now := p.now()
		for k, b := range p.buckets {
			if b.idle(now) {
				delete(p.buckets, k)
			}
		}
		if len(p.buckets) >= p.maxBuckets {
			return nil
		}
	}
	b := &lease{key: p.l.key(scope, subject)}
	p.buckets[id] = b
	return b
}
