package store

import (
	"sync"
	"testing"
)

// TestGoAsyncRunsEverything: goAsync runs every func — on an idle worker,
// or on a goroutine of its own when all asyncWorkers are busy (here all
// held until every func has started, so some must have been handed to
// new goroutines).
func TestGoAsyncRunsEverything(t *testing.T) {
	s := &Store{}
	n := 4 * asyncWorkers
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	release := make(chan struct{})
	for range n {
		s.goAsync(func() {
			started.Done()
			<-release
			done.Done()
		})
	}
	started.Wait() // more funcs than workers are running at once
	close(release)
	done.Wait()
	// The workers are idle again and take the next ones.
	for range 3 {
		ran := make(chan struct{})
		s.goAsync(func() { close(ran) })
		<-ran
	}
}
