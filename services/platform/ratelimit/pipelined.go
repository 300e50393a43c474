package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Queue adds taking one token from bucket (scope, subject) to p, so that the
// limit costs no round trip of its own: a caller that already talks to
// Redis for a request (the mcp-gateway's session check) sends both in one
// pipeline. Read the outcome with Pending.Result after p has been executed.
//
// The algorithm is GCRA, as Allow's, with the same meaning of Limit, but in
// a script of this package (redis_rate runs its script itself and cannot
// join a pipeline) over a key of its own: a bucket is used either through
// Allow/Peek or through Queue, never both. The bucket's state is one string
// (the theoretical arrival time in µs) that expires when the bucket is full
// again.
//
// Rates above one token per microsecond are not represented exactly (the
// state is kept in whole microseconds): such a bucket never refuses.
func (l *Limiter) Queue(ctx context.Context, p redis.Pipeliner, scope, subject string, lim Limit) *Pending {
	key := l.key(scope, subject)
	interval := float64(lim.Period.Microseconds()) / float64(max(lim.Rate, 1))
	args := []any{lim.Burst, strconv.FormatFloat(interval, 'f', -1, 64)}
	return &Pending{l: l, key: key, args: args, cmd: p.EvalSha(ctx, gcra.Hash(), []string{key}, args...)}
}

// Pending is a rate-limit decision queued in a pipeline.
type Pending struct {
	l    *Limiter
	key  string
	args []any
	cmd  *redis.Cmd
}

// Result is the decision, once the pipeline has run. When Redis did not
// know the script yet (first use, or after a restart), it is run once more
// on its own, which loads it for every later pipeline. An error means Redis
// could not be asked; callers answer 503.
func (p *Pending) Result(ctx context.Context) (Result, error) {
	v, err := p.cmd.Result()
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		v, err = gcra.Run(ctx, p.l.rdb, []string{p.key}, p.args...).Result()
	}
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		return Result{}, fmt.Errorf("rate limit: unexpected reply %v", v)
	}
	allowed, _ := a[0].(int64)
	remaining, _ := a[1].(int64)
	wait, _ := a[2].(int64)
	return Result{Allowed: allowed == 1, Remaining: int(remaining), RetryAfter: time.Duration(wait) * time.Microsecond}, nil
}

// gcra takes one token from KEYS[1] if the bucket holds one.
// ARGV[1]: burst; ARGV[2]: emission interval (µs per token, may be
// fractional). Replies {allowed 0|1, tokens remaining, µs until the next
// token when refused}. Time is Redis's own (TIME), so replicas with skewed
// clocks share one bucket correctly.
var gcra = redis.NewScript(`
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local earliest = new_tat - burst * interval
if now < earliest then
  return {0, 0, math.ceil(earliest - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - earliest) / interval), 0}`)

// Take is Queue in a pipeline of its own: one token from bucket (scope,
// subject), for the requests of a Queue user that have nothing else to send
// to Redis.
func (l *Limiter) Take(ctx context.Context, scope, subject string, lim Limit) (Result, error) {
	p := l.rdb.Pipeline()
	pending := l.Queue(ctx, p, scope, subject, lim)
	_, _ = p.Exec(ctx) // the command's own error is read by Result
	return pending.Result(ctx)
}
