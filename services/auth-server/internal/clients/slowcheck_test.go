package clients

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDefaultSlowChecks: without CLIENT_SECRET_SLOW_CHECKS the bound is
// half of GOMAXPROCS, at least one, so a flood of wrong bcrypt secrets
// leaves the other half of the Go scheduler's Ps to the rest of the server.
func TestDefaultSlowChecks(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 8: 4, 16: 8} {
		runtime.GOMAXPROCS(procs)
		h := newHasher(t, SecretHasherOptions{Key: testKey})
		if got := h.SlowCheckStats().Limit; got != want || DefaultSlowChecks() != want {
			t.Errorf("GOMAXPROCS %d: %d slow checks (DefaultSlowChecks %d), want %d", procs, got, DefaultSlowChecks(), want)
		}
	}
}

// TestSlowChecksBoundUnderFlood: 48 goroutines compare wrong bcrypt
// secrets at once: the comparisons counted while they run (around the
// bcrypt call itself, not the slot) never exceed the bound, every attempt
// is either run or refused busy, and none is accepted. Right secrets,
// cached ones and fast hashes checked during the flood are accepted.
func TestSlowChecksBoundUnderFlood(t *testing.T) {
	h := newHasher(t, SecretHasherOptions{Key: testKey, SlowChecks: 2})
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	fast, _ := h.Hash(context.Background(), []byte("right"))
	cachedCtx := WithAttempt(context.Background(), &Attempt{ClientID: "cached"})
	if err := h.Compare(cachedCtx, stored, []byte("right")); err != nil {
		t.Fatal(err)
	}
	const workers, each = 48, 8
	var wg sync.WaitGroup
	var accepted, busy, mismatched int64
	var cmu sync.Mutex
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := h.Compare(context.Background(), stored, fmt.Appendf(nil, "wrong-%d-%d", w, i))
				cmu.Lock()
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, ErrSlowCheckBusy):
					busy++
				case errors.Is(err, ErrSecretMismatch):
					mismatched++
				}
				cmu.Unlock()
				if err := h.Compare(cachedCtx, stored, []byte("right")); err != nil {
					t.Errorf("cached secret during the flood: %v", err)
				}
				if err := h.Compare(context.Background(), fast, []byte("right")); err != nil {
					t.Errorf("fast hash during the flood: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	s := h.SlowCheckStats()
	if accepted != 0 {
		t.Errorf("%d wrong secrets accepted", accepted)
	}
	if s.MaxInFlight > 2 {
		t.Errorf("%d comparisons ran at once, bound 2", s.MaxInFlight)
	}
	if s.MaxInFlight < 1 || s.InFlight != 0 {
		t.Errorf("in flight: most %d, now %d", s.MaxInFlight, s.InFlight)
	}
	// One comparison ran before the flood (the cached secret's).
	if s.Run != mismatched+1 || s.Busy != busy || mismatched+busy != workers*each {
		t.Errorf("stats %+v; counted %d mismatched, %d busy of %d", s, mismatched, busy, workers*each)
	}
}

// TestCachedAndFastSecretsNeverWaitForASlot: with every slot held, a
// cached bcrypt secret and a fast hash are checked (and accepted) without
// a slot — the test would block or see ErrSlowCheckBusy otherwise — and
// run no bcrypt comparison; an uncached bcrypt secret is refused busy.
func TestCachedAndFastSecretsNeverWaitForASlot(t *testing.T) {
	h := newHasher(t, SecretHasherOptions{Key: testKey, SlowChecks: 1})
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	fast, _ := h.Hash(context.Background(), []byte("right"))
	ctx := WithAttempt(context.Background(), &Attempt{ClientID: "c1"})
	if err := h.Compare(ctx, stored, []byte("right")); err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	run := h.SlowCheckStats().Run
	if err := h.Compare(ctx, stored, []byte("right")); err != nil {
		t.Errorf("cached secret with every slot held: %v", err)
	}
	if err := h.Compare(ctx, fast, []byte("right")); err != nil {
		t.Errorf("fast hash with every slot held: %v", err)
	}
	if err := h.Compare(WithAttempt(context.Background(), &Attempt{ClientID: "c2"}), stored, []byte("right")); !errors.Is(err, ErrSlowCheckBusy) {
		t.Errorf("uncached secret with every slot held: %v, want ErrSlowCheckBusy", err)
	}
	if s := h.SlowCheckStats(); s.Run != run || s.Busy != 1 {
		t.Errorf("stats %+v: want no comparison run (%d before) and 1 busy", s, run)
	}
}
