package monitor

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/backupd/backupd/internal/metrics"
)

// defaultSchedule is Atlas's default policy (6-hourly, daily, weekly,
// monthly), as every fleetbench cluster has.
func defaultSchedule() *Schedule {
	return &Schedule{Items: []PolicyItem{
		{FrequencyHourly, 6, RetentionDays, 7}, {FrequencyDaily, 1, RetentionDays, 7},
		{FrequencyWeekly, 6, RetentionWeeks, 4}, {FrequencyMonthly, 40, RetentionMonths, 12}}}
}

// observedFleet is a Collector that has read projects × clusters
// dedicated clusters with the default schedule, on-demand snapshots beside
// the scheduled ones and a compliance policy, as a fleet-size daemon holds.
func observedFleet(projects, clusters int) *Collector {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	c := NewCollector(time.Hour)
	for p := range projects {
		for cl := range clusters {
			tg := fleetTarget(p, cl)
			c.Watch(tg, now.Add(-time.Hour))
			c.Observe(Assess(fleetReading(tg, now), now, 0), now)
		}
	}
	return c
}

// samples is every sample of the monitor's families in mfs, as sorted
// strings, so two expositions can be compared whatever their order.
func samples(mfs []*dto.MetricFamily) []string {
	var out []string
	mine := map[string]bool{}
	for _, n := range Metrics() {
		mine[n] = true
	}
	for _, mf := range mfs {
		if !mine[mf.GetName()] {
			continue
		}
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			}
			ls := ""
			for _, l := range m.GetLabel() {
				ls += l.GetName() + "=" + l.GetValue() + ","
			}
			out = append(out, fmt.Sprintf("%s{%s} %g", mf.GetName(), ls, v))
		}
	}
	sort.Strings(out)
	return out
}

// /metrics streams the monitor's families, chunk after chunk of clusters,
// with exactly the series Gatherer collects, and every family once.
func TestHandlerStreamsTheCollector(t *testing.T) {
	m := metrics.New("test")
	c := observedFleet(10, 30) // 300 clusters: each family spans several chunks
	if _, err := m.AddSource(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := samples(mfs)
	if len(want) < 5000 {
		t.Fatalf("fixture has %d series, want well over a chunk per family", len(want))
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	body := rec.Body.Bytes()
	for _, n := range Metrics() {
		if k := bytes.Count(body, []byte("# TYPE "+n+" ")); k > 1 {
			t.Errorf("%s: %d TYPE lines, want one (a chunk's header repeated)", n, k)
		}
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	var list []*dto.MetricFamily
	for _, mf := range parsed {
		list = append(list, mf)
	}
	got := samples(list)
	if len(got) != len(want) {
		t.Fatalf("served %d monitor series, Gatherer %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("first difference: served %q, Gatherer %q", got[i], want[i])
		}
	}
}

// A scrape's allocations do not grow with the monitor's series: the
// families are copied out and written a chunk at a time into reused
// buffers, nothing per series or per chunk (at 10,000 clusters a scrape
// is over 1,000 chunks).
func TestScrapeAllocationsFlat(t *testing.T) {
	allocs := func(projects int) float64 {
		m := metrics.New("test")
		if _, err := m.AddSource(observedFleet(projects, 10)); err != nil {
			t.Fatal(err)
		}
		h := m.Handler()
		w := &discard{header: http.Header{}}
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		return testing.AllocsPerRun(5, func() { h.ServeHTTP(w, req) })
	}
	small, large := allocs(10), allocs(200) // 100 and 2,000 clusters
	if large-small > 20 {
		t.Errorf("a scrape of 2,000 clusters allocates %.0f times, of 100 clusters %.0f: it allocates per series or per chunk", large, small)
	}
}

// BenchmarkScrapeMonitor10k is one scrape of the monitor's families at
// 10,000 clusters (docs/benchmarks.md): what it allocates and costs.
func BenchmarkScrapeMonitor10k(b *testing.B) {
	m := metrics.New("bench")
	if _, err := m.AddSource(observedFleet(1000, 10)); err != nil {
		b.Fatal(err)
	}
	h := m.Handler()
	w := &discard{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics?"+monitorOnly(), nil))
	}
	b.ReportMetric(float64(w.n)/float64(b.N), "body-bytes/op")
	b.ReportMetric(float64(w.samples)/float64(b.N), "series/op")
}

// BenchmarkScrapeMonitor10kGzip is the same scrape gzip-compressed, as
// Prometheus asks for it: the compression's share of the cost, and the
// bytes on the wire.
func BenchmarkScrapeMonitor10kGzip(b *testing.B) {
	m := metrics.New("bench")
	if _, err := m.AddSource(observedFleet(1000, 10)); err != nil {
		b.Fatal(err)
	}
	h := m.Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics?"+monitorOnly(), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := &discard{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n)/float64(b.N), "gzip-bytes/op")
}

// monitorOnly is the query of the monitor's families alone.
func monitorOnly() string {
	q := ""
	for _, n := range Metrics() {
		q += "name[]=" + n + "&"
	}
	return q
}

// discard is a ResponseWriter that counts and drops the body, so the
// benchmark measures the handler, not a buffer of the whole exposition.
type discard struct {
	header     http.Header
	n, samples int  // body bytes, and lines that are not comments
	mid        bool // the last write ended inside a line
}

func (d *discard) Header() http.Header  { return d.header }
func (d *discard) WriteHeader(code int) {}
func (d *discard) Write(p []byte) (int, error) {
	d.n += len(p)
	for line := range bytes.Lines(p) {
		if !d.mid && line[0] != '#' {
			d.samples++
		}
		d.mid = line[len(line)-1] != '\n'
	}
	return len(p), nil
}
