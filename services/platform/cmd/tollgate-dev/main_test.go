package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/devfleet"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestInterruptDuringStartUpStopsQuietly: Ctrl-C while the fleet starts
// (here: during the auth-server's dev-init, a stand-in that never
// finishes) goes through devfleet.Start for real; run answers
// errInterrupted, not "context canceled", and the command exits 130 with
// the one line "tollgate-dev: stopped". Nothing is left running: the
// stand-in was killed.
func TestInterruptDuringStartUpStopsQuietly(t *testing.T) {
	root, varDir, _ := stubFleet(t, `echo $$ > "$var/dev-init.pid"`, false)
	pidFile := filepath.Join(varDir, "dev-init.pid")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testharness.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-root", root, "-var", varDir, "-no-build"}, out) }()
	awaitDevInit(t, out, done)
	cancel() // what signal.NotifyContext does on Ctrl-C
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not return after the interrupt:\n%s", out)
	}
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("run = %v, want errInterrupted\n%s", err, out)
	}
	var stderr bytes.Buffer
	if code := exitCode(err, interruptedBy{os.Interrupt}, &stderr); code != 130 || stderr.String() != "tollgate-dev: stopped\n" {
		t.Errorf("exit %d, stderr %q; want 130 and one line \"tollgate-dev: stopped\"", code, stderr.String())
	}
	if strings.Contains(out.String()+stderr.String(), "context canceled") {
		t.Errorf("output says context canceled:\n%s%s", out, stderr.String())
	}
	pid, _ := os.ReadFile(pidFile)
	if b, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/cmdline"); err == nil && strings.Contains(string(b), "sleep") {
		t.Errorf("dev-init (pid %s) still running after the interrupt", strings.TrimSpace(string(pid)))
	}
}

// TestExitCodes: other errors still exit 1 with their message.
func TestExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	if code := exitCode(nil, nil, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("nil: %d %q", code, stderr.String())
	}
	if code := exitCode(errors.New("make dev's ports are in use: 4000"), nil, &stderr); code != 1 || stderr.String() != "tollgate-dev: make dev's ports are in use: 4000\n" {
		t.Errorf("error: %d %q", code, stderr.String())
	}
}

// TestSignalsGiveTheirExitStatus delivers real signals to this process
// while interruptContext catches them: each cancels the context with the
// signal as its cause, and an interrupted start-up exits 128 + the
// signal's number, as a shell reports a command the signal ended (SIGTERM
// from kill or a process manager: 143, not Ctrl-C's 130).
func TestSignalsGiveTheirExitStatus(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}, {syscall.SIGHUP, 129}} {
		ctx, stop := interruptContext()
		if err := syscall.Kill(os.Getpid(), c.sig); err != nil {
			stop()
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			stop()
			t.Fatalf("%v: the context was not cancelled", c.sig)
		}
		var stderr bytes.Buffer
		code := exitCode(errInterrupted, context.Cause(ctx), &stderr)
		stop()
		stop() // a second stop, as a deferred one after an early one, does nothing
		if code != c.want || stderr.String() != "tollgate-dev: stopped\n" {
			t.Errorf("%v: exit %d, stderr %q; want %d and \"tollgate-dev: stopped\"", c.sig, code, stderr.String(), c.want)
		}
	}
}

// TestFreePortsStartsNextToMakeDev: with make dev's ports held by another
// process (here: this test, holding every listener of the layout), run
// refuses to start on them, and with -free-ports it starts anyway on
// ports of its own — the dev-init stand-in is handed an origin on another
// ingress port. localOrigin then reads the origin a fleet wrote under its
// var directory, which `tollgate-dev token -var` signs in through.
func TestFreePortsStartsNextToMakeDev(t *testing.T) {
	root, varDir, taken := stubFleet(t, `echo "$@" > "$var/dev-init.args"`, true) // "make dev", running
	argsFile := filepath.Join(varDir, "dev-init.args")

	err := run(context.Background(), []string{"-root", root, "-var", varDir, "-no-build"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "make dev's ports are in use") {
		t.Fatalf("run on the taken ports = %v, want \"make dev's ports are in use\"", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testharness.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-root", root, "-var", varDir, "-no-build", "-free-ports"}, out) }()
	awaitDevInit(t, out, done)
	args, _ := os.ReadFile(argsFile)
	takenOrigin := "http://localhost:" + strconv.Itoa(taken.Ingress)
	if !strings.Contains(string(args), "-origin http://localhost:") || strings.Contains(string(args), takenOrigin+" ") ||
		strings.HasSuffix(strings.TrimSpace(string(args)), takenOrigin) {
		t.Errorf("dev-init args %q: want an origin on a free port, not make dev's %s", args, takenOrigin)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not return after the interrupt:\n%s", out)
	}

	if got, want := localOrigin(varDir), takenOrigin; got != want {
		t.Errorf("localOrigin without a running fleet = %q, want make dev's %q", got, want)
	}
	if err := os.MkdirAll(filepath.Join(varDir, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(varDir, localOriginFile), []byte("http://localhost:41234\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := localOrigin(varDir); got != "http://localhost:41234" {
		t.Errorf("localOrigin = %q, want the origin the fleet wrote", got)
	}
}

// stubFleet prepares a run of the real devfleet.Start up to the
// auth-server's dev-init, which a stand-in plays: a shell script that runs
// body (with $var the var directory and "$@" dev-init's arguments), prints
// "dev-init waiting" and sleeps. It returns the repository root, the var
// directory (-var) and the port layout run takes for make dev's — free
// ports, held by this test until it ends when hold is set (make dev
// running), else closed at once (run holds them itself). The environment
// a developer's shell may set for the fleet is cleared. Tests without
// redis-server are skipped: devfleet.Start needs it before dev-init.
func stubFleet(t *testing.T, body string, hold bool) (root, varDir string, ports devfleet.Ports) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (devfleet.Start needs it before dev-init)")
	}
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
	varDir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(varDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	stub := "#!/bin/sh\nvar='" + varDir + "'\n" + body + "\necho dev-init waiting\nexec sleep 60\n"
	if err := os.WriteFile(filepath.Join(varDir, "bin", "auth-server"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	ports, held, err := devfleet.ListenFreePorts()
	if err != nil {
		t.Fatal(err)
	}
	closeAll := func() {
		for _, ln := range held {
			ln.Close()
		}
	}
	if hold {
		t.Cleanup(closeAll)
	} else {
		closeAll()
	}
	defaultPorts = func() devfleet.Ports { return ports }
	t.Cleanup(func() { defaultPorts = devfleet.DefaultPorts })
	for _, k := range []string{"REDIS_URL", "REDIS_MODE", "PUBLIC_URL", "EXAMPLE_BACKEND", "DEV_ALLOWED_ORIGINS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return root, varDir, ports
}

// awaitDevInit waits (at most 30 s) until the stand-in of stubFleet says
// "dev-init waiting" in run's output out; run returning first (done) fails
// the test with its error.
func awaitDevInit(t *testing.T, out *testharness.SyncBuffer, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "dev-init waiting") {
		select {
		case err := <-done:
			t.Fatalf("run = %v before dev-init:\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev-init did not start:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
