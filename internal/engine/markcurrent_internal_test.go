package engine

import (
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/journal"
)

// The engine asks MarkCurrent only during Start and then lets it go: the
// daemon's index behind it (every scheduler entry, MiBs at 10,000 targets)
// must not stay in the heap for the life of the process.
func TestStartReleasesMarkCurrent(t *testing.T) {
	e := New(Config{Clock: clock.NewFake(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)), Journal: journal.NewMemory(),
		MarkerRecovery: true, MarkCurrent: func(string, journal.Mark, time.Time) bool { return true }})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.Wait() }()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if e.cfg.MarkCurrent != nil {
		t.Error("the engine still holds MarkCurrent after its start")
	}
}
