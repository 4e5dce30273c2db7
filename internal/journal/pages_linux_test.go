//go:build linux && (amd64 || arm64)

package journal

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestDropMappedAdvisesTheKernel: the release really reaches madvise (a
// misaligned address is refused by the kernel, the mapping itself is
// accepted), and dropping the pages of an open journal leaves its data
// readable.
func TestDropMappedAdvisesTheKernel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rs := buildJournal(t, path, 40)
	j := openBoltAt(t, path)
	j.rel.budget = 0
	before := readMem(t, path)
	if got := history(t, j, Query{}); len(got) != len(rs) {
		t.Fatalf("history has %d runs; want %d", len(got), len(rs))
	}
	read := readMem(t, path)
	err := j.db.View(func(tx *bolt.Tx) error {
		data := tx.DB().Info().Data
		if err := dropMapped(data+1, uintptr(tx.Size())); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("madvise of a misaligned address: err = %v; want EINVAL", err)
		}
		return dropMapped(data, uintptr(tx.Size()))
	})
	if err != nil {
		t.Fatalf("dropMapped: %v", err)
	}
	dropped := readMem(t, path)
	t.Logf("journal mapping resident: %d KiB after open, %d KiB after reading history, %d KiB after dropMapped",
		before.mapping>>10, read.mapping>>10, dropped.mapping>>10)
	for _, r := range rs {
		if got, found, err := j.Get(r.ID); err != nil || !found || got.Detail != r.Detail {
			t.Fatalf("Get(%s) after dropMapped = %+v, %v, %v", r.ID, got, found, err)
		}
	}
}
