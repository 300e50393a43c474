package oauth

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fjwt "github.com/ory/fosite/token/jwt"
	"golang.org/x/sync/semaphore"
)

// settle waits until every turn of g given back through the poller has
// reached it: a turn on its way is held in g's semaphore until then, so
// once all g's turns can be taken none is owed. A turn lost on the way
// fails here (after 10 s); one given back twice panics in the semaphore.
func settle(t *testing.T, g *signGate, turns int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !g.sem.TryAcquire(turns) {
		if time.Now().After(deadline) {
			t.Fatalf("the gate's %d turns did not all come back through the poller in 10s (%d free)", turns, turnsLeft(g))
		}
		time.Sleep(100 * time.Microsecond)
	}
	g.sem.Release(turns)
}

// Many requests admitted, signing and giving back at once never hold more
// turns than the gate has, and every one of them is served: no turn is lost
// or made on the way through the poller (run with -race). Also at
// SIGNING_CONCURRENCY's bound, 256 turns.
func TestSignGateHandoffUnderConcurrency(t *testing.T) {
	for _, tc := range []struct{ turns, requests int }{{2, 64}, {256, 768}} {
		turns := int64(tc.turns)
		g := newSignGate(tc.turns, 10*time.Second)
		var inside, most atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range tc.requests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
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
		close(start)
		wg.Wait()
		if m := most.Load(); m > turns {
			t.Fatalf("%d turns: %d signatures ran at once", turns, m)
		}
		settle(t, g, turns)
		if n := turnsLeft(g); int64(n) != turns {
			t.Fatalf("%d turns: %d after the requests", turns, n)
		}
		t.Logf("%d turns, %d requests: at most %d signatures at once", turns, tc.requests, most.Load())
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
	settle(t, g, 1)
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
	settle(t, g, 1)
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
	settle(t, g, 1)
	if !g.sem.TryAcquire(1) {
		t.Fatal("exit did not give the slot back")
	}
	var nilGate *signGate
	nilGate.release(held) // a nil gate holds nothing
}

// turnsLeft takes every turn g gives without waiting and reports how many
// it took (then gives them back directly).
func turnsLeft(g *signGate) int {
	n := 0
	for g.sem.TryAcquire(1) {
		n++
	}
	if n > 0 {
		g.sem.Release(int64(n))
	}
	return n
}

// Requests whose clients go away at every point of their way through the
// gate — while queued for admission, holding their turn, waiting in line
// for a signature, right after giving a turn back — with refusals (a short
// queue wait) among them, on two gates sharing the process's hand-off: no
// more signatures run at once than a gate has turns, and once all have
// ended each gate has exactly its turns again (run with -race).
func TestSignGateCancelStorm(t *testing.T) {
	gates := []*signGate{newSignGate(1, time.Millisecond), newSignGate(3, 20*time.Millisecond)}
	turns := []int64{1, 3}
	inside := make([]atomic.Int64, len(gates))
	var wg sync.WaitGroup
	var refused, canceled atomic.Int64
	for i := range 400 {
		gi := i % len(gates)
		g := gates[gi]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%3 != 0 {
				ctx = withHeldTurn(ctx)
				defer g.release(ctx)
			}
			// Canceled at a point that varies with i: before admission,
			// while queued, while signing, between give-back and hand-off.
			switch i % 5 {
			case 0:
				cancel()
			case 1:
				go cancel()
			}
			if err := g.admit(ctx); err != nil {
				if errors.Is(err, errSigningBusy) {
					refused.Add(1)
				} else {
					canceled.Add(1)
				}
				return
			}
			if i%5 == 2 {
				go cancel()
			}
			for range 2 {
				if err := g.enter(ctx); err != nil {
					canceled.Add(1)
					return
				}
				if n := inside[gi].Add(1); n > turns[gi] {
					t.Errorf("gate %d: %d signatures at once, %d turns", gi, n, turns[gi])
				}
				time.Sleep(20 * time.Microsecond)
				inside[gi].Add(-1)
				g.exit(ctx)
				if i%5 == 3 {
					cancel()
				}
			}
			if i%5 == 4 {
				g.release(ctx) // given back early, then again by the defer
				cancel()
			}
		}()
	}
	wg.Wait()
	for gi, g := range gates {
		settle(t, g, turns[gi])
	}
	for gi, g := range gates {
		if n := turnsLeft(g); int64(n) != turns[gi] {
			t.Fatalf("gate %d: %d turns after the storm, want %d", gi, n, turns[gi])
		}
	}
	t.Logf("refused %d, canceled %d of 400", refused.Load(), canceled.Load())
}

