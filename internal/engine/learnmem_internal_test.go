package engine

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/pollplan"
	"github.com/backupd/backupd/internal/run"
)

// fillHistory has e learn full histories (DefaultSamples snapshots and
// exports) of every target in ts, as a fleet's engine would after ten
// chains per cluster: each cluster's first poll reads its (empty) journal,
// and every chain then adds one sample per stage.
func fillHistory(e *Engine, ts []run.Target, chains int) {
	for _, t := range ts {
		e.estimate(t, run.StageSnapshotting)
	}
	for c := range chains {
		for _, t := range ts {
			r := run.Run{ID: run.ID(fmt.Sprintf("hourly-%s-%s-%03d", t.ProjectID, t.Cluster, c)), Target: t, Stage: run.StageExporting,
				SnapshotRanFor: 2*time.Minute + time.Duration(c)*time.Second, SnapshotDoneBy: 2*time.Minute + 30*time.Second,
				ExportRanFor: 5 * time.Minute, ExportDoneBy: 5*time.Minute + time.Duration(c)*time.Second}
			e.learn(r, run.StageSnapshotting)
			r.Stage = run.StageSucceeded
			e.learn(r, run.StageExporting)
		}
	}
}

// liveHeap is HeapAlloc after two collections: what a sync.Pool's victim
// cache holds survives the first.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// historyBytesPerCluster is the live heap a new engine's history takes
// per cluster once it has learnt full histories of ts.
func historyBytesPerCluster(ts []run.Target) float64 {
	e := New(Config{Journal: journal.NewMemory()})
	before := liveHeap()
	fillHistory(e, ts, pollplan.DefaultSamples)
	after := liveHeap()
	runtime.KeepAlive(e)
	return float64(int64(after)-int64(before)) / float64(len(ts))
}

// BenchmarkHistoryBytesPerCluster is the live heap of learned polling's
// history at 10,000 clusters with two learned stages at full history, per
// cluster (B/cluster: the map entry, the cluster's history and its
// samples), measured as the live heap before and after filling. It does
// not depend on the machine's load (docs/benchmarks.md).
func BenchmarkHistoryBytesPerCluster(b *testing.B) {
	ts := make([]run.Target, 10_000)
	for i := range ts {
		ts[i] = run.Target{ProjectID: fmt.Sprintf("32b6e34b3d91647abb%06d", i/100), Cluster: fmt.Sprintf("cluster-%05d", i)}
	}
	var perCluster float64
	for b.Loop() {
		perCluster = historyBytesPerCluster(ts)
	}
	b.ReportMetric(perCluster, "B/cluster")
}

// BenchmarkHistoryEstimate is what a job's polling pays for its estimate
// now that it is made from the samples rather than kept: one cluster with
// full histories.
func BenchmarkHistoryEstimate(b *testing.B) {
	ts := []run.Target{{ProjectID: "32b6e34b3d91647abb000000", Cluster: "cluster-00000"}}
	e := New(Config{Journal: journal.NewMemory()})
	fillHistory(e, ts, pollplan.DefaultSamples)
	b.ReportAllocs()
	for b.Loop() {
		if !e.estimate(ts[0], run.StageExporting).Known() {
			b.Fatal("no estimate from a full history")
		}
	}
}

// The compact layout's sizes, which clusterHistory's and sample's doc
// comments and docs/benchmarks.md quote.
func TestHistorySizes(t *testing.T) {
	if got := unsafe.Sizeof(sample{}); got != 8 {
		t.Errorf("a sample takes %d bytes, want 8", got)
	}
	if got := unsafe.Sizeof(clusterHistory{}); got != 48 {
		t.Errorf("a cluster's history header takes %d bytes, want 48", got)
	}
}

// A target whose key another cluster's history holds (a collision of the
// 64-bit hashes, forced here) has no history and polls with the backoff:
// it neither reads the journal for a history nor changes the other's.
func TestHistoryKeyCollisionLeavesBothApart(t *testing.T) {
	reads := 0
	e := New(Config{Journal: &racingJournal{Journal: journal.NewMemory(), during: func() { reads++ }}})
	tgt := run.Target{ProjectID: "p", Cluster: "c"}
	key, check := e.hist.hashes(tgt)
	other := &clusterHistory{check: check + 1, n: [len(learnedStages)]uint16{2}, s: []sample{{done: 120_000}, {done: 121_000}}}
	e.hist.byTarget[key] = other
	if est := e.estimate(tgt, run.StageSnapshotting); est.Known() {
		t.Errorf("estimate %+v from another cluster's history", est)
	}
	e.learn(run.Run{ID: "run-a", Target: tgt, Stage: run.StageExporting, SnapshotDoneBy: time.Minute}, run.StageSnapshotting)
	if reads != 0 || other.n[0] != 2 || e.hist.byTarget[key] != other {
		t.Errorf("the colliding target read the journal %d times and left the other history at %d samples", reads, other.n[0])
	}
}
