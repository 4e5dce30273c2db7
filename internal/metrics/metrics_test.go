package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/backupd/backupd/internal/run"
)

var (
	t0    = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	prodA = run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-a"}
	prodB = run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-b"}
)

// script drives one run through stages, emitting the events the engine
// would, each stage lasting step.
type script struct {
	t    *testing.T
	m    *Metrics
	r    run.Run
	now  time.Time
	step time.Duration
}

func newScript(t *testing.T, m *Metrics, policy string, action run.Action, tg run.Target, slot time.Time) *script {
	r := run.Run{
		ID: run.NewID(policy, tg.ProjectID, tg.Cluster, slot, false), Policy: policy, Action: action,
		Target: tg, Slot: slot, ScheduledAt: slot, Stage: run.StagePending, CreatedAt: slot, StageStartedAt: slot, UpdatedAt: slot,
	}
	s := &script{t: t, m: m, r: r, now: slot, step: time.Minute}
	m.Observe(run.Event{Run: r, At: slot})
	return s
}

// to moves the run to stage after s.step, letting mutate set fields first.
func (s *script) to(stage run.Stage, mutate func(*run.Run)) run.Event {
	from := s.r.Stage
	s.now = s.now.Add(s.step)
	if mutate != nil {
		mutate(&s.r)
	}
	s.r.Stage = stage
	s.r.StageStartedAt, s.r.UpdatedAt = s.now, s.now
	if stage.Terminal() {
		s.r.FinishedAt = s.now
	}
	e := run.Event{Run: s.r, From: from, At: s.now, StageDuration: s.step}
	s.m.Observe(e)
	return e
}

func gauge(t *testing.T, v *prometheus.GaugeVec, labels ...string) float64 {
	t.Helper()
	return testutil.ToFloat64(v.WithLabelValues(labels...))
}

// tv is the value of the per-target series of family name with the label
// values policy, project, cluster (and the family's fourth label), read
// through Gatherer; the test fails if it does not exist.
func tv(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	mf := family(t, m, name)
	names := []string{"policy", "project", "cluster", "result", "reason", "stage"}
	for _, mt := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range mt.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		match := len(got) == len(labels)
		for i, want := range labels {
			n := names[i]
			if i == 3 {
				n = mf.GetMetric()[0].GetLabel()[3].GetName()
			}
			match = match && got[n] == want
		}
		if !match {
			continue
		}
		if mt.GetCounter() != nil {
			return mt.GetCounter().GetValue()
		}
		return mt.GetGauge().GetValue()
	}
	t.Fatalf("%s%v: no such series", name, labels)
	return 0
}

// tcount is how many series family name has.
func tcount(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	return len(family(t, m, name).GetMetric())
}

// family gathers family name through Gatherer (empty if absent).
func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return &dto.MetricFamily{}
}

