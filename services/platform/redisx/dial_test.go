package redisx_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// attempts is a real net dialer (redisx.WithNetDial) that records how long
// each dial attempt took and how it failed.
type attempts struct {
	mu    sync.Mutex
	took  []time.Duration
	errs  []error
	after func(i int, err error) // runs after attempt i, before it returns
}

func (a *attempts) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	a.mu.Lock()
	i := len(a.took)
	a.took, a.errs = append(a.took, time.Since(start)), append(a.errs, err)
	after := a.after
	a.mu.Unlock()
	if after != nil {
		after(i, err)
	}
	return conn, err
}

func (a *attempts) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.took, a.errs = nil, nil
}

func (a *attempts) get() ([]time.Duration, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Duration(nil), a.took...), append([]error(nil), a.errs...)
}

// fullListener is a loopback listener whose accept queue is full: it
// listens with a backlog of 0 and holds connections that nobody accepts,
// so the kernel drops every further SYN and a dial times out (nothing
// refuses it). accept starts accepting, each connection proxied to target.
func fullListener(t *testing.T, target string) (addr string, accept func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "full-listener")
	ln, err := net.FileListener(f)
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	addr = ln.Addr().String()
	// Fill the queue: connections complete in the kernel until it is full;
	// the first dial that times out proves it is.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			_ = c.Close()
		}
	})
	for tries := 0; ; tries++ {
		if tries == 64 {
			t.Fatalf("the accept queue does not fill (%d held)", len(held))
		}
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && len(held) > 0 {
				break
			}
			if len(held) > 0 || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
			continue // a starved dial into an empty queue: try again
		}
		held = append(held, c)
	}
	var once sync.Once
	accept = func() {
		once.Do(func() {
			// Empty the queue before returning: a SYN that meets it full
			// is sent again only after a second.
			for _, c := range held {
				_ = c.Close()
				if s, err := ln.Accept(); err == nil {
					_ = s.Close()
				}
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go proxy(c, target)
				}
			}()
		})
	}
	return addr, accept
}

// blackHoled returns a client of a fresh Redis with the production
// timeouts (productionTimeouts) whose every dial, made by a, goes through
// a fullListener: it times out until accept is called, after which the
// listener proxies to Redis. The client is closed when the test ends.
func blackHoled(t *testing.T, a *attempts) (c *redisx.Client, accept func()) {
	t.Helper()
	r := testharness.StartRedis(t)
	addr, accept := fullListener(t, r.Addr())
	cfg := productionTimeouts(r)
	cfg.URL = "redis://" + addr + "/0"
	c, err := redisx.New(cfg, redisx.WithNetDial(a.dial))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, accept
}

func proxy(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
}

// TestTimedOutDialIsDialedOnceMore: a dial that times out — Redis up, the
// SYN not answered in time, as under CPU starvation — is made once more,
// with twice REDIS_DIAL_TIMEOUT, and the command is served. With one
// attempt (d20614d) it failed with 'dial tcp: i/o timeout', a 503 for the
// request that needed the connection.
func TestTimedOutDialIsDialedOnceMore(t *testing.T) {
	a := &attempts{}
	c, accept := blackHoled(t, a)
	a.after = func(i int, err error) {
		if i == 0 {
			accept() // the queue has room for the next attempt
		}
	}
	if err := c.Set(context.Background(), c.Key("k"), "v", time.Minute).Err(); err != nil {
		took, errs := a.get()
		t.Fatalf("command after a timed-out dial: %v (attempts %v: %v)", err, took, errs)
	}
	took, errs := a.get()
	if len(took) != 2 || !isTimeout(errs[0]) || errs[1] != nil {
		t.Fatalf("attempts %v: %v; want a timeout, then a connection", took, errs)
	}
	if took[0] < config.DefaultRedisDialTimeout-5*time.Millisecond {
		t.Errorf("first attempt gave up after %s, want REDIS_DIAL_TIMEOUT (%s)", took[0], config.DefaultRedisDialTimeout)
	}
}

