package oauth

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// signGate bounds the token signatures computed at once
// (SIGNING_CONCURRENCY, default one per CPU) and queues the others in
// arrival order (semaphore.Weighted is FIFO). On two cores shared by eight
// concurrent grants, an RSA signature otherwise shares the processors with
// every other request's work, and each grant waits behind the bursts of
// all the others; run one per CPU, in turn, a signature finishes sooner
// and the grants' latency spreads less (docs/benchmarks/auth-server.md,
// session "authtail-2").
//
// It is also the token endpoint's overload bound: once its client is
// authenticated (authenticateClient: an anonymous request never enters the
// queue), a request takes its turn in the same queue (admit) before
// anything of its grant is read — a refresh token is rotated by the
// store's read, a code redeemed before the ID token is signed, so a
// refusal later would lose them — and is refused with 503
// temporarily_unavailable when its turn does not come within
// SIGNING_QUEUE_WAIT. Once admitted, its signatures wait in line without
// that bound.
type signGate struct {
	sem  *semaphore.Weighted
	wait time.Duration
}

// errSigningBusy is admit's refusal (classify: 503, Retry-After).
var errSigningBusy = errors.New("the signing queue did not admit the request within SIGNING_QUEUE_WAIT")

// signingRetryAfter is the Retry-After of errSigningBusy.
const signingRetryAfter = "1"

func newSignGate(n int, wait time.Duration) *signGate {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &signGate{sem: semaphore.NewWeighted(int64(n)), wait: wait}
}

// heldTurn is a signing turn a request keeps from its admission to its
// last signature (withHeldTurn).
type heldTurn struct{ held atomic.Bool }

type heldTurnKey struct{}

// withHeldTurn makes the request of ctx keep the turn admit gives it, for
// its signatures (enter and exit then neither wait nor give it back), until
// release: an authorization_code grant's two signatures then follow its
// admission without queueing again behind grants admitted after it. Its
// code was read while it waited to be admitted (store.PrefetchCode) and its
// redemption is awaited after the signatures (store.DeferRedemption), so
// the turn is not held across a Redis round trip but in the rare case the
// code's read is slower than the whole queue.
func withHeldTurn(ctx context.Context) context.Context {
	return context.WithValue(ctx, heldTurnKey{}, &heldTurn{})
}

func heldTurnOf(ctx context.Context) *heldTurn {
	h, _ := ctx.Value(heldTurnKey{}).(*heldTurn)
	return h
}

// admit waits for the request's turn in the queue, at most g.wait: it
// returns when every signature queued before the request has started.
// The turn is given back at once, or kept when ctx asks for it
// (withHeldTurn; release gives it back). errSigningBusy when the wait ran
// out, ctx's error when the request ended first.
func (g *signGate) admit(ctx context.Context) error {
	if g == nil {
		return nil
	}
	h := heldTurnOf(ctx)
	if h != nil && h.held.Load() {
		return nil
	}
	if !g.sem.TryAcquire(1) {
		wctx, cancel := context.WithTimeout(ctx, g.wait)
		defer cancel()
		if err := g.sem.Acquire(wctx, 1); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errSigningBusy
		}
	}
	if h != nil {
		h.held.Store(true)
		return nil
	}
	g.sem.Release(1)
	return nil
}

// release gives back the turn the request of ctx kept (withHeldTurn), if
// it holds one. It may be called more than once.
func (g *signGate) release(ctx context.Context) {
	if h := heldTurnOf(ctx); g != nil && h != nil && h.held.CompareAndSwap(true, false) {
		g.sem.Release(1)
	}
}

// enter waits in line for a signing slot (no bound but ctx); exit gives
// it back. A request that holds its turn (withHeldTurn) signs in it. A nil
// gate lets every signature through.
func (g *signGate) enter(ctx context.Context) error {
	if g == nil {
		return nil
	}
	if h := heldTurnOf(ctx); h != nil && h.held.Load() {
		return nil
	}
	return g.sem.Acquire(ctx, 1)
}

func (g *signGate) exit(ctx context.Context) {
	if g == nil {
		return
	}
	if h := heldTurnOf(ctx); h != nil && h.held.Load() {
		return
	}
	g.sem.Release(1)
}
