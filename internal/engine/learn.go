package engine

import (
	"hash/fnv"
	"math"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/pollplan"
	"github.com/backupd/backupd/internal/run"
)

// Learned polling (docs/atlas-client.md): a job's reads are planned from how
// long the same cluster's jobs of that stage took before: each job's bounds
// (last seen running, first seen done). They come from the journal, read once per cluster when a job of it is first polled,
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

// bounds are the run's fields recording how long its job of stage s was
// seen running and when it was first seen done (nil, nil: a stage without
// a job).
func bounds(r *run.Run, s run.Stage) (ran, done *time.Duration) {
	switch s {
	case run.StageSnapshotting:
		return &r.SnapshotRanFor, &r.SnapshotDoneBy
	case run.StageExporting:
		return &r.ExportRanFor, &r.ExportDoneBy
	case run.StageRestoring:
		return &r.RestoreRanFor, &r.RestoreDoneBy
	}
	return nil, nil
}

// jobSample is what r recorded of its job of stage s, one of the learned
// stages (Done 0: nothing a plan can use).
func jobSample(r *run.Run, s run.Stage) pollplan.Sample {
	ran, done := bounds(r, s)
	return pollplan.Sample{Ran: *ran, Done: *done}
}

// sample is one job's bounds, with a hash of its run's id so that a run
// read from the journal and learnt meanwhile counts once. It is kept small
// (16 bytes, not a run id string and two Durations: 56): every cluster the
// engine polls keeps up to 2 x keep() of them for as long as the process
// runs, 10,000 clusters' worth in a fleet, against a 64 MiB target. The
// bounds are whole milliseconds, capped at 49 days (uint32), far past any
// stage's timeout.
type sample struct {
	run       uint64 // runHash of the run's id; a collision only drops a sample
	ran, done uint32 // milliseconds
}

func newSample(id run.ID, js pollplan.Sample) sample {
	ms := func(d time.Duration) uint32 {
		return uint32(min(max(d.Milliseconds(), 0), math.MaxUint32))
	}
	return sample{run: runHash(id), ran: ms(js.Ran), done: ms(js.Done)}
}

func (s sample) bounds() pollplan.Sample {
	return pollplan.Sample{Ran: time.Duration(s.ran) * time.Millisecond, Done: time.Duration(s.done) * time.Millisecond}
}

// runHash is the FNV-1a hash of a run id.
func runHash(id run.ID) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// pushNewest returns ss with s first and at most keep samples, reusing
// ss's array once it has room for keep+1.
func pushNewest(ss []sample, s sample, keep int) []sample {
	if cap(ss) < keep+1 {
		grown := make([]sample, len(ss), keep+1)
		copy(grown, ss)
		ss = grown
	}
	ss = append(ss, sample{})
	copy(ss[1:], ss)
	ss[0] = s
	return ss[:min(len(ss), keep)]
}

// clusterHistory is one cluster's recent job samples per learned stage,
// newest first, and the estimates made of them.
type clusterHistory struct {
	ran [len(learnedStages)][]sample
	est [len(learnedStages)]pollplan.Estimate
	// loading reports that a worker is reading the cluster's runs from the
	// journal: runs ending meanwhile are kept in ran and merged with what
	// it read, and the estimates are not made yet.
	loading bool
}

// history caches clusterHistory per target.
type history struct {
	plan pollplan.Plan
	mu   sync.Mutex
	// byTarget holds the clusters loaded (or being loaded) from the
	// journal. A cluster absent here has not been polled since the start;
	// its durations are still in the journal and are read with its first
	// poll.
	byTarget map[run.Target]*clusterHistory
}

// keep is how many samples per cluster and stage are kept.
func (h *history) keep() int { return max(h.plan.Samples, pollplan.DefaultSamples) }

// historyRuns is how many of a cluster's newest runs are read for its
// samples: skipped and failed runs carry none, so more than the samples.
func (h *history) historyRuns() int { return 4 * h.keep() }

// estimate is what t's history says of its next job of stage s. The journal
// is read only the first time t is asked for, and without the history's
// lock: every transition of every run takes that lock (learn), and a
// journal read held under it made them all wait for a disk. A read that
// fails leaves t without a plan (today's backoff) and is tried again with
// its next job; a job of t polled while another worker reads gets no plan
// either (runs on one cluster take turns, so that is rare).
func (e *Engine) estimate(t run.Target, s run.Stage) pollplan.Estimate {
	i := stageIndex(s)
	if i < 0 {
		return pollplan.Estimate{}
	}
	h := &e.hist
	h.mu.Lock()
	if ch, ok := h.byTarget[t]; ok {
		est := ch.est[i]
		h.mu.Unlock()
		return est
	}
	ch := &clusterHistory{loading: true}
	h.byTarget[t] = ch
	h.mu.Unlock()

	runs, err := e.j.History(journal.Query{Target: &t, Limit: h.historyRuns()})

	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		delete(h.byTarget, t)
		e.log.Warn("reading the cluster's run history for learned polling failed; polling with the backoff",
			zap.String("project", t.ProjectID), zap.String("cluster", t.Cluster), zap.Error(err))
		return pollplan.Estimate{}
	}
	for k, ls := range learnedStages {
		// Learnt while reading: newer than anything read, unless the
		// read saw the same run.
		merged := ch.ran[k]
		for idx := range runs {
			r := &runs[idx]
			if js := jobSample(r, ls); js.Done > 0 && !hasRun(merged, r.ID) && len(merged) < h.keep() {
				merged = append(merged, newSample(r.ID, js))
			}
		}
		ch.ran[k] = slices.Clip(merged)
		ch.est[k] = h.plan.Estimate(samples(ch.ran[k]))
	}
	ch.loading = false
	return ch.est[i]
}

func hasRun(ss []sample, id run.ID) bool {
	h := runHash(id)
	for _, s := range ss {
		if s.run == h {
			return true
		}
	}
	return false
}

func samples(ss []sample) []pollplan.Sample {
	out := make([]pollplan.Sample, len(ss))
	for i, s := range ss {
		out[i] = s.bounds()
	}
	return out
}

// learn adds the sample a transition out of from recorded to the
// cluster's cached history. A cluster not cached yet is left alone: its
// first poll reads the journal, which already holds this run.
func (e *Engine) learn(r run.Run, from run.Stage) {
	i := stageIndex(from)
	if i < 0 || r.Stage == from {
		return
	}
	js := jobSample(&r, from)
	if js.Done <= 0 {
		return
	}
	h := &e.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.byTarget[r.Target]
	if !ok || hasRun(ch.ran[i], r.ID) {
		return
	}
	ch.ran[i] = pushNewest(ch.ran[i], newSample(r.ID, js), h.keep())
	if !ch.loading {
		ch.est[i] = h.plan.Estimate(samples(ch.ran[i]))
	}
}