func TestExpositionPassesPromlint(t *testing.T) {
	m := New("v1.2.3")
	m.SetPolicies([]PolicyInfo{{Name: "nightly", Action: "snapshot", Schedule: "0 2 * * *", Timezone: "UTC", Interval: 24 * time.Hour}})
	m.SetNextRun("nightly", prodA, t0.Add(24*time.Hour))
	m.ObserveAtlasRequest("getSnapshot", "200", 120*time.Millisecond, false)
	m.ObserveAtlasRequest("takeSnapshot", "429", 10*time.Millisecond, true)
	s := newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0)
	s.to(run.StageWaiting, nil)
	s.to(run.StageSnapshotting, nil)
	s.to(run.StageSucceeded, func(r *run.Run) { r.SnapshotStatus = "completed"; r.SnapshotBytes = 1 << 30 })
	m.ConfigReload(true)

	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestEveryDesignMetricIsExposed(t *testing.T) {
	m := New("v1")
	m.SetPolicies([]PolicyInfo{{Name: "p", Action: "snapshot", Schedule: "@daily", Timezone: "UTC", Interval: 24 * time.Hour}})
	m.SetNextRun("p", prodA, t0)
	m.ObserveAtlasRequest("op", "429", time.Second, true)
	s := newScript(t, m, "p", run.ActionSnapshot, prodA, t0)
	s.to(run.StageWaiting, nil)
	s.to(run.StageSnapshotting, nil)
	s.to(run.StageSucceeded, func(r *run.Run) { r.SnapshotStatus = "completed"; r.SnapshotBytes = 10 })
	skip := newScript(t, m, "p", run.ActionSnapshot, prodB, t0)
	skip.to(run.StageSkipped, func(r *run.Run) { r.Reason = run.ReasonOverlap })

	want := map[string]string{ // name -> type, from DESIGN.md's Metrics table
		"backupd_build_info":                     "GAUGE",
		"backupd_policy_info":                    "GAUGE",
		"backupd_runs_total":                     "COUNTER",
		"backupd_runs_skipped_total":             "COUNTER",
		"backupd_stage_duration_seconds":         "HISTOGRAM",
		"backupd_last_success_timestamp_seconds": "GAUGE",
		"backupd_last_run_success":               "GAUGE",
		"backupd_next_run_timestamp_seconds":     "GAUGE",
		"backupd_schedule_interval_seconds":      "GAUGE",
		"backupd_inflight_runs":                  "GAUGE",
		"backupd_snapshot_size_bytes":            "GAUGE",
		"backupd_atlas_requests_total":           "COUNTER",
		"backupd_atlas_request_duration_seconds": "HISTOGRAM",
		"backupd_atlas_rate_limited_total":       "COUNTER",
		"backupd_atlas_budget_wait_seconds":      "HISTOGRAM", // not in the design: issue 15's budget priorities
		"backupd_config_reloads_total":           "COUNTER",
		"backupd_journal_write_errors_total":     "COUNTER",
	}
	labels := map[string][]string{
		"backupd_build_info":                     {"goversion", "version"},
		"backupd_policy_info":                    {"action", "policy", "schedule", "timezone"},
		"backupd_runs_total":                     {"cluster", "policy", "project", "result"},
		"backupd_runs_skipped_total":             {"cluster", "policy", "project", "reason"},
		"backupd_stage_duration_seconds":         {"policy", "stage"},
		"backupd_last_success_timestamp_seconds": {"cluster", "policy", "project", "stage"},
		"backupd_last_run_success":               {"cluster", "policy", "project"},
		"backupd_next_run_timestamp_seconds":     {"cluster", "policy", "project"},
		"backupd_schedule_interval_seconds":      {"policy"},
		"backupd_inflight_runs":                  {"stage"},
		"backupd_snapshot_size_bytes":            {"cluster", "policy", "project"},
		"backupd_atlas_requests_total":           {"code", "operation"},
		"backupd_atlas_request_duration_seconds": {"operation"},
		"backupd_atlas_rate_limited_total":       {"operation"},
		"backupd_atlas_budget_wait_seconds":      {"priority"},
		"backupd_config_reloads_total":           {"result"},
		"backupd_journal_write_errors_total":     nil,
	}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	sawGo, sawProcess := false, false
	for _, mf := range mfs {
		name := mf.GetName()
		sawGo = sawGo || strings.HasPrefix(name, "go_")
		sawProcess = sawProcess || strings.HasPrefix(name, "process_")
		typ, ok := want[name]
		if !ok {
			if strings.HasPrefix(name, "backupd_") {
				t.Errorf("unexpected metric %s", name)
			}
			continue
		}
		got[name] = true
		if mf.GetType().String() != typ {
			t.Errorf("%s: type %s, want %s", name, mf.GetType(), typ)
		}
		var ls []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			ls = append(ls, lp.GetName())
		}
		if strings.Join(ls, ",") != strings.Join(labels[name], ",") {
			t.Errorf("%s: labels %v, want %v", name, ls, labels[name])
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("metric %s not exposed", name)
		}
	}
	if !sawGo || !sawProcess {
		t.Errorf("go collector present %v, process collector present %v; want both", sawGo, sawProcess)
	}
}

