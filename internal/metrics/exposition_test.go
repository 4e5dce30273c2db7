package metrics

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/backupd/backupd/internal/run"
)

// mixedFleet is a Metrics with three policies over 400 targets each (more
// series per family than one chunk holds), every kind of run outcome, skips
// of every reason, restores, removed next runs and deleted targets: every
// per-target family with gaps and several series per target.
func mixedFleet(t *testing.T) *Metrics {
	m := New("v1")
	rng := rand.New(rand.NewPCG(1, 2))
	policies := []struct {
		name   string
		action run.Action
	}{{"nightly", run.ActionSnapshot}, {"a-restore", run.ActionFlexRestore}, {"zz-export", run.ActionExport}}
	var infos []PolicyInfo
	for _, p := range policies {
		infos = append(infos, PolicyInfo{Name: p.name, Action: string(p.action), Schedule: "@daily", Timezone: "UTC", Interval: 24 * time.Hour})
	}
	m.SetPolicies(infos)
	slot := t0
	for _, p := range policies {
		for i := range 400 {
			tg := run.Target{ProjectID: fmt.Sprintf("%024x", i%37), Cluster: fmt.Sprintf("c-%d", (i*7919)%400)}
			if i%5 != 0 {
				m.SetNextRun(p.name, tg, t0.Add(time.Duration(rng.IntN(86400))*time.Second))
			}
			for range rng.IntN(4) {
				slot = slot.Add(time.Minute)
				s := newScript(t, m, p.name, p.action, tg, slot)
				switch rng.IntN(6) {
				case 0:
					s.to(run.StageSkipped, func(r *run.Run) {
						r.Reason = []string{run.ReasonOverlap, run.ReasonMissed, run.ReasonShutdown, run.ReasonNotSupported, "other"}[rng.IntN(5)]
					})
				case 1:
					s.to(run.StageWaiting, nil)
					s.to(run.StageFailed, func(r *run.Run) { r.Reason = run.ReasonTimeout })
				case 2:
					s.to(run.StageFailed, func(r *run.Run) { r.Reason = run.ReasonAtlasError })
				case 3:
					s.to(run.StageRestoring, nil)
					s.to(run.StageSucceeded, func(r *run.Run) { r.RestoreJobID = "6650c0f9a2b3c4d5e6f7081c" })
				default:
					s.to(run.StageSnapshotting, nil)
					s.to(run.StageExporting, func(r *run.Run) { r.SnapshotStatus = "completed"; r.SnapshotBytes = rng.Int64N(1 << 40) })
					s.to(run.StageSucceeded, func(r *run.Run) { r.ExportJobID = "6650c0f9a2b3c4d5e6f7081a" })
				}
			}
			switch i % 11 {
			case 3:
				m.DeleteTarget(p.name, tg)
			case 4:
				m.SetNextRun(p.name, tg, time.Time{})
			}
		}
	}
	m.ObserveAtlasRequest("getSnapshot", "200", 120*time.Millisecond, false)
	m.ObserveAtlasRequest("takeSnapshot", "429", 10*time.Millisecond, true)
	m.ConfigReload(true)
	return m
}

// get serves one request to h and returns the response and its body,
// gunzipped if it was compressed.
func get(t *testing.T, h http.Handler, target string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body := rec.Body.Bytes()
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gunzip body: %v", err)
		}
	}
	return resp, body
}

// backupdFamilies is every backupd_ family m's plain registry gathering
// holds (Gatherer: a prometheus registry, the per-target families collected
// as const metrics and checked by a pedantic registry).
func backupdFamilies(t *testing.T, m *Metrics) []*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []*dto.MetricFamily
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "backupd_") {
			out = append(out, mf)
		}
	}
	return out
}

// onlyBackupd is the name[] query selecting the families of mfs (the Go
// and process collectors' values change between two gatherings).
func onlyBackupd(mfs []*dto.MetricFamily) string {
	q := url.Values{}
	for _, mf := range mfs {
		q.Add("name[]", mf.GetName())
	}
	return "/metrics?" + q.Encode()
}

