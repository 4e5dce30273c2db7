package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/run"
)

const monitorSection = `
monitor:
  interval: 1h
  targets: [{projectID: ` + project + `, clusters: [prod-a, flex-prod]}]
`

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// metricValue is the value of the series whose line starts with prefix
// (name and labels), or -1 when absent.
func (e *env) metricValue(t *testing.T, prefix string) float64 {
	t.Helper()
	_, body := e.get(t, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", l, err)
			}
			return v
		}
	}
	return -1
}

func (e *env) monitorCluster(t *testing.T, name string) run.MonitorCluster {
	t.Helper()
	_, body := e.get(t, "/api/v1/status")
	var st run.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Monitor == nil {
		t.Fatalf("status has no monitor section: %s", body)
	}
	for _, c := range st.Monitor.Clusters {
		if c.Target.Cluster == name {
			return c
		}
	}
	t.Fatalf("status monitor does not watch %s: %+v", name, st.Monitor)
	return run.MonitorCluster{}
}

// TestMonitorWatchesNativeBackups runs the daemon with a monitor: section
// in virtual time against the simulator's native schedule: a healthy
// schedule is fresh, a stalled one goes overdue in metrics and status, a
// failed scheduled snapshot is counted, and a failing read keeps the last
// success.
func TestMonitorWatchesNativeBackups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, monitorSection)
		if err := sim.SetSchedule(project, "prod-a", atlassim.ScheduleSpec{Items: []atlas.PolicyItem{
			{FrequencyType: atlas.FrequencyHourly, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 2},
			{FrequencyType: atlas.FrequencyDaily, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 7},
		}, Backfill: 48 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		var failReads atomic.Bool
		base := sim.Transport()
		rt := rtFunc(func(r *http.Request) (*http.Response, error) {
			if failReads.Load() && strings.HasSuffix(r.URL.Path, "/backup/schedule") {
				return nil, errors.New("injected: connection reset")
			}
			return base.RoundTrip(r)
		})
		e := launchOpts(t, dir, sim, daemon.Options{Transport: rt})
		defer e.stop()
		synctest.Wait()

		lbl := `{cluster="prod-a",project="` + project + `"}`
		hourly := `{cluster="prod-a",kind="hourly",project="` + project + `"}`
		if v := e.metricValue(t, "backupd_monitor_watch_start_timestamp_seconds"+lbl); v <= 0 {
			t.Fatalf("prod-a not watched at start: %v", v)
		}
		time.Sleep(time.Hour + time.Minute) // every cluster is read once per interval
		synctest.Wait()
		c := e.monitorCluster(t, "prod-a")
		if c.LastRead.IsZero() || len(c.Overdue) != 0 || len(c.Problems) != 0 ||
			c.LastRead.Sub(latest(c.Newest["hourly"], c.Newest["daily"])) > time.Hour {
			t.Fatalf("healthy schedule: %+v", c)
		}
		if due := e.metricValue(t, "backupd_native_snapshot_due_timestamp_seconds"+hourly); due < float64(time.Now().Unix()) {
			t.Fatalf("healthy hourly due %v, now %v", due, time.Now().Unix())
		}
		if f := e.monitorCluster(t, "flex-prod"); !f.Flex || f.Newest["flex"].IsZero() {
			t.Errorf("flex cluster: %+v", f)
		}

		if err := sim.StallSchedule(project, "prod-a", true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Hour)
		synctest.Wait()
		c = e.monitorCluster(t, "prod-a")
		if !strings.Contains(strings.Join(c.Overdue, ","), "hourly") || len(c.Problems) == 0 {
			t.Fatalf("stalled schedule not overdue: %+v", c)
		}
		if due := e.metricValue(t, "backupd_native_snapshot_due_timestamp_seconds"+hourly); due <= 0 || due >= float64(time.Now().Unix()) {
			t.Fatalf("stalled hourly due %v, now %v", due, time.Now().Unix())
		}

		if err := sim.StallSchedule(project, "prod-a", false); err != nil {
			t.Fatal(err)
		}
		if err := sim.FailScheduledSnapshots(project, "prod-a", 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		// The failed one is hourly or daily (a coinciding slot is daily);
		// the other kind has no series (-1): a kind without failures has none.
		failed := max(e.metricValue(t, "backupd_native_snapshots_failed"+hourly), e.metricValue(t, "backupd_native_snapshots_failed"+`{cluster="prod-a",kind="daily",project="`+project+`"}`))
		if failed < 1 {
			t.Fatalf("failed scheduled snapshot not counted: %v", failed)
		}

		last := e.metricValue(t, "backupd_monitor_last_success_timestamp_seconds"+lbl)
		failReads.Store(true)
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		c = e.monitorCluster(t, "prod-a")
		if c.ReadFailures == 0 || c.LastError == "" || float64(c.LastRead.Unix()) != last {
			t.Fatalf("read failure: %+v (last success %v)", c, last)
		}
		if got := e.metricValue(t, "backupd_monitor_last_success_timestamp_seconds"+lbl); got != last {
			t.Errorf("last success moved on a failed read: %v, was %v", got, last)
		}
		if n := e.metricValue(t, "backupd_monitor_read_failures_total"+lbl); n < 1 {
			t.Errorf("read failures not counted: %v", n)
		}
		if strings.Contains(e.logs.String(), secret) {
			t.Error("secret in logs")
		}
	})
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestMonitorOnlyDaemon: a configuration with a monitor: section and no
// policies starts a ready daemon that watches its clusters; a reload that
// drops the section stops the monitor and its series.
func TestMonitorOnlyDaemon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		cfg := strings.SplitN(hourlyPlusX, "policies:", 2)[0]
		cfg = strings.Replace(cfg, "STATE", filepath.Join(dir, "state.db"), 1)
		write := func(text string) {
			if err := os.WriteFile(filepath.Join(dir, goodConfig), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write(cfg + monitorSection)
		e := launch(t, dir, sim)
		defer e.stop()
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz = %d %s", code, body)
		}
		time.Sleep(time.Hour + time.Minute)
		synctest.Wait()
		if c := e.monitorCluster(t, "prod-a"); c.LastRead.IsZero() {
			t.Fatalf("monitor-only daemon did not read prod-a: %+v", c)
		}
		lbl := `{cluster="prod-a",project="` + project + `"}`
		if e.metricValue(t, "backupd_monitor_last_success_timestamp_seconds"+lbl) <= 0 {
			t.Fatal("no monitor series")
		}
		write(cfg + "policies: []\n")
		if err := e.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if v := e.metricValue(t, "backupd_monitor_last_success_timestamp_seconds"+lbl); v != -1 {
			t.Errorf("series stay after the monitor was removed: %v", v)
		}
		if e.d.Status().Monitor != nil {
			t.Error("status shows a removed monitor")
		}
	})
}

// TestDiscoveryAndMonitorYieldTheBudget: the daemon's discovery and monitor
// call Atlas at their own priorities in the projects' budgets, below the
// runs' (docs/atlas-client.md#rate-limits); each attempt's wait is counted
// under its priority.
func TestDiscoveryAndMonitorYieldTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, monitorSection)
		e := launch(t, dir, sim)
		defer e.stop()
		time.Sleep(time.Hour + time.Minute) // a slot's run, a monitor interval, discoveries
		synctest.Wait()
		for _, p := range atlas.Priorities() { // engine: the chains' get_cluster
			if count := e.metricValue(t, `backupd_atlas_budget_wait_seconds_count{priority="`+p.String()+`"}`); count <= 0 {
				t.Errorf("no Atlas attempt was made at priority %s (count %v)", p, count)
			}
		}
	})
}
