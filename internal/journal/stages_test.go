package journal

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// withoutStages is r as its caller put it: the journal adds the history.
func withoutStages(r run.Run) run.Run {
	r.Stages = nil
	return r
}

// TestStageHistory: the journal records every stage a run enters with its
// time, across Puts that do not carry the history (the engine's) and
// across a reopen; progress within a stage adds nothing; a record stored
// before the history existed still decodes and starts its history at its
// next Put; the history is bounded.
func TestStageHistory(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, im impl) {
		r := mk("r1", "nightly", tgtA, at(0), run.StagePending)
		mustPut(t, j, r)
		for i, st := range []run.Stage{run.StageWaiting, run.StageSnapshotting, run.StageSnapshotting, run.StageExporting, run.StageSucceeded} {
			if st != r.Stage {
				r.StageStartedAt = at(i + 1)
			}
			r.Stage, r.UpdatedAt, r.ExportProgress = st, at(i+1).Add(time.Minute), fmt.Sprint(i)
			mustPut(t, j, r)
		}
		want := []run.StageEntry{{Stage: run.StagePending, At: at(0)}, {Stage: run.StageWaiting, At: at(1)}, {Stage: run.StageSnapshotting, At: at(2)}, {Stage: run.StageExporting, At: at(4)}, {Stage: run.StageSucceeded, At: at(5)}}
		check := func(j Journal, when string) {
			t.Helper()
			got, _, err := j.Get("r1")
			if err != nil || !run.SameStages(got.Stages, want) {
				t.Fatalf("%s: stages = %+v, %v; want %+v", when, got.Stages, err, want)
			}
			if h, _ := j.History(Query{}); len(h) != 1 || !run.SameStages(h[0].Stages, want) {
				t.Fatalf("%s: History stages = %+v", when, h)
			}
		}
		check(j, "after the Puts")
		if j2 := im.reopen(t, j); j2 != nil {
			check(j2, "after a reopen")
			j = j2
		}
		if s, _ := j.Summaries(); len(s) != 1 || s[0].Last == nil || s[0].Last.Stages != nil {
			t.Errorf("a summary carries the stage history: %+v", s)
		}

		// The bound keeps the first entry and the newest ones.
		b := mk("r2", "nightly", tgtB, at(0), run.StagePending)
		mustPut(t, j, b)
		for i := 1; i <= 2*run.MaxStages; i++ {
			b.Stage = []run.Stage{run.StageWaiting, run.StagePending}[i%2]
			b.StageStartedAt = at(i)
			mustPut(t, j, b)
		}
		got, _, _ := j.Get("r2")
		if n := len(got.Stages); n != run.MaxStages || !got.Stages[0].At.Equal(at(0)) || !got.Stages[n-1].At.Equal(at(2*run.MaxStages)) {
			t.Errorf("bounded history = %d entries %+v", n, got.Stages)
		}
	})
}

// TestOldRecordsDecode: a run record written before stages existed (no
// "stages" key) decodes, and its next stage change starts a history with
// the stage it was in.
func TestOldRecordsDecode(t *testing.T) {
	old := `{"id":"r1","policy":"nightly","action":"snapshot","target":{"projectID":"32b6e34b3d91647abb20e7b8","cluster":"prod"},` +
		`"slot":"2026-03-01T02:00:00Z","scheduledAt":"2026-03-01T02:00:00Z","spec":{"timeouts":{"wait":0,"snapshot":0,"export":0,"restore":0}},` +
		`"stage":"snapshotting","createdAt":"2026-03-01T02:00:00Z","stageStartedAt":"2026-03-01T03:00:00Z","updatedAt":"2026-03-01T03:00:00Z"}`
	var r run.Run
	if err := json.Unmarshal([]byte(old), &r); err != nil || r.Stages != nil || r.Stage != run.StageSnapshotting {
		t.Fatalf("old record = %+v, %v", r, err)
	}
	next := r
	next.Stage, next.StageStartedAt = run.StageSucceeded, at(2)
	got := run.StageHistory(&r, next)
	// The old record's own stage, whose start it did keep, begins the history.
	want := []run.StageEntry{{Stage: run.StageSnapshotting, At: at(1)}, {Stage: run.StageSucceeded, At: at(2)}}
	if !run.SameStages(got, want) {
		t.Fatalf("history of an old record = %+v, want %+v", got, want)
	}
}
