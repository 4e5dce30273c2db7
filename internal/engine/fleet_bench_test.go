package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// instantAtlas answers every call at once: the cluster is an idle M10, a
// snapshot is completed and an export Successful on the first read. It
// isolates the engine's own cost per chain (journal writes, events, locks).
type instantAtlas struct{ engine.Atlas }

func (instantAtlas) GetCluster(_ context.Context, p, n string) (*atlas.Cluster, error) {
	return &atlas.Cluster{Name: n, GroupID: p, ClusterType: atlas.ClusterReplicaSet, StateName: atlas.ClusterIdle, BackupEnabled: true,
		ReplicationSpecs: []atlas.ReplicationSpec{{RegionConfigs: []atlas.RegionConfig{{ProviderName: "AWS", ElectableSpecs: &atlas.HardwareSpec{InstanceSize: "M10"}}}}}}, nil
}

func (instantAtlas) ListSnapshots(context.Context, string, string, atlas.SnapshotKind) ([]atlas.Snapshot, error) {
	return nil, nil
}

func (instantAtlas) TakeSnapshot(_ context.Context, _, _ string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	return &atlas.Snapshot{ID: "6630ad8d1f1e3c4a5b6c7d8e", Status: atlas.SnapshotQueued, Description: req.Description}, nil
}

func (instantAtlas) GetSnapshot(_ context.Context, _, _, id string, _ atlas.SnapshotKind) (*atlas.Snapshot, error) {
	return &atlas.Snapshot{ID: id, Status: atlas.SnapshotCompleted, StorageSizeBytes: 1 << 30}, nil
}

func (instantAtlas) CreateExport(_ context.Context, _, _ string, req atlas.ExportJobRequest) (*atlas.ExportJob, error) {
	return &atlas.ExportJob{ID: "6630ad8d1f1e3c4a5b6c7d8f", SnapshotID: req.SnapshotID, State: atlas.ExportQueued}, nil
}

func (instantAtlas) GetExport(_ context.Context, _, _, id string) (*atlas.ExportJob, error) {
	return &atlas.ExportJob{ID: id, State: atlas.ExportSuccessful, ExportStatus: &atlas.ExportStatus{ExportedCollections: 40, TotalCollections: 40}}, nil
}

func (instantAtlas) HoldUntil(string) time.Time { return time.Time{} }

// countingJournal counts Puts, the journal writes (fsyncs with Bolt) a chain costs.
type countingJournal struct {
	journal.Journal
	puts atomic.Int64
}

func (c *countingJournal) Put(r run.Run) error {
	c.puts.Add(1)
	return c.Journal.Put(r)
}

// endSignal hands each run's terminal event to the benchmark.
type endSignal struct {
	mu    sync.Mutex
	ended map[run.ID]chan struct{}
}

func (s *endSignal) ch(id run.ID) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.ended[id]
	if !ok {
		c = make(chan struct{})
		s.ended[id] = c
	}
	return c
}

func (s *endSignal) Observe(e run.Event) {
	if e.Note == "" && e.Run.Stage.Terminal() {
		close(s.ch(e.Run.ID))
	}
}

// BenchmarkChain is one snapshot+export run from Fire to succeeded through
// the engine, against an Atlas that answers at once, with the journal the
// daemon would use. puts/chain is the number of durable journal writes;
// with fsync each costs about a millisecond on this class of disk, which is
// what bounds the daemon's throughput at fleet size (docs/benchmarks.md).
func BenchmarkChain(b *testing.B) {
	for _, kind := range []string{"memory", "bolt-nosync", "bolt-fsync"} {
		b.Run(kind, func(b *testing.B) {
			var base journal.Journal = journal.NewMemory()
			if kind != "memory" {
				j, err := journal.Open(filepath.Join(b.TempDir(), "state.db"), journal.Options{NoSync: kind == "bolt-nosync"})
				if err != nil {
					b.Fatal(err)
				}
				base = j
			}
			defer base.Close()
			j := &countingJournal{Journal: base}
			sig := &endSignal{ended: map[run.ID]chan struct{}{}}
			// Polls are due at once: the benchmark is the engine's own
			// cost, dispatcher included, not the poll interval.
			e := engine.New(engine.Config{Clock: clock.Real(), Journal: j, Atlas: instantAtlas{}, Observer: sig,
				PollMin: time.Microsecond, PollMax: time.Microsecond})
			tgt := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "rs"}
			e.SetPolicies([]engine.Policy{{Name: "hourly", Action: run.ActionSnapshot, Targets: []run.Target{tgt},
				Spec: run.Spec{RetentionInDays: 1, ExportBucketID: "32b6e34b3d91647abb20e7b9",
					Timeouts: run.Timeouts{Wait: time.Hour, Snapshot: time.Hour, Export: time.Hour}}}})
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); e.Wait() }()
			if err := e.Start(ctx); err != nil {
				b.Fatal(err)
			}
			slot := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			chains := 0
			for b.Loop() {
				slot = slot.Add(time.Hour)
				if err := e.Fire(ctx, "hourly", tgt, slot, slot, false, "", ""); err != nil {
					b.Fatal(err)
				}
				<-sig.ch(run.NewID("hourly", tgt.ProjectID, tgt.Cluster, slot, false))
				chains++
			}
			b.ReportMetric(float64(j.puts.Load())/float64(chains), "puts/chain")
		})
	}
}

// BenchmarkFireBusy is the scheduler's Fire while many runs write their
// stages: admission decides under the engine's lock, then makes a durable
// Put that the journal group-commits with the other runs' writes. ns/op is
// the Fire latency with 256 runs in flight writing continuously; compare it
// with BenchmarkPutConcurrent/put in internal/journal.
func BenchmarkFireBusy(b *testing.B) {
	j, err := journal.Open(filepath.Join(b.TempDir(), "state.db"), journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	e := engine.New(engine.Config{Clock: clock.Real(), Journal: j, Atlas: blockingAtlas{}})
	var targets []run.Target
	for i := range 256 + 1 {
		targets = append(targets, run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: fmt.Sprintf("c%03d", i)})
	}
	e.SetPolicies([]engine.Policy{{Name: "hourly", Action: run.ActionSnapshot, Targets: targets,
		Spec: run.Spec{RetentionInDays: 1, Timeouts: run.Timeouts{Wait: time.Hour, Snapshot: time.Hour}}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.Wait() }()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	// Background writers: 256 goroutines putting stage changes of their own runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			r := run.Run{ID: run.ID(fmt.Sprintf("busy%06d", i)), Policy: "other", Action: run.ActionSnapshot, Target: targets[i],
				Stage: run.StageExporting, CreatedAt: at, StageStartedAt: at, UpdatedAt: at}
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.UpdatedAt = r.UpdatedAt.Add(time.Second)
				if err := j.Put(r); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	slot := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		slot = slot.Add(time.Hour)
		// The first run stays waiting, so later slots are recorded as
		// skipped (overlap): the same decision and the same Put.
		if err := e.Fire(ctx, "hourly", targets[256], slot, slot, false, "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// blockingAtlas never answers until the run's context ends: runs stay in
// their first stage so BenchmarkFireBusy measures admission only.
type blockingAtlas struct{ engine.Atlas }

func (blockingAtlas) HoldUntil(string) time.Time { return time.Time{} }

func (blockingAtlas) GetCluster(ctx context.Context, _, _ string) (*atlas.Cluster, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
