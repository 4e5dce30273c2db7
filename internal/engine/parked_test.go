package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// Runs waiting for Atlas are parked data, not goroutines: at fleet size a
// goroutine per run in flight cost more memory than everything else.
func TestParkedRunsHoldNoGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		const n = 200
		p := snapshotPolicy("nightly", "rs", true)
		p.Targets = nil
		for i := range n {
			name := fmt.Sprintf("c%03d", i)
			must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: name, Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
			p.Targets = append(p.Targets, run.Target{ProjectID: project, Cluster: name})
		}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		synctest.Wait()
		idle := runtime.NumGoroutine()
		var ids []run.ID
		for _, tg := range p.Targets {
			ids = append(ids, fire(t, h, p, tg.Cluster, slot))
		}
		time.Sleep(time.Minute) // every snapshot is queued or in progress now
		synctest.Wait()
		if got := len(h.eng.Active()); got != n {
			t.Fatalf("%d runs in flight, want %d", got, n)
		}
		for _, r := range h.eng.Active() {
			if r.Stage != run.StageSnapshotting || r.SnapshotID == "" {
				t.Fatalf("run %s is %s (snapshot %q), want snapshotting a requested snapshot", r.ID, r.Stage, r.SnapshotID)
			}
		}
		if extra := runtime.NumGoroutine() - idle; extra > 2 {
			t.Fatalf("%d runs waiting for Atlas hold %d goroutines, want none", n, extra)
		}
		for _, id := range ids {
			if r := h.await(id); r.Stage != run.StageSucceeded {
				t.Fatalf("run %s = %s{%s} %s", id, r.Stage, r.Reason, r.Detail)
			}
		}
	})
}

// countingAtlas records the most Atlas calls it saw at once.
type countingAtlas struct {
	engine.Atlas
	mu       sync.Mutex
	cur, max int
}

func (c *countingAtlas) enter() func() {
	c.mu.Lock()
	c.cur++
	c.max = max(c.max, c.cur)
	c.mu.Unlock()
	time.Sleep(time.Second) // a slow Atlas: calls overlap unless bounded
	return func() {
		c.mu.Lock()
		c.cur--
		c.mu.Unlock()
	}
}

func (c *countingAtlas) GetCluster(ctx context.Context, p, n string) (*atlas.Cluster, error) {
	defer c.enter()()
	return c.Atlas.GetCluster(ctx, p, n)
}

func (c *countingAtlas) GetSnapshot(ctx context.Context, p, n, id string, k atlas.SnapshotKind) (*atlas.Snapshot, error) {
	defer c.enter()()
	return c.Atlas.GetSnapshot(ctx, p, n, id, k)
}

func TestWorkersBoundConcurrentSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", false)
		p.Targets = nil
		for i := range 20 {
			name := fmt.Sprintf("c%03d", i)
			must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: name, Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
			p.Targets = append(p.Targets, run.Target{ProjectID: project, Cluster: name})
		}
		ca := &countingAtlas{}
		h := startWorkers(t, sim, journal.NewMemory(), []engine.Policy{p}, false, func(a engine.Atlas) engine.Atlas { ca.Atlas = a; return ca }, 3)
		defer h.stop()
		var ids []run.ID
		for _, tg := range p.Targets {
			ids = append(ids, fire(t, h, p, tg.Cluster, slot))
		}
		for _, id := range ids {
			if r := h.await(id); r.Stage != run.StageSucceeded {
				t.Fatalf("run %s = %s{%s} %s", id, r.Stage, r.Reason, r.Detail)
			}
		}
		if ca.max != 3 {
			t.Fatalf("at most %d Atlas calls at once with 3 workers, want exactly 3", ca.max)
		}
	})
}

// A run waiting for a cluster another run holds times out at its wait
// deadline and says who holds the cluster.
func TestWaitingForClusterLockTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		must(t, sim.SetClusterState(project, "rs", atlas.ClusterRepairing))
		a := snapshotPolicy("a", "rs", false)
		b := snapshotPolicy("b", "rs", false)
		b.Spec.Timeouts.Wait = 30 * time.Minute
		h := start(t, sim, journal.NewMemory(), []engine.Policy{a, b}, false, nil)
		defer h.stop()
		first := fire(t, h, a, "rs", slot) // holds rs while it waits for REPAIRING to end
		synctest.Wait()
		began := time.Now()
		rb := h.await(fire(t, h, b, "rs", slot))
		if rb.Stage != run.StageFailed || rb.Reason != run.ReasonTimeout || !strings.Contains(rb.Detail, "waiting for run "+string(first)+" on the same cluster") {
			t.Fatalf("b = %s{%s} %q, want failed{timeout} naming run %s", rb.Stage, rb.Reason, rb.Detail, first)
		}
		if took := time.Since(began); took != 30*time.Minute {
			t.Fatalf("b timed out after %v, want 30m", took)
		}
		must(t, sim.SetClusterState(project, "rs", atlas.ClusterIdle))
		if ra := h.await(first); ra.Stage != run.StageSucceeded {
			t.Fatalf("a = %s{%s} %s", ra.Stage, ra.Reason, ra.Detail)
		}
	})
}
