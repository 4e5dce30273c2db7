package engine

import (
	"hash/fnv"
	"hash/maphash"
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

// sample is one job's bounds in whole milliseconds, capped at 49 days
// (uint32), far past any stage's timeout. It is 8 bytes (a run id string
// and two Durations would be 56; with a run hash, 16): every cluster the
// engine polls keeps up to 2 x keep() of them for as long as the process
// runs, 10,000 clusters' worth in a fleet, against a 64 MiB target
// (docs/benchmarks.md). Which run a sample came from is not kept; see
// clusterHistory.newest.
type sample struct {
	ran, done uint32
}

func newSample(js pollplan.Sample) sample {
	ms := func(d time.Duration) uint32 {
		return uint32(min(max(d.Milliseconds(), 0), math.MaxUint32))
	}
	return sample{ran: ms(js.Ran), done: ms(js.Done)}
}

func (s sample) bounds() pollplan.Sample {
	return pollplan.Sample{Ran: time.Duration(s.ran) * time.Millisecond, Done: time.Duration(s.done) * time.Millisecond}
}

// runHash is the 32-bit FNV-1a hash of a run id: a collision only drops a
// sample (the run is taken for one already counted).
func runHash(id run.ID) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()
}

// pushNewest returns ss with s first and at most keep elements, reusing
// ss's array once it has room for keep+1.
func pushNewest[T any](ss []T, s T, keep int) []T {
	if cap(ss) < keep+1 {
		grown := make([]T, len(ss), keep+1)
		copy(grown, ss)
		ss = grown
	}
	var zero T
	ss = append(ss, zero)
	copy(ss[1:], ss)
	ss[0] = s
	return ss[:min(len(ss), keep)]
}

// clusterHistory is one cluster's recent job samples per learned stage,
// newest first, in one array: stage k's are s[off(k):off(k)+n[k]]. This
// 48-byte header and one allocation of exactly the samples (160 bytes for
// two stages of 10) are what a cluster costs besides its map entry; the
// estimates are made from the samples when a job's polling starts (once
// per job) rather than kept.
type clusterHistory struct {
	// newest is the runHash of the run each stage's newest sample came
	// from (n[k] > 0). A transition learnt after the journal read that
	// already saw it is told from a new run by this alone: runs on one
	// cluster take turns (clusterLocks), so the run leaving a stage is the
	// last to have left it, and its sample, when read, is the newest.
	newest [len(learnedStages)]uint32
	n      [len(learnedStages)]uint16
	// check is the cluster's second hash (history.hashes): the map's key
	// is a hash, not the target.
	check uint32
	s     []sample
}

func (ch *clusterHistory) off(k int) int {
	o := 0
	for _, n := range ch.n[:k] {
		o += int(n)
	}
	return o
}

// stage is stage k's samples, newest first.
func (ch *clusterHistory) stage(k int) []sample {
	o := ch.off(k)
	return ch.s[o : o+int(ch.n[k])]
}

// push adds s, of run h, as stage k's newest sample, dropping its oldest
// past keep. A stage short of keep grows the array by exactly one.
func (ch *clusterHistory) push(k int, s sample, h uint32, keep int) {
	o, n := ch.off(k), int(ch.n[k])
	if n < keep {
		grown := make([]sample, len(ch.s)+1)
		copy(grown, ch.s[:o])
		copy(grown[o+1:], ch.s[o:])
		ch.s = grown
		ch.n[k]++
	} else {
		copy(ch.s[o+1:o+n], ch.s[o:o+n-1])
	}
	ch.s[o] = s
	ch.newest[k] = h
}

// loadingHistory is what was learnt of a cluster while a worker reads its
// runs from the journal: samples newer than anything read, per stage and
// newest first, with their runs' hashes (runs[k][i] is s[k][i]'s) so that
// a run the read also saw counts once. It lives only for the read.
type loadingHistory struct {
	s    [len(learnedStages)][]sample
	runs [len(learnedStages)][]uint32
}

// history caches clusterHistory per target.
type history struct {
	plan pollplan.Plan
	mu   sync.Mutex
	// byTarget holds the clusters loaded from the journal, by the 64-bit
	// hash of their target (hashes). A cluster absent here and from
	// loading has not been polled since the start; its durations are
	// still in the journal and are read with its first poll.
	//
	// Keyed by the target itself, the map took 79 bytes a cluster at
	// 10,000 (a slot of two string headers and a pointer, and the room a
	// map keeps free), by its hash 30. Two targets whose keys collide
	// (about 3 in 10^12 for a fleet of 10,000) are told apart by the
	// second hash, check: the one loaded second has no history and polls
	// with the backoff. Only when both hashes collide (2^-32 of that) do
	// the two clusters share one history, which plans worse polls but
	// still never past a stage's deadline.
	byTarget   map[uint64]*clusterHistory
	key, check maphash.Seed
	// loading holds the clusters workers are reading from the journal.
	loading map[run.Target]*loadingHistory
}

