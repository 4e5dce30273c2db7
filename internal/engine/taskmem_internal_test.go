package engine

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// exportingAtlas takes a snapshot that completes on its first read and an
// export that never ends: a chain parks in exporting. Ids and states are
// new strings each call, as a decoded answer's are.
type exportingAtlas struct{ Atlas }

func (exportingAtlas) GetCluster(_ context.Context, p, n string) (*atlas.Cluster, error) {
	return &atlas.Cluster{Name: n, GroupID: p, ClusterType: atlas.ClusterReplicaSet, StateName: atlas.ClusterIdle, BackupEnabled: true,
		ReplicationSpecs: []atlas.ReplicationSpec{{RegionConfigs: []atlas.RegionConfig{{ProviderName: "AWS", ElectableSpecs: &atlas.HardwareSpec{InstanceSize: "M10"}}}}}}, nil
}

func (exportingAtlas) ListSnapshots(context.Context, string, string, atlas.SnapshotKind) ([]atlas.Snapshot, error) {
	return nil, nil
}

func (exportingAtlas) ListExports(context.Context, string, string) ([]atlas.ExportJob, error) {
	return nil, nil
}

func (exportingAtlas) TakeSnapshot(_ context.Context, _, c string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	return &atlas.Snapshot{ID: fmt.Sprintf("6630ad8d1f1e%012s", c), Status: atlas.SnapshotQueued, Description: req.Description}, nil
}

func (exportingAtlas) GetSnapshot(_ context.Context, _, _, id string, _ atlas.SnapshotKind) (*atlas.Snapshot, error) {
	return &atlas.Snapshot{ID: strings.Clone(id), Status: atlas.SnapshotStatus(strings.Clone(string(atlas.SnapshotCompleted))), StorageSizeBytes: 1 << 30}, nil
}

func (exportingAtlas) CreateExport(_ context.Context, _, c string, req atlas.ExportJobRequest) (*atlas.ExportJob, error) {
	return &atlas.ExportJob{ID: fmt.Sprintf("7730ad8d1f1e%012s", c), SnapshotID: strings.Clone(req.SnapshotID), State: atlas.ExportState(strings.Clone(string(atlas.ExportQueued)))}, nil
}

func (exportingAtlas) HoldUntil(string) time.Time { return time.Time{} }

// forgetfulJournal records nothing: what is measured is the engine's own
// memory, not the journal's copy of each run.
type forgetfulJournal struct{ journal.Journal }

func (forgetfulJournal) Put(run.Run) error { return nil }

// parkedRunBytes is the live heap, per run, of n snapshot→export runs
// parked in exporting with an export job in flight: the task, its run and
// what they point to, the in-flight table, the dispatcher's heap, the
// cluster locks.
func parkedRunBytes(tb testing.TB, n int) float64 {
	clk := clock.NewFake(time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC))
	j := journal.NewMemory()
	defer j.Close()
	// FixedPolling: learned polling's history is the target's, kept
	// whether a run is in flight or not, and is left out.
	e := New(Config{Clock: clk, Journal: forgetfulJournal{j}, Atlas: exportingAtlas{}, Workers: 4, FixedPolling: true})
	targets := make([]run.Target, n)
	for i := range targets {
		targets[i] = run.Target{ProjectID: fmt.Sprintf("32b6e34b3d91%012d", i/10), Cluster: fmt.Sprintf("cluster-%05d", i)}.Interned()
	}
	e.SetPolicies([]Policy{{Name: "nightly", Action: run.ActionSnapshot, Targets: targets,
		Spec: run.Spec{RetentionInDays: 7, Description: "nightly", ExportBucketID: "32b6e34b3d91647abb20e7b9",
			CustomData: []run.Label{{Key: "team", Value: "platform"}},
			Timeouts:   run.Timeouts{Wait: time.Hour, Snapshot: 4 * time.Hour, Export: 12 * time.Hour}}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.Wait() }()
	if err := e.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	parked := func(stage run.Stage) bool {
		e.disp.mu.Lock()
		h := len(e.disp.h)
		e.disp.mu.Unlock()
		if h != n {
			return false
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, t := range e.inflight {
			if t.r.Stage != stage {
				return false
			}
		}
		return len(e.inflight) == n
	}
	waitParked := func(stage run.Stage) {
		for deadline := time.Now().Add(time.Minute); !parked(stage); runtime.Gosched() {
			if time.Now().After(deadline) {
				tb.Fatalf("runs not all parked in %s after a minute", stage)
			}
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	slot := clk.Now()
	for _, tg := range targets {
		if err := e.Fire(ctx, "nightly", tg, slot, slot, false, "", ""); err != nil {
			tb.Fatal(err)
		}
	}
	waitParked(run.StageSnapshotting)
	clk.Advance(time.Hour) // every snapshot is read, found completed, and its export created
	waitParked(run.StageExporting)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(e)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkParkedRunBytes reports the heap a snapshot→export run in flight
// costs while it waits for its export (docs/benchmarks.md).
func BenchmarkParkedRunBytes(b *testing.B) {
	var sum float64
	n := 0
	for b.Loop() {
		sum += parkedRunBytes(b, 10_000)
		n++
	}
	b.ReportMetric(sum/float64(n), "B/run")
}

// A snapshot→export run parked in exporting costs the engine well under
// the 1,788 bytes it did when a task held a whole run.Run, and the
// clusters' lock and in-flight tables included (about 890 since).
func TestParkedRunHeap(t *testing.T) {
	if b := parkedRunBytes(t, 5_000); b > 1_200 {
		t.Fatalf("a parked snapshot→export run holds %.0f bytes of heap, want at most 1,200", b)
	}
}
