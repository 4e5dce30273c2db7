package monitor

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backupd/backupd/internal/metrics"
	"github.com/backupd/backupd/internal/run"
)

// fleet observes three clusters: a dedicated one in a project with a
// compliance policy its schedule falls short of, a flex one in the same
// project, and a dedicated one with backup disabled in a project without a
// policy.
func fleet(t *testing.T) (*Collector, prometheus.Gatherer) {
	t.Helper()
	c := NewCollector(time.Hour)
	m := metrics.New("test")
	if _, err := m.AddSource(c); err != nil {
		t.Fatal(err)
	}
	reg := m.Gatherer()
	compliance := &Compliance{ScheduledItems: []PolicyItem{{FrequencyDaily, 1, RetentionDays, 14}}}
	now := utc("2026-03-02T10:00:00Z")
	c.Observe(Assess(Reading{
		Target: run.Target{ProjectID: "p1", Cluster: "prod-a"}, BackupEnabled: true,
		Schedule: hourlyDaily(), Compliance: compliance,
		Snapshots: []Snapshot{
			snap(KindHourly, StatusCompleted, "2026-03-02T06:00:00Z", 2048),
			snap(KindHourly, StatusCompleted, "2026-03-01T18:00:00Z", 1024),
			snap(KindDaily, StatusCompleted, "2026-03-02T00:00:00Z", 1536),
			snap(KindDaily, StatusFailed, "2026-03-01T00:00:00Z", 0),
		},
	}, now, 0), now)
	c.Observe(Assess(Reading{
		Target: run.Target{ProjectID: "p1", Cluster: "flex-a"}, Flex: true, Compliance: compliance,
		Snapshots: []Snapshot{snap(KindFlex, StatusCompleted, "2026-03-01T12:00:00Z", 0)},
	}, now, 0), now.Add(-time.Minute))
	// A schedule without the daily snapshots the policy requires: short
	// in frequency, and no retention series (it has no daily retention).
	c.Observe(Assess(Reading{
		Target: run.Target{ProjectID: "p1", Cluster: "prod-b"}, BackupEnabled: true, Compliance: compliance,
		Schedule: &Schedule{Items: []PolicyItem{{FrequencyHourly, 6, RetentionDays, 2}}},
	}, now, 0), now.Add(-3*time.Minute))
	c.Watch(run.Target{ProjectID: "p2", Cluster: "off"}, now.Add(-time.Hour))
	c.Observe(Assess(Reading{Target: run.Target{ProjectID: "p2", Cluster: "off"}}, now, 0), now.Add(-2*time.Minute))
	// Watched and never read: only its watch start, and its project has
	// no compliance series (nothing was read there).
	c.Watch(run.Target{ProjectID: "p3", Cluster: "blind"}, now.Add(-3*time.Hour))
	c.Watch(run.Target{ProjectID: "p3", Cluster: "blind"}, now) // no effect
	// Failed reads are counted; the last success of prod-a stays.
	c.ReadFailed(run.Target{ProjectID: "p3", Cluster: "blind"})
	c.ReadFailed(run.Target{ProjectID: "p1", Cluster: "prod-a"})
	c.ReadFailed(run.Target{ProjectID: "p9", Cluster: "unwatched"}) // ignored
	return c, reg
}