func TestBuildInfo(t *testing.T) {
	m := New("v9.9.9")
	want := `
# HELP backupd_build_info Build of the running daemon; always 1.
# TYPE backupd_build_info gauge
backupd_build_info{goversion="` + runtime.Version() + `",version="v9.9.9"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_build_info"); err != nil {
		t.Error(err)
	}
}

func TestScriptedSnapshotExportRun(t *testing.T) {
	m := New("v1")
	s := newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0)
	if got := gauge(t, m.inflight, "pending"); got != 1 {
		t.Fatalf("inflight pending = %v, want 1", got)
	}
	s.step = 30 * time.Second
	s.to(run.StageWaiting, nil)
	s.step = 10 * time.Second
	s.to(run.StageSnapshotting, func(r *run.Run) { r.SnapshotRequested = true })
	if got := gauge(t, m.inflight, "pending") + gauge(t, m.inflight, "waiting"); got != 0 {
		t.Errorf("inflight pending+waiting = %v after moving on, want 0", got)
	}
	if got := gauge(t, m.inflight, "snapshotting"); got != 1 {
		t.Errorf("inflight snapshotting = %v, want 1", got)
	}
	// A progress note changes nothing, even with fields set.
	m.Observe(run.Event{Run: s.r, From: run.StageSnapshotting, At: s.now, Note: "snapshot inProgress", StageDuration: time.Hour})
	if n := testutil.CollectAndCount(m.stageDuration); n != 1 {
		t.Errorf("stage duration series = %d after a progress note, want 1 (wait only)", n)
	}

	s.step = 20 * time.Minute
	snapDone := s.to(run.StageExporting, func(r *run.Run) {
		r.SnapshotID, r.SnapshotStatus, r.SnapshotBytes = "6650c0f9a2b3c4d5e6f70819", "completed", 5<<30
		r.ExportJobID, r.ExportBucketID = "6650c0f9a2b3c4d5e6f7081a", "32b6e34b3d91647abb20e7b9"
	})
	if got := tv(t, m, "backupd_last_success_timestamp_seconds", "nightly", prodA.ProjectID, prodA.Cluster, "snapshot"); got != unixSeconds(snapDone.At) {
		t.Errorf("last snapshot success = %v, want %v", got, unixSeconds(snapDone.At))
	}
	if got := tv(t, m, "backupd_snapshot_size_bytes", "nightly", prodA.ProjectID, prodA.Cluster); got != 5<<30 {
		t.Errorf("snapshot size = %v, want %v", got, 5<<30)
	}
	if tcount(t, m, "backupd_runs_total") != 0 {
		t.Error("runs_total counted before the run ended")
	}

	s.step = 2 * time.Hour
	done := s.to(run.StageSucceeded, func(r *run.Run) { r.ExportState = "Successful" })

	if got := tv(t, m, "backupd_runs_total", "nightly", prodA.ProjectID, prodA.Cluster, "success"); got != 1 {
		t.Errorf("runs_total success = %v, want 1", got)
	}
	if got := tv(t, m, "backupd_last_run_success", "nightly", prodA.ProjectID, prodA.Cluster); got != 1 {
		t.Errorf("last_run_success = %v, want 1", got)
	}
	if got := tv(t, m, "backupd_last_success_timestamp_seconds", "nightly", prodA.ProjectID, prodA.Cluster, "export"); got != unixSeconds(done.At) {
		t.Errorf("last export success = %v, want %v", got, unixSeconds(done.At))
	}
	if got := tv(t, m, "backupd_last_success_timestamp_seconds", "nightly", prodA.ProjectID, prodA.Cluster, "snapshot"); got != unixSeconds(snapDone.At) {
		t.Errorf("last snapshot success moved to %v on export success, want %v", got, unixSeconds(snapDone.At))
	}
	if n := tcount(t, m, "backupd_last_success_timestamp_seconds"); n != 2 {
		t.Errorf("last success series = %d, want snapshot and export only", n)
	}
	for _, st := range inflightStages {
		if got := gauge(t, m.inflight, string(st)); got != 0 {
			t.Errorf("inflight %s = %v after the run ended, want 0", st, got)
		}
	}
	want := `
# HELP backupd_stage_duration_seconds Time runs spent in a stage (wait, snapshot, export, restore), observed when they leave it.
# TYPE backupd_stage_duration_seconds histogram
` + histLines("nightly", "export", 7200) + histLines("nightly", "snapshot", 1200) + histLines("nightly", "wait", 10)
	// pending (30s) is not a timed stage.
	if err := testutil.CollectAndCompare(m.stageDuration, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// histLines renders one histogram series holding a single observation v.
func histLines(policy, stage string, v float64) string {
	var b strings.Builder
	for _, le := range stageDurationBuckets {
		n := 0
		if v <= le {
			n = 1
		}
		b.WriteString("backupd_stage_duration_seconds_bucket{policy=\"" + policy + "\",stage=\"" + stage + "\",le=\"" + formatFloat(le) + "\"} " + itoa(n) + "\n")
	}
	b.WriteString("backupd_stage_duration_seconds_bucket{policy=\"" + policy + "\",stage=\"" + stage + "\",le=\"+Inf\"} 1\n")
	b.WriteString("backupd_stage_duration_seconds_sum{policy=\"" + policy + "\",stage=\"" + stage + "\"} " + formatFloat(v) + "\n")
	b.WriteString("backupd_stage_duration_seconds_count{policy=\"" + policy + "\",stage=\"" + stage + "\"} 1\n")
	return b.String()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func itoa(n int) string { return strconv.Itoa(n) }

func TestFailuresTimeoutsAndSkips(t *testing.T) {
	m := New("v1")
	slot := t0
	next := func() time.Time { slot = slot.Add(time.Hour); return slot }

	// snapshot failed in Atlas
	s := newScript(t, m, "nightly", run.ActionSnapshot, prodA, next())
	s.to(run.StageWaiting, nil)
	s.to(run.StageSnapshotting, nil)
	s.to(run.StageFailed, func(r *run.Run) { r.Reason = run.ReasonSnapshotFailed; r.SnapshotStatus = "failed" })
	if got := tv(t, m, "backupd_last_run_success", "nightly", prodA.ProjectID, prodA.Cluster); got != 0 {
		t.Errorf("last_run_success = %v after failure, want 0", got)
	}
	if n := tcount(t, m, "backupd_last_success_timestamp_seconds"); n != 0 {
		t.Errorf("last success series = %d after a failed snapshot, want 0", n)
	}

	// a successful run, then a timeout
	s = newScript(t, m, "nightly", run.ActionSnapshot, prodA, next())
	s.to(run.StageSnapshotting, nil)
	s.to(run.StageSucceeded, func(r *run.Run) { r.SnapshotStatus = "completed" })
	s = newScript(t, m, "nightly", run.ActionSnapshot, prodA, next())
	s.to(run.StageWaiting, nil)
	s.to(run.StageFailed, func(r *run.Run) { r.Reason = run.ReasonTimeout })
	if got := tv(t, m, "backupd_last_run_success", "nightly", prodA.ProjectID, prodA.Cluster); got != 0 {
		t.Errorf("last_run_success = %v after timeout, want 0", got)
	}

	// skips: the documented reasons, and an undocumented one folded into not_supported
	for _, reason := range []string{run.ReasonOverlap, run.ReasonMissed, run.ReasonShutdown, run.ReasonNotSupported, run.ReasonNoNewSnapshot, "something_new"} {
		s = newScript(t, m, "nightly", run.ActionSnapshot, prodA, next())
		s.to(run.StageSkipped, func(r *run.Run) { r.Reason = reason })
	}
	if got := tv(t, m, "backupd_last_run_success", "nightly", prodA.ProjectID, prodA.Cluster); got != 0 {
		t.Errorf("last_run_success = %v; skips must not change it", got)
	}

	want := `
# HELP backupd_runs_total Runs that ended, by result: success, failure or timeout.
# TYPE backupd_runs_total counter
backupd_runs_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",result="failure"} 1
backupd_runs_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",result="success"} 1
backupd_runs_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",result="timeout"} 1
# HELP backupd_runs_skipped_total Runs that were skipped, by reason: overlap, missed, not_supported, shutdown or no_new_snapshot.
# TYPE backupd_runs_skipped_total counter
backupd_runs_skipped_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",reason="missed"} 1
backupd_runs_skipped_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",reason="no_new_snapshot"} 1
backupd_runs_skipped_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",reason="not_supported"} 2
backupd_runs_skipped_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",reason="overlap"} 1
backupd_runs_skipped_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",reason="shutdown"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_runs_total", "backupd_runs_skipped_total"); err != nil {
		t.Error(err)
	}
	for _, st := range inflightStages {
		if got := gauge(t, m.inflight, string(st)); got != 0 {
			t.Errorf("inflight %s = %v after all runs ended, want 0", st, got)
		}
	}
}