// waitQueued waits until n goroutines are queued in a semaphore's Acquire
// (the only way to see a waiter from outside semaphore.Weighted).
func waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		l := runtime.Stack(buf, true)
		if got := bytes.Count(buf[:l], []byte("semaphore.(*Weighted).Acquire(")); got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines not queued in 10s", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The queue stays in arrival order through the hand-off: with one turn,
// requests queued one after another are admitted in that order, each turn
// passing through the poller when the one before gives it back (release).
func TestSignGateFIFOThroughHandoff(t *testing.T) {
	g := newSignGate(1, time.Minute)
	first := withHeldTurn(context.Background())
	if err := g.admit(first); err != nil {
		t.Fatal(err)
	}
	const k = 12
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := withHeldTurn(context.Background())
			defer g.release(ctx)
			if err := g.admit(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
		waitQueued(t, i+1)
	}
	g.release(first)
	wg.Wait()
	if len(order) != k {
		t.Fatalf("%d of %d admitted", len(order), k)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("admitted in the order %v, queued 0..%d", order, k-1)
		}
	}
	settle(t, g, 1)
	if n := turnsLeft(g); n != 1 {
		t.Fatalf("%d turns after, want 1", n)
	}
}

// startTestHandoff starts a pollerHandoff of the test's own (not the
// process's handoff, which the code under test may use) with its
// goroutine running on a new pipe. It returns the hand-off, the pipe's
// read end (closing it stops the goroutine, as a failed read would) and a
// channel closed once the goroutine has stopped; when t ends the read end
// is closed, the goroutine waited for and the write end closed.
func startTestHandoff(t *testing.T) (h *pollerHandoff, r *os.File, stopped <-chan struct{}) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	h = &pollerHandoff{w: w}
	h.once.Do(func() {})
	done := make(chan struct{})
	go func() { h.run(r); close(done) }()
	t.Cleanup(func() { r.Close(); <-done; w.Close() })
	return h, r, done
}

// The hand-off's goroutine stopping while turns pass through it (its pipe's
// read end closed under it: the read fails, as the "dead reader" fallback
// expects) loses no turn: the ones pending then are flushed by it, or by
// the release that finds it stopped or cannot write, and later ones go
// back directly (run with -race).
func TestSignGateHandoffReaderDiesUnderLoad(t *testing.T) {
	for round := range 20 {
		h, r, stopped := startTestHandoff(t)
		const turns = 4
		sem := semaphore.NewWeighted(turns)
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sem.Acquire(context.Background(), 1); err != nil {
					t.Error(err)
					return
				}
				h.release(sem)
				if i == 100 {
					r.Close()
				}
			}()
		}
		wg.Wait()
		<-stopped
		if !h.dead.Load() {
			t.Fatalf("round %d: the reader did not stop", round)
		}
		h.mu.Lock()
		pending := len(h.pending)
		h.mu.Unlock()
		if pending != 0 {
			t.Fatalf("round %d: %d turns still pending after the reader stopped", round, pending)
		}
		if !sem.TryAcquire(turns) {
			t.Fatalf("round %d: a turn was lost when the reader stopped", round)
		}
		if sem.TryAcquire(1) {
			t.Fatalf("round %d: a turn was made when the reader stopped", round)
		}
		h.w.Close()
	}
}

// panicSigner is an ID-token signer that panics (a bug, recovered by
// net/http for its connection).
type panicSigner struct{ fjwt.Signer }

func (panicSigner) Generate(context.Context, fjwt.MapClaims, fjwt.Mapper) (string, string, error) {
	panic("signer bug")
}

// A signature that panics gives its turn back: net/http recovers a
// handler's panic and goes on serving, and a turn lost there would, with
// one turn, refuse every later token request.
func TestSignGatePanickingSignatureKeepsTheTurn(t *testing.T) {
	g := newSignGate(1, time.Millisecond)
	s := timedSigner{Signer: panicSigner{}, m: newSigningMeter(), alg: "RS256", gate: g}
	func() {
		defer func() { _ = recover() }()
		_, _, _ = s.Generate(context.Background(), fjwt.MapClaims{}, &fjwt.Headers{})
	}()
	settle(t, g, 1)
	if n := turnsLeft(g); n != 1 {
		t.Fatalf("%d turns after a panicking signature, want 1", n)
	}
}

