// Package buildinfo holds the build version, stamped at link time:
//
//	go build -ldflags "-X github.com/tollgate/tollgate/services/platform/buildinfo.Version=v1.2.3"
package buildinfo

import "runtime/debug"

// Version is the release version of the binary; "dev" when not stamped.
var Version = "dev"

// Commit is the VCS revision, when stamped or known to the Go toolchain.
var Commit = ""

// Revision returns Commit, falling back to the revision the Go toolchain embedded.
func Revision() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
