package oauth

import (
	"context"
	"errors"
	"testing"
	"time"
)

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
	var nilGate *signGate
	nilGate.release(held) // a nil gate holds nothing
}
