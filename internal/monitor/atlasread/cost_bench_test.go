package atlasread

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// fleetClusters lists 10 dedicated clusters per project with names freshly
// allocated at each listing, as decoding Atlas's answer gives them.
type fleetClusters struct{}

func (fleetClusters) List(_ context.Context, projectID string) ([]atlas.Cluster, error) {
	out := make([]atlas.Cluster, 0, 10)
	for c := range 10 {
		out = append(out, atlas.Cluster{Name: fmt.Sprintf("c%03d", c), ClusterType: atlas.ClusterType(fmt.Sprint("REPLICA", "SET")), BackupEnabled: true})
	}
	return out, nil
}

func (fleetClusters) ListFlex(context.Context, string) ([]atlas.FlexCluster, error) { return nil, nil }

// BenchmarkReaderRetained10k is the heap the Reader keeps for 10,000
// listed clusters (1,000 projects of 10) after two listings: what it adds
// to the monitor's own (docs/benchmarks.md, "The monitor's own cost").
func BenchmarkReaderRetained10k(b *testing.B) {
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	projects := make([]string, 1000)
	for p := range projects {
		projects[p] = fmt.Sprintf("6a%022x", p+1)
	}
	ctx := context.Background()
	var live uint64
	for b.Loop() {
		before := heapAlloc()
		r := New(fleetClusters{}, &fakeAtlas{}, clk, time.Hour)
		for range 2 {
			for _, p := range projects {
				if _, err := r.Clusters(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		}
		live = heapAlloc() - min(before, heapAlloc())
		runtime.KeepAlive(r)
	}
	b.ReportMetric(float64(live)/10_000, "B-live/cluster")
}

// heapAlloc is the heap the garbage collector found live, after a
// collection.
func heapAlloc() uint64 {
	runtime.GC()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	return live[0].Value.Uint64()
}

// The reader's targets are interned: a name the engine's resolution
// interned too is one copy, whichever listing decoded it, and a cluster
// keeps the time it was first listed.
func TestClustersInternNames(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	r := New(fleetClusters{}, &fakeAtlas{sched: &atlas.BackupSchedule{}}, clk, time.Hour)
	ctx := context.Background()
	first, err := r.Clusters(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	second, err := r.Clusters(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	engine := run.Target{ProjectID: strings.Clone(proj), Cluster: strings.Clone(first[3].Cluster)}.Interned()
	if unsafe.StringData(first[3].Cluster) != unsafe.StringData(second[3].Cluster) || unsafe.StringData(engine.Cluster) != unsafe.StringData(second[3].Cluster) {
		t.Error("two listings of a cluster, or the reader and the engine, hold two copies of its name")
	}
	rd, err := r.Read(ctx, second[3])
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(-time.Hour); !rd.Since.Equal(want) {
		t.Errorf("since %s, want the first listing, %s", rd.Since, want)
	}
}
