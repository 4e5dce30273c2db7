package engine

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/pollplan"
	"github.com/backupd/backupd/internal/run"
)

// Learned polling (docs/atlas-client.md): a job's reads are planned from how
// long the same cluster's jobs of that stage took before. The durations come
// from the journal, read once per cluster when a job of it is first polled,
// and are then kept up to date from the engine's own transitions, so a poll
// never reads the journal.

// learnedStages are the stages whose job is polled, in history's order.
var learnedStages = [...]run.Stage{run.StageSnapshotting, run.StageExporting, run.StageRestoring}

func stageIndex(s run.Stage) int {
	for i, ls := range learnedStages {
		if ls == s {
			return i
		}
	}
	return -1
}

// ranFor is the run's field recording how long its job of stage ran.
func ranFor(r *run.Run, s run.Stage) *time.Duration {
	switch s {
	case run.StageSnapshotting:
		return &r.SnapshotRanFor
	case run.StageExporting:
		return &r.ExportRanFor
	case run.StageRestoring:
		return &r.RestoreRanFor
	}
	return nil
}

// clusterHistory is one cluster's recent job durations per learned stage,
// newest first, and the estimates made of them.
type clusterHistory struct {
	ran [len(learnedStages)][]time.Duration
	est [len(learnedStages)]pollplan.Estimate
}

// history caches clusterHistory per target.
type history struct {
	plan pollplan.Plan
	mu   sync.Mutex
	// byTarget holds the clusters loaded from the journal. A cluster
	// absent here has not been polled since the start; its durations are
	// still in the journal and are read with its first poll.
	byTarget map[run.Target]*clusterHistory
}

// historyRuns is how many of a cluster's newest runs are read for its
// durations: skipped and failed runs carry none, so more than the samples.
func (h *history) historyRuns() int { return 4 * max(h.plan.Samples, pollplan.DefaultSamples) }

// estimate is what t's history says of its next job of stage s. The journal
// is read only the first time t is asked for; a read that fails leaves t
// without a plan (today's backoff) and is tried again with its next job.
func (e *Engine) estimate(t run.Target, s run.Stage) pollplan.Estimate {
	i := stageIndex(s)
	if i < 0 {
		return pollplan.Estimate{}
	}
	h := &e.hist
	// The lock is held across the journal read so that a run ending
	// meanwhile (learn) cannot be both read and appended, or lost.
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.byTarget[t]
	if !ok {
		runs, err := e.j.History(journal.Query{Target: &t, Limit: h.historyRuns()})
		if err != nil {
			e.log.Warn("reading the cluster's run history for learned polling failed; polling with the backoff",
				zap.String("project", t.ProjectID), zap.String("cluster", t.Cluster), zap.Error(err))
			return pollplan.Estimate{}
		}
		ch = &clusterHistory{}
		for k, ls := range learnedStages {
			for idx := range runs {
				if d := *ranFor(&runs[idx], ls); d > 0 && len(ch.ran[k]) < max(h.plan.Samples, pollplan.DefaultSamples) {
					ch.ran[k] = append(ch.ran[k], d)
				}
			}
			ch.est[k] = h.plan.Estimate(ch.ran[k])
		}
		h.byTarget[t] = ch
	}
	return ch.est[i]
}

// learn adds the duration a transition out of from recorded to the
// cluster's cached history. A cluster not cached yet is left alone: its
// first poll reads the journal, which already holds this run.
func (e *Engine) learn(r run.Run, from run.Stage) {
	i := stageIndex(from)
	if i < 0 || r.Stage == from {
		return
	}
	d := *ranFor(&r, from)
	if d <= 0 {
		return
	}
	h := &e.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.byTarget[r.Target]
	if !ok {
		return
	}
	n := max(h.plan.Samples, pollplan.DefaultSamples)
	ran := append([]time.Duration{d}, ch.ran[i]...)
	if len(ran) > n {
		ran = ran[:n]
	}
	ch.ran[i] = ran
	ch.est[i] = h.plan.Estimate(ran)
}
