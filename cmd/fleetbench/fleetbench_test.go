package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// TestFleetbenchSmall runs the whole benchmark at CI size (100 targets, one
// simulated hour at 240x): it builds backupd, runs the simulator and the
// daemon as processes and checks the report is complete and that the
// Atlas-calls and 429 lines pass (with fixed polling: an hour gives learned
// polling no history to plan from).
func TestFleetbenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs backupd and atlas-sim as processes for about half a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{
		Projects: 20, Clusters: 5, Hours: 1, Scale: 240, Jitter: 15 * time.Minute, JournalRuns: 2000,
		Lead: 3 * time.Second, Scrape: time.Minute, Workdir: t.TempDir(), Progress: &progress, Monitor: true,
		// One hour leaves learned polling no history: the baseline, held to
		// the fixed backoff's call budget.
		FixedPolling: true,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", table.String())

	if rep.Params.Targets != 100 || rep.Runs.Expected != 100 {
		t.Errorf("targets %d, expected runs %d; want 100 and 100", rep.Params.Targets, rep.Runs.Expected)
	}
	if got := rep.Runs.Succeeded + rep.Runs.Failed + rep.Runs.Skipped + rep.Runs.Unfinished; got != rep.Runs.Expected {
		t.Errorf("runs found %d (%+v), want every expected run", got, rep.Runs)
	}
	if rep.Runs.Succeeded == 0 {
		t.Fatalf("no chain completed: %+v", rep.Runs)
	}
	// Every completed chain posted exactly one snapshot and one export.
	for _, op := range []string{"take_snapshot", "create_export"} {
		if got := rep.API.Calls[op]; got != rep.Runs.Succeeded {
			t.Errorf("%s calls %d, want one per completed chain (%d)", op, got, rep.Runs.Succeeded)
		}
	}
	if rep.PeakRSSBytes <= 0 || rep.StartupSeconds <= 0 || rep.CPUSecondsPerSimHour <= 0 {
		t.Errorf("resource figures missing: RSS %d, startup %g, CPU/h %g", rep.PeakRSSBytes, rep.StartupSeconds, rep.CPUSecondsPerSimHour)
	}
	if rep.FireLag.N != rep.Runs.Expected || rep.ExportDetection.N != rep.Runs.Succeeded || rep.SnapshotDetection.N != rep.Runs.Succeeded {
		t.Errorf("distributions cover %d/%d/%d runs, want %d/%d/%d", rep.FireLag.N, rep.SnapshotDetection.N, rep.ExportDetection.N,
			rep.Runs.Expected, rep.Runs.Succeeded, rep.Runs.Succeeded)
	}
	if rep.Machine.Cores < 1 || rep.Machine.GoVersion == "" {
		t.Errorf("machine not described: %+v", rep.Machine)
	}
	// The monitor read every cluster once in the simulated hour, beside
	// the policy: a schedule each, a compliance policy per project, and its
	// listings apart from the engine's.
	if m := rep.Monitor; m == nil {
		t.Error("no monitor figures")
	} else {
		if m.Watched != 100 || m.Read != 100 || m.ReadFailures != 0 {
			t.Errorf("monitor watched %d, read %d, failed %d; want 100, 100, 0", m.Watched, m.Read, m.ReadFailures)
		}
		if n := m.Calls["get_backup_schedule"]; n < 95 || n > 105 {
			t.Errorf("monitor read %d schedules in the hour, want one per cluster (100, give or take a read at the window's edges)", n)
		}
		if n := m.Calls["get_compliance_policy"]; n < 1 || n > 25 {
			t.Errorf("monitor read %d compliance policies, want about one per project (20)", n)
		}
		if m.CallsPerHour <= 0 || !strings.Contains(table.String(), "monitor Atlas calls per simulated hour") {
			t.Errorf("monitor calls per hour %g not reported", m.CallsPerHour)
		}
	}
	for _, name := range []string{CheckRSS, CheckStartup, CheckFireLag, CheckSnapshot, CheckExport, CheckCalls, Check429, CheckCompleted, CheckMonitor} {
		c, ok := rep.Check(name)
		if !ok {
			t.Errorf("report has no %q line", name)
			continue
		}
		verdict := "FAIL"
		if c.Pass {
			verdict = "PASS"
		}
		if !strings.Contains(table.String(), verdict+"  "+name) {
			t.Errorf("table does not print %q as %s", name, verdict)
		}
	}
	for _, name := range []string{CheckCalls, Check429, CheckMonitor} {
		if c, _ := rep.Check(name); !c.Pass {
			t.Errorf("%s: %s, want a pass (target %s)", name, c.Value, c.Target)
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON report does not decode: %v", err)
	}
	if len(back.Checks) != len(rep.Checks) || back.API.Calls["take_snapshot"] != rep.API.Calls["take_snapshot"] {
		t.Errorf("JSON report lost data: %d checks, take_snapshot %d", len(back.Checks), back.API.Calls["take_snapshot"])
	}
}

func TestGeneratedFixtureAndConfigLoad(t *testing.T) {
	dir := t.TempDir()
	f := Fleet{Projects: 3, Clusters: 2, Monitor: true}
	fx := filepath.Join(dir, "fixture.yaml")
	if err := f.WriteFixture(fx, 100, 100, atlassim.Spread{Sigma: 0.5, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	loaded, err := atlassim.LoadFixture(fx)
	if err != nil {
		t.Fatalf("generated fixture does not load: %v", err)
	}
	if len(loaded.Projects) != 3 || len(loaded.Projects[2].Clusters) != 2 || loaded.Projects[1].Buckets[0].ID != bucketID {
		t.Errorf("fixture fleet %+v, want 3 projects of 2 clusters with the bucket", loaded.Projects)
	}
	if c := loaded.Projects[2].Clusters[1]; c.Schedule == nil || loaded.Projects[2].CompliancePolicy == nil {
		t.Errorf("with the monitor, every cluster needs a native schedule and every project a compliance policy: %+v", loaded.Projects[2])
	}
	if loaded.RateLimit == nil || loaded.RateLimit.Capacity != 100 || loaded.RateLimit.RefillPerMinute != 100 {
		t.Errorf("fixture rate limit %+v, want 100/100", loaded.RateLimit)
	}

	secret := filepath.Join(dir, "secret")
	if err := WriteSecret(secret); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := f.WriteConfig(cfgPath, ConfigParams{
		BaseURL: "http://127.0.0.1:1", Listen: "127.0.0.1:0", StatePath: filepath.Join(dir, "state.db"),
		SecretFile: secret, RequestsPerMinute: 600, Jitter: 15 * time.Minute, LogLevel: "info",
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(cfgPath, policy.Env{ReadFile: policy.ReadRegularFile, Stat: os.Stat})
	if err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
	if len(cfg.Policies) != 1 {
		t.Fatalf("%d policies, want 1", len(cfg.Policies))
	}
	p := cfg.Policies[0]
	if p.Name != policyName || p.Schedule != "0 * * * *" || p.Jitter != 15*time.Minute || p.Export == nil || p.Export.BucketID != bucketID {
		t.Errorf("policy %+v, want the hourly snapshot+export with 15m jitter", p)
	}
	if len(p.Targets) != 3 || p.Targets[2].ProjectID != f.ProjectID(2) {
		t.Errorf("targets %+v, want one entry per project", p.Targets)
	}
	if cfg.Monitor == nil || len(cfg.Monitor.Targets) != 3 || cfg.Monitor.Interval != time.Hour {
		t.Errorf("monitor section %+v, want every project read hourly", cfg.Monitor)
	}
	if cfg.Atlas.RequestsPerMinute != 600 || cfg.Atlas.ServiceAccount == nil || cfg.Atlas.ServiceAccount.ClientSecret.Reveal() != clientSecret {
		t.Errorf("atlas section %+v not as generated", cfg.Atlas)
	}
}

func TestPregenerateJournal(t *testing.T) {
	f := Fleet{Projects: 2, Clusters: 3}
	path := filepath.Join(t.TempDir(), "state", "state.db")
	before := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	if err := f.PregenerateJournal(path, 13, before); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	runs, err := j.History(journal.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 13 {
		t.Fatalf("%d runs in the journal, want 13", len(runs))
	}
	active, err := j.Active()
	if err != nil || len(active) != 0 {
		t.Errorf("active runs %d (%v), want none: history is finished", len(active), err)
	}
	for _, r := range runs {
		if r.Stage != run.StageSucceeded || r.Policy != policyName {
			t.Errorf("run %s: stage %s policy %s", r.ID, r.Stage, r.Policy)
		}
		if want := run.NewID(policyName, r.Target.ProjectID, r.Target.Cluster, r.Slot, false); r.ID != want {
			t.Errorf("run id %s, want the daemon's id for its slot %s", r.ID, want)
		}
		if !r.Slot.Before(before.Truncate(time.Hour)) || r.Slot.Minute() != 0 {
			t.Errorf("slot %s is not a whole past hour before %s", r.Slot, before)
		}
	}
	// Target 0 has 13/6 rounded up = 3 runs, in three different hours.
	slots := map[time.Time]bool{}
	for _, r := range runs {
		if r.Target == (run.Target{ProjectID: f.ProjectID(0), Cluster: f.ClusterName(0)}) {
			slots[r.Slot] = true
		}
	}
	if len(slots) != 3 {
		t.Errorf("target 0 has runs in %d slots, want 3", len(slots))
	}
	// Every target's scheduler mark is at its newest slot, with the
	// policy's schedule, so a start reconciles nothing (the daemon's own
	// journal would have them).
	newest, oldest := before.Truncate(time.Hour).Add(-time.Hour), before.Truncate(time.Hour).Add(-3*time.Hour)
	for i := range f.Targets() {
		tg := run.Target{ProjectID: f.ProjectID(i / f.Clusters), Cluster: f.ClusterName(i % f.Clusters)}
		m, ok, err := j.Mark(engine.Key(policyName, tg))
		if err != nil || !ok || !m.LastSlot.Equal(newest) || m.Schedule != schedule {
			t.Errorf("mark of %s = %+v (found %v, %v), want its newest slot %s and schedule %q", tg, m, ok, err, newest, schedule)
		}
		if i == 0 && !m.Since.Equal(oldest) {
			t.Errorf("mark of target 0 since %s, want its oldest slot %s", m.Since, oldest)
		}
	}
}

func TestParseStatus(t *testing.T) {
	data := []byte("Name:\tbackupd\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nRssAnon:\t   20480 kB\nRssFile:\t   10240 kB\nThreads:\t9\n")
	m, err := parseStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	if m != (Memory{HWM: 40 << 20, RSS: 30 << 20, RssAnon: 20 << 20, RssFile: 10 << 20}) {
		t.Errorf("parsed %+v", m)
	}
	if _, err := parseStatus([]byte("VmHWM:\t12 MB\n")); err == nil {
		t.Error("a unit other than kB was accepted")
	}
	if _, err := parseStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("a status without memory lines was accepted")
	}
}

func TestParseStat(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := "4242 (back up) (d)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 1000000 5000 18446744073709551615\n"
	d, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if d != 3250*time.Millisecond {
		t.Errorf("CPU %s, want 3.25s (325 ticks)", d)
	}
	for _, bad := range []string{"no parenthesis", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
	own, err := readCPU(os.Getpid())
	if err != nil || own < 0 {
		t.Errorf("reading this process's CPU: %s, %v", own, err)
	}
}

func TestDistOf(t *testing.T) {
	if d := distOf(nil); d != (Dist{}) {
		t.Errorf("empty: %+v", d)
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted input
		ds = append(ds, time.Duration(i)*time.Second)
	}
	d := distOf(ds)
	if d.N != 100 || d.P50 != 50 || d.P99 != 99 || d.Max != 100 {
		t.Errorf("1..100 s: %+v, want p50 50, p99 99, max 100", d)
	}
	if ds[0] != 100*time.Second {
		t.Error("distOf reordered its input")
	}
}

func TestPollBudget(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1},                 // read at the stage's start
		{time.Second, 2},       // 0, 10
		{10 * time.Second, 2},  // 0, 10
		{11 * time.Second, 3},  // 0, 10, 30
		{150 * time.Second, 6}, // 0, 10, 30, 70, 130, 190
		{330 * time.Second, 9}, // ..., 190, 250, 310, 370
		{10 * time.Minute, 13}, // ..., 610
	} {
		if got := pollBudget(c.d, 10*time.Second, time.Minute); got != c.want {
			t.Errorf("pollBudget(%s) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP backupd_inflight_runs Runs in flight.
# TYPE backupd_inflight_runs gauge
backupd_inflight_runs{stage="exporting"} 12
backupd_inflight_runs{stage="snapshotting"} 3
backupd_atlas_requests_total{code="200",operation="get_export"} 1500
backupd_atlas_requests_total{code="429",operation="get_export"} 2
backupd_atlas_requests_total{code="429",operation="take_snapshot"} 1
backupd_atlas_rate_limited_total{operation="get_export"} 2
backupd_build_info{goversion="go1.26",version="dev"} 1
`
	m, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	if m.Inflight != 15 || m.RequestsByCode["429"] != 3 || m.RequestsByCode["200"] != 1500 || m.RateLimited != 2 {
		t.Errorf("parsed %+v", m)
	}
	if _, err := parseMetrics("backupd_inflight_runs{stage=\"x\"} notanumber\n"); err == nil {
		t.Error("a bad value was accepted")
	}
}

func TestEvaluateFailsEmptyAndPassesGood(t *testing.T) {
	var empty Report
	empty.evaluate()
	for _, c := range empty.Checks {
		if c.Pass {
			t.Errorf("%s passes with nothing measured", c.Name)
		}
	}
	good := Report{
		StartupSeconds: 0.5, PeakRSSBytes: 40 << 20,
		Runs:    Runs{Expected: 10, Succeeded: 10},
		API:     API{PerChain: 12, Budget: 17},
		FireLag: Dist{N: 10, P99: 0.2}, SnapshotDetection: Dist{N: 10, P99: 41}, ExportDetection: Dist{N: 10, P99: 59},
	}
	good.evaluate()
	for _, c := range good.Checks {
		if !c.Pass {
			t.Errorf("%s fails: %s (target %s)", c.Name, c.Value, c.Target)
		}
	}
	bad := good
	bad.API.PerChain, bad.API.Status429, bad.FireLag.P99 = 30, 1, 1.5
	bad.evaluate()
	for _, name := range []string{CheckCalls, Check429, CheckFireLag} {
		if c, _ := bad.Check(name); c.Pass {
			t.Errorf("%s passes with %s", name, c.Value)
		}
	}
}

// A learned-polling report is held to issue 15's targets, not the fixed
// backoff's: at most 6 calls per chain (1.5x the minimum of 4) and a
// detection p99 of at most 30 s, where the fixed mode passes with 19 calls
// and 60 s. The 429 line is the same for both: none.
func TestEvaluateHoldsLearnedPollingToIssue15Targets(t *testing.T) {
	base := Report{
		StartupSeconds: 0.5, PeakRSSBytes: 40 << 20,
		Runs:    Runs{Expected: 10, Succeeded: 10},
		API:     API{PerChain: 6, Budget: 19},
		FireLag: Dist{N: 10, P99: 0.2}, SnapshotDetection: Dist{N: 10, P99: 30}, ExportDetection: Dist{N: 10, P99: 30},
	}
	for _, tc := range []struct {
		name      string
		polling   string
		perChain  float64
		detection float64 // both p99s, seconds
		status429 int
		fail      []string // the checks that fail; all others pass
	}{
		{"learned at its targets", "learned", 6, 30, 0, nil},
		{"learned over 6 calls", "learned", 6.2, 29.2, 0, []string{CheckCalls}},
		{"learned over 30 s", "learned", 5.4, 30.1, 0, []string{CheckSnapshot, CheckExport}},
		{"learned with a 429", "learned", 5.4, 20, 1, []string{Check429}},
		{"fixed within the backoff's budget and cap", "fixed", 16.5, 59.8, 0, nil},
		{"fixed over its budget and cap", "fixed", 19.5, 60.5, 0, []string{CheckCalls, CheckSnapshot, CheckExport}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			r.Params.Polling = tc.polling
			r.API.PerChain, r.API.Status429 = tc.perChain, tc.status429
			r.SnapshotDetection.P99, r.ExportDetection.P99 = tc.detection, tc.detection
			r.evaluate()
			for _, c := range r.Checks {
				if want := !slices.Contains(tc.fail, c.Name); c.Pass != want {
					t.Errorf("%s: %s (target %s) pass=%v, want %v", c.Name, c.Value, c.Target, c.Pass, want)
				}
			}
		})
	}
}

// With -polling both the tables end in one comparison line per mode of
// the figures issue 15 compares.
func TestWriteTablesComparesTheModes(t *testing.T) {
	fixed := Report{Params: Params{Polling: "fixed"}, API: API{PerChain: 16.5},
		SnapshotDetection: Dist{P50: 31, P99: 59.3}, ExportDetection: Dist{P50: 30.5, P99: 59.8}, FireLag: Dist{P99: 1.79}, PeakRSSBytes: 40 << 20}
	learned := Report{Params: Params{Polling: "learned"}, API: API{PerChain: 6.2},
		SnapshotDetection: Dist{P50: 13.7, P99: 29.2}, ExportDetection: Dist{P50: 13.9, P99: 30.1}, FireLag: Dist{P99: 0.86}, PeakRSSBytes: 37 << 20}
	fixed.evaluate()
	learned.evaluate()
	var b bytes.Buffer
	if err := writeTables(&b, []*Report{&fixed, &learned}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	i := strings.LastIndex(out, "polling  calls/chain")
	if i < 0 {
		t.Fatalf("no comparison table:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out[i:]), "\n")
	if len(lines) != 3 {
		t.Fatalf("comparison %q, want a header and one line per mode", lines)
	}
	for n, want := range [][]string{{"fixed", "16.5", "31.0 / 59.3 s", "30.5 / 59.8 s", "1.790 s", "40.0 MiB"},
		{"learned", "6.2", "13.7 / 29.2 s", "13.9 / 30.1 s", "0.860 s", "37.0 MiB"}} {
		for _, field := range want {
			if !strings.Contains(lines[n+1], field) {
				t.Errorf("comparison line %q lacks %q", lines[n+1], field)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-projects", "0"}, {"-scale", "0.5"}, {"-jitter", "2h"}, {"extra"}, {"-nosuchflag"}, {"-polling", "sometimes"}, {"-warmup", "-1"}} {
		var out, errOut bytes.Buffer
		if code := realMain(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut.String())
		}
	}
}

func TestAnalyse(t *testing.T) {
	f := Fleet{Projects: 1, Clusters: 2}
	h0 := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	end := h0.Add(time.Hour)
	tg := func(c int) run.Target { return run.Target{ProjectID: f.ProjectID(0), Cluster: f.ClusterName(c)} }
	snapTook := atlassim.DefaultTimings.SnapshotQueued + atlassim.DefaultTimings.SnapshotInProgress
	// Target 0 succeeded: fired 2s late, snapshot seen 40s after it
	// completed, export seen 30s after it finished.
	at := h0.Add(5 * time.Minute)
	snapAt := at.Add(time.Second)
	expCreated := snapAt.Add(snapTook + 40*time.Second)
	expDone := expCreated.Add(6 * time.Minute)
	ok := run.Run{ID: "a", Policy: policyName, Target: tg(0), Slot: h0, ScheduledAt: at, CreatedAt: at.Add(2 * time.Second),
		Stage: run.StageSucceeded, SnapshotID: "s1", ExportJobID: "e1", FinishedAt: expDone.Add(30 * time.Second)}
	failed := run.Run{ID: "b", Policy: policyName, Target: tg(1), Slot: h0, ScheduledAt: h0, CreatedAt: h0, Stage: run.StageFailed}
	before := ok // a run of the previous slot is outside the window
	before.ID, before.Slot = "c", h0.Add(-time.Hour)
	manual := ok
	manual.ID, manual.Manual = "d", true
	state := &atlassim.AdminState{Projects: []atlassim.AdminProject{{ID: f.ProjectID(0), Clusters: []atlassim.AdminCluster{{
		Name:      f.ClusterName(0),
		Snapshots: []atlas.Snapshot{{ID: "s1", CreatedAt: snapAt}},
		Exports:   []atlas.ExportJob{{ID: "e1", CreatedAt: expCreated, FinishedAt: expDone}},
	}}}}}
	var rep Report
	analyse(&rep, f, atlassim.Spread{}, []run.Run{ok, failed, before, manual}, state, map[string]int{"take_snapshot": 1, "get_export": 9, "list_clusters": 3}, h0, end)
	if rep.Runs != (Runs{Expected: 2, Succeeded: 1, Failed: 1}) {
		t.Errorf("runs %+v, want 2 expected, 1 succeeded, 1 failed", rep.Runs)
	}
	if rep.FireLag.N != 2 || rep.FireLag.Max != 2 {
		t.Errorf("fire lag %+v, want 2 runs with a 2s maximum", rep.FireLag)
	}
	if rep.SnapshotDetection.N != 1 || rep.SnapshotDetection.P50 != 40 {
		t.Errorf("snapshot detection %+v, want one delay of 40s", rep.SnapshotDetection)
	}
	if rep.ExportDetection.N != 1 || rep.ExportDetection.P50 != 30 {
		t.Errorf("export detection %+v, want one delay of 30s", rep.ExportDetection)
	}
	if rep.API.ChainCalls != 10 || rep.API.OverheadCalls != 3 || rep.API.PerChain != 10 || rep.API.PerChainAll != 13 || rep.API.Budget != 19 {
		t.Errorf("API %+v, want 10 chain calls, 3 overhead, budget 19", rep.API)
	}
}

// The monitor's calls are split from the engine's by what the engine is
// known to make: no list_snapshots (its chains are of slots after its
// start), six listings per project per hour.
func TestSplitMonitorCalls(t *testing.T) {
	calls := map[string]int{"get_cluster": 100, "list_snapshots": 100, "get_backup_schedule": 100, "get_compliance_policy": 20,
		"list_clusters": 140, "list_flex_clusters": 140, "get_export": 800, "token": 1}
	mon, engine := splitMonitorCalls(calls, 1, 20)
	want := map[string]int{"list_snapshots": 100, "get_backup_schedule": 100, "get_compliance_policy": 20, "list_clusters": 20, "list_flex_clusters": 20}
	if !maps.Equal(mon.Calls, want) {
		t.Errorf("monitor calls %v, want %v", mon.Calls, want)
	}
	if mon.CallsPerHour != 260 {
		t.Errorf("monitor calls per hour %g, want 260", mon.CallsPerHour)
	}
	wantEngine := map[string]int{"get_cluster": 100, "list_clusters": 120, "list_flex_clusters": 120, "get_export": 800, "token": 1}
	if !maps.Equal(engine, wantEngine) {
		t.Errorf("engine calls %v, want %v", engine, wantEngine)
	}
}

// With a spread, a snapshot is done when its cluster's durations say: the
// detection delay counts from the spread end, not the default timings'.
func TestAnalyseWithASpread(t *testing.T) {
	f := Fleet{Projects: 1, Clusters: 1}
	h0 := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	sp := atlassim.Spread{Sigma: 0.7, Seed: 5}
	tm := atlassim.DefaultTimings
	tg := run.Target{ProjectID: f.ProjectID(0), Cluster: f.ClusterName(0)}
	snapAt := h0.Add(time.Minute)
	done := snapAt.Add(tm.SnapshotQueued + sp.Scale(tm.SnapshotInProgress, tg.ProjectID, tg.Cluster))
	expCreated := done.Add(12 * time.Second)
	r := run.Run{ID: "a", Policy: policyName, Target: tg, Slot: h0, ScheduledAt: h0, CreatedAt: h0,
		Stage: run.StageSucceeded, SnapshotID: "s1", ExportJobID: "e1", FinishedAt: expCreated.Add(10 * time.Minute)}
	state := &atlassim.AdminState{Projects: []atlassim.AdminProject{{ID: tg.ProjectID, Clusters: []atlassim.AdminCluster{{
		Name:      tg.Cluster,
		Snapshots: []atlas.Snapshot{{ID: "s1", CreatedAt: snapAt}},
		Exports:   []atlas.ExportJob{{ID: "e1", CreatedAt: expCreated, FinishedAt: expCreated.Add(9 * time.Minute)}},
	}}}}}
	var rep Report
	analyse(&rep, f, sp, []run.Run{r}, state, map[string]int{}, h0, h0.Add(time.Hour))
	if rep.SnapshotDetection.N != 1 || rep.SnapshotDetection.P50 != 12 {
		t.Fatalf("snapshot detection %+v, want one delay of 12s from the spread end", rep.SnapshotDetection)
	}
}

// The daemon is measured as it is installed: the README's install command
// and fleetbench's build must agree on cgo and -trimpath.
func TestBuildsAsTheReadmeInstalls(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(buildEnv, " ") + " go " + strings.Join(buildArgs, " ") + " -o backupd ./cmd/backupd"
	if !strings.Contains(string(readme), want) {
		t.Fatalf("README.md does not install backupd with %q, the build fleetbench measures", want)
	}
}