// The handler writes the per-target families a chunk at a time; what it
// serves must be byte for byte what expfmt's encoder makes of a plain
// registry's gathering, in every format and encoding it offers.
func TestHandlerMatchesRegistryEncoding(t *testing.T) {
	m := mixedFleet(t)
	mfs := backupdFamilies(t, m)
	perTarget := 0
	for _, mf := range mfs {
		for _, f := range targetFamilies {
			if f.name == mf.GetName() {
				perTarget++
				if len(mf.GetMetric()) <= chunkSamples {
					t.Errorf("%s has %d series, not more than one chunk (%d): the fixture does not test chunking", f.name, len(mf.GetMetric()), chunkSamples)
				}
			}
		}
	}
	if perTarget != len(targetFamilies) {
		t.Fatalf("the fixture has %d of the %d per-target families", perTarget, len(targetFamilies))
	}
	h := m.Handler()
	for _, tc := range []struct {
		name, accept string
		format       expfmt.Format
	}{
		{"text", "", expfmt.NewFormat(expfmt.TypeTextPlain)},
		{"prometheus", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", expfmt.NewFormat(expfmt.TypeOpenMetrics)},
		{"protobuf asked, text served", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3", expfmt.NewFormat(expfmt.TypeTextPlain)},
	} {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", tc.name, gz), func(t *testing.T) {
				hdr := http.Header{}
				if tc.accept != "" {
					hdr.Set("Accept", tc.accept)
				}
				if gz {
					hdr.Set("Accept-Encoding", "gzip")
				}
				resp, body := get(t, h, onlyBackupd(mfs), hdr)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if got := resp.Header.Get("Content-Encoding") == "gzip"; got != gz {
					t.Errorf("gzip-encoded = %v, want %v", got, gz)
				}
				format := expfmt.Format(resp.Header.Get("Content-Type"))
				if format.FormatType() != tc.format.FormatType() {
					t.Fatalf("Content-Type %q, want a %v format", format, tc.format.FormatType())
				}
				var want bytes.Buffer
				enc := expfmt.NewEncoder(&want, format)
				for _, mf := range mfs {
					if err := enc.Encode(mf); err != nil {
						t.Fatal(err)
					}
				}
				if err := enc.(expfmt.Closer).Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(body, want.Bytes()) {
					t.Errorf("exposition differs from the registry's encoding:\n%s", firstDiff(body, want.Bytes()))
				}
			})
		}
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, gl, wl)
		}
	}
	return "(equal)"
}

// The served text parses with expfmt's parser into the same families and
// samples the registry gathers, and includes the Go and process metrics.
func TestHandlerOutputParses(t *testing.T) {
	m := mixedFleet(t)
	_, body := get(t, m.Handler(), "/metrics", http.Header{"Accept-Encoding": {"gzip"}})
	p := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "backupd_build_info", "backupd_inflight_runs"} {
		if parsed[name] == nil {
			t.Errorf("%s not served", name)
		}
	}
	for _, mf := range backupdFamilies(t, m) {
		got := parsed[mf.GetName()]
		if got == nil {
			t.Errorf("%s not served", mf.GetName())
			continue
		}
		if got.GetType() != mf.GetType() || got.GetHelp() != mf.GetHelp() {
			t.Errorf("%s: served as %v %q, registry has %v %q", mf.GetName(), got.GetType(), got.GetHelp(), mf.GetType(), mf.GetHelp())
		}
		if len(got.GetMetric()) != len(mf.GetMetric()) {
			t.Errorf("%s: %d series served, registry has %d", mf.GetName(), len(got.GetMetric()), len(mf.GetMetric()))
			continue
		}
		for i, want := range mf.GetMetric() {
			// The registry's counters and histograms carry a created
			// timestamp, which the text format does not.
			want = proto.Clone(want).(*dto.Metric)
			if c := want.GetCounter(); c != nil {
				c.CreatedTimestamp = nil
			}
			if h := want.GetHistogram(); h != nil {
				h.CreatedTimestamp = nil
			}
			served := got.GetMetric()[i]
			if h := served.GetHistogram(); h != nil && len(h.Bucket) > 0 && math.IsInf(h.Bucket[len(h.Bucket)-1].GetUpperBound(), +1) {
				// The parser keeps the +Inf bucket, which a registry leaves implicit.
				h.Bucket = h.Bucket[:len(h.Bucket)-1]
			}
			if !proto.Equal(served, want) {
				t.Errorf("%s series %d: served %v, registry has %v", mf.GetName(), i, served, want)
				break
			}
		}
	}
}

