package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/backupd/backupd/internal/buildinfo"
)

// versionInfo is `backupd version -o json`.
type versionInfo struct {
	Version string        `json:"version"`
	Go      string        `json:"go"`
	VCS     buildinfo.VCS `json:"vcs,omitzero"`
}

// Version prints the version, the Go toolchain and, when the binary records
// them, the commit, its time and whether the tree was modified.
func Version(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := outputFlag("table")
	fs.Var(&o, "o", "output format: table (one line) or json")
	if code, ok := parseFlags(fs, args, stderr, "usage: backupd version [-o json]\n\nPrints the version, the Go toolchain and the commit the binary was built from.", false); !ok {
		return code
	}
	if o == "json" {
		printJSON(stdout, versionInfo{Version: buildinfo.String(), Go: buildinfo.GoVersion(), VCS: buildinfo.ReadVCS()})
		return exitOK
	}
	line := fmt.Sprintf("backupd %s (%s", buildinfo.String(), buildinfo.GoVersion())
	if d := buildinfo.Details(); d != "" {
		line += "; " + d
	}
	fmt.Fprintln(stdout, line+")")
	return exitOK
}
