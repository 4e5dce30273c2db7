// Package buildinfo carries the version stamped in at build time
// (-ldflags "-X github.com/backupd/backupd/internal/buildinfo.Version=v1.2.3"),
// so `backupd version`, backupd_build_info and the status API agree. A build
// without the stamp (go build, go run, go install) falls back to what the Go
// toolchain records in the binary: the main module's version, else the VCS
// revision, so a plain build is still identifiable.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set by the linker for releases; "dev" otherwise.
var Version = "dev"

// String returns the version: the linker's, else one derived from the
// binary's build information (see describe). It has no spaces, so it fits
// a User-Agent and a metric label.
func String() string {
	bi, _ := debug.ReadBuildInfo()
	v, _ := describe(Version, bi)
	return v
}

// Details is what the build information adds to String for a human: the
// commit time and whether the tree was modified; "" when nothing is known.
func Details() string {
	bi, _ := debug.ReadBuildInfo()
	_, d := describe(Version, bi)
	return d
}

// describe derives the version and its details from the linker's version
// and the build information (nil when the binary has none):
//
//   - a linker-set version wins;
//   - else the main module's version, as `go install m@v1.2.3` or a VCS
//     stamped build (a pseudo-version) records it;
//   - else, for a "(devel)" build with VCS stamping, dev-<12-hex revision>,
//     with "-dirty" when the tree had uncommitted changes;
//   - else "dev".
func describe(linker string, bi *debug.BuildInfo) (version, details string) {
	if bi == nil {
		return linker, ""
	}
	vcs := vcsSettings(bi)
	var parts []string
	if rev := vcs["revision"]; rev != "" {
		parts = append(parts, "commit "+rev)
	}
	if t := vcs["time"]; t != "" {
		parts = append(parts, "committed "+t)
	}
	if vcs["modified"] == "true" {
		parts = append(parts, "modified")
	}
	details = strings.Join(parts, ", ")
	switch mv := bi.Main.Version; {
	case linker != "dev":
		return linker, details
	case mv != "" && mv != "(devel)":
		return mv, details
	case vcs["revision"] != "":
		v := "dev-" + vcs["revision"][:min(12, len(vcs["revision"]))]
		if vcs["modified"] == "true" {
			v += "-dirty"
		}
		return v, details
	}
	return linker, details
}

// vcsSettings are the vcs.* settings of the build information, by name
// without the prefix.
func vcsSettings(bi *debug.BuildInfo) map[string]string {
	vcs := map[string]string{}
	if bi == nil {
		return vcs
	}
	for _, s := range bi.Settings {
		if k, ok := strings.CutPrefix(s.Key, "vcs."); ok {
			vcs[k] = s.Value
		}
	}
	return vcs
}

// VCS is the commit the binary was built from, as the toolchain recorded
// it; zero for a build without VCS stamping.
type VCS struct {
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"` // RFC 3339, the commit's
	Modified bool   `json:"modified,omitempty"`
}

// ReadVCS returns the binary's VCS stamp.
func ReadVCS() VCS {
	bi, _ := debug.ReadBuildInfo()
	return vcsOf(bi)
}

func vcsOf(bi *debug.BuildInfo) VCS {
	vcs := vcsSettings(bi)
	return VCS{Revision: vcs["revision"], Time: vcs["time"], Modified: vcs["modified"] == "true"}
}

// GoVersion is the toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
