package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/httpapi"
)

// TestIdleConnectionFlood opens far more idle keep-alive connections to a
// running `backupd run` than it holds (BACKUPD_E2E_FLOOD, default 2,000;
// docs/benchmarks.md used 19,000 against a 20,000-descriptor limit), then
// probes: every /healthz and /metrics request on a new connection is
// answered, and the daemon holds no more descriptors than its connection
// cap plus its own files. It logs the descriptors and memory it held.
func TestIdleConnectionFlood(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	n := int(envInt(t, "BACKUPD_E2E_FLOOD", 2000))
	dir := t.TempDir()
	ta := newTimeArgs(1)
	fx := fleet{clusters: []string{"ok"}, buckets: []string{bucketID}}.write(t, dir)
	sim := startSim(t, fx, ta, 1)
	cfg := daemonConfig{simURL: sim.url, statePath: dir + "/state.db", policies: `  - name: hourly
    schedule: "0 * * * *"
    targets: [{projectID: ` + projectID + `, clusters: [ok]}]
    snapshot: {retentionInDays: 1}
`}.write(t, dir, "config.yaml")
	d := startDaemon(t, cfg, ta)
	eventually(t, 30*time.Second, func() (bool, string) {
		st := d.status()
		return st.Ready, "not ready"
	})
	addr := strings.TrimPrefix(d.url, "http://")
	pid := d.cmd.Process.Pid

	// The flood: each connection makes one keep-alive request, then idles.
	var (
		mu      sync.Mutex
		conns   []net.Conn
		refused int
	)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n")
			if err == nil {
				var resp *http.Response
				if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					_ = resp.Body.Close()
				}
			}
			mu.Lock()
			conns = append(conns, c) // kept open (idle) whatever the daemon did with it
			if err != nil {
				refused++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	held := descriptors(t, pid)

	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ok := 0
	const probes = 100
	for i := range probes {
		path := "/healthz"
		if i%10 == 9 {
			path = "/metrics"
		}
		resp, err := probe.Get(d.url + path)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				ok++
			}
			_ = resp.Body.Close()
		}
	}
	hwm, rss := memKiB(t, pid, "VmHWM:"), memKiB(t, pid, "VmRSS:")
	t.Logf("flood of %d idle keep-alive connections (%d not served): daemon held %d descriptors; then %d/%d probes answered; VmHWM %.1f MiB, VmRSS %.1f MiB",
		n, refused, held, ok, probes, float64(hwm)/1024, float64(rss)/1024)
	if ok != probes {
		t.Fatalf("%d of %d probes answered during the flood, want all", ok, probes)
	}
	// The cap, plus the journal, the listener, logs and connections to Atlas.
	if limit := httpapi.DefaultMaxConns + 64; held > limit {
		t.Fatalf("daemon held %d descriptors during the flood, want at most %d (connection cap %d)", held, limit, httpapi.DefaultMaxConns)
	}
}

func descriptors(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("cannot count the daemon's descriptors (no /proc?): %v", err)
	}
	return len(es)
}

func memKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("cannot read the daemon's memory (no /proc?): %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}
