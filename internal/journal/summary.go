package journal

import (
	"maps"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Atlas status values the summary derives successes from (atlas.SnapshotCompleted
// and atlas.FlexCompleted; repeated here so the journal does not depend on
// the API client package).
const (
	snapshotCompleted = "completed"
	restoreCompleted  = "COMPLETED"
)

// summaryRecord is a Summary plus what is needed to maintain it
// incrementally.
type summaryRecord struct {
	Summary
	// SnapshotRun is the run whose snapshot set LastSuccess[snapshot], so a
	// size recorded by a later Put of that run updates LastSnapshotBytes.
	SnapshotRun run.ID `json:"snapshotRun,omitempty"`
}

// apply folds one Put into the summary of r's (policy, target). old is the
// version of r the journal held before (nil if none). It reports whether
// anything changed, so unchanged summaries are not rewritten.
//
// The rules, from the run's own fields, using r.UpdatedAt as the time:
//   - Last: a terminal r replaces Last if it is the same run or ended later
//     (FinishedAt, else UpdatedAt; ties broken by CreatedAt, then ID).
//   - snapshot: SnapshotStatus turned "completed" in this Put (runs of
//     action export only reference an existing snapshot and do not count).
//   - export: Stage turned succeeded in this Put and ExportJobID is set.
//   - restore: RestoreStatus turned "COMPLETED" in this Put.
//
// A success never moves LastSuccess backwards.
func (s *summaryRecord) apply(old *run.Run, r run.Run) bool {
	changed := false
	if r.Stage.Terminal() && (s.Last == nil || s.Last.ID == r.ID || endedAfter(r, *s.Last)) {
		last := r
		// The stage history is the run record's; a summary stays small.
		last.Stages = nil
		s.Last = &last
		changed = true
	}

	if snapshotDone(r) && (old == nil || !snapshotDone(*old)) && s.succeed(SuccessSnapshot, r.UpdatedAt) {
		s.SnapshotRun = r.ID
		changed = true
	}
	if s.SnapshotRun == r.ID && r.SnapshotBytes > 0 && s.LastSnapshotBytes != r.SnapshotBytes {
		s.LastSnapshotBytes = r.SnapshotBytes
		changed = true
	}

	if exported(r) && (old == nil || !exported(*old)) && s.succeed(SuccessExport, r.UpdatedAt) {
		changed = true
	}

	if restored(r) && (old == nil || !restored(*old)) && s.succeed(SuccessRestore, r.UpdatedAt) {
		changed = true
	}
	return changed
}

// The successes a Put can record: a snapshot backupd requested completed
// (runs of action export only reference an existing snapshot), a run that
// exported succeeded, a flex restore completed, a restore drill succeeded
// (restored, back to IDLE and verified; drills restore a snapshot, they
// take none).
func snapshotDone(x run.Run) bool {
	return x.Action != run.ActionExport && x.Action != run.ActionRestoreDrill && x.SnapshotStatus == snapshotCompleted
}
func exported(x run.Run) bool { return x.Stage == run.StageSucceeded && x.ExportJobID != "" }
func restored(x run.Run) bool {
	if x.Action == run.ActionRestoreDrill {
		return x.Stage == run.StageSucceeded
	}
	return x.RestoreStatus == restoreCompleted
}

// summaryMayChange reports whether apply(old, r) can change the summary of
// r's policy and target; when it cannot, Bolt does not read the summary.
// It is exact for summaries apply built: only r's own Puts make or keep r
// the SnapshotRun, and each of them that could leaves LastSnapshotBytes at
// r's size, so a Put that keeps r's key and size and completes nothing new
// finds nothing to change.
func summaryMayChange(old *run.Run, r run.Run) bool {
	switch {
	case old == nil, r.Stage.Terminal(), old.Policy != r.Policy, old.Target != r.Target:
		return true
	}
	return snapshotDone(r) && !snapshotDone(*old) ||
		exported(r) && !exported(*old) ||
		restored(r) && !restored(*old) ||
		r.SnapshotBytes > 0 && r.SnapshotBytes != old.SnapshotBytes
}

// succeed records a success of stage at t unless a later one is known.
func (s *summaryRecord) succeed(stage string, t time.Time) bool {
	if prev, ok := s.LastSuccess[stage]; ok && !t.After(prev) {
		return false
	}
	if s.LastSuccess == nil {
		s.LastSuccess = make(map[string]time.Time, 3)
	}
	s.LastSuccess[stage] = t
	return true
}

// endTime is when a terminal run ended.
func endTime(r run.Run) time.Time {
	if !r.FinishedAt.IsZero() {
		return r.FinishedAt
	}
	return r.UpdatedAt
}

// endedAfter orders terminal runs for Summary.Last.
func endedAfter(a, b run.Run) bool {
	if c := endTime(a).Compare(endTime(b)); c != 0 {
		return c > 0
	}
	return newer(a, b)
}

// newer is History's order: a comes before b when it is newer.
func newer(a, b run.Run) bool {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
}

// clone returns a Summary sharing nothing with s.
func (s *summaryRecord) clone() Summary {
	out := s.Summary
	if s.Last != nil {
		last := *s.Last
		out.Last = &last
	}
	out.LastSuccess = maps.Clone(s.LastSuccess)
	return out
}
