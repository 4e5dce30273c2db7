package metrics

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
// over 10,000 targets: restored from the journal at start, then one
// successful run on each target since (so runs_total{result="success"}
// exists): the series a fleet-size daemon holds and serves.
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
	for i, t := range targets {
		observeChain(m, t, i, at.Add(30*time.Minute))
	}
	return m
}

// observeChain emits the events of one successful snapshot+export run on t,
// progress notes included, as the engine does.
func observeChain(m *Metrics, t run.Target, i int, at time.Time) {
	r := run.Run{ID: run.ID(fmt.Sprintf("r%019d", i)), Policy: "hourly", Action: run.ActionSnapshot, Target: t, Stage: run.StagePending}
	m.Observe(run.Event{Run: r, At: at})
	from := run.StagePending
	for _, s := range []run.Stage{run.StageWaiting, run.StageSnapshotting, run.StageExporting} {
		if s == run.StageExporting {
			r.SnapshotStatus, r.SnapshotBytes = "completed", 1<<30
		}
		r.Stage = s
		m.Observe(run.Event{Run: r, From: from, At: at, StageDuration: time.Minute})
		m.Observe(run.Event{Run: r, From: s, At: at, Note: "progress"})
		from = s
	}
	r.Stage, r.ExportJobID = run.StageSucceeded, "6630ad8d1f1e3c4a5b6c7d8f"
	m.Observe(run.Event{Run: r, From: from, At: at, StageDuration: 5 * time.Minute})
}

// liveHeap collects garbage (twice, so that objects only sync.Pool victim
// caches still hold are gone too) and returns the live heap.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// peakProbe is an http.ResponseWriter that, each time the handler writes
// body bytes, collects garbage and records the live heap above base. A
// scrape writes hundreds of times from start to end, and everything it
// holds (gathered families, chunk buffers, gzip state) is live while it
// writes, so the highest reading is the live heap the scrape adds at its
// peak.
type peakProbe struct {
	header     http.Header
	code       int
	base, peak uint64
}

func (p *peakProbe) Header() http.Header { return p.header }

func (p *peakProbe) WriteHeader(code int) { p.code = code }

func (p *peakProbe) Write(b []byte) (int, error) {
	if p.code == 0 {
		p.code = http.StatusOK
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > p.base && ms.HeapAlloc-p.base > p.peak {
		p.peak = ms.HeapAlloc - p.base
	}
	return len(b), nil
}

// scrapePeak scrapes h (gzip accepted) through a peakProbe and returns the
// live heap the scrape added at its peak.
func scrapePeak(tb testing.TB, h http.Handler) uint64 {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	p := &peakProbe{header: http.Header{}, base: liveHeap()}
	h.ServeHTTP(p, req)
	if p.code != http.StatusOK {
		tb.Fatalf("scrape: status %d", p.code)
	}
	return p.peak
}

// discardResponse is an http.ResponseWriter that counts the body and keeps
// none of it, so a benchmark measures the handler, not a buffer.
type discardResponse struct {
	header http.Header
	code   int
	n      int
}

func (d *discardResponse) Header() http.Header { return d.header }

func (d *discardResponse) WriteHeader(code int) { d.code = code }

func (d *discardResponse) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	d.n += len(p)
	return len(p), nil
}

// scrapeDiscard is one GET /metrics as Prometheus sends it (gzip accepted),
// the body counted and dropped; it returns the body's size.
func scrapeDiscard(tb testing.TB, h http.Handler) int {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := &discardResponse{header: http.Header{}}
	h.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		tb.Fatalf("scrape: status %d", w.code)
	}
	return w.n
}

// scrape is one GET /metrics as Prometheus sends it (gzip accepted).
func scrape(tb testing.TB, h http.Handler, gzip bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		tb.Fatalf("scrape: status %d: %s", w.Code, w.Body.String())
	}
	return w
}

// countSeries parses an uncompressed text exposition and counts its
// samples' series (a histogram counts as one).
func countSeries(tb testing.TB, body []byte) int {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("parsing the exposition: %v", err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// BenchmarkFleetSeries reports the heap the metrics of a 10,000-target fleet
// retain (B/target) and how many series they serve per target.
func BenchmarkFleetSeries(b *testing.B) {
	targets := fleetTargets()
	var before, after runtime.MemStats
	var m *Metrics
	for b.Loop() {
		m = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		m = fleetMetrics(targets)
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(targets)), "B/target")
	base := countSeries(b, scrape(b, New("bench").Handler(), false).Body.Bytes())
	series := countSeries(b, scrape(b, m.Handler(), false).Body.Bytes())
	b.ReportMetric(float64(series-base)/float64(len(targets)), "series/target")
	runtime.KeepAlive(m)
}

// BenchmarkScrape10k is one Prometheus scrape (gzip, as Prometheus asks) of
// a 10,000-target daemon: fleetbench's CPU profile at that size spent about
// a fifth of the daemon's CPU here with a scrape every 30 simulated seconds.
// Besides time and allocations per scrape it reports the live heap one
// scrape adds at its peak (peak-heap-B, measured once after the loop with
// a peakProbe).
func BenchmarkScrape10k(b *testing.B) {
	m := fleetMetrics(fleetTargets())
	h := m.Handler()
	var size int
	for b.Loop() {
		size = scrapeDiscard(b, h)
	}
	b.ReportMetric(float64(size), "gzip-bytes")
	b.StopTimer()
	// A new handler: its pool is empty, as after the collections between
	// two scrapes 30 s apart, so the gzip writer and chunk buffers count.
	peak := scrapePeak(b, m.Handler())
	b.ReportMetric(float64(peak), "peak-heap-B")
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
	i := len(targets)
	for b.Loop() {
		observeChain(m, targets[i%len(targets)], i, at)
		i++
	}
}