func TestCollectorExposition(t *testing.T) {
	_, reg := fleet(t)
	const want = `
# HELP backupd_monitor_read_failures_total Reads of the cluster that failed since the monitor started watching it (its last success time stays).
# TYPE backupd_monitor_read_failures_total counter
backupd_monitor_read_failures_total{cluster="blind",project="p3"} 1
backupd_monitor_read_failures_total{cluster="flex-a",project="p1"} 0
backupd_monitor_read_failures_total{cluster="off",project="p2"} 0
backupd_monitor_read_failures_total{cluster="prod-a",project="p1"} 1
backupd_monitor_read_failures_total{cluster="prod-b",project="p1"} 0
# HELP backupd_monitor_last_success_timestamp_seconds Unix time the monitor last read the cluster completely.
# TYPE backupd_monitor_last_success_timestamp_seconds gauge
backupd_monitor_last_success_timestamp_seconds{cluster="flex-a",project="p1"} 1.77244554e+09
backupd_monitor_last_success_timestamp_seconds{cluster="off",project="p2"} 1.77244548e+09
backupd_monitor_last_success_timestamp_seconds{cluster="prod-a",project="p1"} 1.7724456e+09
backupd_monitor_last_success_timestamp_seconds{cluster="prod-b",project="p1"} 1.77244542e+09
# HELP backupd_monitor_watch_start_timestamp_seconds Unix time the monitor started watching the cluster (the daemon's start, or when the cluster became selected): with no successful read since, the age of its blindness.
# TYPE backupd_monitor_watch_start_timestamp_seconds gauge
backupd_monitor_watch_start_timestamp_seconds{cluster="blind",project="p3"} 1.7724348e+09
backupd_monitor_watch_start_timestamp_seconds{cluster="flex-a",project="p1"} 1.77244554e+09
backupd_monitor_watch_start_timestamp_seconds{cluster="off",project="p2"} 1.7724420e+09
backupd_monitor_watch_start_timestamp_seconds{cluster="prod-a",project="p1"} 1.7724456e+09
backupd_monitor_watch_start_timestamp_seconds{cluster="prod-b",project="p1"} 1.77244542e+09
# HELP backupd_monitor_interval_seconds How often the monitor reads each watched cluster.
# TYPE backupd_monitor_interval_seconds gauge
backupd_monitor_interval_seconds 3600
# HELP backupd_native_backup_enabled 1 if the dedicated cluster has Cloud Backup enabled, 0 if not.
# TYPE backupd_native_backup_enabled gauge
backupd_native_backup_enabled{cluster="off",project="p2"} 0
backupd_native_backup_enabled{cluster="prod-a",project="p1"} 1
backupd_native_backup_enabled{cluster="prod-b",project="p1"} 1
# HELP backupd_native_compliance_policy_in_force 1 if the project has a Backup Compliance Policy, 0 if not.
# TYPE backupd_native_compliance_policy_in_force gauge
backupd_native_compliance_policy_in_force{project="p1"} 1
backupd_native_compliance_policy_in_force{project="p2"} 0
# HELP backupd_native_compliance_required_retention_seconds Shortest retention of the frequency the project's compliance policy allows (months of 30 days, years of 365).
# TYPE backupd_native_compliance_required_retention_seconds gauge
backupd_native_compliance_required_retention_seconds{frequency="daily",project="p1"} 1.2096e+06
# HELP backupd_native_schedule_compliance_shortfall 1 if the cluster's schedule is weaker than the project's compliance policy in this frequency and aspect (frequency, retention), 0 if it meets it.
# TYPE backupd_native_schedule_compliance_shortfall gauge
backupd_native_schedule_compliance_shortfall{aspect="frequency",cluster="prod-a",frequency="daily",project="p1"} 0
backupd_native_schedule_compliance_shortfall{aspect="retention",cluster="prod-a",frequency="daily",project="p1"} 1
backupd_native_schedule_compliance_shortfall{aspect="frequency",cluster="prod-b",frequency="daily",project="p1"} 1
# HELP backupd_native_snapshot_due_timestamp_seconds Unix time after which the cluster's next snapshot of this kind is overdue: the first schedule slot after the newest snapshot keeping it, plus the margin (flex: 36 h after the newest). 0: overdue since ever.
# TYPE backupd_native_snapshot_due_timestamp_seconds gauge
backupd_native_snapshot_due_timestamp_seconds{cluster="flex-a",kind="flex",project="p1"} 1.772496e+09
backupd_native_snapshot_due_timestamp_seconds{cluster="prod-a",kind="daily",project="p1"} 1.7725032e+09
backupd_native_snapshot_due_timestamp_seconds{cluster="prod-a",kind="hourly",project="p1"} 1.7724600e+09
backupd_native_snapshot_due_timestamp_seconds{cluster="prod-b",kind="hourly",project="p1"} 0
# HELP backupd_native_snapshot_newest_failed_timestamp_seconds Unix time of the newest failed native snapshot Atlas lists for the cluster, per kind.
# TYPE backupd_native_snapshot_newest_failed_timestamp_seconds gauge
backupd_native_snapshot_newest_failed_timestamp_seconds{cluster="prod-a",kind="daily",project="p1"} 1.7723232e+09
# HELP backupd_native_snapshot_newest_size_bytes Size Atlas reports for the cluster's newest completed native snapshot (0 when it does not say).
# TYPE backupd_native_snapshot_newest_size_bytes gauge
backupd_native_snapshot_newest_size_bytes{cluster="flex-a",project="p1"} 0
backupd_native_snapshot_newest_size_bytes{cluster="prod-a",project="p1"} 2048
# HELP backupd_native_snapshot_newest_timestamp_seconds Unix time of the newest completed native snapshot of the cluster, per kind (hourly…yearly, onDemand, fallback, flex).
# TYPE backupd_native_snapshot_newest_timestamp_seconds gauge
backupd_native_snapshot_newest_timestamp_seconds{cluster="flex-a",kind="flex",project="p1"} 1.7723664e+09
backupd_native_snapshot_newest_timestamp_seconds{cluster="prod-a",kind="daily",project="p1"} 1.7724096e+09
backupd_native_snapshot_newest_timestamp_seconds{cluster="prod-a",kind="hourly",project="p1"} 1.7724312e+09
# HELP backupd_native_snapshots_failed Failed native snapshots Atlas lists for the cluster, per kind (absent: none).
# TYPE backupd_native_snapshots_failed gauge
backupd_native_snapshots_failed{cluster="prod-a",kind="daily",project="p1"} 1
# HELP backupd_native_snapshots_retained Completed native snapshots Atlas lists (retains) for the cluster, per kind.
# TYPE backupd_native_snapshots_retained gauge
backupd_native_snapshots_retained{cluster="flex-a",kind="flex",project="p1"} 1
backupd_native_snapshots_retained{cluster="prod-a",kind="daily",project="p1"} 1
backupd_native_snapshots_retained{cluster="prod-a",kind="hourly",project="p1"} 2
# HELP backupd_native_schedule_interval_seconds Longest time the cluster's backup schedule lets pass between two snapshots of the frequency.
# TYPE backupd_native_schedule_interval_seconds gauge
backupd_native_schedule_interval_seconds{cluster="prod-a",frequency="daily",project="p1"} 86400
backupd_native_schedule_interval_seconds{cluster="prod-a",frequency="hourly",project="p1"} 21600
backupd_native_schedule_interval_seconds{cluster="prod-b",frequency="hourly",project="p1"} 21600
# HELP backupd_native_schedule_next_snapshot_timestamp_seconds Unix time of the cluster's next scheduled snapshot, as Atlas says.
# TYPE backupd_native_schedule_next_snapshot_timestamp_seconds gauge
backupd_native_schedule_next_snapshot_timestamp_seconds{cluster="prod-a",project="p1"} 1.7724528e+09
# HELP backupd_native_schedule_retention_seconds How long the cluster's backup schedule keeps snapshots of the frequency (months of 30 days, years of 365).
# TYPE backupd_native_schedule_retention_seconds gauge
backupd_native_schedule_retention_seconds{cluster="prod-a",frequency="daily",project="p1"} 604800
backupd_native_schedule_retention_seconds{cluster="prod-a",frequency="hourly",project="p1"} 172800
backupd_native_schedule_retention_seconds{cluster="prod-b",frequency="hourly",project="p1"} 172800
# HELP backupd_native_compliance_required_interval_seconds Longest gap between two snapshots of the frequency the project's compliance policy allows.
# TYPE backupd_native_compliance_required_interval_seconds gauge
backupd_native_compliance_required_interval_seconds{frequency="daily",project="p1"} 86400
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), Metrics()...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) != 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}
}

func TestCollectorForgetAndInterval(t *testing.T) {
	c, reg := fleet(t)
	c.Forget(run.Target{ProjectID: "p1", Cluster: "prod-a"})
	c.Forget(run.Target{ProjectID: "p1", Cluster: "prod-b"})
	c.Forget(run.Target{ProjectID: "p2", Cluster: "off"})
	c.Forget(run.Target{ProjectID: "p3", Cluster: "blind"})
	c.SetInterval(10 * time.Minute)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" && l.GetValue() != "flex-a" {
					t.Errorf("%s still has a series of forgotten cluster %s", mf.GetName(), l.GetValue())
				}
				if l.GetName() == "project" && l.GetValue() != "p1" {
					t.Errorf("%s still has a series of project %s, whose clusters were all forgotten", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	const interval = `
# HELP backupd_monitor_interval_seconds How often the monitor reads each watched cluster.
# TYPE backupd_monitor_interval_seconds gauge
backupd_monitor_interval_seconds 600
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(interval), "backupd_monitor_interval_seconds"); err != nil {
		t.Error(err)
	}
}

// Every family the Collector exposes is documented in docs/metrics.md
// (its table row starts with the name), and the doc names no other
// backupd_native_ or backupd_monitor_ family.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Metrics() {
		if !strings.Contains(string(doc), "| `"+n+"` |") {
			t.Errorf("docs/metrics.md has no row for %s", n)
		}
	}
	for _, n := range regexp.MustCompile("`(backupd_(?:native|monitor)_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if !slices.Contains(Metrics(), n[1]) {
			t.Errorf("docs/metrics.md names %s, which the monitor does not expose", n[1])
		}
	}
}
