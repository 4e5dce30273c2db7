package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// e2ePolicies: a frequent snapshot + export policy, a flex restore policy
// and one that only runs when triggered.
func e2ePolicies() string {
	return `  - name: frequent
    schedule: "*/2 * * * *"
    targets: [{projectID: ` + projectID + `, clusters: ["prod-a", "prod-shard"]}]
    snapshot: {retentionInDays: 3, description: e2e}
    export: {bucketID: ` + bucketID + `, customData: {team: e2e}}
  - name: refresh
    schedule: "*/3 * * * *"
    flexRestore:
      projectID: ` + projectID + `
      cluster: flex-prod
      snapshot: latest
      targetProjectID: ` + projectID + `
      targetCluster: staging
      confirmOverwrite: true
  - name: adhoc
    schedule: "` + farSchedule() + `"
    targets: [{projectID: ` + projectID + `, clusters: ["prod-b"]}]
    snapshot: {retentionInDays: 1, description: adhoc}
`
}

// addedPolicy is what the reload adds.
func addedPolicy() string {
	return `  - name: added
    schedule: "` + farSchedule() + `"
    targets: [{projectID: ` + projectID + `, clusters: ["prod-b"]}]
    snapshot: {retentionInDays: 1}
`
}

// TestEndToEnd runs the daemon and the simulator as processes and drives
// them like an operator: validate, start, scrape, status, trigger, reload
// (good and bad), stop, and restart onto the journal it left.
func TestEndToEnd(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	dir := t.TempDir()
	ta := newTimeArgs(60)
	fx := fleet{
		clusters:  []string{"prod-a", "prod-b", "prod-shard:SHARDED"},
		flex:      []string{"flex-prod", "staging"},
		flexSeeds: []string{"flex-prod"},
		buckets:   []string{bucketID},
		timings:   "snapshotQueued: 5s, snapshotInProgress: 15s, exportQueued: 5s, exportInProgress: 15s, restorePending: 5s, restoreRunning: 15s",
	}.write(t, dir)
	sim := startSim(t, fx, ta, 1)

	statePath := filepath.Join(dir, "state.db")
	base := daemonConfig{simURL: sim.url, statePath: statePath, policies: e2ePolicies()}
	cfg := base.write(t, dir, "config.yaml")
	withAdded := daemonConfig{simURL: sim.url, statePath: statePath, policies: e2ePolicies() + addedPolicy()}

	// validate: 0 on a good config, 2 with a located error on a bad one.
	if r := runCLI(t, "validate", "-config", cfg); r.code != 0 || !strings.Contains(r.stdout, "frequent") {
		t.Fatalf("validate good config: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(mustRead(t, cfg), "schedule: \"*/3 * * * *\"", "schedule: \"*/3 * * *\"\n    retries: 3", 1))
	if r := runCLI(t, "validate", "-config", bad); r.code != 2 || !strings.Contains(r.stdout+r.stderr, "bad.yaml:") {
		t.Fatalf("validate bad config: exit %d, want 2 with file:line errors\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	d := startDaemon(t, cfg, ta)
	eventually(t, 30*time.Second, func() (bool, string) {
		code, body := d.get("/readyz")
		return code == http.StatusOK, "readyz " + string(body)
	})

	// Metrics move: runs succeed, gauges and Atlas counters appear.
	eventually(t, 60*time.Second, func() (bool, string) {
		m := d.metrics()
		snap, _ := m.sum("backupd_runs_total", map[string]string{"policy": "frequent", "result": "success"})
		flex, _ := m.sum("backupd_runs_total", map[string]string{"policy": "refresh", "result": "success"})
		return snap >= 2 && flex >= 1, "frequent successes " + ftoa(snap) + ", refresh successes " + ftoa(flex)
	})
	m := d.metrics()
	now := float64(time.Now().Unix())
	for _, l := range []map[string]string{
		{"policy": "frequent", "cluster": "prod-a", "stage": "snapshot"},
		{"policy": "frequent", "cluster": "prod-a", "stage": "export"},
		{"policy": "refresh", "cluster": "flex-prod", "stage": "restore"},
	} {
		// The shared clock runs ahead of real time, never behind it.
		if v, ok := m.sum("backupd_last_success_timestamp_seconds", l); !ok || v < now-60 {
			t.Errorf("backupd_last_success_timestamp_seconds%v = %v (found %v), want a recent time", l, v, ok)
		}
	}
	if v, _ := m.sum("backupd_last_run_success", map[string]string{"policy": "refresh"}); v != 1 {
		t.Errorf("backupd_last_run_success{policy=refresh} = %v, want 1", v)
	}
	for _, op := range []string{atlas.OpTakeSnapshot, atlas.OpCreateExport, atlas.OpCreateFlexRestore, atlas.OpGetCluster} {
		if v, _ := m.sum("backupd_atlas_requests_total", map[string]string{"operation": op, "code": "200"}); v < 1 {
			t.Errorf("backupd_atlas_requests_total{operation=%s,code=200} = %v, want >= 1", op, v)
		}
	}
	if v, _ := m.sum("backupd_policy_info", map[string]string{"policy": "adhoc"}); v != 1 {
		t.Errorf("backupd_policy_info{policy=adhoc} = %v, want 1", v)
	}

	// status, as a table and as JSON.
	r := runCLI(t, "status", "-addr", d.url)
	if r.code != 0 || !strings.Contains(r.stdout, "frequent") || !strings.Contains(r.stdout, "refresh") || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "status", "-addr", d.url, "-o", "json")
	var st run.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		t.Fatalf("status -json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if !st.Ready || len(st.Policies) != 3 {
		t.Errorf("status -json: ready %v with %d policies, want ready with 3", st.Ready, len(st.Policies))
	}
	for _, p := range st.Policies {
		if p.Name == "frequent" && (len(p.Targets) != 2 || p.Targets[0].NextRun.IsZero()) {
			t.Errorf("status -json: frequent targets %+v, want 2 with a next run", p.Targets)
		}
	}

	// trigger with the token from the config: the run is created and finishes.
	r = runCLI(t, "trigger", "-policy", "adhoc", "-config", cfg, "-addr", d.url)
	if r.code != 0 {
		t.Fatalf("trigger: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	adhocID, _, _ := strings.Cut(strings.TrimSpace(r.stdout), " ")
	if len(adhocID) != 20 {
		t.Fatalf("trigger printed %q, want a line starting with the run id", r.stdout)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, x := range d.runs("adhoc") {
			if string(x.ID) == adhocID {
				return x.Stage == run.StageSucceeded, "adhoc run is " + string(x.Stage) + " " + x.Reason + " " + x.Detail
			}
		}
		return false, "adhoc run " + adhocID + " not in /api/v1/runs"
	})
	if snaps := indexAtlas(sim.state()).snapshots[adhocID]; len(snaps) != 1 || snaps[0].Status != atlas.SnapshotCompleted {
		t.Errorf("Atlas holds %d snapshots marked %s (%+v), want one completed", len(snaps), adhocID, snaps)
	}

	// runs and describe read the run back: every stage with its time and
	// the Atlas ids, from the journal of the real daemon.
	r = runCLI(t, "runs", "-policy", "adhoc", "-addr", d.url)
	if r.code != 0 || !strings.Contains(r.stdout, adhocID) || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("runs -policy adhoc: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "describe", "-addr", d.url, adhocID)
	for _, want := range []string{"Run:", adhocID, "Snapshot:", "Stages:", "  pending ", "  snapshotting ", "  succeeded "} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("describe %s lacks %q: exit %d\n%s%s", adhocID, want, r.code, r.stdout, r.stderr)
		}
	}
	// report lists the manual run's snapshot as evidence, from the same
	// journal, as JSON of the documented schema and as Markdown.
	r = runCLI(t, "report", "-policy", "adhoc", "-since", "1h", "-o", "json", "-addr", d.url)
	rep, err := report.Decode(strings.NewReader(r.stdout))
	if r.code != 0 || err != nil {
		t.Errorf("report -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	} else if !reportHasSnapshot(rep, adhocID) {
		t.Errorf("report -policy adhoc lists no snapshot of run %s:\n%s", adhocID, r.stdout)
	}
	if r = runCLI(t, "report", "-addr", d.url); r.code != 0 || !strings.HasPrefix(r.stdout, "# backupd evidence report") {
		t.Errorf("report: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// trigger -wait follows a run to its end and exits 0 on success.
	r = runCLI(t, "trigger", "-policy", "adhoc", "-config", cfg, "-addr", d.url, "-wait", "-interval", "200ms", "-timeout", "50s")
	if r.code != 0 || !strings.Contains(r.stdout, ": snapshotting") || !strings.Contains(r.stdout, ": succeeded") {
		t.Fatalf("trigger -wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A wrong token is refused with 401 and exit 1.
	wrong := writeFile(t, dir, "wrong-token", "not-the-admin-token\n")
	r = runCLI(t, "trigger", "-policy", "adhoc", "-addr", d.url, "-token-file", wrong)
	if r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Errorf("trigger with a wrong token: exit %d, stderr %q; want 1 and a 401", r.code, r.stderr)
	}

	// SIGHUP with a good, changed config: the new policy is served.
	withAdded.write(t, dir, "config.yaml")
	d.signal(syscall.SIGHUP)
	eventually(t, 20*time.Second, func() (bool, string) {
		v, _ := d.metrics().sum("backupd_config_reloads_total", map[string]string{"result": "success"})
		return v == 1 && hasPolicy(d.status(), "added"), "reloads{success} = " + ftoa(v)
	})
	// SIGHUP with a bad config: rejected, counted, the old policies stay.
	writeFile(t, dir, "config.yaml", mustRead(t, bad))
	d.signal(syscall.SIGHUP)
	eventually(t, 20*time.Second, func() (bool, string) {
		v, _ := d.metrics().sum("backupd_config_reloads_total", map[string]string{"result": "failure"})
		return v == 1, "reloads{failure} = " + ftoa(v)
	})
	if st := d.status(); !hasPolicy(st, "added") || !hasPolicy(st, "frequent") || len(st.Policies) != 4 {
		t.Errorf("after a rejected reload the policies are %v, want the 4 of the running config", policyNames(st))
	}
	if v, _ := d.metrics().sum("backupd_config_reloads_total", map[string]string{"result": "success"}); v != 1 {
		t.Errorf("reloads{success} = %v after a rejected reload, want still 1", v)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := d.get(path); code != http.StatusOK {
			t.Errorf("%s after a rejected reload: %d %s", path, code, body)
		}
	}
	withAdded.write(t, dir, "config.yaml")

	// A run in flight at SIGTERM: prod-b is UPDATING, so the run waits.
	sim.admin("POST", "/_sim/clusters/"+projectID+"/prod-b", map[string]any{"state": "UPDATING"}, nil)
	held := d.trigger("adhoc")
	if len(held) != 1 {
		t.Fatalf("trigger adhoc returned %d runs, want 1", len(held))
	}
	heldID := held[0].ID
	eventually(t, 20*time.Second, func() (bool, string) {
		for _, p := range d.status().Policies {
			for _, tg := range p.Targets {
				if r := tg.InFlight; r != nil && r.ID == heldID {
					return r.Stage == run.StageWaiting, "in flight: " + string(r.Stage)
				}
			}
		}
		return false, "run " + string(heldID) + " not in flight"
	})

	// Secrets never appear in anything the daemon shows.
	surfaces := map[string]string{"daemon output": d.output()}
	for _, path := range []string{"/metrics", "/api/v1/status", "/api/v1/runs?limit=1000"} {
		_, body := d.get(path)
		surfaces[path] = string(body)
	}
	for where, text := range surfaces {
		for _, secret := range []string{clientSecret, adminToken} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret (%.12s...)", where, secret)
			}
		}
	}

	d.stop()
	j, err := journal.Open(statePath, journal.Options{})
	if err != nil {
		t.Fatalf("reopening the journal after SIGTERM: %v", err)
	}
	active, err := j.Active()
	if err != nil {
		t.Fatalf("reading in-flight runs: %v", err)
	}
	found := false
	for _, a := range active {
		if a.ID == heldID {
			found = a.Stage == run.StageWaiting
		}
	}
	hist, herr := j.History(journal.Query{Policy: "frequent"})
	if err := j.Close(); err != nil {
		t.Fatalf("closing the journal: %v", err)
	}
	if !found {
		t.Fatalf("the journal's in-flight runs %v lack %s in waiting", runIDs(active), heldID)
	}
	if herr != nil || len(hist) == 0 {
		t.Fatalf("journal history of frequent: %d runs, %v", len(hist), herr)
	}

	// The next start re-attaches the run and carries it to the end.
	d = startDaemon(t, cfg, ta)
	if _, _, ok := d.waitLine(20*time.Second, 0, func(l string) bool {
		return strings.Contains(l, "re-attaching run") && strings.Contains(l, string(heldID))
	}); !ok {
		t.Fatalf("the restarted daemon did not re-attach %s", heldID)
	}
	sim.admin("POST", "/_sim/clusters/"+projectID+"/prod-b", map[string]any{"state": "IDLE"}, nil)
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, x := range d.runs("adhoc") {
			if x.ID == heldID {
				return x.Stage == run.StageSucceeded, "held run is " + string(x.Stage) + " " + x.Detail
			}
		}
		return false, "held run missing from /api/v1/runs"
	})
	if n := len(indexAtlas(sim.state()).snapshots[string(heldID)]); n != 1 {
		t.Errorf("Atlas holds %d snapshots of the re-attached run, want 1", n)
	}
	if strings.Contains(d.output(), clientSecret) || strings.Contains(d.output(), adminToken) {
		t.Error("the restarted daemon's output contains a secret")
	}
	d.stop()
}

func hasPolicy(st run.Status, name string) bool {
	for _, p := range st.Policies {
		if p.Name == name {
			return true
		}
	}
	return false
}

func policyNames(st run.Status) []string {
	var out []string
	for _, p := range st.Policies {
		out = append(out, p.Name)
	}
	return out
}

func runIDs(rs []run.Run) []run.ID {
	out := make([]run.ID, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// reportHasSnapshot reports whether rep lists a snapshot taken by run id.
func reportHasSnapshot(rep *report.Report, id string) bool {
	for _, c := range rep.Clusters {
		for _, p := range c.Policies {
			for _, s := range p.Snapshots {
				if string(s.RunID) == id && s.Manual && s.Status == "completed" {
					return true
				}
			}
		}
	}
	return false
}
