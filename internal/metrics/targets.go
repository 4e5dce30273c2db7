package metrics

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The per-target series (policy × project × cluster) are the bulk of what
// the daemon exposes: at 10,000 targets, prometheus vectors holding them
// cost about 8 KB per target and a scrape built a 44 MB dto tree. They are
// kept here instead as one small struct per policy on a target, and
// exposed by exposition.go.

// Label values of the per-target families, in the order the exposition
// sorts them (byte order), which is also the index into the arrays of
// targetSeries.
var (
	// resultLabels are the result values of backupd_runs_total, as returned
	// by run.Run.Result.
	resultLabels = [...]string{"failure", "success", "timeout"}
	// reasonLabels are the reason values of backupd_runs_skipped_total;
	// other reasons are folded into not_supported.
	reasonLabels = [...]string{"missed", "no_new_snapshot", "not_supported", "overlap", "shutdown"}
	// stageLabels are the stage values of
	// backupd_last_success_timestamp_seconds.
	stageLabels = [...]string{SuccessStageExport, SuccessStageRestore, SuccessStageSnapshot}
)

// Bits of targetSeries.has: which gauges of the target exist. The three
// last-success stages take the bits from hasLastSuccess up, in stageLabels
// order.
const (
	hasNextRun uint8 = 1 << iota
	hasLastRun
	hasSnapshotSize
	hasLastSuccess // stageLabels[0]; stageLabels[i] is hasLastSuccess << i
)

// allStages is the stage mask that lets every last-success stage through.
const allStages uint8 = 1<<len(stageLabels) - 1

// targetKey identifies one policy on one target.
type targetKey struct {
	policy, project, cluster string
}

