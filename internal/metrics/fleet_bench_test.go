package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// fleetTargets is the benchmark fleet: 1,000 projects x 10 clusters.
func fleetTargets() []run.Target {
	out := make([]run.Target, 0, 10_000)
	for p := range 1000 {
		for c := range 10 {
			out = append(out, run.Target{ProjectID: fmt.Sprintf("6a%022x", p+1), Cluster: fmt.Sprintf("c%03d", c)})
		}
	}
	return out
}

// fleetMetrics is the daemon's metrics for one hourly snapshot+export policy
// over 10,000 targets after a first successful run on each: the series a
// fleet-size daemon holds and serves.
func fleetMetrics(targets []run.Target) *Metrics {
	m := New("bench")
	m.SetPolicies([]PolicyInfo{{Name: "hourly", Action: string(run.ActionSnapshot), Schedule: "0 * * * *", Timezone: "UTC", Interval: time.Hour}})
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	rs := make([]Restored, 0, len(targets))
	for _, t := range targets {
		m.SetNextRun("hourly", t, at.Add(time.Hour))
		last := run.Run{Policy: "hourly", Target: t, Stage: run.StageSucceeded, FinishedAt: at}
		rs = append(rs, Restored{Policy: "hourly", Target: t, Last: &last, SnapshotBytes: 1 << 30,
			LastSuccess: map[string]time.Time{SuccessStageSnapshot: at, SuccessStageExport: at}})
	}
	m.Rebuild(rs)
	return m
}

// BenchmarkFleetSeries reports the heap the metrics of a 10,000-target fleet
// hold (B/target) and how many series they serve.
func BenchmarkFleetSeries(b *testing.B) {
	targets := fleetTargets()
	var before, after runtime.MemStats
	var m *Metrics
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		m = fleetMetrics(targets)
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(targets)), "B/target")
	mfs, err := m.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	b.ReportMetric(float64(series)/float64(len(targets)), "series/target")
	runtime.KeepAlive(m)
}

// BenchmarkScrape10k is one Prometheus scrape (gzip, as Prometheus asks) of
// a 10,000-target daemon: fleetbench's CPU profile at that size spent about
// a fifth of the daemon's CPU here with a scrape every 30 simulated seconds.
func BenchmarkScrape10k(b *testing.B) {
	m := fleetMetrics(fleetTargets())
	h := m.Handler()
	var size int
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "gzip-bytes")
}

// BenchmarkPublishNextRuns10k is the daemon's upkeep pass that refreshes
// backupd_next_run_timestamp_seconds for every target (every 15 seconds).
func BenchmarkPublishNextRuns10k(b *testing.B) {
	targets := fleetTargets()
	m := fleetMetrics(targets)
	at := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	for b.Loop() {
		at = at.Add(time.Hour)
		for _, t := range targets {
			m.SetNextRun("hourly", t, at)
		}
	}
}

// BenchmarkObserveChain is the metrics side of one snapshot+export run:
// the events the engine emits from pending to succeeded, progress notes
// included, on one of 10,000 targets.
func BenchmarkObserveChain(b *testing.B) {
	targets := fleetTargets()
	m := fleetMetrics(targets)
	at := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	i := 0
	for b.Loop() {
		t := targets[i%len(targets)]
		i++
		r := run.Run{ID: run.ID(fmt.Sprintf("r%019d", i)), Policy: "hourly", Action: run.ActionSnapshot, Target: t, Stage: run.StagePending}
		m.Observe(run.Event{Run: r, At: at})
		from := run.StagePending
		for _, s := range []run.Stage{run.StageWaiting, run.StageSnapshotting, run.StageExporting} {
			r.Stage = s
			m.Observe(run.Event{Run: r, From: from, At: at, StageDuration: time.Minute})
			m.Observe(run.Event{Run: r, From: s, At: at, Note: "progress"})
			from = s
		}
		r.Stage, r.SnapshotStatus, r.SnapshotBytes, r.ExportJobID = run.StageSucceeded, "completed", 1<<30, "6630ad8d1f1e3c4a5b6c7d8f"
		m.Observe(run.Event{Run: r, From: from, At: at, StageDuration: 5 * time.Minute})
	}
}
