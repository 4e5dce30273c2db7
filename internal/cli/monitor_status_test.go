package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// TestStatusMonitorTable: `backupd status` prints the monitor's watched
// clusters compactly: newest snapshot per kind, due, last read, problems;
// and nothing about a monitor when the daemon runs none.
func TestStatusMonitorTable(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := run.Status{Version: "v1", StartedAt: now.Add(-time.Hour), Now: now, Ready: true,
		Monitor: &run.MonitorStatus{Interval: run.Duration(time.Hour), Clusters: []run.MonitorCluster{
			{Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-a"}, LastRead: now.Add(-10 * time.Minute),
				Newest: map[string]time.Time{"hourly": now.Add(-5 * time.Hour), "daily": now.Add(-12 * time.Hour)},
				Due:    now.Add(-2 * time.Hour), Overdue: []string{"hourly"},
				Problems: []string{"hourly snapshot overdue since 2026-11-24T10:00:00Z"}, ReadFailures: 2, LastError: "read snapshots: 503"},
			{Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "new"}, NextRead: now.Add(20 * time.Minute)},
		}, ListErrors: []run.ResolutionError{{ProjectID: "32b6e34b3d91647abb20e7c1", Error: "no answer within 2m0s", Since: now.Add(-30 * time.Minute)}}}}
	var out bytes.Buffer
	writeStatus(&out, st)
	for _, want := range []string{
		"MONITOR (Atlas native backups, read every 1h0m0s)",
		"32b6e34b3d91647abb20e7b8/prod-a", "daily 12h0m0s ago, hourly 5h0m0s ago", "OVERDUE hourly", "10m0s ago",
		"hourly snapshot overdue since 2026-11-24T10:00:00Z; last read failed (2 failures): read snapshots: 503",
		"32b6e34b3d91647abb20e7b8/new", "not read yet, first read 2026-11-24 12:20:00Z",
		"32b6e34b3d91647abb20e7c1/*", "not listed for 30m0s, last known clusters kept: no answer within 2m0s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	st.Monitor = nil
	writeStatus(&out, st)
	if strings.Contains(out.String(), "MONITOR") {
		t.Errorf("a daemon without a monitor shows one:\n%s", out.String())
	}
}
