package store

// asyncWorkers is how many long-lived goroutines run the store's
// per-request background round trips (goAsync).
const asyncWorkers = 16

// goAsync runs f on one of the store's long-lived goroutines when one is
// idle, else on a new goroutine. The code's prefetch (PrefetchCode) and
// the deferred redemption (Commit) each ran on a goroutine started per
// request, which starts with the runtime's smallest stack and grew it —
// copying it each time — on its way through go-redis and its hooks:
// runtime.newstack/copystack were 1.28 % of a code grant's CPU profile
// (docs/benchmarks/auth-server.md, session "codecpu"). A worker's stack
// grows once (and again after the collector shrinks an idle one's). The
// hand-off is an unbuffered send: f never waits for a busy worker.
func (s *Store) goAsync(f func()) {
	s.asyncOnce.Do(func() {
		s.async = make(chan func())
		for range asyncWorkers {
			go func() {
				for f := range s.async {
					f()
				}
			}()
		}
	})
	select {
	case s.async <- f:
	default:
		go f()
	}
}
