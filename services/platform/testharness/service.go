package testharness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/config"
)

// ShutdownTimeout is the SHUTDOWN_TIMEOUT test harnesses give services.
// net/http's Shutdown counts a connection that was opened but never sent a
// request (a client transport's spare dial) as idle only once it is 5 s
// old, so any timeout of 5 s or less makes a clean stop fail whenever such
// a connection was opened just before it; 15 s leaves room under load.
const ShutdownTimeout = "15s"

// RunFunc is the signature of every service's Run.
type RunFunc func(ctx context.Context, getenv func(string) string, stderr io.Writer, onListen app.Listening) error

// Service is a service running in-process for one test.
type Service struct {
	// Addrs are the bound addresses by server name ("http", "grpc", "admin").
	Addrs map[string]net.Addr
	// Logs is everything the service logged.
	Logs *SyncBuffer
	stop func() error
}

// Addr returns the host:port of the named server.
func (s *Service) Addr(name string) string { return s.Addrs[name].String() }

// Stop shuts the service down gracefully and returns Run's error. It is
// also called when the test ends.
func (s *Service) Stop() error { return s.stop() }

// RunService starts run with env and waits until it listens. Addresses
// such as HTTP_ADDR should be 127.0.0.1:0, or, when the test must know one
// before the service starts (an issuer or public URL names it), the
// address of a listener from Listener handed over in lns: the service takes
// that listener instead of binding (app.WithListeners). The service stops
// when the test ends; a non-nil error from Run then fails the test.
func RunService(t testing.TB, run RunFunc, env map[string]string, lns ...net.Listener) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(app.WithListeners(context.Background(), lns...))
	s := &Service{Logs: &SyncBuffer{}}
	addrs := make(chan map[string]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config.MapEnv(env), s.Logs, func(a map[string]net.Addr) { addrs <- a })
	}()
	select {
	case s.Addrs = <-addrs:
	case err := <-done:
		cancel()
		t.Fatalf("service did not start: %v\n%s", err, s.Logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("service did not start within 30s\n%s", s.Logs)
	}
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		// The test's HTTP clients may hold connections they dialled for a
		// request another connection then served: the service sees them as
		// new (no request yet), and net/http's Shutdown waits 5 s for those
		// — as long as the services' shutdown timeout, so a concurrent test
		// failed now and then with "http shutdown: context deadline
		// exceeded". Closing the idle connections of the default transport
		// (the one tests use) first ends them.
		if tr, ok := http.DefaultTransport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
		if err := s.stop(); err != nil {
			t.Errorf("service stopped with error: %v", err)
		}
		if t.Failed() {
			t.Logf("service log:\n%s", s.Logs)
		}
	})
	return s
}

// SyncBuffer is a goroutine-safe log sink. The zero value keeps the logs
// in memory. A Process's Logs is backed by a file instead, which the child
// process writes itself (StartProcess): no goroutine copies its output, so
// String holds every byte the child had written when String was called —
// a line it logged before answering a request is there as soon as the
// answer has arrived, and nothing is written after the test's end.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	f  *os.File // the backing file while a child may write it (nil: b)
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return s.f.Write(p)
	}
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		b, err := io.ReadAll(io.NewSectionReader(s.f, 0, math.MaxInt64))
		if err != nil {
			return string(b) + fmt.Sprintf("\n(testharness: reading the log file %s: %v)\n", s.f.Name(), err)
		}
		return string(b)
	}
	return s.b.String()
}

// newFileBuffer returns a SyncBuffer backed by a new temporary file (opened
// for appending) and that file, to give a child process as its stdout and
// stderr. closeFile ends the backing.
func newFileBuffer(name string) (*SyncBuffer, *os.File, error) {
	tmp, err := os.CreateTemp("", "testharness-"+name+"-*.log")
	if err != nil {
		return nil, nil, err
	}
	path := tmp.Name()
	_ = tmp.Close()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		_ = os.Remove(path)
		return nil, nil, err
	}
	return &SyncBuffer{f: f}, f, nil
}

// closeFile keeps what the backing file holds in memory, then closes and
// removes the file; the buffer is an in-memory one from then on. Call it
// once no child writes the file any more.
func (s *SyncBuffer) closeFile() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	b, err := io.ReadAll(io.NewSectionReader(s.f, 0, math.MaxInt64))
	s.b.Write(b)
	if err != nil {
		fmt.Fprintf(&s.b, "\n(testharness: reading the log file %s: %v)\n", s.f.Name(), err)
	}
	_ = s.f.Close()
	_ = os.Remove(s.f.Name())
	s.f = nil
}
