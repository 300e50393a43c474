package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSpawnBindingStartsAgainOnAPortTakenMeanwhile: a component whose
// port another process took between freePort and its own bind exits with
// "address already in use"; spawnBinding starts it again on a fresh port.
// The component is a real foreign binary that binds its port itself,
// redis-server, and the port is really taken.
func TestSpawnBindingStartsAgainOnAPortTakenMeanwhile(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if strict() {
			t.Fatal(err)
		}
		t.Skip("SKIPPED: redis-server is not on PATH")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	dir, err := os.MkdirTemp("", "tollgate-bind-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cp := &controlPlane{t: t, dir: dir, pickPort: func(t testing.TB) int {
		picks++
		if picks == 1 {
			return takenPort // as if another process bound it after freePort
		}
		return freePort(t)
	}}
	t.Cleanup(cp.stop)
	ports := cp.spawnBinding("redis", bin, 1, func(ports []int) []string {
		return []string{"--port", fmt.Sprint(ports[0]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	}, func(ports []int) bool { return redisPONG(ports[0]) }, time.Minute)
	if ports[0] == takenPort || picks != 2 {
		t.Errorf("serving on %d after %d picks; the taken port was %d", ports[0], picks, takenPort)
	}
	if len(cp.procs) != 1 {
		t.Errorf("%d processes kept, want only the one that serves", len(cp.procs))
	}
	if b, err := os.ReadFile(cp.procs[0].log + ".try1"); err != nil || !addrInUse.Match(b) {
		t.Errorf("the first try's log: %v\n%s", err, b)
	}
}

// redisPONG reports whether a Redis server answers PING on port.
func redisPONG(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}
