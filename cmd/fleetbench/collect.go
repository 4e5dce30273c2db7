package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	return addr, nil
}

// httpGet fetches url and returns the status and body (at most limit bytes).
func httpGet(ctx context.Context, c *http.Client, url string, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	return resp.StatusCode, body, nil
}

// pollUntil calls ok every interval (real time) until it returns true, an
// error, or ctx ends.
func pollUntil(ctx context.Context, clk clock.Clock, interval time.Duration, ok func() (bool, error)) error {
	for {
		done, err := ok()
		if err != nil || done {
			return err
		}
		if err := clock.Sleep(ctx, clk, interval); err != nil {
			return err
		}
	}
}

// simClient reads the simulator's admin API (atlas-sim -admin).
type simClient struct {
	base string
	http *http.Client
}

// calls returns the simulator's per-operation request counts.
func (s simClient) calls(ctx context.Context) (map[string]int, error) {
	status, body, err := httpGet(ctx, s.http, s.base+atlassim.AdminPrefix+"calls", 16<<20)
	if err != nil {
		return nil, fmt.Errorf("reading the simulator's call counters: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("reading the simulator's call counters: status %d: %s (is atlas-sim running with -admin?)", status, truncate(string(body), 200))
	}
	var out atlassim.AdminCalls
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decoding the simulator's call counters: %w", err)
	}
	return out.Counts, nil
}

// state returns every snapshot and export job the simulator holds.
func (s simClient) state(ctx context.Context) (*atlassim.AdminState, error) {
	status, body, err := httpGet(ctx, s.http, s.base+atlassim.AdminPrefix+"state", 4<<30)
	if err != nil {
		return nil, fmt.Errorf("reading the simulator's state: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("reading the simulator's state: status %d: %s", status, truncate(string(body), 200))
	}
	var out atlassim.AdminState
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decoding the simulator's state: %w", err)
	}
	return &out, nil
}

// daemonMetrics is what the benchmark reads from the daemon's /metrics.
type daemonMetrics struct {
	Inflight       float64            // sum of backupd_inflight_runs over stages
	RequestsByCode map[string]float64 // backupd_atlas_requests_total summed per code
	RateLimited    float64            // sum of backupd_atlas_rate_limited_total
	// MonitorRead counts the clusters the monitor has read successfully
	// (backupd_monitor_last_success_timestamp_seconds series);
	// MonitorWatched those it watches (..._watch_start_...), and
	// MonitorFailures sums backupd_monitor_read_failures_total.
	MonitorRead, MonitorWatched int
	MonitorFailures             float64
}

// scrape reads the daemon's /metrics.
func scrape(ctx context.Context, c *http.Client, url string) (daemonMetrics, error) {
	status, body, err := httpGet(ctx, c, url, 256<<20)
	if err != nil {
		return daemonMetrics{}, fmt.Errorf("scraping the daemon: %w", err)
	}
	if status != http.StatusOK {
		return daemonMetrics{}, fmt.Errorf("scraping the daemon: %s answered %d", url, status)
	}
	m, err := parseMetrics(string(body))
	if err != nil {
		return m, fmt.Errorf("scraping the daemon: %w", err)
	}
	return m, nil
}

// parseMetrics extracts the benchmark's series from Prometheus text format.
func parseMetrics(text string) (daemonMetrics, error) {
	m := daemonMetrics{RequestsByCode: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		name, labels, value, err := parseSample(l)
		if err != nil {
			return m, fmt.Errorf("metrics line %d: %w", line, err)
		}
		switch name {
		case "backupd_inflight_runs":
			m.Inflight += value
		case "backupd_atlas_requests_total":
			m.RequestsByCode[labels["code"]] += value
		case "backupd_atlas_rate_limited_total":
			m.RateLimited += value
		case "backupd_monitor_last_success_timestamp_seconds":
			m.MonitorRead++
		case "backupd_monitor_watch_start_timestamp_seconds":
			m.MonitorWatched++
		case "backupd_monitor_read_failures_total":
			m.MonitorFailures += value
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading metrics: %w", err)
	}
	return m, nil
}

// parseSample splits `name{a="x",b="y"} value [timestamp]`. Label values
// the benchmark reads hold no escaped quotes or commas.
func parseSample(l string) (string, map[string]string, float64, error) {
	labels := map[string]string{}
	name, rest := l, ""
	if i := strings.IndexByte(l, '{'); i >= 0 {
		j := strings.LastIndexByte(l, '}')
		if j < i {
			return "", nil, 0, fmt.Errorf("unbalanced braces in %q", truncate(l, 80))
		}
		name, rest = l[:i], l[j+1:]
		for _, kv := range strings.Split(l[i+1:j], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			labels[strings.TrimSpace(k)] = strings.Trim(v, `"`)
		}
	} else if i := strings.IndexByte(l, ' '); i >= 0 {
		name, rest = l[:i], l[i:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, 0, fmt.Errorf("no value in %q", truncate(l, 80))
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("value of %s: %w", name, err)
	}
	return name, labels, v, nil
}
