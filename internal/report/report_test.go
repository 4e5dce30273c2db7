package report_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/scheduler"
)

const project = "32b6e34b3d91647abb20e7b8"

var (
	day0  = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	prodA = run.Target{ProjectID: project, Cluster: "prod-a"}
	prodB = run.Target{ProjectID: project, Cluster: "prod-b"}
)

func at(day int, d time.Duration) time.Time { return day0.Add(time.Duration(day)*24*time.Hour + d) }

func entry(t *testing.T, policy string, tg run.Target, spec string, offset time.Duration) scheduler.Entry {
	t.Helper()
	s, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatal(err)
	}
	return scheduler.Entry{Key: policy + "|" + tg.String(), Policy: policy, Target: tg, Spec: spec, Schedule: s, Location: time.UTC, Offset: offset}
}

// nightlyRun is a run of slot with the given ending.
func nightlyRun(policy string, tg run.Target, slot time.Time, stage run.Stage, reason string) run.Run {
	r := run.Run{ID: run.NewID(policy, tg.ProjectID, tg.Cluster, slot, false), Policy: policy, Action: run.ActionSnapshot,
		Target: tg, Slot: slot, ScheduledAt: slot, CreatedAt: slot, Stage: stage, Reason: reason,
		Spec: run.Spec{RetentionInDays: 7, ExportBucketID: "b1"}, SnapshotID: "snap-" + slot.Format("0102"), SnapshotStatus: "completed",
		ExportBucketID: "b1", ExportJobID: "job-" + slot.Format("0102"), ExportState: "Successful", FinishedAt: slot.Add(time.Hour),
		Stages: []run.StageEntry{{Stage: run.StagePending, At: slot}, {Stage: run.StageSnapshotting, At: slot}, {Stage: run.StageExporting, At: slot.Add(10 * time.Minute)}, {Stage: stage, At: slot.Add(time.Hour)}}}
	if stage == run.StageFailed {
		r.ExportState, r.Detail = "Failed", "export <b>failed</b>"
	}
	return r
}

// month is ten days of a nightly policy on prod-a: day 4 has no run (the
// daemon was down), day 6 failed, day 7 was skipped{overlap}, and prod-b
// of another policy every day succeeded.
func month(t *testing.T) report.Input {
	t.Helper()
	since := at(0, 0)
	ea := entry(t, "nightly", prodA, "0 3 * * *", 0)
	eb := entry(t, "weekly-ish", prodB, "30 4 * * *", 5*time.Minute)
	in := report.Input{Now: at(10, 0), Policies: []report.Policy{
		{Name: "nightly", Action: run.ActionSnapshot, Schedule: "0 3 * * *", Timezone: "UTC", Targets: []report.Target{{Target: prodA, Entry: ea, Mark: &scheduler.Mark{Since: since, Spec: ea.Spec}}}},
		{Name: "weekly-ish", Action: run.ActionSnapshot, Schedule: "30 4 * * *", Timezone: "UTC", Targets: []report.Target{{Target: prodB, Entry: eb, Mark: &scheduler.Mark{Since: since, Spec: eb.Spec}}}},
	}}
	for d := range 10 {
		switch d {
		case 4:
		case 6:
			in.Runs = append(in.Runs, nightlyRun("nightly", prodA, at(d, 3*time.Hour), run.StageFailed, run.ReasonExportFailed))
		case 7:
			r := nightlyRun("nightly", prodA, at(d, 3*time.Hour), run.StageSkipped, run.ReasonOverlap)
			r.SnapshotID, r.ExportJobID, r.Stages = "", "", nil
			in.Runs = append(in.Runs, r)
		default:
			in.Runs = append(in.Runs, nightlyRun("nightly", prodA, at(d, 3*time.Hour), run.StageSucceeded, ""))
		}
		in.Runs = append(in.Runs, nightlyRun("weekly-ish", prodB, at(d, 4*time.Hour+30*time.Minute), run.StageSucceeded, ""))
	}
	return in
}

func build(t *testing.T, in report.Input, q report.Query) *report.Report {
	t.Helper()
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	return report.Build(in, q)
}

