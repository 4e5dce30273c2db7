package drillmetrics

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backupd/backupd/internal/run"
)

var t0 = time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)

func drillRun(policy, cluster string, stage run.Stage, finished time.Time, verification string) run.Run {
	return run.Run{ID: run.ID(policy + cluster + finished.String()), Policy: policy, Action: run.ActionRestoreDrill, Stage: stage,
		CreatedAt: finished.Add(-time.Hour),
		Target:    run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: cluster}, FinishedAt: finished,
		Drill: run.Drill{SnapshotAt: finished.Add(-5 * time.Hour), JobCreatedAt: finished.Add(-10 * time.Minute),
			JobFinishedAt: finished.Add(-time.Minute), Verification: verification}}
}

func TestLastSuccessfulDrill(t *testing.T) {
	m := New()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	// Rebuilt from the journal: the newer success wins whatever the order.
	m.Rebuild([]run.Run{
		drillRun("drill", "prod", run.StageSucceeded, t0, run.VerifiedByCommand),
		drillRun("drill", "prod", run.StageSucceeded, t0.Add(-30*24*time.Hour), run.VerifiedAtlasOnly),
		{Policy: "nightly", Action: run.ActionSnapshot, Stage: run.StageSucceeded, Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod"}},
	})
	// A failed drill changes nothing; a new success replaces the old.
	m.Observe(run.Event{Run: drillRun("drill", "prod", run.StageFailed, t0.Add(time.Hour), ""), From: run.StageRestoring})
	m.Observe(run.Event{Run: drillRun("drill", "orders", run.StageSucceeded, t0.Add(2*time.Hour), run.VerifiedAtlasOnly), From: run.StageRestoring})
	m.Observe(run.Event{Run: drillRun("drill", "never", run.StagePending, t0, "")})
	want := `
# HELP backupd_drill_last_success_timestamp_seconds When the last successful restore drill of the policy on the source cluster ended (Unix seconds).
# TYPE backupd_drill_last_success_timestamp_seconds gauge
backupd_drill_last_success_timestamp_seconds{cluster="orders",policy="drill",project="32b6e34b3d91647abb20e7b8"} 1.796112e+09
backupd_drill_last_success_timestamp_seconds{cluster="prod",policy="drill",project="32b6e34b3d91647abb20e7b8"} 1.7961048e+09
# HELP backupd_drill_restore_duration_seconds Restore time of the last successful drill: the restore job's creation to its finishedAt, on Atlas's clock.
# TYPE backupd_drill_restore_duration_seconds gauge
backupd_drill_restore_duration_seconds{cluster="orders",policy="drill",project="32b6e34b3d91647abb20e7b8"} 540
backupd_drill_restore_duration_seconds{cluster="prod",policy="drill",project="32b6e34b3d91647abb20e7b8"} 540
# HELP backupd_drill_snapshot_age_seconds Age of the restored snapshot when the last successful drill's restore began, on Atlas's clock.
# TYPE backupd_drill_snapshot_age_seconds gauge
backupd_drill_snapshot_age_seconds{cluster="orders",policy="drill",project="32b6e34b3d91647abb20e7b8"} 17400
backupd_drill_snapshot_age_seconds{cluster="prod",policy="drill",project="32b6e34b3d91647abb20e7b8"} 17400
# HELP backupd_drill_verified 1 when the last successful drill was verified by its verify command, 0 when at the Atlas level only.
# TYPE backupd_drill_verified gauge
backupd_drill_verified{cluster="orders",policy="drill",project="32b6e34b3d91647abb20e7b8"} 0
backupd_drill_verified{cluster="prod",policy="drill",project="32b6e34b3d91647abb20e7b8"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "backupd_drill_last_success_timestamp_seconds",
		"backupd_drill_restore_duration_seconds", "backupd_drill_snapshot_age_seconds", "backupd_drill_verified"); err != nil {
		t.Fatal(err)
	}
	// The oldest drill run, failed or not, dates a drill that never succeeded.
	first := `
# HELP backupd_drill_first_run_timestamp_seconds When the oldest drill run of the policy on the source cluster the journal holds began (Unix seconds): the age a drill that never succeeded is measured from.
# TYPE backupd_drill_first_run_timestamp_seconds gauge
backupd_drill_first_run_timestamp_seconds{cluster="never",policy="drill",project="32b6e34b3d91647abb20e7b8"} 1.7961012e+09
backupd_drill_first_run_timestamp_seconds{cluster="orders",policy="drill",project="32b6e34b3d91647abb20e7b8"} 1.7961084e+09
backupd_drill_first_run_timestamp_seconds{cluster="prod",policy="drill",project="32b6e34b3d91647abb20e7b8"} 1.7935092e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(first), "backupd_drill_first_run_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	// A reload that drops the target's policy drops its series.
	m.Keep([]string{"drill"}, func(_ string, t run.Target) bool { return t.Cluster != "orders" })
	if n := testutil.CollectAndCount(m, "backupd_drill_verified"); n != 1 || testutil.CollectAndCount(m, "backupd_drill_first_run_timestamp_seconds") != 2 {
		t.Fatalf("%d series after Keep, want 1", n)
	}
	m.Keep(nil, nil)
	if n := testutil.CollectAndCount(m); n != 0 {
		t.Fatalf("%d series after the policy was removed", n)
	}
}

// Names names every series Collect emits.
func TestMetricsListsEverySeries(t *testing.T) {
	m := New()
	m.Rebuild([]run.Run{drillRun("drill", "prod", run.StageSucceeded, t0, run.VerifiedByCommand)})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := Names()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("gathered %v, Names() lists %v", got, want)
	}
}
