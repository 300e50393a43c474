package devfleet

import "syscall"

// setProcAttr puts a component in a process group of its own (Stop
// signals the group) and has the kernel send it SIGTERM when tollgate-dev
// goes without stopping it — killed (SIGKILL, an OOM kill), or a crash —
// so no redis-server or service is left holding the fleet's ports, which
// the next `make dev` would find taken with no terminal left to Ctrl-C
// (TestComponentsDieWithTheFleet). SIGTERM, not SIGKILL: redis-server
// flushes its AOF and the services drain as on Ctrl-C.
//
// Caveat (prctl(2) PR_SET_PDEATHSIG): the "parent" is the OS thread that
// forked the child. Go exits a thread only when a goroutine locked to it
// returns without unlocking; the fleet starts components from ordinary
// goroutines, so their thread lives as long as the process.
func setProcAttr(a *syscall.SysProcAttr) {
	a.Setpgid = true
	a.Pdeathsig = syscall.SIGTERM
}
