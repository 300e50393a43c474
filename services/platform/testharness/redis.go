// Package testharness starts the real things tests talk to: a redis-server
// on a free port, gRPC servers on :0 over TCP. Nothing here is a mock.
package testharness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// RedisCommandTimeout is the REDIS_COMMAND_TIMEOUT services get in tests
// that are not about Redis failures: the production default (80ms) is
// tight for -race builds on a busy CI machine, where a healthy Redis can
// look hung. Fault tests leave it unset to exercise the default.
const RedisCommandTimeout = "1s"

// RedisDialTimeout is the REDIS_DIAL_TIMEOUT of the same tests: the
// production default (80ms) bounds a new connection, and a burst of
// concurrent requests dials new ones — on a loaded machine (load 50 on two
// cores) such a dial missed 80ms, the breaker opened and a healthy
// request got a 503 (the wrong-secret flood of TestClientAuthCannotLockOut).
// Since a connection is dialled once (redisx, no dial retries), a missed
// dial fails its command: the clients Config returns use it too (50
// concurrent redemptions in the store's contract test failed with "i/o
// timeout" under -race at load 35).
const RedisDialTimeout = "1s"

// Redis is a redis-server process owned by one test.
type Redis struct {
	t testing.TB
	// Port is the server's port (its TLS port when started with TLS).
	Port int
	// Args are added to the command line; change them before a restart.
	Args []string
	// TLS is set when the server serves TLS only (StartRedisTLS).
	TLS  *RedisTLS
	node *redisNode
}

// RedisBinary finds redis-server on PATH or explains how to get it.
func RedisBinary() (string, error) {
	if p := os.Getenv("REDIS_SERVER"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) or set REDIS_SERVER")
	}
	return p, nil
}

// StartRedis starts a fresh redis-server on a free loopback port, with no
// persistence, and stops it when the test ends. redis-server cannot be
// handed a listener, so a port another process took between the choice and
// the bind makes the harness try again on a new one. It fails the test,
// never skips, when redis-server is missing.
func StartRedis(t testing.TB, extraArgs ...string) *Redis {
	t.Helper()
	return startRedis(t, nil, extraArgs)
}

// StartRedisTLS is StartRedis serving TLS only (no plain port), with a
// certificate of c for 127.0.0.1; clients need no certificate of their own.
func StartRedisTLS(t testing.TB, c *RedisTLS, extraArgs ...string) *Redis {
	t.Helper()
	return startRedis(t, c, extraArgs)
}

func startRedis(t testing.TB, c *RedisTLS, extraArgs []string) *Redis {
	t.Helper()
	r := &Redis{t: t, Args: extraArgs, TLS: c}
	r.node = &redisNode{dir: t.TempDir(), argsFor: func(n *redisNode) ([]string, error) {
		return append(serverArgs(n, c), r.Args...), nil
	}}
	if c != nil {
		r.node.login.TLSConfig = c.ClientConfig()
	}
	for i, a := range extraArgs { // the readiness check logs in as the test will
		if a == "--requirepass" && i+1 < len(extraArgs) {
			r.node.login.Password = extraArgs[i+1]
		}
	}
	if err := r.node.startFresh(); err != nil {
		t.Fatal(err)
	}
	r.Port = r.node.Port
	t.Cleanup(r.node.close)
	return r
}

// Start restarts the server on its port (after Stop), which was held
// meanwhile; it serves on it again before the hold lets go.
func (r *Redis) Start() {
	r.t.Helper()
	if err := r.node.restart(); err != nil {
		r.t.Fatal(err)
	}
}

// Stop kills the server (as a crash would), waits for it to exit and
// holds its port until Start or the test's end (see HoldPort): connecting
// is refused, as at a crashed server, and no other socket — a listener
// the test starts on :0 meanwhile, a connection's local port — is given
// the port, which Start binds again.
func (r *Redis) Stop() { r.node.kill() }

// Pause stops the server with SIGSTOP, as a hung Redis: the kernel still
// accepts connections, but nothing answers. Resume undoes it; the test's
// end resumes it too, so Stop can reap it.
func (r *Redis) Pause() {
	r.t.Helper()
	if err := r.node.signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(r.Resume)
}

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() { _ = r.node.signal(syscall.SIGCONT) }

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is the redis:// URL of the server (rediss:// with TLS).
func (r *Redis) URL() string {
	if r.TLS != nil {
		return "rediss://" + r.Addr() + "/0"
	}
	return "redis://" + r.Addr() + "/0"
}

