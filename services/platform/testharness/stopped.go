package testharness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopWithin bounds how long signalStop waits for the kernel to stop every
// thread of a process.
const stopWithin = 10 * time.Second

// signal sends sig to p; SIGSTOP returns once the process is stopped
// (signalStop). Every signal the harness sends goes through it.
func signal(p *os.Process, sig os.Signal) error {
	if sig == syscall.SIGSTOP {
		return signalStop(p.Pid)
	}
	return p.Signal(sig)
}

// signalStop sends SIGSTOP to pid and returns once every thread of the
// process is stopped (state T in /proc/<pid>/task/*/stat).
//
// kill(2) returns before the process has stopped: one thread takes the
// signal and stops the group when it next runs, and on a loaded machine the
// other threads may serve requests meanwhile — a test that hangs a server
// and then calls it could be answered (mcp-gateway's hung capability-core
// test saw it at load ~25). Waiting for the stop makes "hung" true when the
// caller goes on.
func signalStop(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(stopWithin)
	for {
		running, err := runningThreads(pid)
		if err != nil {
			return err
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: %d threads still running %s after SIGSTOP", pid, running, stopWithin)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts the threads of pid not stopped by a signal.
func runningThreads(pid int) (int, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return 0, fmt.Errorf("process %d: no threads in /proc (%v)", pid, err)
	}
	running := 0
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the thread exited
		}
		// "tid (comm) state ...": comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(raw), ')')
		if i < 0 || i+2 >= len(raw) {
			return 0, fmt.Errorf("%s: unexpected %q", path, raw)
		}
		if state := raw[i+2]; state != 'T' && state != 't' {
			running++
		}
	}
	return running, nil
}
