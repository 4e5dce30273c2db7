package engine_test

import (
	"context"
	"fmt"
	"sync"
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

// chainStats is what one snapshot→export chain cost and how late it saw
// each job end.
type chainStats struct {
	snapshotReads, exportReads int
	snapshotDelay, exportDelay time.Duration
}

func (c chainStats) String() string {
	return fmt.Sprintf("{snapshot reads %d, delay %v; export reads %d, delay %v}", c.snapshotReads, c.snapshotDelay, c.exportReads, c.exportDelay)
}

// chain fires one chain on rs, waits for it and measures it. The simulator
// completes a snapshot its timings tm (as set, defaults filled in) after createdAt and records an export's
// finishedAt; the run shows when the engine saw each.
func chain(t *testing.T, h *harness, p engine.Policy, s time.Time, tm atlassim.Timings) chainStats {
	t.Helper()
	snaps0, exports0 := h.sim.Calls(atlas.OpGetSnapshot), h.sim.Calls(atlas.OpGetExport)
	id := fire(t, h, p, "rs", s)
	r := h.await(id)
	if r.Stage != run.StageSucceeded {
		t.Fatalf("run %s ended %s{%s}: %s", id, r.Stage, r.Reason, r.Detail)
	}
	var snap atlas.Snapshot
	for _, sn := range h.sim.Snapshots(project, "rs") {
		if sn.ID == r.SnapshotID {
			snap = sn
		}
	}
	var exp atlas.ExportJob
	for _, j := range h.sim.Exports(project, "rs") {
		if j.ID == r.ExportJobID {
			exp = j
		}
	}
	return chainStats{
		snapshotReads: h.sim.Calls(atlas.OpGetSnapshot) - snaps0,
		exportReads:   h.sim.Calls(atlas.OpGetExport) - exports0,
		snapshotDelay: h.rec.entered(id, run.StageExporting).Sub(snap.CreatedAt.Add(tm.SnapshotQueued + tm.SnapshotInProgress)),
		exportDelay:   r.FinishedAt.Sub(exp.FinishedAt),
	}
}

// A cluster whose snapshots and exports take the same time run after run is
// polled from its history once it has two: each job is read once or twice
// near its expected end instead of on the 10 s → 1 min backoff, completion
// is seen within the plan's detection cap, and a restarted engine plans
// from the journal at once. With FixedPolling every chain reads as today.
func TestLearnedPollingReadsLessAndSeesCompletionWithinTheCap(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		t.Run(fmt.Sprintf("fixed=%v", fixed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				p := snapshotPolicy("hourly", "rs", true)
				j := journal.NewMemory()
				cfg := func() engine.Config {
					return engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), FixedPolling: fixed}
				}
				h := startConfig(t, sim, cfg(), p)
				var stats []chainStats
				for i := range 5 {
					stats = append(stats, chain(t, h, p, slot.Add(time.Duration(i)*time.Hour), atlassim.DefaultTimings))
				}
				h.stop()
				// A new process learns from the journal, not from memory.
				h = startConfig(t, sim, cfg(), p)
				stats = append(stats, chain(t, h, p, slot.Add(5*time.Hour), atlassim.DefaultTimings))
				h.stop()

				for i, c := range stats {
					// The backoff's reads for a 2m30s snapshot and a 5m30s
					// export: at 10, 30, 70, 130, 190 s and 10 … 370 s.
					wantSnap, wantExport, maxDelay := 5, 8, time.Minute
					if !fixed && i >= pollplan.DefaultMinSamples {
						// The window the backoff's reads left (a
						// minute) is read in its middle and at its
						// end; each job narrows the next one's.
						wantSnap, wantExport, maxDelay = 2, 2, pollplan.DefaultTight
					}
					if c.snapshotReads > wantSnap || c.exportReads > wantExport {
						t.Errorf("chain %d: %v, want at most %d snapshot and %d export reads", i, c, wantSnap, wantExport)
					}
					if c.snapshotDelay < 0 || c.snapshotDelay > maxDelay || c.exportDelay < 0 || c.exportDelay > maxDelay {
						t.Errorf("chain %d: %v, want detection delays within [0, %v]", i, c, maxDelay)
					}
					if fixed && (c.snapshotReads != 5 || c.exportReads != 8) {
						t.Errorf("chain %d with fixed polling: %v, want today's 5 snapshot and 8 export reads", i, c)
					}
				}
				t.Logf("chains: %v", stats)
			})
		})
	}
}

// A job far past what its history predicts falls back to the backoff: it
// is still seen ending, within the backoff's one-minute ceiling, and its
// reads stay bounded by the plan's few plus the backoff's.
func TestLearnedPollingFallsBackToBackoffForASlowJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("hourly", "rs", true)
		h := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(clientFor(t, sim))}, p)
		defer h.stop()
		for i := range 3 {
			chain(t, h, p, slot.Add(time.Duration(i)*time.Hour), atlassim.DefaultTimings)
		}
		tm := atlassim.DefaultTimings
		tm.SnapshotInProgress = 30 * time.Minute // was 2m
		sim.SetTimings(tm)
		c := chain(t, h, p, slot.Add(3*time.Hour), tm)
		if c.snapshotDelay < 0 || c.snapshotDelay > time.Minute {
			t.Fatalf("slow snapshot: %v, want it seen within the backoff's minute", c)
		}
		// Plan of the window (130 s, 160 s]: 155, 160, 165, 195, 225 s;
		// backoff: +10, 20, 40, then every 60 s until 32m30s.
		if c.snapshotReads > 5+3+26 {
			t.Fatalf("slow snapshot: %v, more reads than the plan and the backoff", c)
		}
	})
}

