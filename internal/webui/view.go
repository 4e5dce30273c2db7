package webui

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Freshness of a target's last success against its schedule's interval.
const (
	FreshOK      = "ok"      // within one interval
	FreshLate    = "late"    // more than one interval, at most two: a slot's run may still be due or running
	FreshOverdue = "overdue" // more than two intervals: at least one slot went without success
	FreshNever   = "never"   // no success recorded
	FreshUnknown = "unknown" // the schedule has no fixed interval
)

var funcs = template.FuncMap{
	"ts":     stamp,
	"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":    human,
	"runURL": func(id run.ID) string { return PathRuns + string(id) },
	"bytes":  sizeOf,
}

// fleetView is the data of the fleet page.
type fleetView struct {
	Refresh   int
	Now       time.Time
	Version   string
	StartedAt time.Time
	Ready     bool
	Summary   summary
	Failures  []failureRow
	ReadError string
	Rows      []targetRow
	Policies  []policyRow
	Problems  []problemRow
	Monitor   *monitorView
	Drills    []drillRow
}

// drillRow is a restore drill (or flex restore) policy's source cluster
// and its last restore: the result, the restore time and the snapshot's
// age on Atlas's clock, and how the restore was verified (status carries
// each target's last run, whose Drill record holds these).
type drillRow struct {
	Policy      string
	Flex        bool // a flexRestore policy's row
	Source      run.Target
	Into        run.Target
	Last        *run.Run
	Class, Text string
	Restore     time.Duration // 0: not known (yet)
	SnapshotAge time.Duration // 0: not recorded
	Verified    string        // the drill's verification, or "—"
	LastSuccess time.Time
	SuccessAge  time.Duration
}

type summary struct{ Targets, Failing, InFlight, Behind int }

type failureRow struct {
	Run    run.Run
	Age    time.Duration
	Result string
}

type policyRow struct {
	Name, Action, Schedule, Timezone string
	Interval                         time.Duration
	Targets                          int
}

// targetRow is one policy × target line of the fleet table.
type targetRow struct {
	Policy   string
	Target   run.Target
	Interval time.Duration

	Last      *run.Run
	LastClass string // ok | bad | warn | none
	LastText  string

	LastSuccess time.Time
	SuccessAge  time.Duration
	Freshness   string
	FreshText   string

	NextRun time.Time
	NextIn  time.Duration

	InFlight    *run.Run
	InFlightFor time.Duration
	InFlightIDs []idPair
}

// problemRow is a cluster a policy cannot act on or a project it could
// not list.
type problemRow struct{ Policy, What, Why string }

type idPair struct{ Name, Value string }

type monitorView struct {
	Interval   time.Duration
	Rows       []monitorRow
	ListErrors []run.ResolutionError
}

type monitorRow struct {
	C        run.MonitorCluster
	Class    string // ok | warn | bad
	Text     string
	Newest   []kindAge
	LastRead time.Duration
}

type kindAge struct {
	Kind string
	At   time.Time
	Age  time.Duration
}

// buildFleet turns a Status and the newest failed runs into the fleet page.
func buildFleet(st run.Status, failed []run.Run, readErr string) fleetView {
	now := st.Now
	v := fleetView{Refresh: RefreshSeconds, Now: now, Version: st.Version, StartedAt: st.StartedAt, Ready: st.Ready, ReadError: readErr}
	for _, r := range failed {
		v.Failures = append(v.Failures, failureRow{Run: r, Age: now.Sub(finished(r)), Result: r.Result()})
	}
	for _, p := range st.Policies {
		v.Policies = append(v.Policies, policyRow{Name: p.Name, Action: string(p.Action), Schedule: p.Schedule, Timezone: p.Timezone, Interval: p.Interval.D(), Targets: len(p.Targets)})
		for _, t := range p.Targets {
			if p.Action == run.ActionRestoreDrill || p.Action == run.ActionFlexRestore {
				v.Drills = append(v.Drills, buildDrillRow(now, p.Name, p.Action, t))
			}
			row := targetRow{Policy: p.Name, Target: t.Target, Interval: p.Interval.D(), Last: t.LastRun, LastSuccess: t.LastSuccess, NextRun: t.NextRun, InFlight: t.InFlight}
			row.LastClass, row.LastText = lastResult(t.LastRun)
			row.Freshness, row.FreshText = freshness(now, t.LastSuccess, p.Interval.D())
			if !row.LastSuccess.IsZero() {
				row.SuccessAge = now.Sub(row.LastSuccess)
			}
			if !row.NextRun.IsZero() {
				row.NextIn = row.NextRun.Sub(now)
			}
			if f := t.InFlight; f != nil {
				row.InFlightFor = now.Sub(f.StageStartedAt)
				row.InFlightIDs = inFlightIDs(*f)
				v.Summary.InFlight++
			}
			v.Summary.Targets++
			if row.LastClass == "bad" {
				v.Summary.Failing++
			}
			if row.Freshness == FreshOverdue || row.Freshness == FreshNever {
				v.Summary.Behind++
			}
			v.Rows = append(v.Rows, row)
		}
		for _, u := range p.Unresolved {
			v.Problems = append(v.Problems, problemRow{Policy: p.Name, What: u.Target.String(), Why: u.Reason + ": " + u.Detail})
		}
		for _, e := range p.ResolutionErrors {
			v.Problems = append(v.Problems, problemRow{Policy: p.Name, What: "project " + e.ProjectID, Why: fmt.Sprintf("not listed since %s: %s", stamp(e.Since), e.Error)})
		}
	}
	if m := st.Monitor; m != nil {
		mv := &monitorView{Interval: m.Interval.D(), ListErrors: m.ListErrors}
		for _, c := range m.Clusters {
			mv.Rows = append(mv.Rows, buildMonitorRow(now, c))
		}
		v.Monitor = mv
	}
	return v
}

