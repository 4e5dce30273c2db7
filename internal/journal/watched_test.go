package journal

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Watched reports a journal whose last write failed until a write
// succeeds again, and hears of every failed write.
func TestWatchedReportsFailingWrites(t *testing.T) {
	b := openBoltAt(t, filepath.Join(t.TempDir(), "state.db"))
	var heard []error
	w := Watch(b, func(err error) { heard = append(heard, err) })
	now := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	ok := run.Run{ID: "0123456789abcdef0123", Policy: "p", Stage: run.StagePending, CreatedAt: now, UpdatedAt: now}

	if err := w.Put(ok); err != nil {
		t.Fatal(err)
	}
	if err := w.Health(); err != nil {
		t.Fatalf("Health after a successful write = %v", err)
	}
	for range 2 {
		if err := w.SetMark(strings.Repeat("k", maxIDLen+1), Mark{}); err == nil {
			t.Fatal("SetMark of an over-long key succeeded")
		}
	}
	err := w.Health()
	if err == nil || !strings.Contains(err.Error(), "2 writes failed") || len(heard) != 2 || !errors.Is(err, heard[1]) {
		t.Fatalf("Health after two failed writes = %v (heard %v), want the count and the last error", err, heard)
	}
	ok.Stage = run.StageWaiting
	if err := w.Put(ok); err != nil {
		t.Fatal(err)
	}
	if err := w.Health(); err != nil {
		t.Fatalf("Health after the journal was written again = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Prune(now, 1, 0); err == nil {
		t.Fatal("Prune on a closed journal succeeded")
	}
	if w.Health() == nil || len(heard) != 3 {
		t.Fatalf("a write to a closed journal: Health %v, heard %d errors", w.Health(), len(heard))
	}
}
