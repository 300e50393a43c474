package redisx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// ErrUnavailable is wrapped by the error of every command refused while the
// circuit breaker is open: Redis is known to be down, so the command was not
// sent. Callers answer 503 with Retry-After (IsUnavailable reports it too).
var ErrUnavailable = errors.New("redis unavailable")

// tripAfter consecutive failures (see failure) open the breaker.
const tripAfter = 3

// breaker is a go-redis hook that runs every command and pipeline through a
// sony/gobreaker circuit breaker. Only Redis unable to serve this client
// counts as a failure: connection trouble (timeouts, refused or reset
// connections, a server still loading its data set) and Redis refusing the
// client's credentials (IsAuthFailure); a missing key, a server error reply
// such as WRONGTYPE or NOPERM, a caller that gave up (its context ended) or
// a wait for a free pooled connection does not.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	rejected prometheus.Counter
	// onFailure, when set, runs after every connection failure (cluster
	// mode: reload the slot map, see New) — not after an authentication
	// failure, which a new slot map does not mend.
	onFailure func()
	// lastFailure is the latest failure's message, logged as the cause
	// when the breaker opens (a refused password says so there, where
	// the commands refused by the open breaker say only that it is open).
	lastFailure atomic.Pointer[string]
}

func newBreaker(open time.Duration, log *slog.Logger, reg prometheus.Registerer) (*breaker, error) {
	b := &breaker{rejected: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_redis_circuit_rejections_total",
		Help: "Redis commands refused at once because the circuit breaker was open.",
	})}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1, // one probe while half-open
		Timeout:     open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= tripAfter },
		IsExcluded:  func(err error) bool { return errors.As(err, new(callerGaveUp)) },
		IsSuccessful: func(err error) bool {
			return err == nil || !failure(err)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if log == nil {
				return
			}
			attrs := []any{"from", from.String(), "to", to.String()}
			if cause := b.lastFailure.Load(); to == gobreaker.StateOpen && cause != nil {
				attrs = append(attrs, "cause", *cause)
			}
			log.Warn("redis circuit breaker", attrs...)
		},
	})
	if reg != nil {
		state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_redis_circuit_state",
			Help: "State of the Redis circuit breaker: 0 closed (Redis answers), 1 half-open (probing), 2 open (commands fail at once).",
		}, func() float64 { return float64(b.cb.State()) })
		for _, c := range []prometheus.Collector{state, b.rejected} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("redis metrics: %w", err)
			}
		}
	}
	return b, nil
}

// gobreaker's State values are closed=0, half-open=1, open=2.
func (b *breaker) state() string { return b.cb.State().String() }

// callerGaveUp marks a failure caused by the caller's context ending: it
// says nothing about Redis and is excluded from the breaker's counts.
type callerGaveUp struct{ error }

func (c callerGaveUp) Unwrap() error { return c.error }

// failure reports whether err counts towards opening the breaker: Redis
// cannot be reached (connectionFailure) or refuses this client's
// credentials (IsAuthFailure: WRONGPASS, NOAUTH, a password sent to a
// Redis that has none). A refused password meets every new connection
// until an operator acts, and without the breaker each command dialled a
// connection of its own (with rediss://, a TLS handshake) and sent HELLO,
// or HELLO then AUTH, only to be refused: Redis handled a new connection
// per request from every pod, and each left a socket in TIME_WAIT on the
// pod. With it the first tripAfter commands are refused so, then every
// command fails at once (ErrUnavailable) and one probe per BreakerOpen
// finds the password right again (docs/operations/failures.md). The same
// holds for a database the connection's SELECT is refused
// (IsConnectionRefusal).
func failure(err error) bool { return connectionFailure(err) || IsConnectionRefusal(err) }

func connectionFailure(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) {
		return false
	}
	if errors.Is(err, redis.ErrPoolTimeout) {
		// Every connection is busy: local contention, not a verdict on
		// Redis (a hung Redis trips the breaker through the commands
		// holding those connections).
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// A reply from the server: only "not able to serve yet" counts.
		msg := rerr.Error()
		// CLUSTERDOWN and TRYAGAIN: a cluster without a master for some
		// slots, until a replica takes over.
		return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "BUSY ") ||
			strings.HasPrefix(msg, "CLUSTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN")
	}
	// Anything else is the connection: a timeout, a refused or reset
	// connection, a pool timeout, a closed client.
	return true
}

// inBreaker marks a context already inside the breaker: the commands
// go-redis sends to set up a new connection (HELLO, AUTH, SELECT) run through
// the hooks again with the caller's context, and must not count twice or
// take the half-open probe's only slot.
type inBreaker struct{}

func (b *breaker) run(ctx context.Context, call func(context.Context) error, fail func(error)) error {
	if ctx.Value(inBreaker{}) != nil {
		return call(ctx)
	}
	var callErr error
	_, err := b.cb.Execute(func() (struct{}, error) {
		callErr = call(context.WithValue(ctx, inBreaker{}, true))
		if callErr != nil && ctx.Err() != nil {
			return struct{}{}, callerGaveUp{callErr}
		}
		if failure(callErr) {
			msg := callErr.Error()
			b.lastFailure.Store(&msg)
		}
		if b.onFailure != nil && connectionFailure(callErr) {
			b.onFailure()
		}
		return struct{}{}, callErr
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		b.rejected.Inc()
		err = fmt.Errorf("%w: circuit breaker %s after repeated connection failures", ErrUnavailable, b.cb.State())
		fail(err)
		return err
	}
	return callErr
}

// DialHook implements redis.Hook.
func (b *breaker) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (b *breaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return b.run(ctx, func(ctx context.Context) error { return next(ctx, cmd) }, cmd.SetErr)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (b *breaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return b.run(ctx, func(ctx context.Context) error { return next(ctx, cmds) }, func(err error) {
			for _, c := range cmds {
				c.SetErr(err)
			}
		})
	}
}