func find(t *testing.T, rep *report.Report, tg run.Target) report.Cluster {
	t.Helper()
	for _, c := range rep.Clusters {
		if c.Target == tg {
			return c
		}
	}
	t.Fatalf("no cluster %s in the report", tg)
	return report.Cluster{}
}

func TestMissedFailedAndSkippedSlots(t *testing.T) {
	in := month(t)
	rep := build(t, in, report.Query{From: at(0, 0), To: at(10, 0)})
	a := find(t, rep, prodA)
	pr := a.Policies[0]
	want := report.Counts{Due: 10, Succeeded: 7, Failed: 1, Skipped: 1, Missed: 1}
	if pr.Counts != want || a.Met || pr.Met {
		t.Fatalf("prod-a counts %+v met %v, want %+v not met", pr.Counts, a.Met, want)
	}
	var got []string
	for _, p := range pr.Problems {
		got = append(got, p.Slot.Format("02 15:04")+" "+p.Outcome+"{"+p.Reason+"}")
	}
	if w := []string{"05 03:00 missed{missed}", "07 03:00 failed{export_failed}", "08 03:00 skipped{overlap}"}; !reflect.DeepEqual(got, w) {
		t.Fatalf("problems %v, want %v", got, w)
	}
	if w := []string{"1 failed{export_failed}", "1 missed", "1 skipped{overlap}"}; !reflect.DeepEqual(pr.Why, w) {
		t.Fatalf("why %q, want %q", pr.Why, w)
	}
	if len(pr.Snapshots) != 8 || len(pr.Exports) != 8 || pr.Exports[0].BucketRunID != pr.Exports[0].RunID {
		t.Fatalf("snapshots %d exports %d", len(pr.Snapshots), len(pr.Exports))
	}
	if s := pr.Snapshots[0]; !s.CompletedAt.Equal(at(0, 3*time.Hour+10*time.Minute)) || !s.ExpiresAt.Equal(s.CompletedAt.Add(7*24*time.Hour)) {
		t.Fatalf("snapshot times %+v", s)
	}
	b := find(t, rep, prodB)
	if !b.Met || b.Policies[0].Counts != (report.Counts{Due: 10, Succeeded: 10}) || len(b.Why) != 0 {
		t.Fatalf("prod-b %+v", b)
	}
	if rep.Totals.Clusters != 2 || rep.Totals.Met != 1 || rep.Totals.Counts.Due != 20 || rep.Totals.Counts.Missed != 1 {
		t.Fatalf("totals %+v", rep.Totals)
	}
}

// Slots are due only after the scheduler's mark began, after what the
// journal pruned, within the period, and once their time (with jitter and
// grace) has passed.
func TestWhichSlotsAreDue(t *testing.T) {
	in := month(t)
	in.Runs = nil
	cases := []struct {
		name          string
		since         time.Time // the mark
		retained      time.Time
		from, to, now time.Time
		due           int
	}{
		{"whole period", at(0, 0), time.Time{}, at(0, 0), at(10, 0), at(10, 0), 10},
		{"mark began on day 3", at(3, 0), time.Time{}, at(0, 0), at(10, 0), at(10, 0), 7},
		{"the mark's own instant is not due", at(3, 3*time.Hour), time.Time{}, at(0, 0), at(10, 0), at(10, 0), 6},
		{"pruned through day 5", at(0, 0), at(5, 3*time.Hour), at(0, 0), at(10, 0), at(10, 0), 5},
		{"period ends on day 8", at(0, 0), time.Time{}, at(2, 0), at(8, 0), at(10, 0), 6},
		{"now is in the period, inside the grace", at(0, 0), time.Time{}, at(0, 0), at(10, 0), at(9, 3*time.Hour+30*time.Second), 9},
		{"now is past the grace", at(0, 0), time.Time{}, at(0, 0), at(10, 0), at(9, 3*time.Hour+time.Minute), 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in.Policies[0].Targets[0].Mark.Since = c.since
			in.RetainedSince, in.Now = c.retained, c.now
			pr := find(t, build(t, in, report.Query{From: c.from, To: c.to, Policies: []string{"nightly"}}), prodA).Policies[0]
			if pr.Counts.Due != c.due || pr.Counts.Missed != c.due {
				t.Fatalf("counts %+v, want %d due, all missed", pr.Counts, c.due)
			}
		})
	}
	// Another schedule's mark (the schedule changed) owes nothing yet,
	// and says so.
	in.Policies[0].Targets[0].Mark.Spec = "0 4 * * *"
	in.Now, in.RetainedSince = at(10, 0), time.Time{}
	pr := find(t, build(t, in, report.Query{From: at(0, 0), To: at(10, 0), Policies: []string{"nightly"}}), prodA).Policies[0]
	if pr.Counts.Due != 0 || pr.Met || len(pr.Why) != 1 {
		t.Fatalf("changed schedule: %+v", pr)
	}
}

