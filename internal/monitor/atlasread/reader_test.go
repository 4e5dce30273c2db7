package atlasread

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/monitor"
	"github.com/backupd/backupd/internal/run"
)

const proj = "32b6e34b3d91647abb20e7b8"

type fakeAtlas struct {
	mu         sync.Mutex
	clusters   []atlas.Cluster
	flex       []atlas.FlexCluster
	snaps      []atlas.Snapshot
	flexSnaps  []atlas.FlexSnapshot
	sched      *atlas.BackupSchedule
	compliance atlas.ProjectCompliance
	calls      map[string]int
	failSnaps  error
}

func (f *fakeAtlas) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

func (f *fakeAtlas) List(context.Context, string) ([]atlas.Cluster, error) {
	f.count("list")
	return f.clusters, nil
}
func (f *fakeAtlas) ListFlex(context.Context, string) ([]atlas.FlexCluster, error) {
	f.count("listFlex")
	return f.flex, nil
}
func (f *fakeAtlas) Schedule(context.Context, string, string) (*atlas.BackupSchedule, error) {
	f.count("schedule")
	return f.sched, nil
}
func (f *fakeAtlas) CompliancePolicy(context.Context, string) (atlas.ProjectCompliance, error) {
	f.count("compliance")
	return f.compliance, nil
}
func (f *fakeAtlas) Snapshots(_ context.Context, _, _ string, typ atlas.ClusterType) ([]atlas.Snapshot, error) {
	f.count("snapshots:" + string(typ))
	return f.snaps, f.failSnaps
}
func (f *fakeAtlas) FlexSnapshots(context.Context, string, string) ([]atlas.FlexSnapshot, error) {
	f.count("flexSnapshots")
	return f.flexSnaps, nil
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestReadMapsAtlasToTheMonitor: snapshot kinds, sizes, the schedule and
// the compliance policy of a dedicated cluster, and a flex cluster's
// statuses and times, as the monitor counts them.
func TestReadMapsAtlasToTheMonitor(t *testing.T) {
	clk := clock.NewFake(at("2026-03-02T10:00:00Z"))
	f := &fakeAtlas{
		clusters: []atlas.Cluster{{Name: "prod-a", ClusterType: atlas.ClusterSharded, BackupEnabled: true}, {Name: "off", ClusterType: atlas.ClusterReplicaSet}},
		flex:     []atlas.FlexCluster{{Name: "flex-a"}},
		snaps: []atlas.Snapshot{
			{Status: atlas.SnapshotCompleted, SnapshotType: atlas.SnapshotScheduled, FrequencyType: atlas.FrequencyHourly, CreatedAt: at("2026-03-02T09:00:00Z"), StorageSizeBytes: 2048},
			{Status: atlas.SnapshotFailed, SnapshotType: atlas.SnapshotOnDemand, CreatedAt: at("2026-03-02T08:00:00Z")},
			{Status: atlas.SnapshotCompleted, SnapshotType: atlas.SnapshotFallback, CreatedAt: at("2026-03-01T08:00:00Z")},
		},
		flexSnaps: []atlas.FlexSnapshot{
			{Status: atlas.FlexCompleted, StartTime: at("2026-03-02T01:00:00Z"), ScheduledTime: at("2026-03-02T00:00:00Z")},
			{Status: atlas.FlexPending, ScheduledTime: at("2026-03-02T09:30:00Z")},
			{Status: atlas.FlexRunning, StartTime: at("2026-03-02T09:40:00Z")},
			{Status: atlas.FlexFailed, StartTime: at("2026-03-01T01:00:00Z")},
		},
		sched: &atlas.BackupSchedule{ReferenceHourOfDay: 3, ReferenceMinuteOfHour: 15, NextSnapshot: at("2026-03-02T11:15:00Z"),
			Policies: []atlas.BackupPolicy{{PolicyItems: []atlas.PolicyItem{
				{FrequencyType: atlas.FrequencyHourly, FrequencyInterval: 0, RetentionUnit: atlas.RetentionDays, RetentionValue: 2},
				{FrequencyType: atlas.FrequencyDaily, FrequencyInterval: 1, RetentionUnit: atlas.RetentionWeeks, RetentionValue: 1},
			}}}},
		compliance: atlas.ProjectCompliance{InForce: true, Policy: atlas.CompliancePolicy{
			ScheduledPolicyItems: []atlas.PolicyItem{{FrequencyType: atlas.FrequencyDaily, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 14}},
			OnDemandPolicyItem:   &atlas.PolicyItem{FrequencyType: atlas.FrequencyOnDemand, RetentionUnit: atlas.RetentionDays, RetentionValue: 3}}},
	}
	r := New(f, f, clk, time.Hour)
	ts, err := r.Clusters(context.Background(), proj)
	want := []run.Target{{ProjectID: proj, Cluster: "prod-a"}, {ProjectID: proj, Cluster: "off"}, {ProjectID: proj, Cluster: "flex-a"}}
	if err != nil || !slices.Equal(ts, want) {
		t.Fatalf("Clusters = %v, %v", ts, err)
	}
	clk.Advance(time.Minute)

	rd, err := r.Read(context.Background(), want[0])
	if err != nil {
		t.Fatal(err)
	}
	wantSnaps := []monitor.Snapshot{
		{Kind: monitor.KindHourly, Status: monitor.StatusCompleted, CreatedAt: at("2026-03-02T09:00:00Z"), SizeBytes: 2048},
		{Kind: monitor.KindOnDemand, Status: monitor.StatusFailed, CreatedAt: at("2026-03-02T08:00:00Z")},
		{Kind: monitor.KindFallback, Status: monitor.StatusCompleted, CreatedAt: at("2026-03-01T08:00:00Z")},
	}
	if !slices.Equal(rd.Snapshots, wantSnaps) || rd.Flex || !rd.BackupEnabled || !rd.Since.Equal(at("2026-03-02T10:00:00Z")) {
		t.Errorf("dedicated reading %+v", rd)
	}
	if f.calls["snapshots:SHARDED"] != 1 {
		t.Errorf("snapshots not listed by the cluster's topology: %v", f.calls)
	}
	s := rd.Schedule
	if s == nil || s.ReferenceHour != 3 || s.ReferenceMinute != 15 || !s.NextSnapshot.Equal(at("2026-03-02T11:15:00Z")) || len(s.Items) != 2 ||
		s.Items[0] != (monitor.PolicyItem{Frequency: monitor.FrequencyHourly, Interval: 0, RetentionUnit: monitor.RetentionDays, RetentionValue: 2}) {
		t.Errorf("schedule %+v", s)
	}
	c := rd.Compliance
	if c == nil || len(c.ScheduledItems) != 1 || c.ScheduledItems[0].RetentionValue != 14 || c.OnDemandItem == nil || c.OnDemandItem.Frequency != monitor.FrequencyOnDemand {
		t.Errorf("compliance %+v", c)
	}
	// The hourly item of interval 0 is every hour, for the monitor and
	// for the Atlas client alike.
	a := monitor.Assess(rd, clk.Now(), 0)
	if len(a.Promises) == 0 || a.Promises[0].MaxGap != time.Hour || a.Promises[0].MaxGap != f.sched.PolicyItems()[0].Interval() {
		t.Errorf("hourly 0: promises %+v", a.Promises)
	}

	off, err := r.Read(context.Background(), want[1])
	if err != nil || off.BackupEnabled || off.Schedule != nil || f.calls["schedule"] != 1 {
		t.Errorf("backup disabled: %+v %v (calls %v)", off, err, f.calls)
	}

	fl, err := r.Read(context.Background(), want[2])
	wantFlex := []monitor.Snapshot{
		{Kind: monitor.KindFlex, Status: monitor.StatusCompleted, CreatedAt: at("2026-03-02T01:00:00Z")},
		{Kind: monitor.KindFlex, Status: monitor.StatusQueued, CreatedAt: at("2026-03-02T09:30:00Z")},
		{Kind: monitor.KindFlex, Status: monitor.StatusInProgress, CreatedAt: at("2026-03-02T09:40:00Z")},
		{Kind: monitor.KindFlex, Status: monitor.StatusFailed, CreatedAt: at("2026-03-01T01:00:00Z")},
	}
	if err != nil || !fl.Flex || fl.Schedule != nil || !slices.Equal(fl.Snapshots, wantFlex) {
		t.Errorf("flex reading %+v %v", fl, err)
	}
}

// TestComplianceReadOncePerProjectPerInterval: a project's clusters share
// one compliance call per interval; a project without a policy is nil.
func TestComplianceReadOncePerProjectPerInterval(t *testing.T) {
	clk := clock.NewFake(at("2026-03-02T10:00:00Z"))
	f := &fakeAtlas{clusters: []atlas.Cluster{{Name: "a", ClusterType: atlas.ClusterReplicaSet}, {Name: "b", ClusterType: atlas.ClusterReplicaSet}}}
	r := New(f, f, clk, time.Hour)
	ts, err := r.Clusters(context.Background(), proj)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, tg := range ts {
		wg.Go(func() {
			if rd, err := r.Read(context.Background(), tg); err != nil || rd.Compliance != nil {
				t.Errorf("read %s: %+v %v", tg, rd, err)
			}
		})
	}
	wg.Wait()
	if f.calls["compliance"] != 1 {
		t.Fatalf("compliance calls %d for two clusters of one project, want 1", f.calls["compliance"])
	}
	clk.Advance(time.Hour)
	if _, err := r.Read(context.Background(), ts[0]); err != nil || f.calls["compliance"] != 2 {
		t.Fatalf("after an interval: %v, calls %d, want 2", err, f.calls["compliance"])
	}
}

// TestReadErrors: a cluster not listed and a failing snapshot list are
// errors (never a Reading with gaps); Since stays when listed again and
// restarts after Forget.
func TestReadErrors(t *testing.T) {
	clk := clock.NewFake(at("2026-03-02T10:00:00Z"))
	f := &fakeAtlas{clusters: []atlas.Cluster{{Name: "a", ClusterType: atlas.ClusterReplicaSet}}}
	r := New(f, f, clk, time.Hour)
	tg := run.Target{ProjectID: proj, Cluster: "a"}
	if _, err := r.Read(context.Background(), tg); err == nil {
		t.Fatal("read of a cluster never listed succeeded")
	}
	if _, err := r.Clusters(context.Background(), proj); err != nil {
		t.Fatal(err)
	}
	f.failSnaps = errors.New("boom")
	if _, err := r.Read(context.Background(), tg); err == nil || !errors.Is(err, f.failSnaps) {
		t.Fatalf("failing snapshots: %v", err)
	}
	f.failSnaps = nil
	clk.Advance(time.Hour)
	_, _ = r.Clusters(context.Background(), proj)
	if rd, _ := r.Read(context.Background(), tg); !rd.Since.Equal(at("2026-03-02T10:00:00Z")) {
		t.Errorf("since moved on a second listing: %s", rd.Since)
	}
	r.Forget(tg)
	_, _ = r.Clusters(context.Background(), proj)
	if rd, _ := r.Read(context.Background(), tg); !rd.Since.Equal(clk.Now()) {
		t.Errorf("since after forget: %s", rd.Since)
	}
}
