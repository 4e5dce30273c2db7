package daemon_test

import (
	"sync"
	"testing"
	"testing/synctest"

	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// historyRecorder records the History queries made through it.
type historyRecorder struct {
	journal.Journal
	mu      sync.Mutex
	queries []journal.Query
}

func (h *historyRecorder) History(q journal.Query) ([]run.Run, error) {
	h.mu.Lock()
	h.queries = append(h.queries, q)
	h.mu.Unlock()
	return h.Journal.History(q)
}

// TestStartReadsNoWholeHistory: a start reads the journal's history only
// through an index (a policy's or a target's). A walk of every run at
// start (the restore drills' metrics once did it, to find the few drills
// among 100,000 runs) made a fleet's start take seconds instead of one.
func TestStartReadsNoWholeHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		rec := &historyRecorder{}
		e := launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), WrapJournal: func(j journal.Journal) journal.Journal {
			rec.Journal = j
			return rec
		}})
		defer e.stop()
		synctest.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, q := range rec.queries {
			if q.Policy == "" && q.Target == nil {
				t.Errorf("the start walked the whole history: %+v", q)
			}
		}
	})
}
