package monitor

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// The monitor's cost at fleet size (docs/benchmarks.md, "The monitor's
// own cost"): what it keeps per watched cluster, what a read allocates,
// and (BenchmarkScrapeMonitor10k) what a scrape allocates and writes.
// Memory and allocation counts do not depend on the machine's load; the
// ns/op do.

// benchFleet is the 10,000 clusters of the fleet benchmark: 1,000
// projects of 10, with Atlas's default schedule, 8 hourly and 24 on-demand
// snapshots, a failed daily one, and a compliance policy per project.
const benchProjects, benchClusters = 1000, 10

// fleetTarget is the c-th cluster of the p-th project of the fleet.
func fleetTarget(p, c int) run.Target {
	return run.Target{ProjectID: fmt.Sprintf("6a%022x", p+1), Cluster: fmt.Sprintf("c%03d", c)}
}

// fleetReading is what a read of a fleet cluster returns at now.
func fleetReading(tg run.Target, now time.Time) Reading {
	var snaps []Snapshot
	for i := range 8 {
		snaps = append(snaps, Snapshot{Kind: KindHourly, Status: StatusCompleted, CreatedAt: now.Add(-time.Duration(i*6) * time.Hour), SizeBytes: 1 << 30})
	}
	for i := range 24 {
		snaps = append(snaps, Snapshot{Kind: KindOnDemand, Status: StatusCompleted, CreatedAt: now.Add(-time.Duration(i) * time.Hour)})
	}
	snaps = append(snaps, Snapshot{Kind: KindDaily, Status: StatusFailed, CreatedAt: now.Add(-10 * time.Hour)})
	return Reading{Target: tg, BackupEnabled: true, Since: now.Add(-48 * time.Hour), Snapshots: snaps,
		Schedule:   defaultSchedule(),
		Compliance: &Compliance{ScheduledItems: []PolicyItem{{FrequencyDaily, 1, RetentionDays, 14}}}}
}

// benchLister lists the fleet's clusters of a project as the Atlas adapter
// does: the project's id as asked, each cluster's name freshly allocated
// (decoded from the answer).
type benchLister struct{}

func (benchLister) Clusters(_ context.Context, p string) ([]run.Target, error) {
	out := make([]run.Target, 0, benchClusters)
	for c := range benchClusters {
		out = append(out, run.Target{ProjectID: p, Cluster: fmt.Sprintf("c%03d", c)})
	}
	return out, nil
}

// benchReader answers fleetReading, sharing one Reading's snapshots (Assess
// does not change them), so that a read's allocations are the monitor's.
type benchReader struct{ rd Reading }

func (r benchReader) Read(_ context.Context, t run.Target) (Reading, error) {
	rd := r.rd
	rd.Target = t
	return rd, nil
}

// frozenClock stands still and its timers never fire: clock.Fake keeps
// every timer until it fires, which would count a read deadline per
// cluster as the monitor's.
type frozenClock struct{ now time.Time }

func (c frozenClock) Now() time.Time                   { return c.now }
func (frozenClock) NewTimer(time.Duration) clock.Timer { return frozenTimer{} }

type frozenTimer struct{}

func (frozenTimer) C() <-chan time.Time { return nil }
func (frozenTimer) Stop() bool          { return true }

// readFleet is a Runner (with its Collector) that has listed and read
// every cluster of the fleet once, as a daemon holds after its first
// interval.
func readFleet(tb testing.TB, clk clock.Clock) *Runner {
	tb.Helper()
	now := clk.Now()
	sel := make([]policy.TargetSelector, 0, benchProjects)
	for p := range benchProjects {
		sel = append(sel, policy.TargetSelector{ProjectID: fleetTarget(p, 0).ProjectID, Clusters: []string{"*"}})
	}
	plan := NewPlan(policy.Monitor{Interval: time.Hour, Targets: sel})
	r := NewRunner(RunnerConfig{Plan: plan, Reader: benchReader{fleetReading(run.Target{}, now)}, Lister: benchLister{},
		Collector: NewCollector(plan.Interval()), Clock: clk})
	ctx := context.Background()
	r.discover(ctx)
	for p := range benchProjects {
		for c := range benchClusters {
			r.read(ctx, fleetTarget(p, c))
		}
	}
	return r
}

// heapInUse collects garbage (twice: objects a sync.Pool's victim cache
// held go the second time) and returns the heap in use and allocated.
func heapInUse() (inuse, alloc uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.HeapAlloc
}

// BenchmarkMonitorRetained10k is the heap the monitor keeps for 10,000
// watched clusters after a full read cycle: the Runner's and the
// Collector's state together (the Reader adapter's is apart, in
// atlasread).
func BenchmarkMonitorRetained10k(b *testing.B) {
	clk := frozenClock{time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	var inuse, alloc uint64
	for b.Loop() {
		i0, a0 := heapInUse()
		r := readFleet(b, clk)
		i1, a1 := heapInUse()
		runtime.KeepAlive(r)
		inuse, alloc = i1-min(i0, i1), a1-min(a0, a1)
	}
	n := float64(benchProjects * benchClusters)
	b.ReportMetric(float64(inuse)/(1<<20), "MiB-inuse")
	b.ReportMetric(float64(alloc)/n, "B-live/cluster")
}

// BenchmarkMonitorRead is one read of a fleet cluster already watched:
// what assessing it and keeping the result allocate (the Reader's own
// decoding apart).
func BenchmarkMonitorRead(b *testing.B) {
	r := readFleet(b, frozenClock{time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)})
	tg := fleetTarget(7, 3)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.read(ctx, tg)
	}
}
