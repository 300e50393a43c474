package testharness

import (
	"os/exec"
	"syscall"
)

// DieWithParent sets cmd.SysProcAttr.Pdeathsig to SIGKILL (creating
// SysProcAttr if nil; its other fields are kept), so that on Linux the
// kernel kills the child when the test binary that starts it goes without
// its cleanups — a go test -timeout panic, a crash, a kill — and no
// redis-server, service or benchmark peer is left running (a SIGSTOPped
// cluster node especially, which would hold its ports stopped forever).
// Call it before cmd.Start. On other systems it does nothing
// (pdeathsig_other.go): there a test binary killed without its cleanups
// may leave its children running.
//
// Caveat (syscall.SysProcAttr.Pdeathsig, prctl(2) PR_SET_PDEATHSIG): the
// "parent" is the OS thread that forked the child, not the process. Go
// exits a thread only when a goroutine locked to it (runtime.LockOSThread)
// returns without unlocking; the harness, the benchmarks and devfleet's
// tests start children from ordinary test goroutines, never locked, so
// their thread lives as long as the process. Do not start children from a
// locked goroutine that may exit.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
