package daemon_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// monthConfig replaces the policies of the test config: a nightly
// snapshot+export of prod-a, a daily flex restore, and the monitor
// watching prod-a.
func monthConfig(t *testing.T, dir string) {
	t.Helper()
	base := strings.Replace(hourlyPlusX, "STATE", filepath.Join(dir, "state.db"), 1)
	base = base[:strings.Index(base, "policies:")]
	cfg := base + `policies:
  - name: nightly
    schedule: "0 3 * * *"
    targets: [{projectID: ` + project + `, clusters: [prod-a]}]
    snapshot: {retentionInDays: 7, description: nightly}
    export: {bucketID: ` + bucket + `}
` + flexPolicy + `
  - name: drill
    schedule: "0 6 * * *"
    restoreDrill:
      projectID: ` + project + `
      cluster: prod-a
      targetCluster: scratch
      confirmOverwrite: true
monitor:
  interval: 1h
  targets: [{projectID: ` + project + `, clusters: [prod-a]}]
`
	if err := os.WriteFile(filepath.Join(dir, goodConfig), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// allRuns is every run of policy in the journal, through the runs API.
func (e *env) allRuns(t *testing.T, policy string) []run.Run {
	t.Helper()
	code, body := e.get(t, "/api/v1/runs?limit=1000&policy="+policy)
	if code != 200 {
		t.Fatalf("runs = %d %s", code, body)
	}
	var page struct {
		Runs []run.Run `json:"runs"`
		Next string    `json:"next"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil || page.Next != "" {
		t.Fatalf("runs page: %v (next %q)", err, page.Next)
	}
	return page.Runs
}

// reportAfterPruning prunes every full run but the newest from j (the
// daemon's journal), as the count limit does on a fleet, and requires the
// same report as before, from the rollup (the daemon's clock has not
// moved).
func reportAfterPruning(t *testing.T, e *env, j journal.Journal, before string) {
	if t.Failed() {
		return
	}
	n, err := j.Prune(time.Now(), 1, 0)
	if err != nil || n < 90 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if rs, err := j.History(journal.Query{}); err != nil || len(rs) > 1 {
		t.Fatalf("%d runs left, %v", len(rs), err)
	}
	code, after := e.get(t, "/api/v1/report?since=30d&format=json")
	if code != 200 || after != before {
		t.Fatalf("the report changed when the full runs were pruned (%d):\n%s", code, lineDiffOf(before, after))
	}
}

// lineDiffOf is the first line where a and b differ, with its number.
func lineDiffOf(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines, then %d", len(al), len(bl))
}

// TestReportOfASimulatedMonth drives the daemon through 31 virtual days
// against the simulator: two days down (one nightly slot is missed, the
// other caught up), one export failing, one manual run, the monitor
// reading the native schedule and a compliance policy. The report of the
// last 30 days must add up to the runs it was built from, show the slot
// the downtime lost as missed, and carry the Atlas ids the simulator
// holds; and it must stay the same once the full runs are pruned.
func TestReportOfASimulatedMonth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		monthConfig(t, dir)
		if err := sim.AddCluster(project, atlassim.ClusterSpec{Name: "scratch", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}); err != nil {
			t.Fatal(err)
		}
		daily := atlas.PolicyItem{FrequencyType: atlas.FrequencyDaily, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 7}
		if err := sim.SetSchedule(project, "prod-a", atlassim.ScheduleSpec{Items: []atlas.PolicyItem{daily}, Backfill: 48 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		weekly := atlas.PolicyItem{FrequencyType: atlas.FrequencyWeekly, FrequencyInterval: 7, RetentionUnit: atlas.RetentionWeeks, RetentionValue: 4}
		if err := sim.SetCompliancePolicy(project, &atlassim.CompliancePolicySpec{ScheduledItems: []atlas.PolicyItem{daily, weekly}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		day0 := start.Truncate(24 * time.Hour)
		at := func(day int, d time.Duration) time.Time { return day0.Add(time.Duration(day)*24*time.Hour + d) }
		until := func(ts time.Time) { time.Sleep(time.Until(ts)); synctest.Wait() }

		e := launch(t, dir, sim)
		until(at(10, time.Hour)) // day 10 01:00: down until day 12 02:00
		e.stop()
		until(at(12, 2*time.Hour))
		var jr journal.Journal
		e = launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), WrapJournal: func(j journal.Journal) journal.Journal {
			jr = j
			return j
		}})
		synctest.Wait()
		defer e.stop()
		until(at(20, time.Hour))
		sim.FailNextExports(1, false) // day 20's nightly export fails
		until(at(25, 12*time.Hour))
		e.trigger(t, "nightly")
		until(at(31, 0))

		code, body := e.get(t, "/api/v1/report?since=30d&format=json")
		if code != 200 {
			t.Fatalf("report = %d %s", code, body)
		}
		defer reportAfterPruning(t, e, jr, body)
		rep, err := report.Decode(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		from, to := at(1, 0), at(31, 0)
		if !rep.From.Equal(from) || !rep.To.Equal(to) || !rep.MonitorConfigured {
			t.Fatalf("report period %v..%v monitor %v, want %v..%v with the monitor", rep.From, rep.To, rep.MonitorConfigured, from, to)
		}
		prodA := run.Target{ProjectID: project, Cluster: "prod-a"}
		flex := run.Target{ProjectID: project, Cluster: "flex-prod"}
		cl := func(tg run.Target) report.Cluster {
			i := slices.IndexFunc(rep.Clusters, func(c report.Cluster) bool { return c.Target == tg })
			if i < 0 {
				t.Fatalf("report has no cluster %s: %s", tg, body)
			}
			return rep.Clusters[i]
		}
		for _, c := range []struct {
			policy string
			target run.Target
			slotAt time.Duration // the daily slot
		}{{"nightly", prodA, 3 * time.Hour}, {"refresh", flex, 5*time.Hour + 30*time.Minute}, {"drill", prodA, 6 * time.Hour}} {
			c1 := cl(c.target)
			i := slices.IndexFunc(c1.Policies, func(p report.PolicyReport) bool { return p.Policy == c.policy })
			if i < 0 {
				t.Fatalf("%s: policies %+v", c.target, c1.Policies)
			}
			pr := c1.Policies[i]
			// Expected numbers, from the runs and the calendar.
			var want report.Counts
			bySlot := map[int64]run.Run{}
			for _, r := range e.allRuns(t, c.policy) {
				if r.Manual {
					if !r.CreatedAt.Before(from) && r.CreatedAt.Before(to) {
						want.Manual++
					}
					continue
				}
				if r.Slot.Before(from) || !r.Slot.Before(to) {
					continue
				}
				bySlot[r.Slot.UnixNano()] = r
				switch r.Stage {
				case run.StageSucceeded:
					want.Succeeded++
				case run.StageFailed:
					want.Failed++
				case run.StageSkipped:
					want.Skipped++
				default:
					want.InFlight++
				}
			}
			var missed []time.Time
			for d := 1; d <= 30; d++ {
				want.Due++
				if _, ok := bySlot[at(d, c.slotAt).UnixNano()]; !ok {
					missed = append(missed, at(d, c.slotAt))
				}
			}
			want.Missed = len(missed)
			if pr.Counts != want {
				t.Fatalf("%s counts = %+v, want %+v (from %d runs)", c.policy, pr.Counts, want, len(bySlot))
			}
			// The downtime lost day 10's slot; day 11's was caught up.
			if !slices.Equal(missed, []time.Time{at(10, c.slotAt)}) {
				t.Fatalf("%s: slots without a run %v, want day 10's only", c.policy, missed)
			}
			if r := bySlot[at(11, c.slotAt).UnixNano()]; !r.CatchUp || r.Stage != run.StageSucceeded {
				t.Fatalf("%s: day 11 = %s catchUp %v, want a succeeded catch-up", c.policy, r.Stage, r.CatchUp)
			}
			var problems []string
			for _, p := range pr.Problems {
				problems = append(problems, p.Outcome+"{"+p.Reason+"}@"+p.Slot.Sub(day0).String())
			}
			wantProblems := []string{"missed{missed}@" + at(10, c.slotAt).Sub(day0).String()}
			if c.policy == "nightly" {
				wantProblems = append(wantProblems, "failed{export_failed}@"+at(20, c.slotAt).Sub(day0).String())
			}
			if !slices.Equal(problems, wantProblems) || pr.Met || c1.Met || len(c1.Why) == 0 {
				t.Fatalf("%s problems %v met %v/%v why %v; want %v, not met", c.policy, problems, pr.Met, c1.Met, c1.Why, wantProblems)
			}
		}
		// Evidence against the simulator: every snapshot the report lists
		// exists with that id; every export job carries its run id in its
		// customData (what Atlas writes into the bucket's metadata).
		nightly := cl(prodA).Policies[1]
		snaps := map[string]bool{}
		for _, s := range sim.Snapshots(project, "prod-a") {
			snaps[s.ID] = true
		}
		if len(nightly.Snapshots) != nightly.Counts.Succeeded+nightly.Counts.Failed+nightly.Counts.Manual {
			t.Fatalf("%d snapshots listed, want one per run that took one (%+v)", len(nightly.Snapshots), nightly.Counts)
		}
		for _, s := range nightly.Snapshots {
			// Atlas holds it until it expires, as the report says.
			if s.Status != "completed" || s.RetentionInDays != 7 || !s.ExpiresAt.Equal(s.CompletedAt.Add(7*24*time.Hour)) ||
				snaps[s.SnapshotID] != s.ExpiresAt.After(time.Now()) {
				t.Fatalf("snapshot %+v: in Atlas %v, at %v", s, snaps[s.SnapshotID], time.Now())
			}
		}
		jobs := map[string]string{}
		for _, j := range sim.Exports(project, "prod-a") {
			for _, l := range j.CustomData {
				if l.Key == "backupd.run" {
					jobs[j.ID] = l.Value
				}
			}
		}
		failedExports := 0
		for _, x := range nightly.Exports {
			if jobs[x.JobID] != string(x.BucketRunID) || x.BucketRunID != x.RunID || x.BucketID != bucket {
				t.Fatalf("export %+v: Atlas's job carries run %q", x, jobs[x.JobID])
			}
			if x.Result == string(run.StageFailed) {
				failedExports++
			}
		}
		if failedExports != 1 || len(nightly.Exports) != len(nightly.Snapshots) {
			t.Fatalf("%d exports, %d failed; want one per snapshot, one failed", len(nightly.Exports), failedExports)
		}
		refresh := cl(flex).Policies[0]
		if len(refresh.Restores) != refresh.Counts.Succeeded+refresh.Counts.Failed {
			t.Fatalf("%d restores for %+v", len(refresh.Restores), refresh.Counts)
		}
		for _, x := range refresh.Restores {
			if x.Target.Cluster != "staging" || x.RestoreDuration <= 0 || x.Verification != report.VerificationAtlasOnly || x.JobID == "" {
				t.Fatalf("restore %+v", x)
			}
		}
		// Drills: restore time and snapshot age on Atlas's clock, verified
		// at the Atlas level (no verify command), each job in Atlas.
		drill := cl(prodA).Policies[0]
		if drill.Policy != "drill" || len(drill.Restores) != drill.Counts.Succeeded {
			t.Fatalf("drill %s: %d restores for %+v", drill.Policy, len(drill.Restores), drill.Counts)
		}
		drillJobs := map[string]bool{}
		for _, j := range sim.ClusterRestoreJobs(project, "prod-a") {
			drillJobs[j.ID] = true
		}
		for _, x := range drill.Restores {
			if x.Kind != run.ActionRestoreDrill || x.Target.Cluster != "scratch" || x.RestoreDuration <= 0 || x.SnapshotAge == nil ||
				*x.SnapshotAge <= 0 || x.Verification != run.VerifiedAtlasOnly || !drillJobs[x.JobID] || x.SnapshotID == "" {
				t.Fatalf("drill restore %+v", x)
			}
		}
		// The monitor's read: the native schedule, the newest native
		// snapshot and the compliance policy in force.
		n := cl(prodA).Native
		if n == nil || len(n.Schedule) != 1 || n.Schedule[0].Frequency != "daily" || n.NewestAny.IsZero() ||
			n.Compliance == nil || len(n.Compliance.Required) != 2 || len(n.Compliance.Shortfalls) == 0 {
			t.Fatalf("native = %+v", n)
		}
		if rep.Totals.Clusters != 2 || rep.Totals.NotMet != 2 {
			t.Fatalf("totals %+v", rep.Totals)
		}

		// The other formats render the same report; secrets never appear.
		for _, f := range []string{"markdown", "html", "json"} {
			code, body := e.get(t, "/api/v1/report?since=30d&format="+f)
			if code != 200 || strings.Contains(body, secret) || strings.Contains(body, adminToken) {
				t.Fatalf("%s: %d, or a secret in the report", f, code)
			}
			if f == "html" {
				d := xml.NewDecoder(strings.NewReader(body))
				for {
					if _, err := d.Token(); err != nil {
						if err.Error() != "EOF" {
							t.Fatalf("HTML is not well-formed: %v", err)
						}
						break
					}
				}
			}
			if f == "markdown" && !strings.Contains(body, "0 of 2 clusters met their policies") {
				t.Fatalf("markdown summary missing:\n%s", body)
			}
		}
		// Filters: one policy; a cluster glob.
		// A glob walks the whole history, a name the policy's index: the
		// same report.
		var byName []report.Cluster
		for _, pol := range []string{"night*", "nightly"} {
			code, body = e.get(t, "/api/v1/report?since=30d&policy="+pol)
			if rep, err = report.Decode(strings.NewReader(body)); err != nil || code != 200 || len(rep.Clusters) != 1 || rep.Clusters[0].Target != prodA {
				t.Fatalf("policy filter %s: %d %v %s", pol, code, err, body)
			}
			if byName != nil && !reflect.DeepEqual(byName, rep.Clusters) {
				t.Fatalf("policy=nightly and policy=night* differ:\n%+v\n%+v", byName, rep.Clusters)
			}
			byName = rep.Clusters
		}
		code, body = e.get(t, "/api/v1/report?since=30d&cluster="+project+"/flex-*")
		if rep, err = report.Decode(strings.NewReader(body)); err != nil || code != 200 || len(rep.Clusters) != 1 || rep.Clusters[0].Target != flex {
			t.Fatalf("cluster filter: %d %v %s", code, err, body)
		}
	})
}