// newTargetKey is the key of policy on (project, cluster). Label values
// must be UTF-8 (a registry refuses others), so invalid bytes become
// U+FFFD; valid strings, all that config validation lets through, are used
// as they are.
func newTargetKey(policy, project, cluster string) targetKey {
	return targetKey{validUTF8(policy), validUTF8(project), validUTF8(cluster)}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// targetSeries is every per-target series of one policy on one target:
// about 160 bytes. A counter series exists once its count is above zero;
// a gauge exists when its bit in has is set.
type targetSeries struct {
	// key never changes after the series is created, so the exposition
	// reads it without the lock.
	key     targetKey
	has     uint8
	deleted bool // removed from the store; a scrape holding it skips it
	// withheld hides backupd_last_run_success at the start of a term until
	// the target was reconciled with Atlas or a run of the term ended
	// (BeginTerm).
	withheld bool

	// lastRunSlot is the slot (Unix milliseconds) of the run lastRun is
	// about; 0 unknown.
	lastRunSlot int64

	nextRun      float64 // backupd_next_run_timestamp_seconds
	lastRun      float64 // backupd_last_run_success
	snapshotSize float64 // backupd_snapshot_size_bytes
	lastSuccess  [len(stageLabels)]float64

	runs    [len(resultLabels)]uint64 // backupd_runs_total
	skipped [len(reasonLabels)]uint64 // backupd_runs_skipped_total
}

// empty reports whether the target has no series left.
func (s *targetSeries) empty() bool {
	if s.has != 0 {
		return false
	}
	for _, n := range s.runs {
		if n != 0 {
			return false
		}
	}
	for _, n := range s.skipped {
		if n != 0 {
			return false
		}
	}
	return true
}

// setLastRun sets backupd_last_run_success to the result of the run of
// slot (zero: unknown) and shows it.
func (s *targetSeries) setLastRun(v float64, slot time.Time) {
	s.lastRun = v
	s.has |= hasLastRun
	s.withheld = false
	s.lastRunSlot = 0
	if !slot.IsZero() {
		s.lastRunSlot = slot.UnixMilli()
	}
}

// olderThanLastRun reports whether a run of slot is older than the one
// backupd_last_run_success is about: its end must not replace a newer
// result (a re-attached run of a stale journal ending after the target
// learned a later one from Atlas). Unknown slots are never older.
func (s *targetSeries) olderThanLastRun(slot time.Time) bool {
	return s.has&hasLastRun != 0 && s.lastRunSlot != 0 && !slot.IsZero() && slot.UnixMilli() < s.lastRunSlot
}

// setSnapshotSize sets backupd_snapshot_size_bytes.
func (s *targetSeries) setSnapshotSize(v float64) {
	s.snapshotSize = v
	s.has |= hasSnapshotSize
}

// setLastSuccess sets the last-success timestamp of stage index i.
func (s *targetSeries) setLastSuccess(i int, v float64) {
	s.lastSuccess[i] = v
	s.has |= hasLastSuccess << i
}

// keepStages drops the last-success series of stages outside mask (a bit
// per stageLabels index).
func (s *targetSeries) keepStages(mask uint8) {
	// Multiplying by hasLastSuccess shifts the stage bits into place.
	s.has &^= (allStages &^ mask) * hasLastSuccess
}

// targetStore holds the targetSeries. It is not safe for concurrent use:
// Metrics guards it with its mutex.
type targetStore struct {
	byKey map[targetKey]*targetSeries
	// sorted is byKey's series in exposition order; nil after a series was
	// added or removed, rebuilt by the next scrape. A new slice is built
	// each time, so a scrape that holds the old one is not disturbed.
	sorted []*targetSeries
	// strs interns policy names and project ids, which many targets share.
	strs map[string]internEntry
}

// internEntry is an interned string and how many series use it.
type internEntry struct {
	s    string
	refs int
}

func newTargetStore() targetStore {
	return targetStore{byKey: make(map[targetKey]*targetSeries), strs: make(map[string]internEntry)}
}

// get returns the series of policy on (project, cluster), or nil.
func (st *targetStore) get(policy, project, cluster string) *targetSeries {
	return st.byKey[newTargetKey(policy, project, cluster)]
}

// getOrCreate returns the series of policy on (project, cluster), creating
// an empty one if needed.
func (st *targetStore) getOrCreate(policy, project, cluster string) *targetSeries {
	k := newTargetKey(policy, project, cluster)
	if s := st.byKey[k]; s != nil {
		return s
	}
	s := &targetSeries{key: targetKey{st.intern(k.policy), st.intern(k.project), k.cluster}}
	st.byKey[s.key] = s
	st.sorted = nil
	return s
}

// remove deletes s from the store.
func (st *targetStore) remove(s *targetSeries) {
	if s.deleted {
		return
	}
	delete(st.byKey, s.key)
	s.deleted = true
	st.release(s.key.policy)
	st.release(s.key.project)
	st.sorted = nil
}

// removeIfEmpty deletes s if it has no series left.
func (st *targetStore) removeIfEmpty(s *targetSeries) {
	if s.empty() {
		st.remove(s)
	}
}

// order returns every series in exposition order: by cluster, policy,
// project, the order a Prometheus registry sorts these label values in.
// The caller must not modify the slice.
func (st *targetStore) order() []*targetSeries {
	if st.sorted == nil {
		sorted := make([]*targetSeries, 0, len(st.byKey))
		for _, s := range st.byKey {
			sorted = append(sorted, s)
		}
		slices.SortFunc(sorted, func(a, b *targetSeries) int {
			if c := strings.Compare(a.key.cluster, b.key.cluster); c != 0 {
				return c
			}
			if c := strings.Compare(a.key.policy, b.key.policy); c != 0 {
				return c
			}
			return strings.Compare(a.key.project, b.key.project)
		})
		st.sorted = sorted
	}
	return st.sorted
}

func (st *targetStore) intern(s string) string {
	e, ok := st.strs[s]
	if !ok {
		e.s = s
	}
	e.refs++
	st.strs[s] = e
	return e.s
}

func (st *targetStore) release(s string) {
	e, ok := st.strs[s]
	if !ok {
		return
	}
	if e.refs--; e.refs <= 0 {
		delete(st.strs, s)
		return
	}
	st.strs[s] = e
}