func newHistory(plan pollplan.Plan) history {
	return history{plan: plan, byTarget: map[uint64]*clusterHistory{}, loading: map[run.Target]*loadingHistory{},
		key: maphash.MakeSeed(), check: maphash.MakeSeed()}
}

// hashes are t's key in byTarget and the check that tells it from another
// target under the same key.
func (h *history) hashes(t run.Target) (key uint64, check uint32) {
	return maphash.Comparable(h.key, t), uint32(maphash.Comparable(h.check, t))
}

// cluster is t's cached history (nil: none). taken reports that another
// cluster's history holds t's key: t has none and cannot have one.
func (h *history) cluster(t run.Target) (ch *clusterHistory, taken bool) {
	key, check := h.hashes(t)
	ch = h.byTarget[key]
	if ch != nil && ch.check != check {
		return nil, true
	}
	return ch, false
}

// keep is how many samples per cluster and stage are kept (at most
// 65,535, clusterHistory.n).
func (h *history) keep() int {
	return min(max(h.plan.Samples, pollplan.DefaultSamples), math.MaxUint16)
}

// historyRuns is how many of a cluster's newest runs are read for its
// samples: skipped and failed runs carry none, so more than the samples.
func (h *history) historyRuns() int { return 4 * h.keep() }

// estimateOf is the plan's estimate of ss, made without allocating for
// the default number of samples.
func (h *history) estimateOf(ss []sample) pollplan.Estimate {
	var buf [pollplan.DefaultSamples]pollplan.Sample
	js := buf[:0]
	for _, s := range ss {
		js = append(js, s.bounds())
	}
	return h.plan.Estimate(js)
}

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
	if ch, taken := h.cluster(t); ch != nil || taken {
		defer h.mu.Unlock()
		if taken {
			return pollplan.Estimate{}
		}
		return h.estimateOf(ch.stage(i))
	}
	if _, ok := h.loading[t]; ok {
		h.mu.Unlock()
		return pollplan.Estimate{}
	}
	lh := &loadingHistory{}
	h.loading[t] = lh
	h.mu.Unlock()

	runs, err := e.j.History(journal.Query{Target: &t, Limit: h.historyRuns()})

	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.loading, t)
	if err != nil {
		e.log.Warn("reading the cluster's run history for learned polling failed; polling with the backoff",
			zap.String("project", t.ProjectID), zap.String("cluster", t.Cluster), zap.Error(err))
		return pollplan.Estimate{}
	}
	key, check := h.hashes(t)
	if h.byTarget[key] != nil {
		// Taken meanwhile by a cluster of the same key.
		return pollplan.Estimate{}
	}
	ch := &clusterHistory{check: check}
	var read [len(learnedStages)][]sample
	for k, ls := range learnedStages {
		// Learnt while reading: newer than anything read, unless the
		// read saw the same run.
		ss, hs := lh.s[k], lh.runs[k]
		for idx := range runs {
			r := &runs[idx]
			if len(ss) >= h.keep() {
				break
			}
			if js := jobSample(r, ls); js.Done > 0 && !slices.Contains(lh.runs[k], runHash(r.ID)) {
				ss, hs = append(ss, newSample(js)), append(hs, runHash(r.ID))
			}
		}
		read[k] = ss
		ch.n[k] = uint16(len(ss))
		if len(hs) > 0 {
			ch.newest[k] = hs[0]
		}
	}
	ch.s = slices.Concat(read[:]...)
	h.byTarget[key] = ch
	return h.estimateOf(ch.stage(i))
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
	rh := runHash(r.ID)
	h := &e.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, taken := h.cluster(r.Target); ch != nil || taken {
		if ch != nil && (ch.n[i] == 0 || ch.newest[i] != rh) {
			ch.push(i, newSample(js), rh, h.keep())
		}
		return
	}
	if lh, ok := h.loading[r.Target]; ok && !slices.Contains(lh.runs[i], rh) {
		lh.s[i] = pushNewest(lh.s[i], newSample(js), h.keep())
		lh.runs[i] = pushNewest(lh.runs[i], rh, h.keep())
	}
}
