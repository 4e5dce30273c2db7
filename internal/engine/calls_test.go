package engine_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// A chain this process fired for a slot after its start makes only the
// calls that carry information, in the order docs/atlas-client.md lists
// them: the cluster read, the snapshot request and its reads, the export
// request and its reads. No earlier process can have left a snapshot or
// export with its marker, and a foreign on-demand snapshot would be
// answered by the request itself, so it lists neither snapshots nor
// exports (issue 15 item 2). A sharded cluster reads its snapshot on the
// sharded endpoint.
func TestAFreshChainListsNothing(t *testing.T) {
	for _, tc := range []struct{ cluster, getSnapshot string }{
		{"rs", atlas.OpGetSnapshot}, {"sharded", atlas.OpGetShardedSnapshot},
	} {
		t.Run(tc.cluster, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				p := snapshotPolicy("nightly", tc.cluster, true)
				h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
				defer h.stop()
				r := h.await(fire(t, h, p, tc.cluster, slot))
				if r.Stage != run.StageSucceeded {
					t.Fatalf("run ended %s{%s}: %s", r.Stage, r.Reason, r.Detail)
				}
				for op, want := range map[string]int{
					atlas.OpGetCluster: 1, atlas.OpTakeSnapshot: 1, atlas.OpCreateExport: 1,
					atlas.OpListSnapshots: 0, atlas.OpListShardedSnapshots: 0, atlas.OpListExports: 0,
				} {
					if got := sim.Calls(op); got != want {
						t.Errorf("%s called %d times, want %d", op, got, want)
					}
				}
				// The order, each job's reads counted as one step.
				var steps []string
				for _, c := range sim.CallLog() {
					if c.Op == "" || c.Op == "token" {
						continue // the token endpoint is no call of the chain's
					}
					if len(steps) == 0 || steps[len(steps)-1] != c.Op {
						steps = append(steps, c.Op)
					}
				}
				want := []string{atlas.OpGetCluster, atlas.OpTakeSnapshot, tc.getSnapshot, atlas.OpCreateExport, atlas.OpGetExport}
				if !slices.Equal(steps, want) {
					t.Errorf("calls in order %v, want %v", steps, want)
				}
			})
		})
	}
}

// A run of a slot that came before the process started may have been fired
// by an earlier process whose journal is lost or older: it lists the
// snapshots before requesting one and adopts the one carrying its marker,
// so the slot is not snapshotted twice.
func TestASlotFromBeforeTheStartAdoptsItsMarkedSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", false)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		early := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
		id := run.NewID(p.Name, project, "rs", early, false)
		_, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{
			Type: atlas.SnapshotOnDemand, Status: atlas.SnapshotCompleted, CreatedAt: early.Add(time.Minute),
			Description: "[" + id.Marker() + " policy=" + p.Name + "]",
		})
		must(t, err)
		r := h.await(fire(t, h, p, "rs", early))
		if r.Stage != run.StageSucceeded {
			t.Fatalf("run ended %s{%s}: %s", r.Stage, r.Reason, r.Detail)
		}
		if n := sim.Calls(atlas.OpTakeSnapshot); n != 0 {
			t.Fatalf("take_snapshot called %d times, want 0: the marked snapshot is the slot's", n)
		}
		if n := sim.Calls(atlas.OpListSnapshots); n == 0 {
			t.Fatal("no list_snapshots: the marked snapshot was not looked for")
		}
	})
}
