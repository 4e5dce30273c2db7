package atlassim

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// advance moves the simulated clock and fetches a fresh token (tokens live 1h).
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clk.Advance(d)
	h.token = h.fetchToken(DemoClientID, DemoClientSecret)
}

func (h *harness) nativeSnapshots(cluster string, sharded bool) []atlas.Snapshot {
	h.t.Helper()
	path := base + "/clusters/" + cluster + "/backup/snapshots"
	if sharded {
		path += "/shardedClusters"
	} else {
		path += "?itemsPerPage=500"
	}
	return decode[atlas.Page[atlas.Snapshot]](h.t, h.must(h.get(path), http.StatusOK)).Results
}

func (h *harness) schedule(cluster string) atlas.BackupSchedule {
	h.t.Helper()
	return decode[atlas.BackupSchedule](h.t, h.must(h.get(base+"/clusters/"+cluster+"/backup/schedule"), http.StatusOK))
}

func item(f atlas.FrequencyType, interval int, unit atlas.RetentionUnit, value int) atlas.PolicyItem {
	return atlas.PolicyItem{FrequencyType: f, FrequencyInterval: interval, RetentionUnit: unit, RetentionValue: value}
}

// threeItems: every 6 hours kept 2 days, daily kept 7 days, weekly on
// Saturday kept 4 weeks, all anchored at 03:00 UTC.
var threeItems = ScheduleSpec{ReferenceHourOfDay: 3, Items: []atlas.PolicyItem{
	item(atlas.FrequencyHourly, 6, atlas.RetentionDays, 2),
	item(atlas.FrequencyDaily, 1, atlas.RetentionDays, 7),
	item(atlas.FrequencyWeekly, 6, atlas.RetentionWeeks, 4),
}}

func countBy(snaps []atlas.Snapshot) map[atlas.FrequencyType]int {
	out := map[atlas.FrequencyType]int{}
	for _, sn := range snaps {
		out[sn.FrequencyType]++
	}
	return out
}