// Scrapes run while runs are observed, targets published, deleted and
// policies reloaded: each scrape is valid text, has no duplicate series and
// keeps the registry's order. Run with -race.
func TestScrapesDuringUpdates(t *testing.T) {
	m := New("v1")
	h := m.Handler()
	info := []PolicyInfo{{Name: "nightly", Action: "snapshot", Schedule: "@daily", Timezone: "UTC", Stages: SuccessStages(run.ActionSnapshot, true)}}
	m.SetPolicies(info)
	targets := make([]run.Target, 600)
	for i := range targets {
		targets[i] = run.Target{ProjectID: fmt.Sprintf("%024x", i%13), Cluster: fmt.Sprintf("c%d", i)}
		m.SetNextRun("nightly", targets[i], t0)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			for i := w; ; i += 3 {
				select {
				case <-stop:
					return
				default:
				}
				tg := targets[i%len(targets)]
				observeChain(m, tg, i, t0)
				switch i % 7 {
				case 0:
					m.DeleteTarget("nightly", tg)
				case 1:
					m.SetNextRun("nightly", tg, t0.Add(time.Duration(i)*time.Second))
				case 2:
					m.SetPolicies(info)
				}
			}
		})
	}
	for range 20 {
		_, body := get(t, h, "/metrics", nil)
		p := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("a scrape during updates does not parse: %v", err)
		}
		for _, f := range targetFamilies {
			var prev []string
			for _, mt := range mfs[f.name].GetMetric() {
				var key []string
				for _, lp := range mt.GetLabel() {
					key = append(key, lp.GetValue())
				}
				if prev != nil && slices.Compare(prev, key) >= 0 {
					t.Fatalf("%s: series %v after %v: duplicate or out of order", f.name, key, prev)
				}
				prev = key
			}
		}
	}
	close(stop)
	wg.Wait()
}

func TestHandlerNegotiation(t *testing.T) {
	m := New("v1")
	m.SetNextRun("nightly", prodA, t0)
	h := m.Handler()

	resp, body := get(t, h, "/metrics", http.Header{"Accept": {"application/openmetrics-text;version=1.0.0"}})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
		t.Errorf("OpenMetrics asked: Content-Type %q", ct)
	}
	if !bytes.HasSuffix(body, []byte("\n# EOF\n")) {
		t.Errorf("OpenMetrics body does not end with # EOF: ...%q", body[max(0, len(body)-40):])
	}
	if !bytes.Contains(body, []byte("# TYPE backupd_config_reloads counter\nbackupd_config_reloads_total{result=\"failure\"} 0.0\n")) {
		t.Error("OpenMetrics body lacks its counter naming")
	}

	resp, body = get(t, h, "/metrics", http.Header{"Accept-Encoding": {"gzip;q=0, identity"}})
	if resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip refused with q=0 but the body is encoded %q", resp.Header.Get("Content-Encoding"))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("no Accept: Content-Type %q, want text", ct)
	}
	if !bytes.Contains(body, []byte("backupd_next_run_timestamp_seconds{")) {
		t.Error("text body lacks the next run")
	}
	if vary := resp.Header.Values("Vary"); !slices.Contains(vary, "Accept") || !slices.Contains(vary, "Accept-Encoding") {
		t.Errorf("Vary = %v, want Accept and Accept-Encoding", vary)
	}

	_, body = get(t, h, "/metrics?name[]=backupd_next_run_timestamp_seconds&name[]=backupd_build_info", nil)
	var names []string
	for line := range strings.SplitSeq(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	if want := []string{"backupd_build_info", "backupd_next_run_timestamp_seconds"}; !slices.Equal(names, want) {
		t.Errorf("name[] filter served %v, want %v", names, want)
	}

	if resp, _ = get(t, h, "/metrics", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("scrape: status %d, want 200", resp.StatusCode)
	}
}