func TestFlexRestoreSuccess(t *testing.T) {
	m := New("v1")
	staging := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "flex-prod"}
	s := newScript(t, m, "refresh-staging", run.ActionFlexRestore, staging, t0)
	s.to(run.StageWaiting, nil)
	s.to(run.StageRestoring, func(r *run.Run) { r.FlexSnapshotID = "6650c0f9a2b3c4d5e6f7081b" })
	if got := gauge(t, m.inflight, "restoring"); got != 1 {
		t.Errorf("inflight restoring = %v, want 1", got)
	}
	done := s.to(run.StageSucceeded, func(r *run.Run) { r.RestoreJobID = "6650c0f9a2b3c4d5e6f7081c"; r.RestoreStatus = "COMPLETED" })
	if got := tv(t, m, "backupd_last_success_timestamp_seconds", "refresh-staging", staging.ProjectID, staging.Cluster, "restore"); got != unixSeconds(done.At) {
		t.Errorf("last restore success = %v, want %v", got, unixSeconds(done.At))
	}
	if n := tcount(t, m, "backupd_last_success_timestamp_seconds"); n != 1 {
		t.Errorf("last success series = %d, want only restore", n)
	}
	if n := testutil.CollectAndCount(m.stageDuration); n != 2 {
		t.Errorf("stage duration series = %d, want wait and restore", n)
	}
}

