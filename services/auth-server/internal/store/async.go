package store

import "sync"

// asyncWorkers is how many long-lived goroutines run the store's
// per-request background round trips (goAsync).
const asyncWorkers = 16

// asyncPool is goAsync's workers. Its zero value is ready: the workers
// start with the first func. Close stops them (close).
type asyncPool struct {
	mu     sync.Mutex
	work   chan func() // nil until the workers start; closed by close
	closed bool
	// running counts the workers and the funcs handed to goroutines of
	// their own, so that close returns once none runs.
	running sync.WaitGroup
}

// goAsync runs f on one of the store's long-lived goroutines when one is
// idle, else on a new goroutine. The code's prefetch (PrefetchCode) and
// the deferred redemption (Commit) each ran on a goroutine started per
// request, which starts with the runtime's smallest stack and grew it —
// copying it each time — on its way through go-redis and its hooks:
// runtime.newstack/copystack were 1.28 % of a code grant's CPU profile
// (docs/benchmarks/auth-server-history.md, session "codecpu"). A worker's stack
// grows once (and again after the collector shrinks an idle one's). The
// hand-off is an unbuffered send: f never waits for a busy worker.
//
// After Close, goAsync runs f itself, before it returns: the store starts
// no goroutine any more, and f is not refused, because its caller's
// request waits for what f delivers (the code's read, the redemption's
// result) and would wait for ever. A request served after Close (it
// should not be) thus still gets its answer, without the overlap.
func (s *Store) goAsync(f func()) {
	p := &s.async
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		f()
		return
	}
	if p.work == nil {
		p.work = make(chan func())
		p.running.Add(asyncWorkers)
		for range asyncWorkers {
			go func() {
				defer p.running.Done()
				for f := range p.work {
					f()
				}
			}()
		}
	}
	select {
	case p.work <- f:
	default:
		p.running.Add(1)
		go func() {
			defer p.running.Done()
			f()
		}()
	}
	p.mu.Unlock()
}

// close stops the workers: idle ones at once, busy ones after their
// current func, and returns once no func of goAsync runs (one whose Redis
// reply is being read may take up to about twice the command timeout, as
// a re-listing's does: Store.Close waits for both at once).
func (p *asyncPool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.work != nil {
			close(p.work) // no send follows: goAsync sends under mu, and only before closed
		}
	}
	p.mu.Unlock()
	p.running.Wait()
}