// TestNativeScheduleTakesSnapshotsOnTheClock runs a schedule for 8 virtual
// days from Monday 2026-03-02 12:00 and checks what Atlas would list: each
// occurrence once, labelled with its least frequent item, kept as long as
// the longest of them, and the expired ones gone.
func TestNativeScheduleTakesSnapshotsOnTheClock(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.AddCluster(pid, ClusterSpec{Name: "native-rs", BackupEnabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.SetSchedule(pid, "native-rs", threeItems); err != nil {
		t.Fatal(err)
	}
	if got := h.nativeSnapshots("native-rs", false); len(got) != 0 {
		t.Fatalf("a new schedule without backfill already has %d snapshots", len(got))
	}
	sch := h.schedule("native-rs")
	if want := t0.Add(3 * time.Hour); !sch.NextSnapshot.Equal(want) { // 15:00 Monday
		t.Errorf("nextSnapshot %s, want %s", sch.NextSnapshot, want)
	}
	if len(sch.Policies) != 1 || len(sch.PolicyItems()) != 3 || sch.ReferenceHourOfDay != 3 {
		t.Fatalf("schedule %+v", sch)
	}
	ids := map[atlas.FrequencyType]string{}
	for _, it := range sch.PolicyItems() {
		ids[it.FrequencyType] = it.ID
	}

	h.advance(8 * 24 * time.Hour) // Tuesday 2026-03-10 12:00
	snaps := h.nativeSnapshots("native-rs", false)
	// Hourly (kept 2 days, from Sunday 12:00): Sun 15,21; Mon 09,15,21; Tue 09
	// (the 03:00 ones are daily). Daily (kept 7 days, from Tue 03-03 12:00):
	// Wed..Fri, Sun..Tue; Saturday 03-07 03:00 is weekly.
	want := map[atlas.FrequencyType]int{atlas.FrequencyHourly: 6, atlas.FrequencyDaily: 6, atlas.FrequencyWeekly: 1}
	if got := countBy(snaps); len(got) != len(want) || got[atlas.FrequencyHourly] != 6 || got[atlas.FrequencyDaily] != 6 || got[atlas.FrequencyWeekly] != 1 {
		t.Errorf("snapshots by frequency %v, want %v", got, want)
	}
	for _, sn := range snaps {
		if sn.SnapshotType != atlas.SnapshotScheduled || sn.Status != atlas.SnapshotCompleted || sn.StorageSizeBytes <= 0 {
			t.Errorf("snapshot %+v: want a completed scheduled snapshot with a size", sn)
		}
		if sn.CreatedAt.Hour()%6 != 3 || sn.CreatedAt.Minute() != 0 {
			t.Errorf("snapshot created at %s, off the 03:00 + 6h grid", sn.CreatedAt)
		}
		switch sn.FrequencyType {
		case atlas.FrequencyWeekly:
			if sn.CreatedAt.Weekday() != time.Saturday || !sn.ExpiresAt.Equal(sn.CreatedAt.Add(28*24*time.Hour)) ||
				len(sn.PolicyItems) != 3 {
				t.Errorf("weekly snapshot %+v: want Saturday, kept 4 weeks, taken for all three items", sn)
			}
		case atlas.FrequencyDaily:
			if !sn.ExpiresAt.Equal(sn.CreatedAt.Add(7*24*time.Hour)) || len(sn.PolicyItems) != 2 || sn.PolicyItems[1] != ids[atlas.FrequencyDaily] {
				t.Errorf("daily snapshot %+v: want kept 7 days, taken for the hourly and daily items", sn)
			}
		case atlas.FrequencyHourly:
			if !sn.ExpiresAt.Equal(sn.CreatedAt.Add(48*time.Hour)) || len(sn.PolicyItems) != 1 || sn.PolicyItems[0] != ids[atlas.FrequencyHourly] {
				t.Errorf("hourly snapshot %+v: want kept 2 days, taken for the hourly item", sn)
			}
		}
	}
	if !snaps[0].CreatedAt.Equal(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("newest snapshot %s, want 09:00 today (newest first)", snaps[0].CreatedAt)
	}
	if next := h.schedule("native-rs").NextSnapshot; !next.Equal(time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("nextSnapshot %s, want 15:00 today", next)
	}

	// A snapshot due now is queued, then in progress, then completed.
	h.advance(3 * time.Hour)
	if got := h.nativeSnapshots("native-rs", false)[0]; got.Status != atlas.SnapshotQueued || got.StorageSizeBytes != 0 {
		t.Errorf("snapshot due this instant: %+v, want queued without a size", got)
	}
}

func TestNativeScheduleOccurrences(t *testing.T) {
	sch := &schedule{refHour: 23, refMinute: 30}
	from := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)
	tests := []struct {
		name  string
		it    atlas.PolicyItem
		count int
		first time.Time
	}{
		{"monthly on the last day", item(atlas.FrequencyMonthly, 40, atlas.RetentionMonths, 1), 12, time.Date(2026, 1, 31, 23, 30, 0, 0, time.UTC)},
		{"monthly on the 28th", item(atlas.FrequencyMonthly, 28, atlas.RetentionMonths, 1), 11, time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC)},
		{"weekly on Sunday", item(atlas.FrequencyWeekly, 7, atlas.RetentionWeeks, 1), 48, time.Date(2026, 2, 1, 23, 30, 0, 0, time.UTC)},
		{"weekly on Monday", item(atlas.FrequencyWeekly, 1, atlas.RetentionWeeks, 1), 48, time.Date(2026, 2, 2, 23, 30, 0, 0, time.UTC)},
		{"yearly in March", item(atlas.FrequencyYearly, 3, atlas.RetentionYears, 1), 1, time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)},
		{"every 12 hours", item(atlas.FrequencyHourly, 12, atlas.RetentionDays, 1), 2 * 335, time.Date(2026, 1, 31, 11, 30, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			occ := sch.occurrences(tc.it, from, to)
			if len(occ) != tc.count || !occ[0].Equal(tc.first) {
				t.Errorf("%d occurrences from %v, want %d from %s", len(occ), occ[:min(2, len(occ))], tc.count, tc.first)
			}
			for i := 1; i < len(occ); i++ {
				if !occ[i].After(occ[i-1]) {
					t.Fatalf("occurrences out of order at %d: %s then %s", i, occ[i-1], occ[i])
				}
			}
		})
	}
}