// historyCounter counts the journal's History queries by target.
type historyCounter struct {
	journal.Journal
	mu      sync.Mutex
	queries map[run.Target]int
}

func (c *historyCounter) History(q journal.Query) ([]run.Run, error) {
	if q.Target != nil {
		c.mu.Lock()
		c.queries[*q.Target]++
		c.mu.Unlock()
	}
	return c.Journal.History(q)
}

// The history a plan is made of is read from the journal once per cluster
// and process, not with every job or poll: later chains plan from what the
// engine recorded itself.
func TestLearnedPollingReadsTheJournalOncePerCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("hourly", "rs", true)
		j := &historyCounter{Journal: journal.NewMemory(), queries: map[run.Target]int{}}
		h := startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim))}, p)
		defer h.stop()
		var last chainStats
		for i := range 4 {
			last = chain(t, h, p, slot.Add(time.Duration(i)*time.Hour), atlassim.DefaultTimings)
		}
		j.mu.Lock()
		n := j.queries[run.Target{ProjectID: project, Cluster: "rs"}]
		j.mu.Unlock()
		if n != 1 {
			t.Fatalf("%d history queries for rs over 4 chains, want 1", n)
		}
		// What the engine recorded itself was planned from.
		if last.snapshotReads > 2 || last.exportReads > 2 {
			t.Fatalf("last chain: %v, want it planned from the runs before", last)
		}
	})
}

// collidingAtlas takes a foreign on-demand snapshot of the cluster just
// before the engine's snapshot request while collide is set, as an operator
// or another tool might: Atlas answers UNFINISHED_ON_DEMAND_SNAPSHOT and the
// run waits in its snapshotting stage until that snapshot is done.
type collidingAtlas struct {
	engine.Atlas
	client  *atlas.Client
	collide bool // read and written only while the engine is between chains or in the request
}

func (a *collidingAtlas) TakeSnapshot(ctx context.Context, p, c string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	if a.collide {
		a.collide = false
		if _, err := a.client.Snapshots.Take(ctx, p, c, atlas.OnDemandSnapshotRequest{Description: "someone else's", RetentionInDays: 1}); err != nil {
			return nil, fmt.Errorf("taking the foreign snapshot: %w", err)
		}
	}
	return a.Atlas.TakeSnapshot(ctx, p, c, req)
}

// A cluster whose runs had to wait behind someone else's on-demand snapshot
// learns how long its own snapshots take, not how long its runs waited: the
// next run, with nothing in the way, sees its snapshot end within the plan's
// tight interval. Measured from the stage's start, the waits (2½ minutes
// each) made the next run sleep past its snapshot's end (issue 15).
func TestLearnedPollingCountsFromTheRequestNotTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("hourly", "rs", true)
		c := clientFor(t, sim)
		a := &collidingAtlas{Atlas: engine.FromClient(c), client: c}
		h := startConfig(t, sim, engine.Config{Atlas: a}, p)
		defer h.stop()
		for i := range 3 {
			a.collide = true
			chain(t, h, p, slot.Add(time.Duration(i)*time.Hour), atlassim.DefaultTimings)
		}
		c3 := chain(t, h, p, slot.Add(3*time.Hour), atlassim.DefaultTimings)
		if c3.snapshotDelay < 0 || c3.snapshotDelay > pollplan.DefaultTight {
			t.Fatalf("the run after three that waited: %v, want its snapshot seen within %v of its end", c3, pollplan.DefaultTight)
		}
	})
}

// A job this process did not create (re-attached after a restart) records
// no bounds: counted from its stage's start, not from the request it does
// not know, its "last seen running" would be no lower bound. The export the
// new process creates records both.
func TestLearnedPollingRecordsOnlyJobsCreatedHere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("hourly", "rs", true)
		j := journal.NewMemory()
		cfg := engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim))}
		h := startConfig(t, sim, cfg, p)
		id := fire(t, h, p, "rs", slot)
		time.Sleep(time.Minute) // the snapshot is requested and running
		h.stop()
		h = startConfig(t, sim, cfg, p)
		defer h.stop()
		r := h.await(id)
		if r.Stage != run.StageSucceeded {
			t.Fatalf("run ended %s{%s}: %s", r.Stage, r.Reason, r.Detail)
		}
		if r.SnapshotRanFor != 0 || r.SnapshotDoneBy != 0 {
			t.Errorf("re-attached snapshot recorded ran %v, done %v; want neither", r.SnapshotRanFor, r.SnapshotDoneBy)
		}
		if r.ExportRanFor <= 0 || r.ExportDoneBy <= r.ExportRanFor {
			t.Errorf("export created after the restart recorded ran %v, done %v; want 0 < ran < done", r.ExportRanFor, r.ExportDoneBy)
		}
	})
}
