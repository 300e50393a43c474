package oauth

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
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
// and the grants' latency spreads less (docs/benchmarks/auth-server-history.md,
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
//
// A turn given back reaches the next request in line through the network
// poller (pollerHandoff), not directly: see there for why.
type signGate struct {
	sem  *semaphore.Weighted
	wait time.Duration
}

// pollerHandoff gives signing turns back to their semaphore from a
// goroutine that the network poller wakes, so that the next request in line
// starts signing after the goroutines whose connections became readable
// meanwhile, not before them.
//
// Why: a goroutine woken by a semaphore's Release (a channel close, like
// any goready) takes the releasing P's runnext slot and inherits its time
// slice, and the network is polled only by a P that has nothing else to
// run (or by sysmon, once 10 ms have passed without a poll). With a
// signature of ~1 ms per turn and a turn per CPU, each release starts the
// next signature at once on the same P: a chain of signatures that runs
// until sysmon preempts the time slice after 10 ms, while the requests
// whose bytes have arrived, and the Redis replies, wait unread. In the
// token-endpoint benchmark, goroutines waited up to 8–10 ms for a P at the
// p99 (go-runq-p99-ms), and that wait was the latency's tail. Passed
// through a pipe, a release is seen by the poller together with the
// sockets that became readable meanwhile; their goroutines and the one
// giving the turn back are queued in the order the poller found them, and
// the next signature starts after them (docs/benchmarks/auth-server-history.md,
// session 10's lead).
//
// One pipe and one goroutine serve every signGate of the process (a test
// binary builds many servers). The cost is a write(2) per batch of
// releases and the poller's wake-up: a few microseconds per turn against
// the ~1 ms signature it hands over; nothing is allocated (the goroutine
// keeps two lists of pending turns and swaps them). If the pipe cannot be
// made (no file descriptors), or fails, turns are given back directly.
//
// A turn on its way is held in its semaphore until given back, so a test
// waits for the hand-off by waiting for the semaphore's turns; nothing on
// the way counts them.
type pollerHandoff struct {
	once sync.Once
	w    *os.File    // nil: give back directly
	dead atomic.Bool // the goroutine has stopped: give back directly

	mu      sync.Mutex
	pending []*semaphore.Weighted // one entry per turn to give back, in order
}

var handoff pollerHandoff

// release gives one turn back to sem, through the poller.
func (h *pollerHandoff) release(sem *semaphore.Weighted) {
	h.once.Do(h.start)
	if h.w == nil || h.dead.Load() {
		sem.Release(1)
		return
	}
	h.mu.Lock()
	h.pending = append(h.pending, sem)
	first := len(h.pending) == 1
	h.mu.Unlock()
	// One byte per batch: the goroutine takes every turn pending when it
	// wakes, and the pipe never holds more than a byte or two.
	if first {
		if _, err := h.w.Write([]byte{0}); err != nil {
			h.flush(nil)
		}
	}
	if h.dead.Load() { // run stopped, maybe before it saw this turn
		h.flush(nil)
	}
}

func (h *pollerHandoff) start() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	h.w = w
	go h.run(r)
}

// run wakes when the pipe is readable (the poller's doing) and gives back
// the turns pending then (readPipe, per platform), until the pipe fails —
// not expected of a pipe whose write end stays open (a read error, the
// read end closed): from then on release gives back directly.
func (h *pollerHandoff) run(r *os.File) {
	h.readPipe(r)
	h.dead.Store(true)
	h.flush(nil)
}

// flush gives back every pending turn, in order. next (empty or nil, and
// no one else's) becomes the pending list; it returns the list it gave
// back, emptied, for the caller's next flush.
func (h *pollerHandoff) flush(next []*semaphore.Weighted) []*semaphore.Weighted {
	h.mu.Lock()
	batch := h.pending
	h.pending = next[:0]
	h.mu.Unlock()
	for i, sem := range batch {
		sem.Release(1)
		batch[i] = nil
	}
	return batch[:0]
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
	handoff.release(g.sem)
	return nil
}

// release gives back the turn the request of ctx kept (withHeldTurn), if
// it holds one. It may be called more than once.
func (g *signGate) release(ctx context.Context) {
	if h := heldTurnOf(ctx); g != nil && h != nil && h.held.CompareAndSwap(true, false) {
		handoff.release(g.sem)
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
	handoff.release(g.sem)
}