// TestRefusedDialIsNotRetried: a refused connection is one dial attempt
// (redisx's own retry is for timeouts only), so a Redis that is down
// still fails a command at once.
func TestRefusedDialIsNotRetried(t *testing.T) {
	cfg := config.Redis{URL: "redis://" + testharness.ClosedAddr(t) + "/0"}
	a := &attempts{}
	c, err := redisx.New(cfg, redisx.WithNetDial(a.dial))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background()); !redisx.IsUnavailable(err) {
		t.Fatalf("ping a refusing port: %v, want unavailable", err)
	}
	took, errs := a.get()
	if len(took) != 1 || !errors.Is(errs[0], syscall.ECONNREFUSED) {
		t.Fatalf("attempts %v: %v; want one, refused", took, errs)
	}
}

// TestDialWorstCaseWithinGiveUpAfter: a black-holed Redis (every SYN
// dropped) costs a command two attempts, REDIS_DIAL_TIMEOUT and twice
// that, and the command fails within GiveUpAfter (which the auth-server's
// late-rotation guard takes as the longest a caller waits).
func TestDialWorstCaseWithinGiveUpAfter(t *testing.T) {
	a := &attempts{}
	c, _ := blackHoled(t, a)
	dial, cmd := config.DefaultRedisDialTimeout, config.DefaultRedisCommandTimeout
	if want := time.Second + 3*dial + 2*cmd; c.GiveUpAfter() != want {
		t.Errorf("GiveUpAfter %s, want pool wait 1s + 3 × dial + 2 × command = %s", c.GiveUpAfter(), want)
	}
	start := time.Now()
	err := c.Get(context.Background(), c.Key("k")).Err()
	elapsed := time.Since(start)
	if !redisx.IsUnavailable(err) || !isTimeout(err) {
		t.Fatalf("get through a black hole: %v, want a timeout", err)
	}
	took, errs := a.get()
	if len(took) != 2 || !isTimeout(errs[0]) || !isTimeout(errs[1]) {
		t.Fatalf("attempts %v: %v; want two timeouts", took, errs)
	}
	// The second attempt has 2 × REDIS_DIAL_TIMEOUT, or what is left of
	// the dialer's 3 × (go-redis's DialTimeout, from just before the first
	// attempt) when the first took longer than its own.
	if want := min(2*dial, 3*dial-took[0]); took[1] < want-5*time.Millisecond {
		t.Errorf("second attempt gave up after %s (the first after %s), want %s", took[1], took[0], want)
	}
	if elapsed > c.GiveUpAfter() {
		t.Errorf("the command failed after %s, beyond GiveUpAfter %s", elapsed, c.GiveUpAfter())
	}
}

// TestPipelineDialWorstCaseWithinGiveUpAfter: a pipeline through a
// black-holed Redis is one connection's dial too — go-redis v9.23's
// dedicated pipeline pool, whose failed dial spilled to the main pool for
// another pool wait and dial (four attempts, about 1.9 s with the
// defaults), is turned off — and fails within GiveUpAfter.
func TestPipelineDialWorstCaseWithinGiveUpAfter(t *testing.T) {
	a := &attempts{}
	c, _ := blackHoled(t, a)
	for _, tc := range []struct {
		name string
		pipe func() redis.Pipeliner
	}{{"pipeline", c.Pipeline}, {"transaction", c.TxPipeline}} {
		a.reset()
		start := time.Now()
		p := tc.pipe()
		p.Get(context.Background(), c.Key("k"))
		_, err := p.Exec(context.Background())
		elapsed := time.Since(start)
		if !redisx.IsUnavailable(err) || !isTimeout(err) {
			t.Fatalf("%s through a black hole: %v, want a timeout", tc.name, err)
		}
		took, errs := a.get()
		if len(took) != 2 || !isTimeout(errs[0]) || !isTimeout(errs[1]) {
			t.Errorf("%s: attempts %v: %v; want two timeouts (one connection's dial)", tc.name, took, errs)
		}
		if elapsed > c.GiveUpAfter() {
			t.Errorf("the %s failed after %s, beyond GiveUpAfter %s", tc.name, elapsed, c.GiveUpAfter())
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
