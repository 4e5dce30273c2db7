package daemon_test

import (
	"sync"
	"testing"
	"testing/synctest"

	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// historyRecorder records the History queries and counts the Summaries
// reads made through it.
type historyRecorder struct {
	journal.Journal
	mu        sync.Mutex
	queries   []journal.Query
	summaries int
}

func (h *historyRecorder) Summaries() ([]journal.Summary, error) {
	h.mu.Lock()
	h.summaries++
	h.mu.Unlock()
	return h.Journal.Summaries()
}

func (h *historyRecorder) History(q journal.Query) ([]run.Run, error) {
	h.mu.Lock()
	h.queries = append(h.queries, q)
	h.mu.Unlock()
	return h.Journal.History(q)
}

// TestStartReadsNoWholeHistory: a start reads the journal's history only
// through an index (a policy's or a target's) or a bounded number of runs,
// and every target's summary once. A walk of every run at start (the
// restore drills' metrics once did it, to find the few drills among
// 100,000 runs) made a fleet's start take seconds instead of one, and so
// did decoding the 10,000 summaries three times (metrics, their pruning,
// the engine's test for an empty journal).
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
			if q.Policy == "" && q.Target == nil && (q.Limit <= 0 || q.Limit > 10) {
				t.Errorf("the start walked the whole history: %+v", q)
			}
		}
		if rec.summaries != 1 {
			t.Errorf("the start read the journal's summaries %d times, want once", rec.summaries)
		}
	})
}