// TestNativeScheduleStallsFailsAndFallsBack drives the faults a monitor
// must see: a schedule that stops (nextSnapshot stuck in the past), failed
// scheduled snapshots, a fallback snapshot, backup switched off.
func TestNativeScheduleStallsFailsAndFallsBack(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.AddCluster(pid, ClusterSpec{Name: "native-rs", BackupEnabled: true}); err != nil {
		t.Fatal(err)
	}
	daily := ScheduleSpec{Items: []atlas.PolicyItem{item(atlas.FrequencyDaily, 1, atlas.RetentionDays, 30)}, Backfill: 72 * time.Hour}
	if err := h.sim.SetSchedule(pid, "native-rs", daily); err != nil {
		t.Fatal(err)
	}
	if n := len(h.nativeSnapshots("native-rs", false)); n != 3 {
		t.Fatalf("%d snapshots after a 72h backfill, want 3 (the last three midnights)", n)
	}

	// Stalled: nothing is taken and nextSnapshot stays at the first missed one.
	if err := h.sim.StallSchedule(pid, "native-rs", true); err != nil {
		t.Fatal(err)
	}
	h.advance(48 * time.Hour)
	if n := len(h.nativeSnapshots("native-rs", false)); n != 3 {
		t.Errorf("%d snapshots after two stalled days, want still 3", n)
	}
	if next := h.schedule("native-rs").NextSnapshot; !next.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("stalled nextSnapshot %s, want the first missed midnight 2026-03-03", next)
	}
	if err := h.sim.StallSchedule(pid, "native-rs", false); err != nil {
		t.Fatal(err)
	}

	// The next scheduled snapshot fails; the one after completes.
	if err := h.sim.FailScheduledSnapshots(pid, "native-rs", 1); err != nil {
		t.Fatal(err)
	}
	h.advance(48 * time.Hour)
	snaps := h.nativeSnapshots("native-rs", false)
	if len(snaps) != 5 || snaps[0].Status != atlas.SnapshotCompleted || snaps[1].Status != atlas.SnapshotFailed || snaps[1].StorageSizeBytes != 0 {
		t.Fatalf("after resuming with one failure: %d snapshots, newest %+v, %+v", len(snaps), snaps[0], snaps[1])
	}

	// A fallback snapshot, on demand, through the admin API.
	r := decode[AdminNative](t, h.must(h.admin("POST", "/_sim/native/"+pid+"/native-rs", `{"fallback":"completed"}`), http.StatusOK))
	h.advance(DefaultTimings.SnapshotQueued + DefaultTimings.SnapshotInProgress)
	if fb := h.nativeSnapshots("native-rs", false)[0]; fb.ID != r.FallbackID || fb.SnapshotType != atlas.SnapshotFallback ||
		fb.Status != atlas.SnapshotCompleted || fb.FrequencyType != "" {
		t.Errorf("fallback snapshot %+v (admin said %s)", fb, r.FallbackID)
	}

	// Backup off: the schedule is gone (404) and nothing is taken meanwhile.
	if err := h.sim.SetBackupEnabled(pid, "native-rs", false); err != nil {
		t.Fatal(err)
	}
	expectError(t, h.get(base+"/clusters/native-rs/backup/schedule"), http.StatusNotFound, atlas.CodeBackupConfigNotFound)
	h.advance(72 * time.Hour)
	if err := h.sim.SetBackupEnabled(pid, "native-rs", true); err != nil {
		t.Fatal(err)
	}
	if got := h.nativeSnapshots("native-rs", false); got[0].ID != r.FallbackID {
		t.Errorf("newest after 3 days without backup: %+v, want still the fallback snapshot", got[0])
	}
	h.advance(24 * time.Hour)
	if got := h.nativeSnapshots("native-rs", false); !got[0].CreatedAt.Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("newest a day after backup came back: %s, want midnight 2026-03-10", got[0].CreatedAt)
	}
	expectError(t, h.get(base+"/clusters/sandbox/backup/schedule"), http.StatusBadRequest, atlas.CodeProviderBackupNotSupported)
}