func TestInflightIsIdempotent(t *testing.T) {
	m := New("v1")
	s := newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0)
	s.to(run.StageWaiting, nil)
	// The same event delivered again (e.g. a re-attach after restart) must
	// not count the run twice, nor time the stage twice.
	again := s.to(run.StageSnapshotting, nil)
	m.Observe(again)
	m.Observe(again)
	if got := gauge(t, m.inflight, "snapshotting"); got != 1 {
		t.Errorf("inflight snapshotting = %v after a repeated event, want 1", got)
	}
	if got := gauge(t, m.inflight, "waiting"); got != 0 {
		t.Errorf("inflight waiting = %v, want 0", got)
	}
	// A re-attached run's first event has no From.
	reattached := again
	reattached.From, reattached.StageDuration = "", 0
	m.Observe(reattached)
	if got := gauge(t, m.inflight, "snapshotting"); got != 1 {
		t.Errorf("inflight snapshotting = %v after a re-attach event, want 1", got)
	}
	end := s.to(run.StageFailed, func(r *run.Run) { r.Reason = run.ReasonTimeout })
	m.Observe(end)
	if got := gauge(t, m.inflight, "snapshotting"); got != 0 {
		t.Errorf("inflight snapshotting = %v after the run ended, want 0", got)
	}
	if got := tv(t, m, "backupd_runs_total", "nightly", prodA.ProjectID, prodA.Cluster, "timeout"); got != 1 {
		t.Errorf("runs_total timeout = %v after a repeated terminal event, want 1", got)
	}
	want := histLines("nightly", "snapshot", 60) + histLines("nightly", "wait", 60)
	want = "# HELP backupd_stage_duration_seconds Time runs spent in a stage (wait, snapshot, export, restore), observed when they leave it.\n# TYPE backupd_stage_duration_seconds histogram\n" + want
	if err := testutil.CollectAndCompare(m.stageDuration, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestConcurrentRunsAreCountedSeparately(t *testing.T) {
	m := New("v1")
	a := newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0)
	b := newScript(t, m, "nightly", run.ActionSnapshot, prodB, t0)
	a.to(run.StageWaiting, nil)
	b.to(run.StageWaiting, nil)
	if got := gauge(t, m.inflight, "waiting"); got != 2 {
		t.Errorf("inflight waiting = %v, want 2", got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.to(run.StageSnapshotting, nil)
		a.to(run.StageSucceeded, nil)
	}()
	b.to(run.StageSnapshotting, nil)
	<-done
	if got := gauge(t, m.inflight, "snapshotting"); got != 1 {
		t.Errorf("inflight snapshotting = %v, want 1", got)
	}
}

func TestRebuildInflight(t *testing.T) {
	m := New("v1")
	id1 := run.NewID("nightly", prodA.ProjectID, prodA.Cluster, t0, false)
	id2 := run.NewID("nightly", prodB.ProjectID, prodB.Cluster, t0, false)
	m.RebuildInflight([]run.Run{
		{ID: id1, Policy: "nightly", Target: prodA, Stage: run.StageExporting},
		{ID: id2, Policy: "nightly", Target: prodB, Stage: run.StageSnapshotting},
		{ID: "done", Policy: "nightly", Target: prodB, Stage: run.StageSucceeded},
	})
	if got := gauge(t, m.inflight, "exporting"); got != 1 {
		t.Errorf("inflight exporting = %v, want 1", got)
	}
	if got := gauge(t, m.inflight, "snapshotting"); got != 1 {
		t.Errorf("inflight snapshotting = %v, want 1", got)
	}
	// The engine re-attaches and moves the run on: it moves, not adds.
	m.Observe(run.Event{Run: run.Run{ID: id1, Policy: "nightly", Target: prodA, Stage: run.StageExporting}, At: t0})
	m.Observe(run.Event{Run: run.Run{ID: id2, Policy: "nightly", Target: prodB, Stage: run.StageExporting, SnapshotStatus: "completed"},
		From: run.StageSnapshotting, At: t0.Add(time.Minute), StageDuration: time.Minute})
	if got := gauge(t, m.inflight, "exporting"); got != 2 {
		t.Errorf("inflight exporting = %v, want 2", got)
	}
	if got := gauge(t, m.inflight, "snapshotting"); got != 0 {
		t.Errorf("inflight snapshotting = %v, want 0", got)
	}
	// Rebuilding again replaces, never adds.
	m.RebuildInflight([]run.Run{{ID: id1, Policy: "nightly", Target: prodA, Stage: run.StageWaiting}})
	for st, want := range map[string]float64{"exporting": 0, "waiting": 1, "snapshotting": 0} {
		if got := gauge(t, m.inflight, st); got != want {
			t.Errorf("after second rebuild inflight %s = %v, want %v", st, got, want)
		}
	}
}

func TestRebuild(t *testing.T) {
	m := New("v1")
	snapAt := t0.Add(-26 * time.Hour)
	exportAt := t0.Add(-24 * time.Hour)
	m.Rebuild([]Restored{
		{Policy: "nightly", Target: prodA, Last: &run.Run{Stage: run.StageSucceeded},
			LastSuccess: map[string]time.Time{"snapshot": snapAt, "export": exportAt, "bogus": t0}, SnapshotBytes: 42},
		{Policy: "nightly", Target: prodB, Last: &run.Run{Stage: run.StageFailed, Reason: run.ReasonTimeout}},
		{Policy: "weekly", Target: prodB, Last: &run.Run{Stage: run.StageSkipped, Reason: run.ReasonOverlap}},
	})
	want := `
# HELP backupd_last_run_success 1 if the last finished run on a target succeeded, 0 if it failed or timed out. Skips leave it unchanged.
# TYPE backupd_last_run_success gauge
backupd_last_run_success{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8"} 1
backupd_last_run_success{cluster="prod-b",policy="nightly",project="32b6e34b3d91647abb20e7b8"} 0
# HELP backupd_last_success_timestamp_seconds Unix time a stage (snapshot, export, restore) last completed successfully on a target.
# TYPE backupd_last_success_timestamp_seconds gauge
backupd_last_success_timestamp_seconds{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",stage="export"} ` + formatFloat(unixSeconds(exportAt)) + `
backupd_last_success_timestamp_seconds{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",stage="snapshot"} ` + formatFloat(unixSeconds(snapAt)) + `
# HELP backupd_snapshot_size_bytes Size Atlas reported for the latest snapshot a run took or used on a target.
# TYPE backupd_snapshot_size_bytes gauge
backupd_snapshot_size_bytes{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8"} 42
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want),
		"backupd_last_run_success", "backupd_last_success_timestamp_seconds", "backupd_snapshot_size_bytes"); err != nil {
		t.Error(err)
	}
	// Rebuilt policies count as seen: a policy gone from the config loses
	// its restored series on the first SetPolicies.
	m.SetPolicies([]PolicyInfo{{Name: "nightly", Action: "snapshot", Schedule: "@daily", Timezone: "UTC"}})
	if n := tcount(t, m, "backupd_last_run_success"); n != 2 {
		t.Errorf("last_run_success series = %d, want 2 (nightly only)", n)
	}
}

func TestSetPoliciesDeletesRemovedPolicies(t *testing.T) {
	m := New("v1")
	m.SetPolicies([]PolicyInfo{
		{Name: "nightly", Action: "snapshot", Schedule: "0 2 * * *", Timezone: "Europe/Berlin", Interval: 24 * time.Hour},
		{Name: "weekly", Action: "export", Schedule: "0 4 * * 0", Timezone: "UTC", Interval: 7 * 24 * time.Hour},
	})
	for _, p := range []string{"nightly", "weekly"} {
		m.SetNextRun(p, prodA, t0)
		s := newScript(t, m, p, run.ActionSnapshot, prodA, t0)
		s.to(run.StageWaiting, nil)
		s.to(run.StageSnapshotting, nil)
		s.to(run.StageSucceeded, func(r *run.Run) { r.SnapshotStatus = "completed"; r.SnapshotBytes = 7 })
	}
	if got := gauge(t, m.scheduleInterval, "weekly"); got != 7*24*3600 {
		t.Errorf("schedule interval = %v, want %v", got, 7*24*3600)
	}

	// Reload: weekly removed, nightly's schedule changed.
	m.SetPolicies([]PolicyInfo{{Name: "nightly", Action: "snapshot", Schedule: "0 3 * * *", Timezone: "Europe/Berlin", Interval: 24 * time.Hour}})

	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	nightly := 0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() != "policy" {
					continue
				}
				switch lp.GetValue() {
				case "weekly":
					t.Errorf("%s still has a series for removed policy weekly", mf.GetName())
				case "nightly":
					nightly++
				}
			}
		}
	}
	if nightly == 0 {
		t.Error("series of the kept policy nightly were deleted")
	}
	want := `
# HELP backupd_policy_info Configured policies; always 1. Join on policy to get the action, schedule and time zone.
# TYPE backupd_policy_info gauge
backupd_policy_info{action="snapshot",policy="nightly",schedule="0 3 * * *",timezone="Europe/Berlin"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_policy_info"); err != nil {
		t.Error(err)
	}
}

func TestNextRunAndDeleteTarget(t *testing.T) {
	m := New("v1")
	at := t0.Add(90*time.Minute + 500*time.Millisecond)
	m.SetNextRun("nightly", prodA, at)
	m.SetNextRun("nightly", prodB, at)
	if got := tv(t, m, "backupd_next_run_timestamp_seconds", "nightly", prodA.ProjectID, prodA.Cluster); got != float64(at.Unix())+0.5 {
		t.Errorf("next run = %v, want %v", got, float64(at.Unix())+0.5)
	}
	// Counters are not created at zero: a (target, result) series appears
	// when it first counts.
	if n := tcount(t, m, "backupd_runs_total") + tcount(t, m, "backupd_runs_skipped_total"); n != 0 {
		t.Errorf("run counter series = %d before any run, want 0", n)
	}
	for _, tg := range []run.Target{prodA, prodB} {
		s := newScript(t, m, "nightly", run.ActionSnapshot, tg, t0)
		s.to(run.StageFailed, func(r *run.Run) { r.Reason = run.ReasonAtlasError })
	}
	want := `
# HELP backupd_runs_total Runs that ended, by result: success, failure or timeout.
# TYPE backupd_runs_total counter
backupd_runs_total{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",result="failure"} 1
backupd_runs_total{cluster="prod-b",policy="nightly",project="32b6e34b3d91647abb20e7b8",result="failure"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_runs_total", "backupd_runs_skipped_total"); err != nil {
		t.Error(err)
	}

	m.DeleteTarget("nightly", prodA)
	if n := tcount(t, m, "backupd_next_run_timestamp_seconds"); n != 1 {
		t.Errorf("next run series = %d after DeleteTarget, want 1", n)
	}
	if n := tcount(t, m, "backupd_runs_total"); n != 1 {
		t.Errorf("runs_total series = %d after DeleteTarget, want 1", n)
	}
	if n := tcount(t, m, "backupd_last_run_success"); n != 1 {
		t.Errorf("last_run_success series = %d after DeleteTarget, want 1", n)
	}
	m.SetNextRun("nightly", prodB, time.Time{})
	if n := tcount(t, m, "backupd_next_run_timestamp_seconds"); n != 0 {
		t.Errorf("next run series = %d after a zero time, want 0", n)
	}
	if n := tcount(t, m, "backupd_runs_total"); n != 1 {
		t.Errorf("runs_total series = %d after removing the next run, want 1 (it is not the target's last series)", n)
	}
	m.DeleteTarget("nightly", prodB)
	m.SetNextRun("nightly", prodA, time.Time{}) // of a deleted target: nothing to do
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ns := len(m.targets.byKey), len(m.targets.groups); n != 0 || ns != 0 {
		t.Errorf("store holds %d targets and %d groups after every target was deleted, want none", n, ns)
	}
}

// A target whose only series is its next run leaves the store when that is
// removed, and a target is stored once however often it is published.
func TestStoreHoldsOnlyTargetsWithSeries(t *testing.T) {
	m := New("v1")
	for range 3 {
		m.SetNextRun("nightly", prodA, t0)
	}
	m.SetNextRun("weekly", prodA, t0)
	m.mu.Lock()
	n, ns := len(m.targets.byKey), len(m.targets.groups)
	m.mu.Unlock()
	if n != 2 || ns != 2 {
		t.Errorf("store: %d targets, %d groups; want 2 (nightly and weekly on prod-a) and 2 (two policies on one project)", n, ns)
	}
	m.SetNextRun("nightly", prodA, time.Time{})
	m.SetNextRun("weekly", prodA, time.Time{})
	m.mu.Lock()
	n, ns = len(m.targets.byKey), len(m.targets.groups)
	m.mu.Unlock()
	if n != 0 || ns != 0 {
		t.Errorf("store: %d targets, %d groups after the next runs were removed, want none", n, ns)
	}
}

func TestAtlasRequestsAndReloads(t *testing.T) {
	m := New("v1")
	m.ObserveAtlasRequest("takeSnapshot", "200", 300*time.Millisecond, false)
	m.ObserveAtlasRequest("takeSnapshot", "429", 20*time.Millisecond, true)
	m.ObserveAtlasRequest("takeSnapshot", "", 30*time.Second, false)
	m.ObserveAtlasRequest("getSnapshot", StatusCode(0), time.Second, false)
	m.ObserveAtlasRequest("getSnapshot", AttemptCode(200, true), time.Second, false)
	m.ObserveAtlasRequest("getSnapshot", AttemptCode(200, false), time.Second, false)
	m.ConfigReload(true)
	m.ConfigReload(false)
	m.ConfigReload(false)
	m.JournalWriteError()
	m.JournalWriteError()

	want := `
# HELP backupd_atlas_requests_total Atlas Admin API HTTP attempts, by operation and HTTP status code ("error" for transport errors, "decode_error" for 2xx answers that could not be read).
# TYPE backupd_atlas_requests_total counter
backupd_atlas_requests_total{code="200",operation="getSnapshot"} 1
backupd_atlas_requests_total{code="200",operation="takeSnapshot"} 1
backupd_atlas_requests_total{code="429",operation="takeSnapshot"} 1
backupd_atlas_requests_total{code="decode_error",operation="getSnapshot"} 1
backupd_atlas_requests_total{code="error",operation="getSnapshot"} 1
backupd_atlas_requests_total{code="error",operation="takeSnapshot"} 1
# HELP backupd_atlas_rate_limited_total Atlas Admin API attempts answered with a rate limit (429), by operation.
# TYPE backupd_atlas_rate_limited_total counter
backupd_atlas_rate_limited_total{operation="takeSnapshot"} 1
# HELP backupd_config_reloads_total Configuration reloads (SIGHUP), by result: success or failure.
# TYPE backupd_config_reloads_total counter
backupd_config_reloads_total{result="failure"} 2
backupd_config_reloads_total{result="success"} 1
# HELP backupd_journal_write_errors_total Journal writes that failed (disk full, I/O error); every retry of a run's write counts.
# TYPE backupd_journal_write_errors_total counter
backupd_journal_write_errors_total 2
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want),
		"backupd_atlas_requests_total", "backupd_atlas_rate_limited_total", "backupd_config_reloads_total", "backupd_journal_write_errors_total"); err != nil {
		t.Error(err)
	}
	if StatusCode(503) != "503" {
		t.Errorf("StatusCode(503) = %q", StatusCode(503))
	}
	if n := testutil.CollectAndCount(m.atlasDuration); n != 2 {
		t.Errorf("duration series = %d, want one per operation", n)
	}
}

