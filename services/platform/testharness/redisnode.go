package testharness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisNode is one redis-server process (a data node or a sentinel) that
// is not tied to a test, so TestMain can share it.
//
// redis-server cannot be handed a listening socket nor report a port it
// chose, so the harness picks free ports and, when the server then fails
// to bind one (another process took it in between), starts it again on
// new ports. A restart after a crash keeps its ports (clients and the
// other nodes know them): from the kill to the restart the harness holds
// them (holdPort), so no other socket — a test's own listener on :0, a
// client's connect — is given them meanwhile.
type redisNode struct {
	// Port is the port clients use (the TLS port of a TLS node).
	Port int
	// bus is the cluster bus port (0 outside a cluster).
	bus int
	dir string
	// argsFor is the command line for the node's current ports.
	argsFor func(n *redisNode) ([]string, error)
	// login is how the harness connects to check the node is up (Addr is
	// set per check): user, password, TLS.
	login redis.Options

	mu  sync.Mutex
	cur *run
	// holds release the ports held since a kill (nil while running).
	holds []func()
}

// errPortTaken is a start that failed because a port was not free.
var errPortTaken = errors.New("port already in use")

func (n *redisNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// freePort returns a port that was free a moment ago: for redis-server
// only, whose start retries when it was taken meanwhile (redisNode).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pickPorts gives the node new free ports (and a bus port when it had one).
func (n *redisNode) pickPorts() error {
	var err error
	if n.Port, err = freePort(); err != nil {
		return err
	}
	if n.bus != 0 {
		n.bus, err = freePort()
	}
	return err
}

// startFresh starts a node that has not run yet, on new ports each time a
// port turns out to be taken (at most 5 tries).
func (n *redisNode) startFresh() error {
	var err error
	for range 5 {
		if err = n.pickPorts(); err != nil {
			return err
		}
		if err = n.startOnce(); !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return fmt.Errorf("redis-server: no free port after 5 tries: %w", err)
}

// restart starts the node again on its ports (after kill). redis-server
// binds them with SO_REUSEADDR beside the harness's non-listening holds,
// which are let go only once it serves, so the ports are never free in
// between; a port nonetheless taken (one that could not be held) is
// retried for up to 5 s.
func (n *redisNode) restart() error {
	defer n.release()
	var err error
	for range 50 {
		if err = n.startOnce(); !errors.Is(err, errPortTaken) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("redis-server: cannot bind its port again (another process took it while it was down): %w", err)
}

// startOnce runs the node and waits until it answers INFO with its own
// process id, so a server of another test that took the port is never
// mistaken for this one. A bind failure is errPortTaken.
func (n *redisNode) startOnce() error {
	bin, err := RedisBinary()
	if err != nil {
		return err
	}
	args, err := n.argsFor(n)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	logPath := filepath.Join(n.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, 2)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logFile, logFile, n.dir
	r, err := startRun(cmd)
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	thisLog := func() string {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) >= logStart {
			b = b[logStart:]
		}
		return string(b)
	}
	o := n.login
	o.Addr, o.DialTimeout, o.ReadTimeout, o.MaxRetries = n.Addr(), time.Second, 2*time.Second, -1
	pid := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-r.done:
			out := thisLog()
			if strings.Contains(out, "Address already in use") {
				return fmt.Errorf("%w: redis-server on %s:\n%s", errPortTaken, n.Addr(), out)
			}
			return fmt.Errorf("redis-server on %s exited:\n%s", n.Addr(), out)
		default:
		}
		c := redis.NewClient(&o)
		info, err := c.Info(context.Background(), "server").Result()
		c.Close()
		if err == nil && strings.Contains(info, "process_id:"+pid+"\r\n") {
			n.cur = r
			return nil
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("redis-server on %s did not answer within 20s (last: %v):\n%s", n.Addr(), err, thisLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the process as a crash would (SIGKILL), reaps it and holds
// its ports until restart or close: connecting is refused, as at a
// crashed server's port, and the kernel gives them to no socket bound to
// port 0 nor to a connect (holdPort). A port that cannot be held is left
// free; restart reports it if it is taken by then.
func (n *redisNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur == nil {
		return
	}
	n.cur.kill()
	n.cur = nil
	for _, port := range []int{n.Port, n.bus} {
		if port <= 0 {
			continue
		}
		if _, release, err := holdPort(port); err == nil {
			n.holds = append(n.holds, release)
		}
	}
}

// close kills the node for good and lets its ports go.
func (n *redisNode) close() {
	n.kill()
	n.release()
}

// release lets the ports held since a kill go.
func (n *redisNode) release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, release := range n.holds {
		release()
	}
	n.holds = nil
}

// signal sends sig to the running process; SIGSTOP returns once every
// thread of it is stopped (signalStop).
func (n *redisNode) signal(sig os.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur == nil {
		return errors.New("redis-server is not running")
	}
	return signal(n.cur.cmd.Process, sig)
}

func (n *redisNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur != nil
}

// serverArgs are every data node's basics: loopback, no persistence, no
// daemon. A TLS node serves TLS only (port 0 turns the plain port off).
func serverArgs(n *redisNode, tls *RedisTLS) []string {
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", n.dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"}
	if tls == nil {
		return append([]string{"--port", strconv.Itoa(n.Port)}, args...)
	}
	return append(append([]string{"--port", "0", "--tls-port", strconv.Itoa(n.Port)}, args...), tls.serverArgs()...)
}
