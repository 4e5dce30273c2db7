package engine_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// fullDisk is the real journal with a disk that is full for the next
// failTerminal writes of a run's final state: they fail as bbolt's commit
// does on ENOSPC, and nothing is written.
type fullDisk struct {
	journal.Journal
	mu           sync.Mutex
	failTerminal int
	failed       int
}

func (f *fullDisk) Put(r run.Run) error {
	f.mu.Lock()
	if r.Stage.Terminal() && f.failTerminal > 0 {
		f.failTerminal--
		f.failed++
		f.mu.Unlock()
		return fmt.Errorf("write %s: %w", "state.db", syscall.ENOSPC)
	}
	f.mu.Unlock()
	return f.Journal.Put(r)
}

// A run whose final journal write fails (disk full) retries that write
// until it succeeds, then leaves the in-flight table: the next slot of the
// target runs instead of being skipped{overlap} behind a phantom run.
func TestFailedFinalJournalWriteIsRetriedAndLeavesNoPhantom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		bolt, err := journal.Open(filepath.Join(t.TempDir(), "state.db"), journal.Options{NoSync: true})
		must(t, err)
		defer bolt.Close()
		j := &fullDisk{Journal: bolt, failTerminal: 3}
		p := snapshotPolicy("nightly", "rs", false)
		h := start(t, sim, j, []engine.Policy{p}, false, nil)
		defer h.stop()

		id := fire(t, h, p, "rs", slot)
		r := h.await(id)
		if r.Stage != run.StageSucceeded {
			t.Fatalf("run = %s{%s} %s, want succeeded", r.Stage, r.Reason, r.Detail)
		}
		j.mu.Lock()
		failed := j.failed
		j.mu.Unlock()
		if failed != 3 {
			t.Fatalf("%d final writes failed, want the 3 the disk refused", failed)
		}
		stored, ok, err := bolt.Get(id)
		must(t, err)
		if !ok || stored.Stage != run.StageSucceeded || !stored.FinishedAt.Equal(r.FinishedAt) {
			t.Fatalf("journal holds %+v, want the run succeeded as reported", stored)
		}
		// Retried with a backoff, not abandoned until a restart.
		if noticed := h.rec.entered(id, run.StageSucceeded); noticed.Sub(r.FinishedAt) > time.Minute {
			t.Fatalf("the final write succeeded %v after the first attempt, want within a minute", noticed.Sub(r.FinishedAt))
		}
		if err := h.eng.JournalHealth(); err != nil {
			t.Fatalf("JournalHealth once the write succeeded = %v", err)
		}
		if got, busy := h.eng.InFlight(p.Name, p.Targets[0]); busy {
			t.Fatalf("run %s %s is still in flight after its final write succeeded", got.ID, got.Stage)
		}
		next := h.await(fire(t, h, p, "rs", slot.Add(24*time.Hour)))
		if next.Stage != run.StageSucceeded {
			t.Fatalf("next slot = %s{%s} %q, want succeeded", next.Stage, next.Reason, next.Detail)
		}
	})
}
