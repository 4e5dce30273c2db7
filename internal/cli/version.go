package cli

import (
	"fmt"
	"io"

	"github.com/backupd/backupd/internal/buildinfo"
)

// Version prints the version, the Go toolchain and, when the binary records
// them, the commit, its time and whether the tree was modified.
func Version(stdout io.Writer) int {
	line := fmt.Sprintf("backupd %s (%s", buildinfo.String(), buildinfo.GoVersion())
	if d := buildinfo.Details(); d != "" {
		line += "; " + d
	}
	fmt.Fprintln(stdout, line+")")
	return exitOK
}
