package testharness

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestRedisStartOnATakenPort: when another redis-server already serves the
// port picked for a node (it took it between the pick and the bind), the
// start is recognised as a bind failure — not as "up", though the port
// answers Redis — and a fresh start moves to new ports.
func TestRedisStartOnATakenPort(t *testing.T) {
	other := StartRedis(t)
	n := &redisNode{dir: t.TempDir(), argsFor: func(n *redisNode) ([]string, error) { return serverArgs(n, nil), nil }}
	n.Port = other.Port
	if c, err := net.Dial("tcp", n.Addr()); err == nil {
		c.Close() // a TCP check alone would have called the node up
	}
	if err := n.startOnce(); !errors.Is(err, errPortTaken) {
		n.kill()
		t.Fatalf("start on %s, served by another redis-server: %v, want errPortTaken", n.Addr(), err)
	}
	if n.running() {
		t.Fatal("a node that could not bind counts as running")
	}
	if err := n.startFresh(); err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if n.Port == other.Port {
		t.Errorf("fresh start kept the taken port %d", n.Port)
	}
}

// TestRedisPauseReturnsStopped: Pause returns once every thread of the
// server is stopped — kill(2) alone returns before the kernel has stopped
// them, and a "hung" server could still answer the test's next call.
// Checked at once after Pause, without polling; after Resume the server
// answers again.
func TestRedisPauseReturnsStopped(t *testing.T) {
	r := StartRedis(t)
	pid := r.node.cur.cmd.Process.Pid
	for range 20 { // each round would be a chance for kill(2)'s race to show
		r.Pause()
		if n, err := runningThreads(pid); err != nil || n != 0 {
			t.Fatalf("after Pause: %d threads of redis-server not stopped (%v), want 0", n, err)
		}
		r.Resume()
		if err := r.Client().Ping(t.Context()); err != nil {
			t.Fatalf("after Resume: PING: %v", err)
		}
	}
}

// TestStoppedRedisKeepsItsPort: from Stop to Start a stopped server's port
// refuses connections, as a crashed server's does, and is nobody else's —
// capability-core's TestRedisDownAtStart saw the admin listener it started
// on :0 while Redis was down given Redis's port, and Start then failed to
// bind it. Start serves on the same port again; twice.
func TestStoppedRedisKeepsItsPort(t *testing.T) {
	r := StartRedis(t)
	addr := r.Addr()
	for round := range 2 {
		r.Stop()
		if c, err := net.DialTimeout("tcp", addr, 10*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("round %d: dial the stopped server: %v, want connection refused", round, err)
		}
		// The kernel gives a port to a socket bound to port 0 only if a
		// bind without SO_REUSEADDR would succeed there: it must not.
		if err := bindPlain(r.Port); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("round %d: binding the stopped server's port %d: %v, want EADDRINUSE (the port is free for anyone)", round, r.Port, err)
		}
		// And so a bounded number of listeners on port 0 are never given it.
		for i := range 500 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			got := ln.Addr().String()
			ln.Close()
			if got == addr {
				t.Fatalf("round %d: listener %d on :0 was given the stopped server's address %s", round, i, addr)
			}
		}
		r.Start()
		if r.Addr() != addr {
			t.Fatalf("round %d: restarted on %s, was %s", round, r.Addr(), addr)
		}
		c := r.Client() // pings
		_ = c.Close()   // no connection open at the next Stop: its TIME_WAIT would hold the port too
	}
}

// TestEndedRedisLetsItsPortGo: the end of the test that stopped a server
// lets the port it held go.
func TestEndedRedisLetsItsPortGo(t *testing.T) {
	var port int
	t.Run("stopped", func(t *testing.T) {
		r := StartRedis(t)
		port = r.Port
		r.Stop()
	})
	if err := bindPlain(port); err != nil {
		t.Fatalf("bind 127.0.0.1:%d after the test that stopped its server ended: %v", port, err)
	}
}

// bindPlain binds 127.0.0.1:port without SO_REUSEADDR (as a port-0 bind
// needs a port to be) and lets it go.
func bindPlain(port int) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return err
	}
	return nil
}
