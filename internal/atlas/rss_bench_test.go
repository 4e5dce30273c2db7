package atlas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rssScenarioEnv names the hostile scenario TestHostileRSSChild runs.
const rssScenarioEnv = "BACKUPD_ATLAS_RSS_SCENARIO"

// rssServeCap stops a hostile server after this many bytes in all, so a
// client without bounds ends its run instead of the machine's memory.
const rssServeCap = 2 << 30

// BenchmarkHostileRSS runs each scenario in a fresh process (this test
// binary again, with GOMEMLIMIT=40MiB as the systemd unit sets it) and
// reports that process's peak resident memory (VmHWM), so one scenario's
// heap does not hide another's. docs/benchmarks.md has the figures.
//
//	go test -run '^$' -bench HostileRSS -benchtime 1x ./internal/atlas
func BenchmarkHostileRSS(b *testing.B) {
	// The attacks of issue 11 (serveHostile), and a baseline of 20 normal answers.
	scenarios := []string{
		"baseline", "two-100MB-snapshots", "339MB-cluster-page", "endless-7MB-pages", "endless-10MB-pages",
		"endless-small-pages", "50001-empty-results",
	}
	for _, name := range scenarios {
		b.Run(name, func(b *testing.B) {
			var peak float64
			for range b.N {
				ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostileRSSChild$", "-test.v", "-test.count=1")
				cmd.Env = append(os.Environ(), rssScenarioEnv+"="+name, "GOMEMLIMIT=40MiB")
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil {
					b.Fatalf("scenario %s: %v\n%s", name, err, out)
				}
				kib, result := parseRSSChild(out)
				if kib == 0 {
					b.Fatalf("scenario %s reported no VmHWM:\n%s", name, out)
				}
				peak = max(peak, float64(kib)/1024)
				b.Logf("%s: peak RSS %.1f MiB; %s", name, float64(kib)/1024, result)
			}
			b.ReportMetric(peak, "peak-RSS-MiB")
		})
	}
}

func parseRSSChild(out []byte) (kib int, result string) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "rss-child VmHWM-kB "); ok {
			kib, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(line, "rss-child result "); ok {
			result = v
		}
	}
	return kib, result
}

// TestHostileRSSChild is BenchmarkHostileRSS's measured process.
func TestHostileRSSChild(t *testing.T) {
	name := os.Getenv(rssScenarioEnv)
	if name == "" {
		t.Skip("run by BenchmarkHostileRSS in its own process")
	}
	var served atomic.Int64
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveHostile(w, r, name, &served)
	})
	srv := httptest.NewServer(newFakeAtlas(t, api))
	defer srv.Close()
	c, err := New(Config{
		BaseURL: srv.URL, ServiceAccount: &ServiceAccount{ClientID: testClientID, ClientSecret: testSecret},
		RequestsPerMinute: 600000, MaxAttempts: 2, Rand: func() float64 { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var errs []error
	switch name {
	case "baseline":
		for range 20 {
			_, err := c.Snapshots.Get(ctx, testProject, "prod", testSnapshot, KindReplicaSet)
			errs = append(errs, err)
		}
	case "two-100MB-snapshots":
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, err := c.Snapshots.Get(ctx, testProject, "prod", testSnapshot, KindReplicaSet)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
	case "50001-empty-results":
		_, err := c.Snapshots.List(ctx, testProject, "prod")
		errs = append(errs, err)
	default:
		_, err := c.Clusters.List(ctx, testProject)
		errs = append(errs, err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("rss-child VmHWM-kB %s\n", strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	fmt.Printf("rss-child result served %d MB; %v\n", served.Load()>>20, summarize(errors.Join(errs...)))
}

func summarize(err error) string {
	if err == nil {
		return "no error"
	}
	s := err.Error()
	if i := strings.Index(s, ": "); i > 0 && strings.HasPrefix(s, "atlas ") {
		s = s[i+2:] // drop "atlas OP METHOD PATH"
	}
	return sanitize(s, 200)
}

// serveHostile answers one API request of scenario name, streaming in
// 32 KiB writes so the server side holds little.
func serveHostile(w http.ResponseWriter, r *http.Request, name string, served *atomic.Int64) {
	w.Header().Set("Content-Type", MediaSnapshots)
	write := func(s string) bool {
		if served.Load() > rssServeCap {
			return false
		}
		_, err := w.Write([]byte(s))
		served.Add(int64(len(s)))
		return err == nil
	}
	pad := func(n int) bool {
		chunk := strings.Repeat("a", 32<<10)
		for ; n > 0; n -= len(chunk) {
			if !write(chunk[:min(n, len(chunk))]) {
				return false
			}
		}
		return true
	}
	next := `],"links":[{"rel":"next","href":"https://cloud.mongodb.com/next"}]}`
	if served.Load() > rssServeCap {
		_, _ = w.Write([]byte(`{"results":[]}`))
		return
	}
	switch name {
	case "baseline":
		write(`{"id":"` + testSnapshot + `","status":"completed","type":"replicaSet"}`)
	case "two-100MB-snapshots":
		_ = write(`{"id":"`+testSnapshot+`","description":"`) && pad(100<<20) && write(`"}`)
	case "339MB-cluster-page":
		_ = write(`{"results":[{"name":"`) && pad(339<<20) && write(`"}]}`)
	case "endless-7MB-pages", "endless-10MB-pages":
		per := 14 << 10
		if name == "endless-10MB-pages" {
			per = 20 << 10
		}
		if !write(`{"results":[`) {
			return
		}
		for i := range MaxItemsPerPage {
			sep := ","
			if i == 0 {
				sep = ""
			}
			if !write(sep+`{"name":"c`+strconv.Itoa(i)+`","mongoDBVersion":"`) || !pad(per) || !write(`"}`) {
				return
			}
		}
		write(next)
	case "endless-small-pages":
		write(`{"results":[` + strings.Repeat(`{"name":"c"},`, MaxItemsPerPage-1) + `{"name":"c"}` + next)
	case "50001-empty-results":
		write(`{"results":[` + strings.Repeat(`{},`, 50000) + `{}]}`)
	}
}
