package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/pollplan"
	"github.com/backupd/backupd/internal/run"
)

// pollCost is what a fleet of snapshot→export chains cost in Atlas calls
// and how late their jobs were seen ending, measured in virtual time.
type pollCost struct {
	chains int
	calls  map[string]int // by operation, over the measured chains
	// snapshotDelay and exportDelay are per chain, sorted.
	snapshotDelay, exportDelay []time.Duration
	// maxSnapshotReads and maxExportReads are the most reads of one job.
	maxSnapshotReads, maxExportReads int
}

func (c pollCost) perChain(op string) float64 { return float64(c.calls[op]) / float64(c.chains) }

func (c pollCost) total() float64 {
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return float64(n) / float64(c.chains)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func (c pollCost) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d chains, %.2f calls per chain:", c.chains, c.total())
	ops := make([]string, 0, len(c.calls))
	for op := range c.calls {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		fmt.Fprintf(&b, " %s %.2f", op, c.perChain(op))
	}
	fmt.Fprintf(&b, "; most reads of one job: snapshot %d, export %d", c.maxSnapshotReads, c.maxExportReads)
	fmt.Fprintf(&b, "; snapshot detection p50/p99/max %v/%v/%v, export %v/%v/%v",
		quantile(c.snapshotDelay, .5), quantile(c.snapshotDelay, .99), quantile(c.snapshotDelay, 1),
		quantile(c.exportDelay, .5), quantile(c.exportDelay, .99), quantile(c.exportDelay, 1))
	return b.String()
}

// opCounter counts the engine's Atlas calls of each job by its id, so that
// the reads of one job can be told from another's.
type opCounter struct {
	engine.Atlas
	mu    chan struct{}
	reads map[string]int // job id -> get_snapshot or get_export calls
}

func (o *opCounter) count(id string) {
	o.mu <- struct{}{}
	o.reads[id]++
	<-o.mu
}

func (o *opCounter) GetSnapshot(ctx context.Context, p, c, id string, k atlas.SnapshotKind) (*atlas.Snapshot, error) {
	o.count(id)
	return o.Atlas.GetSnapshot(ctx, p, c, id, k)
}

func (o *opCounter) GetExport(ctx context.Context, p, c, id string) (*atlas.ExportJob, error) {
	o.count(id)
	return o.Atlas.GetExport(ctx, p, c, id)
}

// fleetPollCost runs clusters × (warmup + measured) hourly chains against
// a simulator whose clusters' jobs take the default durations scaled by a
// per-cluster lognormal factor (sigma 0.5, as cmd/fleetbench's -spread),
// and measures the chains of the last measured slots. It is deterministic:
// everything runs in synctest's virtual time.
func fleetPollCost(t *testing.T, fixed bool, clusters, warmup, measured int) pollCost {
	t.Helper()
	var cost pollCost
	synctest.Test(t, func(t *testing.T) {
		sp := atlassim.Spread{Sigma: 0.5, Seed: 7}
		sim := fleet(t)
		must(t, sim.SetSpread(sp))
		p := snapshotPolicy("hourly", "c000", true)
		p.Targets = addClusters(t, sim, "c%03d", clusters)
		oc := &opCounter{Atlas: engine.FromClient(clientFor(t, sim)), mu: make(chan struct{}, 1), reads: map[string]int{}}
		h := startConfig(t, sim, engine.Config{Journal: journal.NewMemory(), Atlas: oc, FixedPolling: fixed, Workers: clusters}, p)
		defer h.stop()

		ops := []string{atlas.OpGetCluster, atlas.OpListSnapshots, atlas.OpTakeSnapshot, atlas.OpGetSnapshot,
			atlas.OpListExports, atlas.OpCreateExport, atlas.OpGetExport}
		cost.calls = map[string]int{}
		tm := atlassim.DefaultTimings
		for s := range warmup + measured {
			at := slot.Add(time.Duration(s) * time.Hour)
			time.Sleep(time.Until(at))
			before := map[string]int{}
			for _, op := range ops {
				before[op] = sim.Calls(op)
			}
			// Cluster i fires i seconds into the slot, as a scheduler's
			// jitter spreads them: no more calls at one instant than the
			// client's burst, so no wait in its rate limiter reorders
			// them and the figures are the same on every run.
			ids := make([]run.ID, 0, clusters)
			for i, tg := range p.Targets {
				time.Sleep(time.Until(at.Add(time.Duration(i) * time.Second)))
				ids = append(ids, fire(t, h, p, tg.Cluster, at))
			}
			for _, id := range ids {
				if r := h.await(id); r.Stage != run.StageSucceeded {
					t.Fatalf("run %s ended %s{%s}: %s", id, r.Stage, r.Reason, r.Detail)
				}
			}
			if s < warmup {
				continue
			}
			for _, op := range ops {
				if n := sim.Calls(op) - before[op]; n > 0 {
					cost.calls[op] += n
				}
			}
			for _, id := range ids {
				r, _, err := h.j.Get(id)
				must(t, err)
				var snap atlas.Snapshot
				for _, sn := range sim.Snapshots(project, r.Target.Cluster) {
					if sn.ID == r.SnapshotID {
						snap = sn
					}
				}
				var exp atlas.ExportJob
				for _, j := range sim.Exports(project, r.Target.Cluster) {
					if j.ID == r.ExportJobID {
						exp = j
					}
				}
				snapDone := snap.CreatedAt.Add(tm.SnapshotQueued + sp.Scale(tm.SnapshotInProgress, project, r.Target.Cluster))
				cost.snapshotDelay = append(cost.snapshotDelay, h.rec.entered(id, run.StageExporting).Sub(snapDone))
				cost.exportDelay = append(cost.exportDelay, r.FinishedAt.Sub(exp.FinishedAt))
				cost.maxSnapshotReads = max(cost.maxSnapshotReads, oc.reads[r.SnapshotID])
				cost.maxExportReads = max(cost.maxExportReads, oc.reads[r.ExportJobID])
				cost.chains++
			}
		}
		slices.Sort(cost.snapshotDelay)
		slices.Sort(cost.exportDelay)
	})
	return cost
}

