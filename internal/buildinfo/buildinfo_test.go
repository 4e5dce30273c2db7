package buildinfo

import (
	"runtime/debug"
	"testing"
)

// TestDescribeFallsBackToBuildInfo: a plain build (no -ldflags version)
// reports the module version or the VCS revision instead of a bare "dev".
func TestDescribeFallsBackToBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-buildmode", Value: "exe"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	for _, c := range []struct {
		name, linker  string
		bi            *debug.BuildInfo
		want, details string
	}{
		{"no build info", "dev", nil, "dev", ""},
		{"linker wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-x"}, Settings: vcs}, "v1.2.3", "commit 0123456789abcdef0123456789abcdef01234567, committed 2026-12-01T10:00:00Z, modified"},
		{"go install m@v", "dev", &debug.BuildInfo{Main: debug.Module{Path: "github.com/backupd/backupd", Version: "v1.4.0"}}, "v1.4.0", ""},
		{"-buildvcs=false, module version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201100000-0123456789ab+dirty"}}, "v0.0.0-20261201100000-0123456789ab+dirty", ""},
		{"devel with vcs", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "dev-0123456789ab-dirty", "commit 0123456789abcdef0123456789abcdef01234567, committed 2026-12-01T10:00:00Z, modified"},
		{"devel clean", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, "dev-abc", "commit abc"},
		{"devel without vcs", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", ""},
	} {
		v, d := describe(c.linker, c.bi)
		if v != c.want || d != c.details {
			t.Errorf("%s: describe = %q, %q; want %q, %q", c.name, v, d, c.want, c.details)
		}
	}
}

// TestVCSOf: version -o json's vcs object is the toolchain's stamp, and
// zero without one.
func TestVCSOf(t *testing.T) {
	bi := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "abc"},
		{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}}}
	if got, want := vcsOf(bi), (VCS{Revision: "abc", Time: "2026-12-01T10:00:00Z", Modified: true}); got != want {
		t.Errorf("vcsOf = %+v, want %+v", got, want)
	}
	if got := vcsOf(nil); got != (VCS{}) {
		t.Errorf("vcsOf(nil) = %+v, want zero", got)
	}
}
