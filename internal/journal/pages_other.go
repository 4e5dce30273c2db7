//go:build !(linux && (amd64 || arm64))

package journal

import "os"

// dropMapped does nothing where releasing mapped pages is not supported:
// pages stay mapped until the journal is closed.
func dropMapped(_, _ uintptr) error { return nil }

// prefetchForCheck does nothing: the checker reads with the platform's
// default readahead.
func prefetchForCheck(*os.File, int64) {}