// TestScrapesOverTheLimitQueue: a fifth concurrent scrape waits its turn
// instead of failing (32 clients hammering /metrics once made 9 of 15
// Prometheus scrapes fail with 503), and gives up only at its scraper's
// timeout.
func TestScrapesOverTheLimitQueue(t *testing.T) {
	m := New("test")
	synctest.Test(t, func(t *testing.T) {
		hh := m.Handler().(*handler)
		for range maxScrapesInFlight {
			hh.inFlight <- struct{}{}
		}
		served := make(chan int, 1)
		go func() {
			resp, _ := get(t, hh, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"30"}})
			served <- resp.StatusCode
		}()
		synctest.Wait() // the fifth scrape is waiting for a slot
		select {
		case code := <-served:
			t.Fatalf("scrape over the limit answered %d at once, want it to wait", code)
		default:
		}
		time.Sleep(20 * time.Second) // virtual: four slow scrapes, within its 27 s
		<-hh.inFlight                // one of the four finishes
		if code := <-served; code != http.StatusOK {
			t.Errorf("scrape queued behind %d others: status %d, want 200", maxScrapesInFlight, code)
		}

		hh.inFlight <- struct{}{} // four in flight again
		start := time.Now()
		go func() {
			resp, _ := get(t, hh, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"10"}})
			served <- resp.StatusCode
		}()
		if code := <-served; code != http.StatusServiceUnavailable {
			t.Errorf("scrape that waited past its timeout: status %d, want 503", code)
		}
		if waited := time.Since(start); waited != 9*time.Second {
			t.Errorf("gave up after %s, want 9s (90%% of the scrape timeout)", waited)
		}
		for range maxScrapesInFlight {
			<-hh.inFlight
		}
	})
}

func TestScrapeWait(t *testing.T) {
	for header, want := range map[string]time.Duration{
		"":      defaultScrapeWait,
		"10":    9 * time.Second,
		"0.5":   450 * time.Millisecond,
		"x":     defaultScrapeWait,
		"-1":    defaultScrapeWait,
		"NaN":   defaultScrapeWait,
		"+Inf":  defaultScrapeWait,
		"86400": maxScrapeWait,
	} {
		h := http.Header{}
		if header != "" {
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", header)
		}
		if got := scrapeWait(h); got != want {
			t.Errorf("scrapeWait(%q) = %s, want %s", header, got, want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                       false,
		"gzip":                   true,
		"GZIP":                   true,
		"identity":               false,
		"deflate, gzip;q=0.5":    true,
		"gzip;q=0":               false,
		"gzip; q=0.0, identity":  false,
		"*":                      true,
		"br;q=1.0, *;q=0.1":      true,
		"zstd,gzip ; q = 0.001 ": true,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

// The stripper drops the header lines of a continued family however the
// bytes are split into writes, and passes everything when not stripping.
func TestHeaderStripper(t *testing.T) {
	chunk := "# HELP x_total Some help.\n# TYPE x_total counter\nx_total{a=\"#\"} 1\nx_total{a=\"b\"} 2\n"
	for _, size := range []int{1, 2, 7, len(chunk)} {
		var out bytes.Buffer
		hs := &headerStripper{w: &out, strip: true, atLineStart: true}
		for i := 0; i < len(chunk); i += size {
			p := []byte(chunk[i:min(i+size, len(chunk))])
			if n, err := hs.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", p, n, err)
			}
		}
		hs.strip = false
		if _, err := hs.Write([]byte("# EOF\n")); err != nil {
			t.Fatal(err)
		}
		if want := "x_total{a=\"#\"} 1\nx_total{a=\"b\"} 2\n# EOF\n"; out.String() != want {
			t.Errorf("writes of %d bytes: got %q, want %q", size, out.String(), want)
		}
	}
}

// Label values must be UTF-8; a target name that is not (config validation
// does not let one through) is exposed with U+FFFD and stays addressable by
// its raw name, instead of failing the scrape or panicking.
func TestInvalidUTF8Target(t *testing.T) {
	m := New("v1")
	bad := run.Target{ProjectID: prodA.ProjectID, Cluster: "bad\xffname"}
	m.SetNextRun("nightly", bad, t0)
	if got := tv(t, m, "backupd_next_run_timestamp_seconds", "nightly", prodA.ProjectID, "bad\uFFFDname"); got != unixSeconds(t0) {
		t.Errorf("next run = %v, want %v", got, unixSeconds(t0))
	}
	_, body := get(t, m.Handler(), "/metrics", nil)
	p := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := p.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
		t.Errorf("exposition does not parse: %v", err)
	}
	m.SetNextRun("nightly", bad, time.Time{})
	if n := tcount(t, m, "backupd_next_run_timestamp_seconds"); n != 0 {
		t.Errorf("next run series = %d after removing it by its raw name, want 0", n)
	}
}
