package cli

import (
	"fmt"
	"io"

	"github.com/backupd/backupd/internal/buildinfo"
)

// Version prints the version and the Go toolchain.
func Version(stdout io.Writer) int {
	fmt.Fprintf(stdout, "backupd %s (%s)\n", buildinfo.String(), buildinfo.GoVersion())
	return exitOK
}
