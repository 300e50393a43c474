//go:build !linux

package testharness

import "os/exec"

// dieWithParent is Linux only (Pdeathsig): elsewhere a test binary killed
// without its cleanups may leave its children running.
func dieWithParent(*exec.Cmd) {}