func buildDrillRow(now time.Time, policyName string, action run.Action, t run.TargetStatus) drillRow {
	row := drillRow{Policy: policyName, Flex: action == run.ActionFlexRestore, Source: t.Target, Last: t.LastRun, LastSuccess: t.LastSuccess, Verified: "—"}
	row.Class, row.Text = lastResult(t.LastRun)
	if !t.LastSuccess.IsZero() {
		row.SuccessAge = now.Sub(t.LastSuccess)
	}
	if r := t.LastRun; r != nil {
		row.Into = run.Target{ProjectID: r.Spec.TargetProjectID, Cluster: r.Spec.TargetCluster}
		row.Restore = r.Drill.RestoreDuration()
		if !r.Drill.SnapshotAt.IsZero() && !r.Drill.JobCreatedAt.IsZero() {
			row.SnapshotAge = r.Drill.SnapshotAge()
		}
		if row.Flex && r.Stage == run.StageSucceeded {
			// Atlas reported the restore complete; nothing checks the data.
			row.Verified = run.VerifiedAtlasOnly
		}
		if r.Drill.Verification != "" {
			row.Verified = r.Drill.Verification
			if r.Drill.Verification == run.VerifyFailed || r.Drill.Verification == run.VerifiedByCommand {
				row.Verified += fmt.Sprintf(" (exit %d)", r.Drill.VerifyExitCode)
			}
		}
	}
	return row
}

// finished is when a run ended, or its last change for an unfinished one.
func finished(r run.Run) time.Time {
	if !r.FinishedAt.IsZero() {
		return r.FinishedAt
	}
	return r.UpdatedAt
}

// lastResult says how the last run ended, in a class and words.
func lastResult(r *run.Run) (class, text string) {
	switch {
	case r == nil:
		return "none", "no run yet"
	case r.Stage == run.StageSucceeded:
		return "ok", "succeeded"
	case r.Stage == run.StageFailed:
		return "bad", "failed: " + r.Reason
	case r.Stage == run.StageSkipped:
		return "warn", "skipped: " + r.Reason
	}
	return "none", string(r.Stage)
}

// freshness judges the age of the last success against the interval.
func freshness(now, last time.Time, interval time.Duration) (class, text string) {
	switch age := now.Sub(last); {
	case last.IsZero():
		return FreshNever, "never succeeded"
	case interval <= 0:
		return FreshUnknown, "no fixed interval"
	case age <= interval:
		return FreshOK, "within its interval"
	case age <= 2*interval:
		return FreshLate, "older than its interval"
	default:
		return FreshOverdue, fmt.Sprintf("%.0f intervals without success", float64(age)/float64(interval))
	}
}

// atlasIDs lists the Atlas ids and states a run holds, in lifecycle order.
func atlasIDs(r run.Run) []idPair {
	var out []idPair
	add := func(name, v string) {
		if v != "" {
			out = append(out, idPair{name, v})
		}
	}
	add("snapshot", r.SnapshotID)
	add("snapshot kind", r.SnapshotKind)
	add("snapshot status", r.SnapshotStatus)
	if r.SnapshotBytes > 0 {
		add("snapshot size", sizeOf(r.SnapshotBytes))
	}
	add("export bucket", r.ExportBucketID)
	add("export job", r.ExportJobID)
	add("export state", r.ExportState)
	add("export progress", r.ExportProgress)
	add("flex snapshot", r.FlexSnapshotID)
	add("restore job", r.RestoreJobID)
	add("restore status", r.RestoreStatus)
	return out
}