func TestInFlightNoNewSnapshotAndManualRuns(t *testing.T) {
	in := month(t)
	in.Runs = in.Runs[:0]
	e := in.Policies[0].Targets[0]
	for d := range 10 {
		r := nightlyRun("nightly", prodA, at(d, 3*time.Hour), run.StageSucceeded, "")
		switch d {
		case 8:
			r.Stage, r.Reason = run.StageSkipped, run.ReasonNoNewSnapshot
		case 9:
			r.Stage, r.FinishedAt = run.StageExporting, time.Time{}
		}
		in.Runs = append(in.Runs, r)
	}
	m := nightlyRun("nightly", prodA, at(5, 12*time.Hour), run.StageFailed, run.ReasonTimeout)
	m.Manual, m.ID = true, run.NewID("nightly", project, "prod-a", m.Slot, true)
	in.Runs = append(in.Runs, m)
	_ = e
	pr := find(t, build(t, in, report.Query{From: at(0, 0), To: at(10, 0), Policies: []string{"nightly"}}), prodA).Policies[0]
	if want := (report.Counts{Due: 10, Succeeded: 8, Skipped: 1, InFlight: 1, Manual: 1}); pr.Counts != want || !pr.Met {
		t.Fatalf("counts %+v met %v why %v, want %+v and met (a manual run's failure is listed, judged by no slot)", pr.Counts, pr.Met, pr.Why, want)
	}
	if len(pr.Snapshots) != 11 {
		t.Fatalf("%d snapshots, want every run's, the manual one too", len(pr.Snapshots))
	}
}

func TestFilters(t *testing.T) {
	in := month(t)
	prodC := run.Target{ProjectID: "42b6e34b3d91647abb20e7b8", Cluster: "prod-a"}
	in.Runs = append(in.Runs, nightlyRun("gone", prodC, at(2, 0), run.StageSucceeded, ""))
	all := report.Query{From: at(0, 0), To: at(10, 0)}
	clusters := func(q report.Query) []string {
		var out []string
		for _, c := range build(t, in, q).Clusters {
			for _, p := range c.Policies {
				out = append(out, c.Target.String()+":"+p.Policy)
			}
		}
		return out
	}
	q := all
	q.Policies = []string{"week*"}
	if got := clusters(q); !reflect.DeepEqual(got, []string{project + "/prod-b:weekly-ish"}) {
		t.Fatalf("policy glob: %v", got)
	}
	q = all
	q.Clusters = []string{"prod-a"}
	if got := clusters(q); !reflect.DeepEqual(got, []string{project + "/prod-a:nightly", prodC.String() + ":gone"}) {
		t.Fatalf("cluster name: %v", got)
	}
	q.Clusters = []string{"42b6*/prod-?"}
	if got := clusters(q); !reflect.DeepEqual(got, []string{prodC.String() + ":gone"}) {
		t.Fatalf("project/cluster glob: %v", got)
	}
	q.Clusters = []string{"prod-b", "nothing"}
	q.Policies = []string{"nightly", "weekly-ish"}
	if got := clusters(q); !reflect.DeepEqual(got, []string{project + "/prod-b:weekly-ish"}) {
		t.Fatalf("both filters: %v", got)
	}
	// A policy no longer configured is judged on its runs alone.
	g := find(t, build(t, in, all), prodC).Policies[0]
	if g.Configured || !g.Met || g.Counts != (report.Counts{Due: 1, Succeeded: 1}) {
		t.Fatalf("unconfigured policy %+v", g)
	}
	for _, bad := range []report.Query{{From: at(1, 0), To: at(1, 0)}, {From: at(0, 0), To: at(1, 0), Clusters: []string{"["}}, {}} {
		if bad.Validate() == nil {
			t.Fatalf("Validate(%+v) = nil", bad)
		}
	}
}