// Config returns a config.Redis for the server with the test's key prefix
// (KeyPrefix), the tests' command and dial timeouts (RedisCommandTimeout,
// RedisDialTimeout: the production defaults are a fault test's to set) and
// the CA file with TLS.
func (r *Redis) Config() config.Redis {
	c := config.Redis{URL: r.URL(), KeyPrefix: KeyPrefix(r.t), CommandTimeout: time.Second, DialTimeout: time.Second}
	if r.TLS != nil {
		c.TLSCAFile = r.TLS.CAFile
	}
	return c
}

// Client returns a connected client, closed when the test ends.
func (r *Redis) Client() *redisx.Client {
	r.t.Helper()
	c, err := redisx.New(r.Config())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()); err != nil {
		r.t.Fatalf("redis ping: %v", err)
	}
	return c
}

// Listener binds a free loopback port for a service the test starts later
// and must name before (an issuer URL): hand it to RunService, which gives
// it to the service, or to any server's Serve. Nothing can take the port
// in between, as it could after a pick-close-bind. It is closed when the
// test ends.
func Listener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// ListenAgain binds addr again for a service brought back where it was
// (after its Stop; hand the listener to RunService). A port still held for
// a moment by the stopped service is retried for a few seconds.
func ListenAgain(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := bindLoopback(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// ClosedAddr is a loopback host:port where nothing listens for as long as
// the test runs: a socket bound to it but not listening holds the port, so
// connecting is refused (ECONNREFUSED) and no other process is given the
// port meanwhile (a port that was merely free a moment ago could be
// anyone's by the time it is dialled).
func ClosedAddr(t testing.TB) string {
	t.Helper()
	addr, release, err := holdPort(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return addr
}

// HoldPort keeps the port of addr (host 127.0.0.1) from every other
// process while a server that used it is down, and refuses connections
// to it as a dead server's port does; release it right before binding the
// port again (binding while held works too). Use it when a test stops a
// server and brings it back on the same address: without it, any other
// process may be given the port in between. It fails the test when the
// port is already someone else's; release is also called when the test ends.
func HoldPort(t testing.TB, addr string) func() {
	t.Helper()
	release, err := HoldAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return release
}

// HoldAddr is HoldPort for a caller without a test (a test helper's Stop,
// which releases the port itself): it fails when addr is not
// 127.0.0.1:port or the port is already someone else's (EADDRINUSE).
// release is safe to call more than once.
func HoldAddr(addr string) (release func(), err error) {
	_, p, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || port == 0 {
		return nil, fmt.Errorf("hold %q: not host:port", addr)
	}
	_, release, err = holdPort(port)
	return release, err
}

// holdPort binds a TCP socket to 127.0.0.1:port (0: a free port) without
// listening. With port 0 it has no SO_REUSEADDR, so nothing else can bind
// the port at all; holding a given port sets it, as the server that just
// left may have connections in TIME_WAIT there, and a later listener (Go
// sets SO_REUSEADDR) may bind it while held. The kernel never gives a
// bound port to another socket's automatic (port 0 or connect) binding.
func holdPort(port int) (addr string, release func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return "", nil, err
	}
	syscall.CloseOnExec(fd)
	var once sync.Once
	release = func() { once.Do(func() { _ = syscall.Close(fd) }) }
	if port != 0 {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			release()
			return "", nil, err
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		release()
		return "", nil, fmt.Errorf("hold 127.0.0.1:%d: %w", port, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		release()
		return "", nil, err
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port), release, nil
}

// WaitTCP waits until addr accepts connections.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitTCP(addr, timeout); err != nil {
		t.Fatal(err)
	}
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KeyPrefix is t's Redis key prefix, "test:<name>:r<n>:": the test's name
// (with '/', ' ' and ':' as '_') and the number of this run of it in the
// test process. go test -count=n runs each test n times against the same
// shared deployments (TestMain), where what an earlier run wrote under the
// test's fixed ids — a used code, a revoked grant, a session — would meet
// this one; each run's *testing.T is new, so each run has keys of its own.
// Every call for one t gives the same prefix, so a test's clients and the
// services it starts share their keys.
func KeyPrefix(t testing.TB) string {
	n, _ := keyPrefixRuns.LoadOrStore(t, keyPrefixCount.Add(1))
	return "test:" + sanitize(t.Name()) + ":r" + strconv.FormatInt(n.(int64), 10) + ":"
}

var (
	keyPrefixRuns  sync.Map // testing.TB → the number of its run
	keyPrefixCount atomic.Int64
)

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}