func TestHandlerServesExposition(t *testing.T) {
	m := New("v1")
	m.ConfigReload(true)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`backupd_config_reloads_total{result="success"} 1`, "go_goroutines", "backupd_build_info{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// A reload that removes export: from a policy deletes its export
// timestamps (they would only grow stale and trip BackupdExportLagging),
// and a run started before the reload does not bring them back.
func TestReloadDropsStagesAPolicyNoLongerHas(t *testing.T) {
	m := New("v1")
	withExport := PolicyInfo{Name: "nightly", Action: "snapshot", Schedule: "@daily", Timezone: "UTC", Stages: SuccessStages(run.ActionSnapshot, true)}
	m.SetPolicies([]PolicyInfo{withExport})
	s := newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0)
	s.to(run.StageSnapshotting, nil)
	s.to(run.StageExporting, func(r *run.Run) { r.SnapshotStatus = "completed" })
	s.to(run.StageSucceeded, func(r *run.Run) { r.ExportJobID = "6650c0f9a2b3c4d5e6f7081a" })
	if n := tcount(t, m, "backupd_last_success_timestamp_seconds"); n != 2 {
		t.Fatalf("last success series = %d, want snapshot and export", n)
	}
	inFlight := newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0.Add(24*time.Hour))
	inFlight.to(run.StageSnapshotting, nil)

	noExport := withExport
	noExport.Stages = SuccessStages(run.ActionSnapshot, false)
	m.SetPolicies([]PolicyInfo{noExport})
	want := `
# HELP backupd_last_success_timestamp_seconds Unix time a stage (snapshot, export, restore) last completed successfully on a target.
# TYPE backupd_last_success_timestamp_seconds gauge
backupd_last_success_timestamp_seconds{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",stage="snapshot"} ` + formatFloat(unixSeconds(t0.Add(2*time.Minute))) + `
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_last_success_timestamp_seconds"); err != nil {
		t.Errorf("after the reload: %v", err)
	}
	if got := tv(t, m, "backupd_last_run_success", "nightly", prodA.ProjectID, prodA.Cluster); got != 1 {
		t.Errorf("last_run_success = %v after the reload, want 1 (kept)", got)
	}

	// The run that started with the old spec exports and succeeds.
	inFlight.to(run.StageExporting, func(r *run.Run) { r.SnapshotStatus = "completed" })
	done := inFlight.to(run.StageSucceeded, func(r *run.Run) { r.ExportJobID = "6650c0f9a2b3c4d5e6f7081b" })
	want = `
