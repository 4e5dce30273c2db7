package daemon_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/ha"
	"github.com/backupd/backupd/internal/ha/hatest"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// TestKubeDaemonTakeover runs two whole daemons electing on a real Lease
// (kube-apiserver and etcd, hatest; skipped without them) against one
// simulated Atlas, on the real clock: the standby refuses a trigger naming
// the leader; the leader's run, cut by its graceful stop mid-chain, is
// re-attached by the other replica from its Atlas marker and ends with one
// snapshot and one export. Issue 16 items 3, 4 and 6 end to end.
func TestKubeDaemonTakeover(t *testing.T) {
	c := hatest.Start(t)
	dirA, sim := setup(t, "")
	sim.SetTimings(atlassimFast)
	withHAKube(t, dirA, "pod-a")
	dirB := t.TempDir()
	copySetup(t, dirA, dirB, "pod-a", "pod-b")
	elect := func(cfg policy.HA, o leader.Options) (leader.Elector, error) {
		return ha.New(cfg, ha.Options{Identity: cfg.Identity, Rest: c.RestConfig(), Clock: o.Clock, Logger: o.Logger, Hooks: o.Hooks})
	}
	opts := daemon.Options{Transport: sim.Transport(), Elect: elect, PollMin: 200 * time.Millisecond, PollMax: time.Second}
	a := launchOpts(t, dirA, sim, opts)
	defer a.stop()
	waitFor(t, 30*time.Second, "pod-a to lead", func() bool { return role(t, a) == run.RoleLeader })
	b := launchOpts(t, dirB, sim, opts)
	defer b.stop()
	waitFor(t, 30*time.Second, "pod-b to see pod-a lead", func() bool {
		st := b.status(t)
		return st.HA != nil && st.HA.Role == run.RoleStandby && st.HA.Leader == "pod-a"
	})

	code, body := b.post(t, "/api/v1/policies/hourly/trigger")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"leader":"pod-a"`) {
		t.Fatalf("trigger on the standby = %d %s", code, body)
	}
	if code, body := a.post(t, "/api/v1/policies/hourly/trigger?projectID="+project+"&cluster=prod-a"); code != http.StatusAccepted {
		t.Fatalf("trigger on the leader = %d %s", code, body)
	}
	var id run.ID
	waitFor(t, 30*time.Second, "the leader's snapshot", func() bool {
		rs := a.runsOf(t, "hourly")
		if len(rs) == 1 && rs[0].SnapshotID != "" {
			id = rs[0].ID
			return true
		}
		return false
	})

	stopped := time.Now()
	a.stop() // graceful: the run is parked, then the lease released
	waitFor(t, 30*time.Second, "pod-b to lead", func() bool { return role(t, b) == run.RoleLeader })
	t.Logf("takeover after a graceful stop: %s", time.Since(stopped).Round(10*time.Millisecond))
	waitFor(t, 90*time.Second, "the run to end on pod-b", func() bool {
		rs := b.runsOf(t, "hourly")
		return len(rs) == 1 && rs[0].ID == id && rs[0].Stage.Terminal()
	})
	if rs := b.runsOf(t, "hourly"); rs[0].Stage != run.StageSucceeded {
		t.Fatalf("the run on pod-b = %+v", rs[0])
	}
	if n, m := len(sim.Snapshots(project, "prod-a")), len(sim.Exports(project, "prod-a")); n != 1 || m != 1 {
		t.Fatalf("snapshots %d exports %d, want 1 and 1", n, m)
	}
	if sim.Calls("take_snapshot") != 1 || sim.Calls("create_export") != 1 {
		t.Fatalf("POSTs: take_snapshot %d create_export %d", sim.Calls("take_snapshot"), sim.Calls("create_export"))
	}
	if !b.metric(t, `backupd_ha_leading 1`) || !b.metric(t, `backupd_ha_leader{identity="pod-b"} 1`) {
		_, body := b.get(t, "/metrics")
		t.Fatalf("gauges on the new leader:\n%s", grep(body, "backupd_ha"))
	}
}

// withHAKube is withHA with the shortened timings of the kube tests.
func withHAKube(t *testing.T, dir, identity string) {
	t.Helper()
	withHA(t, dir, identity+"\n  leaseDuration: 4s\n  renewDeadline: 3s\n  retryPeriod: 1s")
	p := filepath.Join(dir, goodConfig)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "namespace: apps", "namespace: default", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func role(t *testing.T, e *env) string {
	st := e.status(t)
	if st.HA == nil {
		t.Fatal("status has no ha section")
	}
	return st.HA.Role
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond) // polling a real process's state, on the real clock
	}
}

// atlassimFast makes a chain take seconds on the real clock.
var atlassimFast = atlassim.Timings{
	SnapshotQueued: 500 * time.Millisecond, SnapshotInProgress: 3 * time.Second,
	ExportQueued: 500 * time.Millisecond, ExportInProgress: 3 * time.Second,
}
