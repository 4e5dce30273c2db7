package daemon_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// TestOlderJournalKeepsJitteredSlotAndRunsOnce: the journal is replaced by
// an older copy, taken before a jittered policy existed, while that
// policy's slot has passed but its jittered fire time has not. The
// journal has runs but no mark for the policy: the mark is seeded from its
// Atlas markers, so the slot still fires. The other policy's runs the
// copy lacks are reconciled from their markers: none is taken twice.
func TestOlderJournalKeepsJitteredSlotAndRunsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tgt := run.Target{ProjectID: project, Cluster: "jit-a"}
		name := ""
		var off time.Duration
		for _, n := range []string{"jittered", "jit-b", "jit-c", "jit-d", "jit-e", "jit-f"} {
			if o := policy.JitterOffset(n, tgt, 50*time.Minute); o >= 5*time.Minute && o <= 40*time.Minute {
				name, off = n, o
				break
			}
		}
		if name == "" {
			t.Fatal("no candidate policy name has a jitter offset between 5m and 40m")
		}
		jittered := `
  - name: ` + name + `
    schedule: "0 * * * *"
    jitter: 50m
    targets: [{projectID: ` + project + `, clusters: ["jit-a"]}]
    snapshot: {retentionInDays: 1}
`
		dir, sim := setup(t, "")
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "jit-a", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
		e := launch(t, dir, sim)
		first := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(first.Add(40 * time.Minute)))
		synctest.Wait()
		e.stop()
		state := filepath.Join(dir, "state.db")
		b, err := os.ReadFile(state)
		must(t, err)

		writeConfig(t, dir, jittered)
		e = launch(t, dir, sim)
		slot := first.Add(2 * time.Hour)
		time.Sleep(time.Until(slot.Add(time.Minute))) // the slot has passed; slot+off has not
		synctest.Wait()
		if runs, body := e.runs(t, name); !slices.ContainsFunc(runs, func(r run.Run) bool { return r.Slot.Equal(slot.Add(-time.Hour)) }) {
			t.Fatalf("the jittered policy's previous slot did not run: %s", body)
		}
		e.stop()
		must(t, os.WriteFile(state, b, 0o600)) // the older copy

		e = launch(t, dir, sim)
		defer e.stop()
		time.Sleep(time.Until(slot.Add(off + 30*time.Minute)))
		synctest.Wait()
		runs, body := e.runs(t, name)
		if i := slices.IndexFunc(runs, func(r run.Run) bool { return r.Slot.Equal(slot) }); i < 0 || runs[i].Stage != run.StageSucceeded {
			t.Fatalf("the jittered slot %v after the restart on an older journal did not run: %s", slot, body)
		}
		hourly, body := e.runs(t, "hourly")
		if i := slices.IndexFunc(hourly, func(r run.Run) bool { return r.Slot.Equal(slot) && r.Target.Cluster == "prod-a" }); i < 0 || hourly[i].Stage != run.StageSucceeded || hourly[i].ExportJobID == "" {
			t.Fatalf("hourly's run in flight at the restart was not carried to its export: %s", body)
		}
		perMarker := map[string]int{}
		marker := regexp.MustCompile(`backupd:[0-9a-f]{20}`)
		for _, s := range append(sim.Snapshots(project, "prod-a"), sim.Snapshots(project, "jit-a")...) {
			perMarker[marker.FindString(s.Description)]++
		}
		for m, n := range perMarker {
			if n != 1 || m == "" {
				t.Fatalf("%d snapshots carry marker %q, want 1 each: %v", n, m, perMarker)
			}
		}
		perRun := map[string]int{}
		for _, j := range sim.Exports(project, "prod-a") {
			for _, l := range j.CustomData {
				if l.Key == "backupd.run" {
					perRun[l.Value]++
				}
			}
		}
		for id, n := range perRun {
			if n != 1 {
				t.Fatalf("%d exports carry run %s, want 1 each: %v", n, id, perRun)
			}
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestartOnItsOwnJournalReconcilesNothing: a restart on the journal
// the daemon wrote, whose marks are up to date with the schedule, asks
// Atlas nothing for reconciliation (it cost two or three reads per target:
// tens of thousands for a large fleet, from the backups' request budget);
// one whose marks are behind — an older copy — is reconciled.
func TestRestartOnItsOwnJournalReconcilesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		e := launch(t, dir, sim)
		first := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(first.Add(30 * time.Minute))) // the 01:00 chain ended
		synctest.Wait()
		e.stop()

		reads := func() int { return sim.Calls(atlas.OpGetCluster) + sim.Calls(atlas.OpListSnapshots) }
		before := reads()
		e = launch(t, dir, sim) // 01:30: the mark (01:00) is current
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := reads() - before; n != 0 {
			t.Fatalf("restart on a current journal made %d cluster/snapshot reads, want 0", n)
		}
		e.stop()

		time.Sleep(time.Until(first.Add(2*time.Hour + 55*time.Minute))) // 02:00 and 03:00 were due while down
		before = reads()
		e = launch(t, dir, sim)
		defer e.stop()
		synctest.Wait()
		if n := reads() - before; n == 0 {
			t.Fatal("restart on a journal behind its schedule did not reconcile with Atlas")
		}
	})
}