# HELP backupd_last_success_timestamp_seconds Unix time a stage (snapshot, export, restore) last completed successfully on a target.
# TYPE backupd_last_success_timestamp_seconds gauge
backupd_last_success_timestamp_seconds{cluster="prod-a",policy="nightly",project="32b6e34b3d91647abb20e7b8",stage="snapshot"} ` + formatFloat(unixSeconds(done.At.Add(-time.Minute))) + `
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_last_success_timestamp_seconds"); err != nil {
		t.Errorf("after an old-spec run finished: %v", err)
	}

	// Stages unknown (nil): nothing is dropped or held back.
	unknown := withExport
	unknown.Stages = nil
	m.SetPolicies([]PolicyInfo{unknown})
	s = newScript(t, m, "nightly", run.ActionSnapshot, prodA, t0.Add(48*time.Hour))
	s.to(run.StageExporting, nil)
	s.to(run.StageSucceeded, func(r *run.Run) { r.ExportJobID = "6650c0f9a2b3c4d5e6f7081c" })
	if n := tcount(t, m, "backupd_last_success_timestamp_seconds"); n != 2 {
		t.Errorf("last success series = %d with the stages unknown, want snapshot and export", n)
	}
	m.SetPolicies([]PolicyInfo{unknown})
	if n := tcount(t, m, "backupd_last_success_timestamp_seconds"); n != 2 {
		t.Errorf("last success series = %d after a reload with the stages unknown, want 2", n)
	}
}

