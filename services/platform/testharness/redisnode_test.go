package testharness

import (
	"errors"
	"net"
	"testing"
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
	defer n.kill()
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
