package testharness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
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
	t         testing.TB
	path      string
	env       []string
	readyAddr string
	// Logs is the process's output, shown when the test fails.
	Logs *SyncBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartProcess runs path with env added to the test's environment and waits
// until readyAddr accepts connections. The process is killed when the test ends.
func StartProcess(t testing.TB, path string, env map[string]string, readyAddr string) *Process {
	t.Helper()
	p := &Process{t: t, path: path, readyAddr: readyAddr, Logs: &SyncBuffer{}, env: os.Environ()}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.env = append(p.env, k+"="+env[k])
	}
	p.Start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(path), p.Logs)
		}
	})
	return p
}

// Start (re)starts the process and waits until it listens.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.path)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.Logs, p.Logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.path, err)
	}
	p.cmd = cmd
	if err := waitTCP(p.readyAddr, 30*time.Second); err != nil {
		p.t.Fatalf("%s: %v\n%s", filepath.Base(p.path), err, p.Logs)
	}
}

// Pid is the id of the running process (0 when stopped).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the running process (SIGSTOP to hang it, SIGCONT to
// resume it, SIGTERM to ask for a graceful shutdown).
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		p.t.Fatalf("%s is not running", filepath.Base(p.path))
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", filepath.Base(p.path), err)
	}
}

// Wait waits up to timeout for the process to exit by itself (after
// SIGTERM) and returns its exit error; it fails the test on timeout.
func (p *Process) Wait(timeout time.Duration) error {
	p.t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		return err
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s", filepath.Base(p.path), timeout)
		return nil
	}
}

// Stop kills the process, as a crash would, and waits for it to exit.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}
