package metrics

import (
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Issue 16 (alerts after a takeover): at the start of a term the last-run
// results held from the replica's own journal are withheld; each comes
// back once known for the term: from what Atlas shows (Reconciled: the
// newer by slot wins, nil keeps the journal's), or from a run of the term
// that ends. A run older than the result shown does not replace it.
func TestBeginTermWithholdsLastRunUntilKnown(t *testing.T) {
	m := New("test")
	m.Rebuild([]Restored{
		{Policy: "daily", Target: prodA, Last: &run.Run{Stage: run.StageFailed, Slot: t0}},
		{Policy: "daily", Target: prodB, Last: &run.Run{Stage: run.StageSucceeded, Slot: t0}, LastSuccess: map[string]time.Time{SuccessStageSnapshot: t0}},
		{Policy: "drill", Target: prodA, Last: &run.Run{Stage: run.StageFailed, Slot: t0}},
	})
	m.BeginTerm()
	if n := tcount(t, m, "backupd_last_run_success"); n != 0 {
		t.Fatalf("at the start of a term %d last-run series show, want none", n)
	}

	later := t0.Add(24 * time.Hour)
	m.Reconciled("daily", prodA, &AtlasRun{Slot: later, Succeeded: true, SnapshotAt: later.Add(time.Minute), SnapshotBytes: 42})
	m.Reconciled("daily", prodB, nil)
	if got := tv(t, m, "backupd_last_run_success", "daily", prodA.ProjectID, "prod-a"); got != 1 {
		t.Errorf("prod-a: last run %v, want 1 (Atlas shows a later success)", got)
	}
	if got := tv(t, m, "backupd_last_success_timestamp_seconds", "daily", prodA.ProjectID, "prod-a", "snapshot"); got != unixSeconds(later.Add(time.Minute)) {
		t.Errorf("prod-a: last snapshot success %v, want Atlas's", got)
	}
	if got := tv(t, m, "backupd_snapshot_size_bytes", "daily", prodA.ProjectID, "prod-a"); got != 42 {
		t.Errorf("prod-a: snapshot size %v, want Atlas's 42", got)
	}
	if got := tv(t, m, "backupd_last_run_success", "daily", prodB.ProjectID, "prod-b"); got != 1 {
		t.Errorf("prod-b: last run %v, want the journal's 1 (Atlas shows nothing later)", got)
	}
	if n := tcount(t, m, "backupd_last_run_success"); n != 2 {
		t.Errorf("%d last-run series, want 2: the drill's is withheld until its next run ends", n)
	}

	// An older Atlas run does not replace the journal's newer result.
	m.BeginTerm()
	m.Reconciled("daily", prodB, &AtlasRun{Slot: t0.Add(-time.Hour), Succeeded: false})
	m.Reconciled("daily", prodA, nil)
	if got := tv(t, m, "backupd_last_run_success", "daily", prodB.ProjectID, "prod-b"); got != 1 {
		t.Errorf("prod-b: last run %v, want the newer journal's 1", got)
	}

	// A run of the term shows the drill's result again; a re-attached older
	// run ending later does not replace a newer result.
	s := newScript(t, m, "drill", run.ActionRestoreDrill, prodA, later)
	s.to(run.StageSucceeded, nil)
	if got := tv(t, m, "backupd_last_run_success", "drill", prodA.ProjectID, "prod-a"); got != 1 {
		t.Errorf("drill: last run %v after this term's success, want 1", got)
	}
	old := newScript(t, m, "daily", run.ActionSnapshot, prodA, t0.Add(time.Hour))
	old.to(run.StageFailed, nil)
	if got := tv(t, m, "backupd_last_run_success", "daily", prodA.ProjectID, "prod-a"); got != 1 {
		t.Errorf("prod-a: an older run's failure replaced the newer success: %v", got)
	}
}
