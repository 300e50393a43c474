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
	niced                 atomic.Int64 // comparisons run at SlowCheckNice
	// threadsEnded: threads whose priority could not be restored after a
	// comparison (no CAP_SYS_NICE): they end rather than serve others.
	threadsEnded atomic.Int64
}

// SlowCheckStats are a hasher's bcrypt comparison counters (metrics).
type SlowCheckStats struct {
	Limit       int   // the bound (SlowChecks)
	Nice        int   // SlowCheckNice asked for
	InFlight    int64 // comparisons running now
	MaxInFlight int64 // the most that ran at once since the hasher started
	Run         int64 // comparisons run
	Busy        int64 // refused with ErrSlowCheckBusy: every slot was taken
	// Niced: comparisons that ran on a thread at Nice. ThreadsEnded:
	// threads that could not be given their priority back and ended.
	Niced, ThreadsEnded int64
}

// SlowCheckStats reads the hasher's bcrypt comparison counters.
func (h *SecretHasher) SlowCheckStats() SlowCheckStats {
	return SlowCheckStats{
		Limit: cap(h.slots), Nice: h.nice,
		InFlight: h.stats.inFlight.Load(), MaxInFlight: h.stats.maxInFlight.Load(),
		Run: h.stats.run.Load(), Busy: h.stats.busy.Load(),
		Niced: h.stats.niced.Load(), ThreadsEnded: h.stats.threadsEnded.Load(),
	}
}

// slowCompare runs one bcrypt comparison (the caller holds a slot). With
// SlowCheckNice set it runs on a goroutine of its own, locked to its
// thread at the lowered priority (lowPriority, Linux): a thread whose
// priority cannot be raised back is ended with that goroutine instead of
// returning to the runtime's pool, where any goroutine could run on it.
func (h *SecretHasher) slowCompare(stored, secret []byte) error {
	compare := func(tid, nice int) error {
		n := h.stats.inFlight.Add(1)
		defer h.stats.inFlight.Add(-1)
		for m := h.stats.maxInFlight.Load(); n > m && !h.stats.maxInFlight.CompareAndSwap(m, n); m = h.stats.maxInFlight.Load() {
		}
		h.stats.run.Add(1)
		if nice > 0 {
			h.stats.niced.Add(1)
		}
		if h.onSlowCheck != nil {
			h.onSlowCheck(tid, nice)
		}
		return bcrypt.CompareHashAndPassword(stored, secret)
	}
	if h.nice == 0 {
		return compare(0, 0)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if !lowPriority(h.nice, func(tid, nice int) { err = compare(tid, nice) }) {
			h.stats.threadsEnded.Add(1)
		}
		done <- err
		// A goroutine that ends locked to its thread ends the thread
		// (runtime.LockOSThread): lowPriority leaves it locked when the
		// thread's priority could not be restored.
	}()
	return <-done
}
