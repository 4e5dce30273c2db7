package engine_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/run"
)

// TestFreshJournalReconcilesTargetsAtOnce: a fresh journal (or a new
// leader's term) reconciles every target with Atlas's markers before
// anything starts, and the targets are read at once, not one after the
// other: at 10,000 targets and a second per read, one at a time kept a
// fleet from starting for most of an hour. Every target is still read.
func TestFreshJournalReconcilesTargetsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, latency = 64, time.Second
		sim := fleet(t)
		p := engine.Policy{Name: "hourly", Action: run.ActionSnapshot,
			Spec: run.Spec{RetentionInDays: 1, Description: "hourly", ExportBucketID: bucketID, Timeouts: timeouts}}
		for i := range n {
			name := fmt.Sprintf("c%02d", i)
			must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: name, Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
			p.Targets = append(p.Targets, run.Target{ProjectID: project, Cluster: name})
		}
		sim.SetFaults(atlassim.Faults{Latency: latency})
		before := sim.Calls("list_snapshots")
		began := time.Now()
		h := start(t, sim, nil, []engine.Policy{p}, true, nil)
		took := time.Since(began)
		h.stop()

		if got := sim.Calls("list_snapshots") - before; got < n {
			t.Fatalf("the start listed %d targets' snapshots, want all %d", got, n)
		}
		calls := 0
		for _, op := range []string{"get_cluster", "list_snapshots", "list_exports"} {
			calls += sim.Calls(op)
		}
		// One read at a time would take calls x latency.
		if sequential := time.Duration(calls) * latency; took > sequential/8 {
			t.Fatalf("reconciling %d targets (%d reads of %s each) took %s; one at a time is %s", n, calls, latency, took, sequential)
		}
	})
}
