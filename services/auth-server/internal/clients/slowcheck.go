package clients

import (
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// DefaultSlowChecks is the default bound of bcrypt comparisons in flight:
// half of GOMAXPROCS, at least one. A flood of wrong bcrypt secrets from
// many addresses (which the per-address back-off does not slow) keeps every
// slot busy; with one slot per CPU the comparisons held every P of the Go
// scheduler, and every other goroutine of the server got a CPU only when
// the runtime preempted one (every 10 ms): the fast-hash clients' token
// requests went from 5 ms to ~0.2 s at the median on two CPUs
// (docs/reference/oauth.md, "Client authentication"). Half leaves the
// other half to the rest of the server. With GOMAXPROCS 1 the one slot
// still holds the only P while it runs.
func DefaultSlowChecks() int {
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// slowCheckCounters count the bcrypt comparisons of a hasher.
type slowCheckCounters struct {
	inFlight, maxInFlight atomic.Int64 // comparisons running; the most at once
	run, busy             atomic.Int64 // comparisons run; refused, every slot taken
	shared                atomic.Int64 // outcomes shared with an identical check (sharedCheck)
	// joined counts the Compares that have joined a check's flight and
	// wait for its outcome, its leader's included (sharedCheck): tests
	// start the check they hold only once the requests that are to share
	// it are in.
	joined atomic.Int64
}

// SlowCheckStats are a hasher's bcrypt comparison counters (metrics).
type SlowCheckStats struct {
	Limit       int   // the bound (SlowChecks)
	InFlight    int64 // comparisons running now
	MaxInFlight int64 // the most that ran at once since the hasher started
	Run         int64 // comparisons run
	Busy        int64 // refused with ErrSlowCheckBusy: every slot was taken
	// Shared counts the Compares that took the outcome of an identical
	// check in flight (same client id, stored hash, secret and client
	// address) instead of running their own.
	Shared int64
}

// SlowCheckStats reads the hasher's bcrypt comparison counters.
func (h *SecretHasher) SlowCheckStats() SlowCheckStats {
	return SlowCheckStats{
		Limit:    cap(h.slots),
		InFlight: h.stats.inFlight.Load(), MaxInFlight: h.stats.maxInFlight.Load(),
		Run: h.stats.run.Load(), Busy: h.stats.busy.Load(), Shared: h.stats.shared.Load(),
	}
}

// slowCompare runs one bcrypt comparison (the caller holds a slot),
// counted while it runs.
func (h *SecretHasher) slowCompare(stored, secret []byte) error {
	n := h.stats.inFlight.Add(1)
	defer h.stats.inFlight.Add(-1)
	for m := h.stats.maxInFlight.Load(); n > m && !h.stats.maxInFlight.CompareAndSwap(m, n); m = h.stats.maxInFlight.Load() {
	}
	h.stats.run.Add(1)
	return bcrypt.CompareHashAndPassword(stored, secret)
}