// Rebuild after SetPolicies restores only the stages the policy has.
func TestRebuildKeepsToConfiguredStages(t *testing.T) {
	m := New("v1")
	m.SetPolicies([]PolicyInfo{{Name: "refresh", Action: string(run.ActionFlexRestore), Schedule: "@daily", Timezone: "UTC",
		Stages: SuccessStages(run.ActionFlexRestore, false)}})
	m.Rebuild([]Restored{{Policy: "refresh", Target: prodA,
		LastSuccess: map[string]time.Time{SuccessStageExport: t0, SuccessStageRestore: t0.Add(time.Hour)}}})
	want := `
# HELP backupd_last_success_timestamp_seconds Unix time a stage (snapshot, export, restore) last completed successfully on a target.
# TYPE backupd_last_success_timestamp_seconds gauge
backupd_last_success_timestamp_seconds{cluster="prod-a",policy="refresh",project="32b6e34b3d91647abb20e7b8",stage="restore"} ` + formatFloat(unixSeconds(t0.Add(time.Hour))) + `
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "backupd_last_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

func TestSuccessStages(t *testing.T) {
	for _, tc := range []struct {
		action  run.Action
		exports bool
		want    []string
	}{
		{run.ActionSnapshot, false, []string{"snapshot"}},
		{run.ActionSnapshot, true, []string{"snapshot", "export"}},
		{run.ActionExport, true, []string{"export"}},
		{run.ActionFlexRestore, false, []string{"restore"}},
		{"somethingElse", false, nil},
	} {
		if got := SuccessStages(tc.action, tc.exports); !slices.Equal(got, tc.want) {
			t.Errorf("SuccessStages(%s, %v) = %v, want %v", tc.action, tc.exports, got, tc.want)
		}
	}
}
