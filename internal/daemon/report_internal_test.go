package daemon

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// TestReportRunsOfAnUpgradedJournal: a journal written before the rollup
// existed gets it at open; the report reads the runs created before from
// History (while they are held) and the later ones from the rollup, each
// run once, and says where the evidence begins once the old ones are
// pruned.
func TestReportRunsOfAnUpgradedJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tg := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod"}
	mk := func(id string, h int, st run.Stage) run.Run {
		at := day.Add(time.Duration(h) * time.Hour)
		return run.Run{ID: run.ID(id), Policy: "nightly", Action: run.ActionSnapshot, Target: tg, Slot: at, ScheduledAt: at,
			Stage: st, CreatedAt: at, StageStartedAt: at, UpdatedAt: at}
	}
	open := func() *journal.Bolt {
		j, err := journal.Open(path, journal.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	a, b := mk("a", 1, run.StageSucceeded), mk("b", 2, run.StageSnapshotting)
	for _, r := range []run.Run{a, b} {
		if err := j.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// What an older backupd left: no rollup.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"rollup", "rollup-days"} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Delete([]byte("rollupSince"))
	})
	if err != nil || db.Close() != nil {
		t.Fatal(err)
	}
	j = open()
	defer j.Close()
	b.Stage = run.StageSucceeded // ends after the upgrade: its outcome is in the rollup, but it is History's
	c, d := mk("c", 30, run.StageFailed), mk("d", 31, run.StageExporting)
	for _, r := range []run.Run{b, c, d} {
		if err := j.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	q := report.Query{From: day, To: day.Add(48 * time.Hour)}
	check := func(wantIDs []string, wantRetained time.Time) {
		t.Helper()
		rs, src, retained, err := reportRuns(j, q, day.Add(40*time.Hour))
		if err == nil {
			err = src(func(r run.Run) error { rs = append(rs, r); return nil })
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, string(r.ID)+":"+string(r.Stage))
		}
		slices.Sort(got)
		if !slices.Equal(got, wantIDs) || !retained.Equal(wantRetained) {
			t.Fatalf("runs %v retained since %v; want %v since %v", got, retained, wantIDs, wantRetained)
		}
	}
	check([]string{"a:succeeded", "b:succeeded", "c:failed", "d:exporting"}, time.Time{})
	if n, err := j.Prune(day.Add(40*time.Hour), 1, 0); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	// a and b are gone with their full records; c's outcome is kept.
	check([]string{"c:failed", "d:exporting"}, b.CreatedAt.Add(time.Nanosecond))
}