// inFlightIDs is the short form of atlasIDs for the fleet table: the ids
// and the export's progress; the run's page has the rest.
func inFlightIDs(r run.Run) []idPair {
	var out []idPair
	for _, p := range atlasIDs(r) {
		switch p.Name {
		case "snapshot", "export job", "export progress", "flex snapshot", "restore job":
			out = append(out, p)
		}
	}
	return out
}

func buildMonitorRow(now time.Time, c run.MonitorCluster) monitorRow {
	row := monitorRow{C: c, Class: "ok", Text: "fresh"}
	if !c.LastRead.IsZero() {
		row.LastRead = now.Sub(c.LastRead)
	}
	for k, at := range c.Newest {
		row.Newest = append(row.Newest, kindAge{Kind: k, At: at, Age: now.Sub(at)})
	}
	slices.SortFunc(row.Newest, func(a, b kindAge) int { return kindRank(a.Kind) - kindRank(b.Kind) })
	switch {
	case len(c.Overdue) > 0:
		row.Class, row.Text = "bad", "overdue: "+strings.Join(c.Overdue, ", ")
	case len(c.Problems) > 0:
		row.Class, row.Text = "bad", "problems"
	case c.LastRead.IsZero() && c.LastError != "":
		row.Class, row.Text = "warn", "never read"
	case c.LastRead.IsZero():
		row.Class, row.Text = "none", "not read yet"
	case c.LastError != "":
		row.Class, row.Text = "warn", "last read failed"
	}
	return row
}

// kindRank orders snapshot kinds from the most to the least frequent.
func kindRank(k string) int {
	i := slices.Index([]string{"hourly", "daily", "weekly", "monthly", "yearly", "onDemand", "fallback", "flex"}, k)
	if i < 0 {
		return 100
	}
	return i
}

// runView is the data of a run's page.
type runView struct {
	Refresh  int
	Now      time.Time
	Run      run.Run
	Class    string
	Text     string
	Stages   []stageRow
	IDs      []idPair
	Took     time.Duration
	Timeouts []idPair
}

type stageRow struct {
	Stage run.Stage
	At    time.Time
	For   time.Duration
	Open  bool // the stage the run is in now
}

func buildRun(r run.Run, now time.Time) runView {
	v := runView{Now: now, Run: r, IDs: atlasIDs(r)}
	v.Class, v.Text = lastResult(&r)
	if !r.Stage.Terminal() {
		v.Refresh, v.Class, v.Text = RefreshSeconds, "run", string(r.Stage)
	}
	for i, e := range r.Stages {
		row := stageRow{Stage: e.Stage, At: e.At}
		switch {
		case i+1 < len(r.Stages):
			row.For = r.Stages[i+1].At.Sub(e.At)
		case !e.Stage.Terminal():
			row.For, row.Open = now.Sub(e.At), true
		}
		v.Stages = append(v.Stages, row)
	}
	if !r.FinishedAt.IsZero() {
		v.Took = r.FinishedAt.Sub(r.CreatedAt)
	}
	to := r.Spec.Timeouts
	for _, p := range []struct {
		n string
		d time.Duration
	}{{"wait", to.Wait}, {"snapshot", to.Snapshot}, {"export", to.Export}, {"restore", to.Restore}} {
		if p.d > 0 {
			v.Timeouts = append(v.Timeouts, idPair{p.n, human(p.d)})
		}
	}
	return v
}

type errorView struct {
	Refresh int
	Title   string
	Message string
	Now     time.Time
}

// stamp is a time as the page shows it: UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// human writes a duration in its two largest units, the second left out
// when zero: "2d 3h", "3h 5m", "1h", "4m 10s", "12s"; negative durations get a minus sign.
func human(d time.Duration) string {
	if d < 0 {
		return "-" + human(-d)
	}
	d = d.Round(time.Second)
	days, h, m, s := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60, int(d/time.Second)%60
	two := func(a int, au string, b int, bu string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, au)
		}
		return fmt.Sprintf("%d%s %d%s", a, au, b, bu)
	}
	switch {
	case days > 0:
		return two(days, "d", h, "h")
	case h > 0:
		return two(h, "h", m, "m")
	case m > 0:
		return two(m, "m", s, "s")
	}
	return fmt.Sprintf("%ds", s)
}

func sizeOf(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
