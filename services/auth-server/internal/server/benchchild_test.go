package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// benchChild is a process a benchmark runs beside it: the auth-server of
// BenchmarkTokenEndpoint (startFleetProcess) or a peer (startPeerProcess).
// done closes once it has exited and been reaped; err is then cmd.Wait's
// error.
type benchChild struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startChild starts cmd and makes sure it ends with the test or benchmark
// tb, whichever way tb ends: a cleanup registered as soon as it runs stops
// it (Fatal, FailNow — from any goroutine — a panic, or the end), first with
// SIGTERM when grace > 0 (the auth-server drains) and with SIGKILL after
// grace or at once, then waits until it is reaped; and the kernel kills
// it when the test binary dies without its cleanups, a -timeout panic or
// a kill (testharness.DieWithParent, Linux only).
func startChild(tb testing.TB, cmd *exec.Cmd, grace time.Duration) *benchChild {
	tb.Helper()
	testharness.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &benchChild{cmd: cmd, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	tb.Cleanup(func() {
		if grace > 0 {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
				return
			case <-time.After(grace):
			}
		}
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// startPeerProcess starts a peer process (this test binary re-executed,
// env selecting the peer and its settings) serving on a loopback listener
// of its own (its fd 3); it answers the process and the listener's base
// URL.
func startPeerProcess(tb testing.TB, env []string) (*benchChild, string) {
	tb.Helper()
	ln := testharness.Listener(tb)
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	defer lnFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv(serverEnvEnv))...)
	cmd.ExtraFiles = []*os.File{lnFile}
	cmd.Stderr = os.Stderr
	p := startChild(tb, cmd, 0)
	ln.Close() // the process holds its copy
	return p, "http://" + ln.Addr().String()
}

// benchChildHelperEnv makes TestBenchChildrenEndWithTheTest, in a test
// binary it starts, start a signing peer as loadPeer does, print its pid
// and end the way the variable names.
const benchChildHelperEnv = "TOLLGATE_BENCH_CHILD_HELPER"

// TestBenchChildrenEndWithTheTest: a benchmark's child process (here a
// signing peer, started as loadPeer starts it; the auth-server of
// BenchmarkTokenEndpoint starts through the same startChild) is gone once
// the case that started it has ended: failed (Fatal) — gone while the
// binary runs on, as a benchmark's other cases do (the cleanup) —,
// panicked, or its binary killed without running its cleanups, as a go
// test -timeout panic ends it (the kernel: testharness.DieWithParent).
// Before, a killed binary left the child running: sys12 found a
// benchmark's child still serving 17 minutes on.
func TestBenchChildrenEndWithTheTest(t *testing.T) {
	if mode := os.Getenv(benchChildHelperEnv); mode != "" {
		in := bufio.NewReader(os.Stdin)
		t.Run("case", func(t *testing.T) {
			p, _ := startPeerProcess(t, []string{signingPeerEnv + "=RS256:1"})
			fmt.Printf("child pid %d\n", p.cmd.Process.Pid)
			// Until the test has seen the child run (a line on stdin); in
			// mode "killed", until the test kills this binary.
			_, _ = in.ReadString('\n')
			switch mode {
			case "fatal":
				t.Fatal("the case failed")
			case "panic":
				panic("the case panicked")
			}
		})
		// The case has ended, this binary runs on (as the benchmark's
		// other cases do) until the test closes stdin.
		fmt.Println("case ended")
		_, _ = io.Copy(io.Discard, in)
		return
	}
	for _, mode := range []string{"fatal", "panic", "killed"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "killed" && runtime.GOOS != "linux" {
				t.Skip("the kernel kills a child with its parent on Linux only (testharness.DieWithParent)")
			}
			helper := exec.Command(os.Args[0], "-test.run=^TestBenchChildrenEndWithTheTest$", "-test.count=1")
			helper.Env = append(os.Environ(), benchChildHelperEnv+"="+mode)
			// The helper's output to a file: a child left running would
			// hold a pipe open, and Wait with it.
			out, err := os.Create(filepath.Join(t.TempDir(), "helper.out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			helper.Stderr = out
			stdin, err := helper.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := helper.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := helper.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
			pid := 0
			lines := bufio.NewScanner(stdout)
			for pid == 0 && lines.Scan() {
				if v, ok := strings.CutPrefix(lines.Text(), "child pid "); ok {
					pid, _ = strconv.Atoi(v)
				}
			}
			if pid == 0 {
				_ = helper.Wait()
				raw, _ := os.ReadFile(out.Name())
				t.Fatalf("the helper printed no child pid:\n%s", raw)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if !processRuns(pid) {
				t.Fatalf("child %d not running while the helper's test runs", pid)
			}
			if mode == "killed" {
				_ = helper.Process.Kill()
			} else {
				_, _ = io.WriteString(stdin, "end the case\n")
			}
			if mode == "fatal" {
				// The failed case's child is gone while the binary runs on
				// (its cleanup, not the kernel's Pdeathsig).
				for lines.Scan() && lines.Text() != "case ended" {
				}
				waitGone(t, pid, mode+", the binary still running")
			}
			stdin.Close()
			for lines.Scan() {
			}
			err = helper.Wait()
			if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) {
				t.Fatalf("the helper ended with %v, want a failed test binary", err)
			}
			waitGone(t, pid, mode)
		})
	}
}

// waitGone fails t unless process pid is gone within 10 s: a cleanup has
// reaped it by the time its test ends; a child the kernel kills is reaped
// by its new parent, which may take a moment.
func waitGone(t *testing.T, pid int, how string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processRuns(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still running 10s after its case ended (%s)", pid, how)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processRuns reports whether pid runs: kill(pid, 0) does not answer
// ESRCH and the process is no zombie (exited, waiting for its parent —
// after its test binary died, init or a subreaper — to reap it).
func processRuns(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
