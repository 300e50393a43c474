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
