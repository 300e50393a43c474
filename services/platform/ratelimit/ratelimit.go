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
	"github.com/redis/go-redis/v9"

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

// Refund gives back one token Allow took from bucket (scope, subject):
// for a budget reserved before an outcome is known and spent only on some
// outcomes — a failed client authentication reserves its token before the
// secret check, so that concurrent checks cannot all pass while one token
// is left, and a verified secret gives it back. A bucket is never filled
// past its burst (a refund to a bucket with no token taken, or one that
// refilled meanwhile, changes nothing). An error means Redis could not be
// asked; the token then stays spent and refills at the limit's rate.
//
// redis_rate has no refund: refundScript moves the bucket's theoretical
// arrival time (GCRA) back by one emission interval in the key and format
// redis_rate keeps it in ("rate:" + key, seconds since 2017-01-01 as a
// float; TestRefund pins both to the pinned redis_rate's Allow and Peek).
func (l *Limiter) Refund(ctx context.Context, scope, subject string, lim Limit) error {
	interval := lim.Period.Seconds() / float64(max(lim.Rate, 1))
	if err := refundScript.Run(ctx, l.rdb, []string{"rate:" + l.key(scope, subject)}, interval).Err(); err != nil {
		return fmt.Errorf("rate limit refund: %w", err)
	}
	return nil
}

// refundScript: KEYS[1] a redis_rate bucket, ARGV[1] its emission interval
// in seconds. The clock is Redis's, as redis_rate's own script reads it.
var refundScript = redis.NewScript(`
local tat = redis.call("GET", KEYS[1])
if not tat then return 0 end
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local back = tonumber(tat) - tonumber(ARGV[1])
if back <= now then
  redis.call("DEL", KEYS[1])
  return 1
end
redis.call("SET", KEYS[1], back, "EX", math.ceil(back - now))
return 1
`)

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
