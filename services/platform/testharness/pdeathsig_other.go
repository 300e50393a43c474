//go:build !linux

package testharness

import "os/exec"

// DieWithParent does nothing here: Pdeathsig, which it sets on Linux
// (pdeathsig_linux.go), is Linux only, so elsewhere a test binary killed
// without its cleanups may leave its children running.
func DieWithParent(*exec.Cmd) {}