func TestNativeScheduleOfShardedCluster(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.SetSchedule(pid, "prod-shards", ScheduleSpec{Items: []atlas.PolicyItem{item(atlas.FrequencyHourly, 4, atlas.RetentionDays, 1)}}); err != nil {
		t.Fatal(err)
	}
	h.advance(25 * time.Hour)
	snaps := h.nativeSnapshots("prod-shards", true)
	if len(snaps) != 6 { // every 4 hours within the last day
		t.Fatalf("%d sharded snapshots, want 6", len(snaps))
	}
	for _, sn := range snaps {
		if sn.Type != atlas.KindShardedCluster || len(sn.Members) != 3 || sn.FrequencyType != atlas.FrequencyHourly {
			t.Errorf("sharded scheduled snapshot %+v", sn)
		}
	}
	if rs := h.nativeSnapshots("prod-shards", false); len(rs) != 0 {
		t.Errorf("%d sharded snapshots on the replica-set endpoint", len(rs))
	}
}

func TestNativeScheduleRejectsWhatAtlasRejects(t *testing.T) {
	h := newHarness(t, Options{})
	bad := []ScheduleSpec{
		{Items: []atlas.PolicyItem{item(atlas.FrequencyHourly, 5, atlas.RetentionDays, 1)}},
		{Items: []atlas.PolicyItem{item(atlas.FrequencyWeekly, 8, atlas.RetentionDays, 1)}},
		{Items: []atlas.PolicyItem{item(atlas.FrequencyMonthly, 29, atlas.RetentionDays, 1)}},
		{Items: []atlas.PolicyItem{item(atlas.FrequencyDaily, 1, "fortnights", 1)}},
		{Items: []atlas.PolicyItem{item(atlas.FrequencyDaily, 1, atlas.RetentionDays, 0)}},
		{Items: []atlas.PolicyItem{item(atlas.FrequencyOnDemand, 0, atlas.RetentionDays, 1)}},
		{Items: []atlas.PolicyItem{item(atlas.FrequencyDaily, 1, atlas.RetentionDays, 1), item(atlas.FrequencyDaily, 1, atlas.RetentionDays, 2)}},
		{ReferenceHourOfDay: 24},
	}
	for i, sp := range bad {
		if err := h.sim.SetSchedule(pid, "prod-main", sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: SetSchedule = %v, want ErrInvalid", i, err)
		}
	}
	if err := h.sim.SetSchedule(pid, "nope", DefaultSchedule()); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown cluster: %v", err)
	}
	if err := h.sim.StallSchedule(pid, "prod-main", true); !errors.Is(err, ErrInvalid) {
		t.Errorf("stalling a cluster without schedule: %v", err)
	}
}

