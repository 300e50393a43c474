package testharness

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel SIGKILL the child when its parent goes, so
// a test binary that dies without its cleanups (a go test -timeout panic,
// a crash) orphans no redis-server or service — a SIGSTOPped cluster node
// especially, which would otherwise hold its ports stopped forever.
//
// Caveat (syscall.SysProcAttr.Pdeathsig, prctl(2) PR_SET_PDEATHSIG): the
// "parent" is the OS thread that forked the child, not the process. Go
// exits a thread only when a goroutine locked to it (runtime.LockOSThread)
// returns without unlocking; the harness starts children from ordinary
// test goroutines, never locked, so their thread lives as long as the
// process. Do not start children from a locked goroutine that may exit.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
