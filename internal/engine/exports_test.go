package engine_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// TestOlderJournalAdoptsTheExport restarts the engine, again and again, from
// a copy of the journal taken before the export was requested (a restored
// backup of the state directory): each restart must adopt the export that
// carries the run's marker, not create another one.
func TestOlderJournalAdoptsTheExport(t *testing.T) {
	for _, latest := range []bool{false, true} {
		name := "chained"
		if latest {
			name = "source-latest"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				p := snapshotPolicy("nightly", "rs", true)
				if latest {
					_, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: time.Now().Add(-time.Hour)})
					must(t, err)
					p = engine.Policy{Name: "weekly", Action: run.ActionExport, Targets: []run.Target{{ProjectID: project, Cluster: "rs"}},
						Spec: run.Spec{ExportBucketID: bucketID, ExportSource: "latest", Timeouts: timeouts}}
				}
				h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
				var backup run.Run // the run as an older copy of the journal holds it
				h.rec.mu.Lock()
				h.rec.hook = func(e run.Event) {
					if e.Run.Stage == run.StageExporting && e.Run.SnapshotID != "" && !e.Run.ExportRequested && backup.ID == "" {
						backup = e.Run
					}
				}
				h.rec.mu.Unlock()
				id := fire(t, h, p, "rs", slot)
				if r := h.await(id); r.Stage != run.StageSucceeded {
					t.Fatalf("run = %s{%s} %s", r.Stage, r.Reason, r.Detail)
				}
				h.stop()
				if backup.ID != id {
					t.Fatalf("no exporting state without an export intent was recorded")
				}
				for i := range 4 {
					j := journal.NewMemory()
					must(t, j.Put(backup))
					h := start(t, sim, j, []engine.Policy{p}, false, nil)
					r := h.await(id)
					h.stop()
					if r.Stage != run.StageSucceeded || r.ExportJobID == "" {
						t.Fatalf("restart %d: run = %s{%s} %s", i, r.Stage, r.Reason, r.Detail)
					}
				}
				if n := sim.Calls(atlas.OpCreateExport); n != 1 {
					t.Fatalf("%d export requests over 4 restarts from an older journal, want 1", n)
				}
				exports := 0
				for _, j := range sim.Exports(project, "rs") {
					for _, l := range j.CustomData {
						if l.Key == "backupd.run" && l.Value == string(id) {
							exports++
						}
					}
				}
				if exports != 1 {
					t.Fatalf("%d exports carry the run's marker, want 1", exports)
				}
			})
		})
	}
}

// TestExportLatestSkipsAnAlreadyExportedSnapshot: an export policy whose
// newest snapshot already has an export to the bucket (its own earlier
// slot's, or anyone's, queued, in progress or successful) ends
// skipped{no_new_snapshot}; a failed export does not count, and a newer
// snapshot is exported.
func TestExportLatestSkipsAnAlreadyExportedSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		first, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: time.Now().Add(-6 * time.Hour)})
		must(t, err)
		p := engine.Policy{Name: "hourly", Action: run.ActionExport, Targets: []run.Target{{ProjectID: project, Cluster: "rs"}},
			Spec: run.Spec{ExportBucketID: bucketID, ExportSource: "latest", Timeouts: timeouts}}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()

		if r := h.await(fire(t, h, p, "rs", slot)); r.Stage != run.StageSucceeded || r.SnapshotID != first {
			t.Fatalf("first slot = %s{%s} %s", r.Stage, r.Reason, r.Detail)
		}
		// The next slot finds the same newest snapshot, already exported.
		r := h.await(fire(t, h, p, "rs", slot.Add(time.Hour)))
		if r.Stage != run.StageSkipped || r.Reason != run.ReasonNoNewSnapshot || !strings.Contains(r.Detail, first) {
			t.Fatalf("second slot = %s{%s} %q, want skipped{no_new_snapshot} naming %s", r.Stage, r.Reason, r.Detail, first)
		}
		if n := sim.Calls(atlas.OpCreateExport); n != 1 {
			t.Fatalf("%d export requests, want 1", n)
		}

		// A newer snapshot, exported by someone else and still running: skipped.
		sim.SetTimings(atlassim.Timings{ExportInProgress: 3 * time.Hour})
		second, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: time.Now().Add(-time.Minute)})
		must(t, err)
		foreign := clientFor(t, sim)
		_, err = foreign.Exports.Create(t.Context(), project, "rs", atlas.ExportJobRequest{ExportBucketID: bucketID, SnapshotID: second})
		must(t, err)
		r = h.await(fire(t, h, p, "rs", slot.Add(2*time.Hour)))
		if r.Stage != run.StageSkipped || r.Reason != run.ReasonNoNewSnapshot || r.SnapshotID != second {
			t.Fatalf("slot over a foreign running export = %s{%s} %q", r.Stage, r.Reason, r.Detail)
		}

		// A failed export of the newest snapshot does not count.
		sim.SetTimings(atlassim.Timings{})
		third, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: time.Now().Add(-time.Second)})
		must(t, err)
		sim.FailNextExports(1, false)
		_, err = foreign.Exports.Create(t.Context(), project, "rs", atlas.ExportJobRequest{ExportBucketID: bucketID, SnapshotID: third})
		must(t, err)
		time.Sleep(time.Hour) // virtual: the foreign export fails
		r = h.await(fire(t, h, p, "rs", slot.Add(3*time.Hour)))
		if r.Stage != run.StageSucceeded || r.SnapshotID != third {
			t.Fatalf("slot after a failed export = %s{%s} %q snapshot %s, want succeeded exporting %s", r.Stage, r.Reason, r.Detail, r.SnapshotID, third)
		}
	})
}