func TestCompliancePolicy(t *testing.T) {
	h := newHarness(t, Options{})
	path := base + "/backupCompliancePolicy"
	expectError(t, h.get(path), http.StatusNotFound, atlas.CodeResourceNotFound)
	body := `{"policy":{"scheduledPolicyItems":[{"frequencyType":"daily","frequencyInterval":1,"retentionUnit":"days","retentionValue":14}],
		"onDemandPolicyItem":{"frequencyType":"ondemand","frequencyInterval":0,"retentionUnit":"days","retentionValue":3},"copyProtectionEnabled":true}}`
	h.must(h.admin("POST", "/_sim/compliance/"+pid, body), http.StatusOK)
	got := decode[atlas.CompliancePolicy](t, h.must(h.get(path), http.StatusOK))
	if got.ProjectID != pid || got.State != atlas.ComplianceActive || !got.CopyProtectionEnabled || len(got.ScheduledPolicyItems) != 1 ||
		got.ScheduledPolicyItems[0].Retention() != 14*24*time.Hour || got.OnDemandPolicyItem == nil || got.OnDemandPolicyItem.RetentionValue != 3 ||
		!hexIDPattern.MatchString(got.ScheduledPolicyItems[0].ID) {
		t.Errorf("compliance policy %+v", got)
	}
	h.must(h.admin("POST", "/_sim/compliance/"+pid, `{}`), http.StatusOK)
	expectError(t, h.get(path), http.StatusNotFound, atlas.CodeResourceNotFound)
	if r := h.admin("POST", "/_sim/compliance/"+pid, `{"policy":{"scheduledPolicyItems":[{"frequencyType":"hourly","frequencyInterval":3,"retentionUnit":"days","retentionValue":1}]}}`); r.code != http.StatusBadRequest {
		t.Errorf("bad compliance item: admin status %d", r.code)
	}
	if r := h.admin("POST", "/_sim/native/"+pid+"/prod-main", `{"stalled":true}`); r.code != http.StatusBadRequest {
		t.Errorf("stalling a cluster without a schedule: admin status %d", r.code)
	}
	if r := h.admin("POST", "/_sim/native/"+pid+"/nope", `{"fallback":"completed"}`); r.code != http.StatusNotFound {
		t.Errorf("unknown cluster: admin status %d", r.code)
	}
}

func TestFixtureScheduleAndCompliance(t *testing.T) {
	dir := t.TempDir()
	good := `projects:
- id: ` + pid + `
  clusters:
  - name: prod
    schedule:
      default: true
      backfill: 48h
  - name: weekly-only
    schedule:
      referenceHourOfDay: 4
      stalled: true
      policyItems:
      - {frequencyType: weekly, frequencyInterval: 7, retentionUnit: weeks, retentionValue: 8}
  compliancePolicy:
    scheduledPolicyItems:
    - {frequencyType: daily, frequencyInterval: 1, retentionUnit: days, retentionValue: 7}
`
	file := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFixture(file)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{})
	s := New(Options{Clock: h.clk})
	if err := f.Apply(s); err != nil {
		t.Fatal(err)
	}
	h.sim = s
	s.AddServiceAccount(DemoClientID, DemoClientSecret)
	h.token = h.fetchToken(DemoClientID, DemoClientSecret)
	if n := countBy(h.nativeSnapshots("prod", false)); n[atlas.FrequencyHourly]+n[atlas.FrequencyDaily] != 8 {
		t.Errorf("default schedule with 48h backfill: %v, want 8 snapshots (every 6 hours)", n)
	}
	if sch := h.schedule("weekly-only"); len(sch.PolicyItems()) != 1 || sch.NextSnapshot.Hour() != 4 || sch.NextSnapshot.Weekday() != time.Sunday {
		t.Errorf("weekly-only schedule %+v", sch)
	}
	if cp := decode[atlas.CompliancePolicy](t, h.must(h.get(base+"/backupCompliancePolicy"), http.StatusOK)); len(cp.ScheduledPolicyItems) != 1 {
		t.Errorf("fixture compliance policy %+v", cp)
	}

	if d := s.Describe(); !strings.Contains(d, "schedule=1-items(stalled)") || !strings.Contains(d, "schedule=4-items") ||
		!strings.Contains(d, "backup compliance policy: 1 scheduled items") {
		t.Errorf("Describe does not show the schedules and the policy:\n%s", d)
	}

	bad := strings.Replace(good, "frequencyInterval: 7, retentionUnit: weeks", "frequencyInterval: 9, retentionUnit: weeks", 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFixture(file)
	if err == nil || !strings.Contains(err.Error(), file+":9: projects[0].clusters[1].schedule: ") || !strings.Contains(err.Error(), "frequencyInterval 9") {
		t.Errorf("bad schedule item: %v, want it located at line 9", err)
	}
}
