package server_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest has the kernel SIGKILL a benchmark's child process when the
// test binary goes without its cleanups — a go test -timeout panic, a
// crash, a kill — so no auth-server or peer is left running (serving,
// using CPU the next run measures) after the benchmark that started it.
//
// Caveat (syscall.SysProcAttr.Pdeathsig, prctl(2) PR_SET_PDEATHSIG): the
// "parent" is the OS thread that forked the child, not the process. Go
// exits a thread only when a goroutine locked to it (runtime.LockOSThread)
// returns without unlocking; the benchmarks start their children from the
// benchmark's goroutine, never locked, so the thread lives as long as the
// process.
func dieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