// The fleet harness: 40 clusters whose jobs take their own (lognormally
// spread) time, run after run, two warm-up chains each and then five
// measured ones. It prints the calls per chain by operation and the
// detection delays in virtual time (docs/benchmarks.md quotes them) and
// asserts what learned polling promises for a stable history: each job is
// read at most twice, every completion is seen within the detection cap,
// and a chain costs at most 6 calls. Fixed polling is the baseline.
func TestFleetPollCost(t *testing.T) {
	const clusters, warmup, measured = 40, 2, 5
	fixed := fleetPollCost(t, true, clusters, warmup, measured)
	t.Logf("fixed:               %v", fixed)
	// The first planned slot alone: what cmd/fleetbench -warmup 2
	// measures, planned from two chains polled with the backoff.
	first := fleetPollCost(t, false, clusters, warmup, 1)
	t.Logf("learned, first slot: %v", first)
	learned := fleetPollCost(t, false, clusters, warmup, measured)
	t.Logf("learned:             %v", learned)
	for _, c := range []struct {
		name string
		pollCost
	}{{"first planned slot", first}, {"planned slots", learned}} {
		if c.maxSnapshotReads > 2 || c.maxExportReads > 2 {
			t.Errorf("%s: a job read up to %d (snapshot) and %d (export) times, want at most 2", c.name, c.maxSnapshotReads, c.maxExportReads)
		}
		if d := max(quantile(c.snapshotDelay, 1), quantile(c.exportDelay, 1)); d < 0 || d > pollplan.DefaultTight {
			t.Errorf("%s: a job seen ending %v late, want at most %v", c.name, d, pollplan.DefaultTight)
		}
		if c.total() > 6 {
			t.Errorf("%s: %.2f calls per chain, want at most 6", c.name, c.total())
		}
	}
	// The baseline is what the learned figures are compared with: today's
	// backoff, unchanged.
	if fixed.perChain(atlas.OpGetSnapshot) < 5 || fixed.perChain(atlas.OpGetExport) < 8 {
		t.Errorf("fixed polling: %v, want the backoff's 5 snapshot and 8 export reads per chain at least", fixed)
	}
}

// addClusters adds n idle M10 replica sets named by format (a %d for the
// index) to the test project and returns them as targets.
func addClusters(t *testing.T, sim *atlassim.Sim, format string, n int) []run.Target {
	t.Helper()
	var out []run.Target
	for i := range n {
		name := fmt.Sprintf(format, i)
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: name, Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
		out = append(out, run.Target{ProjectID: project, Cluster: name})
	}
	return out
}
