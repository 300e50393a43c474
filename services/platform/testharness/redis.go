// Package testharness starts the real things tests talk to: a redis-server
// on a free port, gRPC servers on :0 over TCP. Nothing here is a mock.
package testharness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// Redis is a redis-server process owned by one test.
type Redis struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
	Args []string
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
// persistence, and stops it when the test ends. It fails the test, never
// skips, when redis-server is missing.
func StartRedis(t testing.TB, extraArgs ...string) *Redis {
	t.Helper()
	r := &Redis{t: t, Port: FreePort(t), dir: t.TempDir(), Args: extraArgs}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server on its port.
func (r *Redis) Start() {
	r.t.Helper()
	bin, err := RedisBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	args := append([]string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
	}, r.Args...)
	r.cmd = exec.Command(bin, args...)
	logPath := filepath.Join(r.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logFile.Close()
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	if err := waitTCP(r.Addr(), 10*time.Second); err != nil {
		out, _ := os.ReadFile(logPath)
		r.t.Fatalf("redis-server on %s: %v\n%s", r.Addr(), err, out)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Pause stops the server with SIGSTOP, as a hung Redis: the kernel still
// accepts connections, but nothing answers. Resume undoes it; the test's
// end resumes it too, so Stop can reap it.
func (r *Redis) Pause() {
	r.t.Helper()
	if r.cmd == nil || r.cmd.Process == nil {
		r.t.Fatal("redis-server is not running")
	}
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(r.Resume)
}

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Config returns a config.Redis for the server with a per-test key prefix.
func (r *Redis) Config() config.Redis {
	return config.Redis{URL: r.URL(), KeyPrefix: "test:" + sanitize(r.t.Name()) + ":", CommandTimeout: time.Second}
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

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}
