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

// targetGroup is a policy on a project: the two label values every
// cluster of the project shares under that policy, held once (a pointer
// in each series' key) instead of two string headers per series. It never
// changes after it is created, so the exposition reads it without the lock.
type targetGroup struct {
	policy, project string
}

// groupEntry is a group in the store and how many series use it.
type groupEntry struct {
	g    *targetGroup
	refs int
}

// targetKey identifies one policy on one target: 24 bytes, the map's key
// and part of every series.
type targetKey struct {
	group   *targetGroup
	cluster string
}

// policy and project are the key's label values.
func (k targetKey) policy() string  { return k.group.policy }
func (k targetKey) project() string { return k.group.project }

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// targetSeries is every per-target series of one policy on one target:
// 112 bytes. A counter series exists once its count is above zero; a
// gauge exists when its bit in has is set.
type targetSeries struct {
	// key never changes after the series is created, so the exposition
	// reads it without the lock.
	key targetKey

	// lastRunSlot is the slot (Unix milliseconds) of the run lastRun is
	// about; 0 unknown.
	lastRunSlot int64

	nextRun      float64 // backupd_next_run_timestamp_seconds
	snapshotSize float64 // backupd_snapshot_size_bytes
	lastSuccess  [len(stageLabels)]float64

	// The counters are 32 bits: a target's runs are Atlas snapshots and
	// exports, a few an hour, so 4 billion of them is not reached.
	runs    [len(resultLabels)]uint32 // backupd_runs_total
	skipped [len(reasonLabels)]uint32 // backupd_runs_skipped_total

	has   uint8
	flags uint8 // flagDeleted, flagWithheld, flagLastRunOK
}

// Bits of targetSeries.flags.
const (
	// flagDeleted: removed from the store; a scrape holding it skips it.
	flagDeleted uint8 = 1 << iota
	// flagWithheld hides backupd_last_run_success at the start of a term
	// until the target was reconciled with Atlas or a run of the term
	// ended (BeginTerm).
	flagWithheld
	// flagLastRunOK is backupd_last_run_success's value: 1 if set, else 0.
	flagLastRunOK
)

func (s *targetSeries) deleted() bool  { return s.flags&flagDeleted != 0 }
func (s *targetSeries) withheld() bool { return s.flags&flagWithheld != 0 }

// setWithheld hides (or shows) backupd_last_run_success.
func (s *targetSeries) setWithheld(w bool) {
	if w {
		s.flags |= flagWithheld
	} else {
		s.flags &^= flagWithheld
	}
}

// lastRun is backupd_last_run_success's value.
func (s *targetSeries) lastRun() float64 {
	if s.flags&flagLastRunOK != 0 {
		return 1
	}
	return 0
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
// slot (zero: unknown), 1 if ok, and shows it.
func (s *targetSeries) setLastRun(ok bool, slot time.Time) {
	s.flags &^= flagWithheld | flagLastRunOK
	if ok {
		s.flags |= flagLastRunOK
	}
	s.has |= hasLastRun
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
	// groups interns the (policy, project) pairs, which the clusters of a
	// project share.
	groups map[[2]string]groupEntry
}

func newTargetStore() targetStore {
	return targetStore{byKey: make(map[targetKey]*targetSeries), groups: make(map[[2]string]groupEntry)}
}

// get returns the series of policy on (project, cluster), or nil.
func (st *targetStore) get(policy, project, cluster string) *targetSeries {
	e, ok := st.groups[[2]string{validUTF8(policy), validUTF8(project)}]
	if !ok {
		return nil
	}
	return st.byKey[targetKey{e.g, validUTF8(cluster)}]
}

// getOrCreate returns the series of policy on (project, cluster), creating
// an empty one if needed. Label values must be UTF-8 (a registry refuses
// others), so invalid bytes become U+FFFD; valid strings, all that config
// validation lets through, are used as they are.
func (st *targetStore) getOrCreate(policy, project, cluster string) *targetSeries {
	gk := [2]string{validUTF8(policy), validUTF8(project)}
	e, ok := st.groups[gk]
	if !ok {
		e.g = &targetGroup{policy: gk[0], project: gk[1]}
	}
	k := targetKey{e.g, validUTF8(cluster)}
	if s := st.byKey[k]; s != nil {
		return s
	}
	e.refs++
	st.groups[gk] = e
	s := &targetSeries{key: k}
	st.byKey[k] = s
	st.sorted = nil
	return s
}

// remove deletes s from the store.
func (st *targetStore) remove(s *targetSeries) {
	if s.deleted() {
		return
	}
	delete(st.byKey, s.key)
	s.flags |= flagDeleted
	gk := [2]string{s.key.policy(), s.key.project()}
	if e := st.groups[gk]; e.refs <= 1 {
		delete(st.groups, gk)
	} else {
		e.refs--
		st.groups[gk] = e
	}
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
			if c := strings.Compare(a.key.policy(), b.key.policy()); c != 0 {
				return c
			}
			return strings.Compare(a.key.project(), b.key.project())
		})
		st.sorted = sorted
	}
	return st.sorted
}
