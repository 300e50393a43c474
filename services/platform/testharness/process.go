package testharness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/app"
)

// Binary names a service binary to build: the package (./cmd/<name>) in a
// module directory.
type Binary struct {
	ModuleDir string
	Package   string
}

// BuildBinaries builds each binary into outDir, from its own module (so it
// works with or without the workspace). Call it from TestMain: building once
// per test binary keeps suites fast.
func BuildBinaries(outDir string, bins ...Binary) error {
	for _, b := range bins {
		cmd := exec.Command("go", "build", "-o", outDir+string(os.PathSeparator), b.Package)
		cmd.Dir = b.ModuleDir
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s in %s: %w", b.Package, b.ModuleDir, err)
		}
	}
	return nil
}

// CapabilityCore is the capability-core binary, seen from a test package
// under services/<service>/internal/<pkg>.
var CapabilityCore = Binary{ModuleDir: filepath.Join("..", "..", "..", "capability-core"), Package: "./cmd/capability-core"}

// Process is a service binary run by a test, which can crash it (Stop) and
// bring it back on the same addresses (Start).
type Process struct {
	t      testing.TB
	path   string
	env    map[string]string
	listen []string
	// Logs is the process's output (stdout and stderr), shown when the
	// test fails. The child writes it itself, to a file (SyncBuffer): what
	// it logged before an answer the test received is in Logs.String(),
	// with no copy to wait for. A line it logs after answering (an access
	// log line, say) still needs polling.
	Logs *SyncBuffer
	// logFile backs Logs; every start of the child gets it as its stdout
	// and stderr.
	logFile *os.File

	mu    sync.Mutex
	addrs map[string]string // listen variable → bound host:port
	holds []func()          // while stopped: releases the held ports
	cur   *run
}

// run is one start of a child process (a service binary or a
// redis-server); done closes once it has exited and err is its exit error.
type run struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startRun starts cmd and reaps it in the background; the child is
// killed if the test binary dies (DieWithParent). Every child of the
// harness — service binaries and redis-servers (redisnode.go) — starts here.
func startRun(cmd *exec.Cmd) (*run, error) {
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	return r, nil
}

// kill kills the process (SIGKILL, as a crash) and waits until it is reaped.
func (r *run) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// StartProcess runs path with env added to the test's environment. listen
// names the variables of env the process takes a listen address from
// (GRPC_ADDR, ADMIN_ADDR…; their values in env are ignored): the harness
// binds each on a free loopback port itself and passes the socket to the
// process as an inherited file ("fd:3", …; app.Listen takes it), so no
// other process can take the port between its choice and the bind; Addr
// names the bound address. Connections made before the process accepts
// wait in the socket's backlog. The process is killed when the test ends.
func StartProcess(t testing.TB, path string, env map[string]string, listen ...string) *Process {
	t.Helper()
	logs, logFile, err := newFileBuffer(filepath.Base(path))
	if err != nil {
		t.Fatalf("%s: log file: %v", filepath.Base(path), err)
	}
	p := &Process{t: t, path: path, env: env, listen: listen, Logs: logs, logFile: logFile, addrs: map[string]string{}}
	t.Cleanup(func() {
		p.Stop()
		// The child is gone: nothing writes the log any more.
		logs.closeFile()
		p.mu.Lock()
		for _, release := range p.holds {
			release()
		}
		p.holds = nil
		p.mu.Unlock()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(path), p.Logs)
		}
	})
	p.Start()
	return p
}

// Addr is the host:port the process serves the listen variable name on
// (the same across restarts).
func (p *Process) Addr(name string) string {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.addrs[name]
	if !ok {
		p.t.Fatalf("%s has no listener %s (StartProcess's listen names it)", filepath.Base(p.path), name)
	}
	return a
}

// Start (re)starts the process on its addresses. While it was stopped the
// harness held its ports (HoldPort: connections are refused, as a crashed
// service's are, and no other process is given them); a restart binds them
// again.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		p.t.Fatalf("%s is already running", filepath.Base(p.path))
	}
	env := os.Environ()
	keys := make([]string, 0, len(p.env))
	for k := range p.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+p.env[k])
	}
	files := make([]*os.File, 0, len(p.listen))
	defer func() {
		for _, release := range p.holds {
			release()
		}
		p.holds = nil
		for _, f := range files {
			_ = f.Close() // the child holds its own copies
		}
	}()
	for i, name := range p.listen {
		prev := p.addrs[name]
		ln, err := bindLoopback(prev)
		if err != nil {
			p.t.Fatalf("%s: %s: %v", filepath.Base(p.path), name, err)
		}
		f, err := ln.(*net.TCPListener).File()
		_ = ln.Close()
		if err != nil {
			p.t.Fatalf("%s: %s: %v", filepath.Base(p.path), name, err)
		}
		files = append(files, f)
		p.addrs[name] = ln.Addr().String()
		env = append(env, fmt.Sprintf("%s=%s%d", name, app.FDPrefix, 3+i)) // ExtraFiles[i] is fd 3+i
	}
	cmd := exec.Command(p.path)
	cmd.Env = env
	// An *os.File: the child writes it directly. Any other io.Writer
	// would make exec copy the output from a pipe in a goroutine, and a
	// test reading Logs could find a line the child wrote before
	// answering not copied yet.
	cmd.Stdout, cmd.Stderr = p.logFile, p.logFile
	cmd.ExtraFiles = files
	r, err := startRun(cmd)
	if err != nil {
		p.t.Fatalf("start %s: %v", p.path, err)
	}
	p.cur = r
}

// bindLoopback listens on a free loopback port (addr "") or on addr again
// (its port held since the stop). A failure to bind it again is retried
// for a few seconds and then reported.
func bindLoopback(addr string) (net.Listener, error) {
	if addr == "" {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	var err error
	for range 100 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("bind %s again for the restart: %w", addr, err)
}

// Pid is the id of the running process (0 when stopped).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.cmd.Process.Pid
}

// Signal sends sig to the running process (SIGSTOP to hang it, SIGCONT to
// resume it, SIGTERM to ask for a graceful shutdown). SIGSTOP returns once
// every thread of the process is stopped (signalStop).
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		p.t.Fatalf("%s is not running", filepath.Base(p.path))
	}
	if err := signal(p.cur.cmd.Process, sig); err != nil {
		p.t.Fatalf("signal %s: %v", filepath.Base(p.path), err)
	}
}

// Wait waits up to timeout for the process to exit by itself (after
// SIGTERM) and returns its exit error; it fails the test on timeout.
func (p *Process) Wait(timeout time.Duration) error {
	p.t.Helper()
	p.mu.Lock()
	r := p.cur
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	select {
	case <-r.done:
		p.mu.Lock()
		if p.cur == r {
			p.cur = nil
			p.holdPorts()
		}
		p.mu.Unlock()
		return r.err
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s", filepath.Base(p.path), timeout)
		return nil
	}
}

// Stop kills the process, as a crash would, waits for it to exit and holds
// its ports until Start (or the test's end).
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return
	}
	p.cur.kill()
	p.cur = nil
	p.holdPorts()
}

// holdPorts holds the stopped process's ports (see HoldPort); a port that
// cannot be held is left free, and a restart reports it if it is taken.
func (p *Process) holdPorts() {
	for _, name := range p.listen {
		_, port, _ := net.SplitHostPort(p.addrs[name])
		n, _ := strconv.Atoi(port)
		if _, release, err := holdPort(n); err == nil {
			p.holds = append(p.holds, release)
		}
	}
}