// A signature that panics leaves its goroutine unlocked from its thread
// (signingMeter.sign locks it to read the thread's CPU clock) and gives its
// turn back: every lock is undone however the signer ends, and the
// goroutine signs again, in its turn, after the panic was recovered.
func TestSigningMeterPanicUnlocksTheThread(t *testing.T) {
	var locks, unlocks atomic.Int64
	t.Cleanup(func() { lockThread, unlockThread = runtime.LockOSThread, runtime.UnlockOSThread })
	lockThread = func() { locks.Add(1); runtime.LockOSThread() }
	unlockThread = func() { unlocks.Add(1); runtime.UnlockOSThread() }

	g := newSignGate(1, time.Millisecond)
	m := newSigningMeter()
	s := timedSigner{Signer: panicSigner{}, m: m, alg: "RS256", gate: g}
	for range 3 {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the signer's panic did not reach the caller")
				}
			}()
			_, _, _ = s.Generate(context.Background(), fjwt.MapClaims{}, &fjwt.Headers{})
		}()
		if l, u := locks.Load(), unlocks.Load(); l == 0 || l != u {
			t.Fatalf("after a panicking signature: %d thread locks, %d unlocks", l, u)
		}
	}
	// The meter still measures, and the access-token path's sign as well.
	if err := m.sign("RS256", "access_token", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if l, u := locks.Load(), unlocks.Load(); l != 4 || u != 4 {
		t.Fatalf("%d locks, %d unlocks after four signatures, want 4 and 4", l, u)
	}
	settle(t, g, 1)
	if n := turnsLeft(g); n != 1 {
		t.Fatalf("%d turns after panicking signatures, want 1", n)
	}
}

// A turn given back through the poller allocates nothing: the byte written
// to the pipe does not escape, and the hand-off's goroutine swaps two lists
// of pending turns instead of starting a new one per batch (it did: one
// allocation per batch). Not checked with the race detector, whose
// instrumentation allocates.
func TestSignGateHandoffAllocatesNothing(t *testing.T) {
	h, _, _ := startTestHandoff(t)
	sem := semaphore.NewWeighted(1)
	handOff := func() {
		if !sem.TryAcquire(1) {
			t.Fatal("the turn is not free")
		}
		h.release(sem)
		for !sem.TryAcquire(1) { // back once the poller's goroutine gave it
			time.Sleep(20 * time.Microsecond)
		}
		sem.Release(1)
	}
	allocs := testing.AllocsPerRun(200, handOff)
	t.Logf("%.2f allocations per turn handed off", allocs)
	if allocs != 0 && !raceEnabled {
		t.Fatalf("%.2f allocations per turn handed off, want 0", allocs)
	}
}

// The hand-off's goroutine reads its pipe once per batch of turns: it
// waits for the poller before it reads, so no read finds the pipe empty.
// With os.File.Read, which reads first and waits after, it made two
// read(2) per batch, the second answered EAGAIN. Counted in
// /proc/self/io's syscr (the process's read-family system calls, Linux)
// over turns handed over one at a time, each waited for without a timer
// (a sleep can wake the poller through its eventfd, a read of its own);
// the least of three tries, as a test elsewhere in the binary may leave
// a goroutine reading.
func TestSignGateHandoffReadsOncePerBatch(t *testing.T) {
	if _, err := os.ReadFile("/proc/self/io"); err != nil {
		t.Skipf("no read counter: %v", err)
	}
	h, _, _ := startTestHandoff(t)
	sem := semaphore.NewWeighted(1)
	handOff := func() {
		if !sem.TryAcquire(1) {
			t.Fatal("the turn is not free")
		}
		h.release(sem)
		// Back once the poller's goroutine gave it.
		if err := sem.Acquire(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		sem.Release(1)
	}
	handOff()
	const turns = 200
	least := math.MaxFloat64
	for range 3 {
		r0 := readCalls(t)
		for range turns {
			handOff()
		}
		// readCalls' own reads (open, read to EOF) counted once.
		calibrate := readCalls(t)
		own := readCalls(t) - calibrate
		least = min(least, float64(calibrate-r0-own)/turns)
	}
	t.Logf("%.2f read(2) per turn handed over", least)
	if least > 1.5 {
		t.Fatalf("%.2f read(2) per turn handed over, want 1", least)
	}
}

// readCalls is the process's read-family system calls so far
// (/proc/self/io's syscr).
func readCalls(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no syscr in /proc/self/io: %q", raw)
	return 0
}
