package oauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"
)

// settle waits until every turn given back through the poller has reached
// its semaphore.
func settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for handoff.owed.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d turns given back did not reach their semaphore in 10s", handoff.owed.Load())
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Many requests admitted, signing and giving back at once never hold more
// turns than the gate has, and every one of them is served: no turn is lost
// or made on the way through the poller (run with -race).
func TestSignGateHandoffUnderConcurrency(t *testing.T) {
	const turns, requests = 2, 64
	g := newSignGate(turns, 10*time.Second)
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%2 == 0 {
				ctx = withHeldTurn(ctx)
				defer g.release(ctx)
			}
			if err := g.admit(ctx); err != nil {
				t.Error(err)
				return
			}
			for range 2 {
				if err := g.enter(ctx); err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(50 * time.Microsecond)
				inside.Add(-1)
				g.exit(ctx)
			}
		}()
	}
	wg.Wait()
	if m := most.Load(); m > turns {
		t.Fatalf("%d signatures ran at once, the gate has %d turns", m, turns)
	}
	settle(t)
	for range turns {
		if !g.sem.TryAcquire(1) {
			t.Fatal("a turn was lost on the way through the poller")
		}
	}
	if g.sem.TryAcquire(1) {
		t.Fatal("a turn was made on the way through the poller")
	}
}

// When the poller's pipe cannot be used, turns are given back directly.
func TestSignGateHandoffWithoutPipe(t *testing.T) {
	var h pollerHandoff
	h.once.Do(func() {}) // no pipe
	sem := semaphore.NewWeighted(1)
	if !sem.TryAcquire(1) {
		t.Fatal("fresh semaphore refused")
	}
	h.release(sem)
	if !sem.TryAcquire(1) {
		t.Fatal("without a pipe the turn was not given back at once")
	}

	// A pipe whose goroutine has stopped: given back directly as well.
	h2 := pollerHandoff{}
	h2.once.Do(func() {})
	h2.dead.Store(true)
	h2.release(sem)
	if !sem.TryAcquire(1) {
		t.Fatal("with the handoff goroutine stopped the turn was not given back")
	}
}

// A grant that holds its turn (withHeldTurn) signs in it: its signatures
// neither wait in line nor give the turn back, and release gives it back
// once, however often it is called. A request without a held turn gives
// its admission turn back at once, as before.
func TestSignGateHeldTurn(t *testing.T) {
	g := newSignGate(1, 50*time.Millisecond)
	ctx := context.Background()

	if err := g.admit(ctx); err != nil {
		t.Fatalf("admit without a held turn: %v", err)
	}
	settle(t)
	if !g.sem.TryAcquire(1) {
		t.Fatal("admit without a held turn kept the slot")
	}
	g.sem.Release(1)

	held := withHeldTurn(ctx)
	if err := g.admit(held); err != nil {
		t.Fatalf("admit: %v", err)
	}
	if g.sem.TryAcquire(1) {
		t.Fatal("the held turn is not held: the only slot was free")
	}
	// Another request is refused within the queue's wait, while the
	// holder's two signatures go through in its turn.
	if err := g.admit(ctx); !errors.Is(err, errSigningBusy) {
		t.Fatalf("admit while the only turn is held: %v, want errSigningBusy", err)
	}
	for range 2 {
		if err := g.enter(held); err != nil {
			t.Fatalf("enter in the held turn: %v", err)
		}
		g.exit(held)
	}
	if err := g.admit(held); err != nil {
		t.Fatalf("a second admit of the holder: %v", err)
	}
	g.release(held)
	g.release(held) // idempotent: the slot is not given back twice
	settle(t)
	if !g.sem.TryAcquire(1) {
		t.Fatal("release did not give the turn back")
	}
	if g.sem.TryAcquire(1) {
		t.Fatal("release gave the turn back twice")
	}
	g.sem.Release(1)

	// After release the holder signs as everyone else: in line.
	if err := g.enter(held); err != nil {
		t.Fatal(err)
	}
	if g.sem.TryAcquire(1) {
		t.Fatal("enter after release did not take a slot")
	}
	g.exit(held)
	settle(t)
	if !g.sem.TryAcquire(1) {
		t.Fatal("exit did not give the slot back")
	}
	var nilGate *signGate
	nilGate.release(held) // a nil gate holds nothing
}
