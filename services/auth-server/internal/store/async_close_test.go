package store

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asyncGoroutines counts the goroutines running goAsync's funcs: its
// workers and the goroutines of its own it gives a func when all are busy.
func asyncGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("created by github.com/tollgate/tollgate/services/auth-server/internal/store.(*Store).goAsync")) {
			n++
		}
	}
	return n
}

// waitAsyncGoroutines waits until asyncGoroutines is want: a goroutine
// that returned may still be listed for a moment. The deadline only
// bounds a failure.
func waitAsyncGoroutines(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := asyncGoroutines()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines of goAsync, want %d", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseStopsAsyncWorkers: Close stops goAsync's workers — idle ones,
// a busy one once its func returns, and a func handed to a goroutine of its
// own — and returns only after those funcs returned; after it, goAsync
// runs its func on the caller's goroutine and starts none.
func TestCloseStopsAsyncWorkers(t *testing.T) {
	base := asyncGoroutines() // other tests' stores, idle
	s := &Store{}
	// All workers busy, plus one func on a goroutine of its own.
	n := asyncWorkers + 1
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	var finished atomic.Int32
	for range n {
		s.goAsync(func() {
			started.Done()
			<-release
			finished.Add(1)
		})
	}
	started.Wait()
	// The workers, and a goroutine of its own for each func no worker was
	// ready to take (at least one: all are busy).
	if got := asyncGoroutines() - base; got < asyncWorkers+1 {
		t.Fatalf("%d goroutines of goAsync running %d funcs, want at least %d", got, n, asyncWorkers+1)
	}
	closed := make(chan int32)
	go func() {
		s.Close()
		closed <- finished.Load()
	}()
	select {
	case got := <-closed:
		t.Fatalf("Close returned with %d funcs still held running (of %d), before they were released", int32(n)-got, n)
	case <-time.After(50 * time.Millisecond): // Close is waiting, as it must
	}
	close(release)
	if got := <-closed; got != int32(n) {
		t.Errorf("Close returned with %d of %d running funcs finished", got, n)
	}
	waitAsyncGoroutines(t, base, "after Close")

	// After Close: run on the caller's goroutine, nothing started.
	ran := false
	s.goAsync(func() { ran = true })
	if !ran {
		t.Error("goAsync after Close did not run its func before returning")
	}
	if got := asyncGoroutines() - base; got != 0 {
		t.Errorf("goAsync after Close started %d goroutines", got)
	}
	s.Close() // twice: no panic, nothing to wait for
}

// TestCloseBeforeAnyAsync: a store whose workers never started closes at
// once, and starts none after.
func TestCloseBeforeAnyAsync(t *testing.T) {
	base := asyncGoroutines()
	s := &Store{}
	s.Close()
	ran := false
	s.goAsync(func() { ran = true })
	if got := asyncGoroutines() - base; !ran || got != 0 {
		t.Errorf("after Close: ran %v, %d goroutines of goAsync started", ran, got)
	}
}
