// Package ratelimit is the fleet's Redis-backed rate limiter (GCRA, via
// redis_rate): buckets live in Redis so every replica shares them, keys are
// hashes of the subject, and a Redis outage is reported, not ignored.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// Limit is a rate: Burst requests at once, refilled at Rate per Period.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

// PerMinute is n requests a minute with a burst of n.
func PerMinute(n int) Limit { return Limit{Rate: n, Burst: n, Period: time.Minute} }

// Limiter applies limits to named buckets.
type Limiter struct {
	rdb *redisx.Client
	l   *redis_rate.Limiter
}

// New returns a limiter over rdb.
func New(rdb *redisx.Client) *Limiter {
	return &Limiter{rdb: rdb, l: redis_rate.NewLimiter(rdb.UniversalClient)}
}

// key is the bucket of (scope, subject): the one place its name is made.
// redis_rate (Allow, Peek) stores it under its own "rate:" prefix; Queue
// uses the name as it is, so the two algorithms never share a key.
func (l *Limiter) key(scope, subject string) string {
	return l.rdb.Key("rl", scope, redisx.Hash(subject))
}

// Result of one Allow.
type Result struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration
}

// Allow takes one token from bucket (scope, subject). The subject (client
// id, user, address) is hashed before it becomes part of a key. An error
// means Redis could not be asked; callers answer 503.
func (l *Limiter) Allow(ctx context.Context, scope, subject string, lim Limit) (Result, error) {
	return l.AllowN(ctx, scope, subject, lim, 1)
}

// AllowN takes n tokens at once from bucket (scope, subject), or none:
// Allowed is false when the bucket holds fewer than n (n above lim.Burst
// is never allowed). It weighs a request by what it costs — the bytes it
// makes the server keep, say — where Allow counts requests.
func (l *Limiter) AllowN(ctx context.Context, scope, subject string, lim Limit, n int) (Result, error) {
	key := l.key(scope, subject)
	// redis_rate prefixes its own "rate:"; keep ours stable under the install prefix.
	res, err := l.l.AllowN(ctx, key, redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}, n)
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	return Result{Allowed: res.Allowed > 0, Remaining: res.Remaining, RetryAfter: res.RetryAfter}, nil
}

// Peek reports whether bucket (scope, subject) holds a token without
// taking one: Allowed is false when the next Allow would be refused, and
// RetryAfter is then the time until it would succeed. Use it for budgets
// spent only on some outcomes (failed authentications), checked first and
// taken after.
func (l *Limiter) Peek(ctx context.Context, scope, subject string, lim Limit) (Result, error) {
	key := l.key(scope, subject)
	res, err := l.l.AllowN(ctx, key, redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}, 0)
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	if res.Remaining >= 1 {
		return Result{Allowed: true, Remaining: res.Remaining}, nil
	}
	// GCRA: one token is back when the bucket is Burst-1 emission
	// intervals short of full.
	interval := lim.Period / time.Duration(max(lim.Rate, 1))
	wait := res.ResetAfter - time.Duration(lim.Burst-1)*interval
	return Result{Allowed: false, RetryAfter: max(wait, time.Millisecond)}, nil
}

// RetryAfterSeconds renders a Retry-After header value (whole seconds, at least 1).
func RetryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}

// remainingHeader is RateLimit-Remaining in Go's canonical form, what
// Header.Set would make of it on every call (an allocation: the name is
// not canonical as spelled).
const remainingHeader = "Ratelimit-Remaining"

// SetHeaders writes Retry-After (when refused) and RateLimit-Remaining.
func SetHeaders(h http.Header, r Result) {
	h[remainingHeader] = []string{strconv.Itoa(r.Remaining)}
	if !r.Allowed {
		h.Set("Retry-After", RetryAfterSeconds(r.RetryAfter))
	}
}
