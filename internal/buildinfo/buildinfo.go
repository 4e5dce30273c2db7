// Package buildinfo carries the version stamped in at build time
// (-ldflags "-X github.com/backupd/backupd/internal/buildinfo.Version=v1.2.3"),
// so `backupd version`, backupd_build_info and the status API agree.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version is set by the linker for releases; "dev" otherwise.
var Version = "dev"

// String returns the version, falling back to the module version recorded
// by `go install` when the linker did not set one.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// GoVersion is the toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