func TestJSONSchemaRoundTrip(t *testing.T) {
	in := month(t)
	in.Monitor = &run.MonitorStatus{Clusters: []run.MonitorCluster{{Target: prodA, LastRead: at(9, 0),
		Newest:     map[string]time.Time{"daily": at(9, 0), "hourly": at(9, 23*time.Hour)},
		Schedule:   []run.NativeItem{{Frequency: "daily", MaxGap: run.Duration(24 * time.Hour), Retention: run.Duration(7 * 24 * time.Hour)}},
		Compliance: &run.NativeCompliance{Required: []run.NativeItem{{Frequency: "daily", MaxGap: run.Duration(24 * time.Hour), Retention: run.Duration(30 * 24 * time.Hour)}}, Shortfalls: []string{"daily kept 7d, the policy requires 30d"}},
		Problems:   []string{"weaker than the compliance policy: daily kept 7d, the policy requires 30d"},
	}}}
	rep := build(t, in, report.Query{From: at(0, 0), To: at(10, 0)})
	var buf bytes.Buffer
	if err := report.Render(&buf, rep, report.FormatJSON); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"schema": "backupd.report/v1"`) {
		t.Fatalf("no schema field:\n%.300s", buf.String())
	}
	// Durations are strings, as in every JSON backupd writes (issue 14).
	for _, want := range []string{`"maxGap":"24h0m0s"`, `"retention":"168h0m0s"`, `"retention":"720h0m0s"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report JSON lacks %s", want)
		}
	}
	if strings.Contains(buf.String(), `Seconds"`) {
		t.Errorf("report JSON still has a number of seconds:\n%s", buf.String())
	}
	back, err := report.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rep) {
		t.Fatalf("round trip changed the report:\n%+v\n%+v", back, rep)
	}
	a := find(t, back, prodA)
	if a.Native == nil || !a.Native.NewestAny.Equal(at(9, 23*time.Hour)) || len(a.Why) != 4 || !strings.HasPrefix(a.Why[3], "monitor: ") {
		t.Fatalf("native %+v why %q", a.Native, a.Why)
	}
	other := strings.Replace(buf.String(), report.Schema, "backupd.report/v0", 1)
	if _, err := report.Decode(strings.NewReader(other)); err == nil || !strings.Contains(err.Error(), "backupd.report/v0") {
		t.Fatalf("Decode of another schema = %v", err)
	}
}

func TestRenderingEscapesHostileText(t *testing.T) {
	in := month(t)
	evil := `<script>alert("x")</script>|*[link](javascript:x)*`
	hostile := run.Target{ProjectID: project, Cluster: `<img src=x onerror=alert(1)>`}
	r := nightlyRun(`p"><b>`, hostile, at(3, 0), run.StageFailed, run.ReasonAtlasError)
	r.Detail, r.SnapshotID, r.ExportJobID = evil, evil, "</td></tr></table><iframe>"
	in.Runs = append(in.Runs, r)
	rep := build(t, in, report.Query{From: at(0, 0), To: at(10, 0)})
	for _, f := range report.Formats {
		var buf bytes.Buffer
		if err := report.Render(&buf, rep, f); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		switch f {
		case report.FormatHTML:
			for _, raw := range []string{"<script", "<img", "<iframe", "<b>", "</td></tr></table>"} {
				if strings.Contains(out, raw) {
					t.Fatalf("HTML carries %q unescaped", raw)
				}
			}
			if strings.Contains(out, "http://") || strings.Contains(out, "https://") || strings.Contains(out, "<script") {
				t.Fatal("the page refers to something outside itself")
			}
			wellFormed(t, out)
		case report.FormatMarkdown:
			// backupd's Markdown has no HTML of its own: every < is an
			// escaped one, and the hostile text is escaped whole.
			if m := regexp.MustCompile(`(^|[^\\])[<>]`).FindString(out); m != "" {
				t.Fatalf("Markdown carries an unescaped %q:\n%s", m, out)
			}
			if esc := `\<script\>alert("x")\</script\>\|\*\[link\](javascript:x)\*`; !strings.Contains(out, esc) {
				t.Fatalf("Markdown lacks the escaped detail %s:\n%s", esc, out)
			}
		}
	}
	if err := report.Render(io.Discard, rep, "pdf"); err == nil {
		t.Fatal("Render(pdf) = nil")
	}
}

