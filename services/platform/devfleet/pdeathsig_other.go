//go:build !linux

package devfleet

import "syscall"

// setProcAttr puts a component in a process group of its own (Stop
// signals the group). Pdeathsig is Linux only: elsewhere a tollgate-dev
// killed without stopping the fleet leaves its components running.
func setProcAttr(a *syscall.SysProcAttr) { a.Setpgid = true }