// wellFormed parses page as XML: every element closed, every attribute
// quoted, every entity known.
func wellFormed(t *testing.T, page string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	d.Entity = map[string]string{}
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("HTML is not well-formed: %v", err)
		}
	}
}

// TestDrillEvidence: a drill's restore time and snapshot age are Atlas's
// (job created → finished, snapshot → job created), its verification the
// verify command's verdict with its exit code, "pending" while in flight
// and "none" when it ended before verifying.
func TestDrillEvidence(t *testing.T) {
	in := month(t)
	in.Runs = nil
	drill := func(d int, stage run.Stage, verification string, exit int) run.Run {
		slot := at(d, 6*time.Hour)
		r := run.Run{ID: run.NewID("drill", project, "prod-a", slot, false), Policy: "drill", Action: run.ActionRestoreDrill, Target: prodA,
			Slot: slot, ScheduledAt: slot, CreatedAt: slot, Stage: stage, SnapshotID: "snap-1", RestoreJobID: "job-1", RestoreRequested: true,
			Spec: run.Spec{TargetProjectID: project, TargetCluster: "scratch"}, FinishedAt: slot.Add(2 * time.Hour),
			Drill: run.Drill{SnapshotAt: slot.Add(-5 * time.Hour), JobCreatedAt: slot.Add(time.Minute), JobFinishedAt: slot.Add(41 * time.Minute),
				Verification: verification, VerifyExitCode: exit, VerifyDuration: run.Duration(90 * time.Second)}}
		if stage == run.StageVerifying {
			r.FinishedAt = time.Time{}
		}
		return r
	}
	in.Runs = []run.Run{
		drill(1, run.StageSucceeded, run.VerifiedByCommand, 0),
		drill(2, run.StageFailed, run.VerifyFailed, 3),
		drill(3, run.StageSucceeded, run.VerifiedAtlasOnly, 0),
		drill(4, run.StageFailed, "", 0),
		drill(5, run.StageVerifying, "", 0),
	}
	rep := build(t, in, report.Query{From: at(0, 0), To: at(10, 0), Policies: []string{"drill"}})
	if len(rep.Clusters) != 1 || len(rep.Clusters[0].Policies) != 1 {
		t.Fatalf("clusters %+v", rep.Clusters)
	}
	rs := rep.Clusters[0].Policies[0].Restores
	var got []string
	for _, x := range rs {
		exit := "-"
		if x.VerifyExitCode != nil {
			exit = strconv.Itoa(*x.VerifyExitCode)
		}
		got = append(got, fmt.Sprintf("%s %s exit %s restore %s age %s into %s", x.Result, x.Verification, exit, x.RestoreDuration, *x.SnapshotAge, x.Target.Cluster))
	}
	want := []string{
		"succeeded verified exit 0 restore 40m0s age 5h1m0s into scratch",
		"failed failed exit 3 restore 40m0s age 5h1m0s into scratch",
		"succeeded atlas_only exit - restore 40m0s age 5h1m0s into scratch",
		"failed none exit - restore 40m0s age 5h1m0s into scratch",
		"verifying pending exit - restore 40m0s age 5h1m0s into scratch",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("drills:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if x := rs[0]; !x.RequestedAt.Equal(at(1, 6*time.Hour+time.Minute)) || x.VerifyDuration != run.Duration(90*time.Second) || !x.SnapshotAt.Equal(at(1, time.Hour)) {
		t.Fatalf("drill times %+v", x)
	}
	// In JSON the drill's durations are strings (issue 14: no numbers of
	// seconds or nanoseconds).
	j, err := json.Marshal(rs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"restoreDuration":"40m0s"`, `"snapshotAge":"5h1m0s"`, `"verifyDuration":"1m30s"`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("drill JSON %s lacks %s", j, want)
		}
	}
}

// TestFlexRestoreEvidence: a flex restore shows the snapshot's age and the
// restore time on Atlas's clock, as a drill does (restoreScheduledDate
// after the snapshot's finishTime, to restoreFinishedDate); one journaled
// before flex restores kept those times has no age and a restore time on
// backupd's clock.
func TestFlexRestoreEvidence(t *testing.T) {
	in := month(t)
	slot := at(1, 6*time.Hour)
	flex := run.Run{ID: run.NewID("refresh", project, "flex-a", slot, false), Policy: "refresh", Action: run.ActionFlexRestore,
		Target: run.Target{ProjectID: project, Cluster: "flex-a"}, Slot: slot, ScheduledAt: slot, CreatedAt: slot,
		Stage: run.StageSucceeded, FlexSnapshotID: "flex-snap-1", RestoreJobID: "job-1", RestoreStatus: "COMPLETED", RestoreRequested: true,
		Spec: run.Spec{TargetProjectID: project, TargetCluster: "staging"}, FinishedAt: slot.Add(10 * time.Minute),
		Stages: []run.StageEntry{{Stage: run.StageRestoring, At: slot.Add(time.Minute)}, {Stage: run.StageSucceeded, At: slot.Add(10 * time.Minute)}},
		Drill:  run.Drill{SnapshotAt: slot.Add(-6 * time.Hour), JobCreatedAt: slot.Add(90 * time.Second), JobFinishedAt: slot.Add(4 * time.Minute)}}
	older := flex
	older.ID, older.Slot, older.Drill = run.NewID("refresh", project, "flex-a", at(2, 6*time.Hour), false), at(2, 6*time.Hour), run.Drill{}
	older.Stages = []run.StageEntry{{Stage: run.StageRestoring, At: at(2, 6*time.Hour+time.Minute)}}
	older.FinishedAt = at(2, 6*time.Hour+10*time.Minute)
	in.Runs = []run.Run{flex, older}
	rep := build(t, in, report.Query{From: at(0, 0), To: at(10, 0), Policies: []string{"refresh"}})
	if len(rep.Clusters) != 1 || len(rep.Clusters[0].Policies) != 1 || len(rep.Clusters[0].Policies[0].Restores) != 2 {
		t.Fatalf("clusters %+v", rep.Clusters)
	}
	rs := rep.Clusters[0].Policies[0].Restores
	x := rs[0]
	if x.SnapshotAge == nil || *x.SnapshotAge != run.Duration(6*time.Hour+90*time.Second) || x.RestoreDuration != run.Duration(150*time.Second) ||
		!x.RequestedAt.Equal(slot.Add(90*time.Second)) || !x.SnapshotAt.Equal(slot.Add(-6*time.Hour)) || x.Verification != report.VerificationAtlasOnly {
		t.Fatalf("flex restore %+v", x)
	}
	if x := rs[1]; x.SnapshotAge != nil || x.RestoreDuration != run.Duration(9*time.Minute) {
		t.Fatalf("flex restore without Atlas's times: age %v restore %s, want none and the stage's 9m", x.SnapshotAge, x.RestoreDuration)
	}
	var md strings.Builder
	if err := report.Render(&md, rep, report.FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| 6h") {
		t.Errorf("the Markdown report does not show the flex snapshot's age:\n%s", md.String())
	}
}

// TestStreamWritesWhatBuildRenders: a report streamed from a source of
// ended runs (ordered by cluster, as the journal's rollup yields them) and
// the rest in Input.Runs is, byte for byte in every format, the report
// Build makes of all of them; the summary at the top of Markdown and HTML
// agrees with the sections under it. A source out of order is refused.
func TestStreamWritesWhatBuildRenders(t *testing.T) {
	in := month(t)
	prodC := run.Target{ProjectID: "42b6e34b3d91647abb20e7b8", Cluster: "prod-a"}
	in.Runs = append(in.Runs, nightlyRun("gone", prodC, at(2, 0), run.StageSucceeded, ""))
	inFlight := nightlyRun("nightly", prodA, at(9, 3*time.Hour), run.StageExporting, "")
	in.Monitor = &run.MonitorStatus{Clusters: []run.MonitorCluster{{Target: run.Target{ProjectID: project, Cluster: "only-watched"}, LastRead: at(9, 0)}}}
	q := report.Query{From: at(0, 0), To: at(10, 0)}
	var ended, rest []run.Run
	for _, r := range in.Runs {
		if r.Stage.Terminal() && !r.Slot.Equal(at(9, 3*time.Hour)) {
			ended = append(ended, r)
		}
	}
	rest = append(rest, inFlight)
	slices.SortStableFunc(ended, func(a, b run.Run) int {
		return cmp.Or(cmp.Compare(a.Target.ProjectID, b.Target.ProjectID), cmp.Compare(a.Target.Cluster, b.Target.Cluster))
	})
	whole := in
	whole.Runs = append(slices.Clone(ended), rest...)
	want := build(t, whole, q)
	if len(want.Clusters) != 4 || want.Totals.Counts.InFlight != 1 {
		t.Fatalf("the report's clusters %d, totals %+v", len(want.Clusters), want.Totals)
	}
	streamed := in
	streamed.Runs = rest
	passes := 0
	src := func(fn func(run.Run) error) error {
		passes++
		for _, r := range ended {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range report.Formats {
		var a, b bytes.Buffer
		if err := report.Render(&a, want, f); err != nil {
			t.Fatal(err)
		}
		passes = 0
		totals, err := report.Stream(&b, f, streamed, q, src)
		if err != nil || totals != want.Totals || a.String() != b.String() {
			t.Fatalf("%s: streamed (%v, totals %+v) differs from the rendered report (totals %+v):\n%s\n----\n%s", f, err, totals, want.Totals, b.String(), a.String())
		}
		if wantPasses := map[bool]int{true: 1, false: 2}[f == report.FormatJSON]; passes != wantPasses {
			t.Fatalf("%s: %d passes over the source, want %d", f, passes, wantPasses)
		}
	}
	back, err := report.Decode(strings.NewReader(func() string {
		var b bytes.Buffer
		_, _ = report.Stream(&b, report.FormatJSON, streamed, q, src)
		return b.String()
	}()))
	if err != nil || !reflect.DeepEqual(back.Totals, want.Totals) || len(back.Clusters) != len(want.Clusters) {
		t.Fatalf("decoded stream: %v, totals %+v", err, back)
	}
	slices.Reverse(ended)
	if _, err := report.Stream(io.Discard, report.FormatJSON, streamed, q, src); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("a source out of order: err = %v", err)
	}
}

// TestManySlotsAreJudgedOnTheNewest: a minutely policy over 20 days
// (28,800 slots, the schedule's slots computed once for both clusters)
// and over 80 days (115,200, too many to keep: computed per cluster) is
// judged on its newest MaxSlots, not met, and says so, on every cluster.
func TestManySlotsAreJudgedOnTheNewest(t *testing.T) {
	for _, days := range []int{20, 80} {
		from, to := at(0, 0), at(days, 0)
		in := report.Input{Now: to.Add(time.Hour)}
		p := report.Policy{Name: "minutely", Action: run.ActionSnapshot, Schedule: "* * * * *", Timezone: "UTC"}
		for _, tg := range []run.Target{prodA, prodB} {
			e := entry(t, "minutely", tg, "* * * * *", 0)
			p.Targets = append(p.Targets, report.Target{Target: tg, Entry: e, Mark: &scheduler.Mark{Since: from.Add(-time.Hour), Spec: e.Spec}})
		}
		in.Policies = []report.Policy{p}
		rep := build(t, in, report.Query{From: from, To: to})
		for _, c := range rep.Clusters {
			pr := c.Policies[0]
			oldest := to.Add(-report.MaxSlots * time.Minute)
			if !pr.Truncated || pr.Met || pr.Counts.Due != report.MaxSlots || pr.Counts.Missed != report.MaxSlots ||
				!pr.Problems[0].Slot.Equal(oldest) || !pr.Problems[len(pr.Problems)-1].Slot.Equal(to.Add(-time.Minute)) {
				t.Fatalf("%d days, %s: truncated %v met %v counts %+v, slots %v..%v; want the newest %d from %v",
					days, c.Target, pr.Truncated, pr.Met, pr.Counts, pr.Problems[0].Slot, pr.Problems[len(pr.Problems)-1].Slot, report.MaxSlots, oldest)
			}
		}
	}
}
