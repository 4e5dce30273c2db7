package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"

	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/zap/zapcore"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

const (
	project     = "32b6e34b3d91647abb20e7b8"
	bucket      = "32b6e34b3d91647abb20e7b9"
	clientID    = "mdb_sa_id_daemon_test"
	secret      = "mdb_sa_sk_TOPSECRET-client-secret"
	adminToken  = "admin-TOPSECRET-token-0123456789"
	goodConfig  = "config.yaml"
	hourlyPlusX = `
atlas:
  baseURL: http://atlas.sim
  auth:
    serviceAccount:
      clientID: ` + clientID + `
      clientSecretFile: client-secret
  requestsPerMinute: 600
server:
  adminTokenFile: admin-token
state:
  path: STATE
log: {level: debug, format: json}
policies:
  - name: hourly
    schedule: "0 * * * *"
    targets: [{projectID: ` + project + `, clusters: ["prod-*"]}]
    snapshot: {retentionInDays: 3, description: hourly}
    export: {bucketID: ` + bucket + `, customData: {team: db}}
EXTRA`
	flexPolicy = `
  - name: refresh
    schedule: "30 5 * * *"
    flexRestore:
      projectID: ` + project + `
      cluster: flex-prod
      snapshot: latest
      targetProjectID: ` + project + `
      targetCluster: staging
      confirmOverwrite: true
`
)

// notes records systemd notifications.
type notes struct {
	mu     sync.Mutex
	states []string
}

func (n *notes) Notify(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.states = append(n.states, s)
	return nil
}

func (n *notes) WatchdogInterval() time.Duration { return 0 }

func (n *notes) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.states, ",")
}

type env struct {
	notes *notes
	dir   string
	sim   *atlassim.Sim
	logs  *syncBuffer
	d     *daemon.Daemon
	h     http.Handler
	stop  func()
	done  chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Sync() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeConfig(t *testing.T, dir, extra string) {
	t.Helper()
	cfg := strings.Replace(hourlyPlusX, "STATE", filepath.Join(dir, "state.db"), 1)
	cfg = strings.Replace(cfg, "EXTRA", extra, 1)
	if err := os.WriteFile(filepath.Join(dir, goodConfig), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startDaemon runs a whole daemon in the bubble against the simulator.
func startDaemon(t *testing.T, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"client-secret": secret, "admin-token": adminToken} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(t, dir, extra)
	sim := atlassim.New(atlassim.Options{Clock: clock.Real(), Seed: 3})
	for _, err := range []error{
		sim.AddProject(project),
		sim.AddCluster(project, atlassim.ClusterSpec{Name: "prod-a", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}),
		sim.AddCluster(project, atlassim.ClusterSpec{Name: "prod-paused", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true, Paused: true}),
		sim.AddFlexCluster(project, "flex-prod"),
		sim.AddFlexCluster(project, "staging"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sim.AddBucket(project, atlas.ExportBucket{ID: bucket, BucketName: "backups", CloudProvider: "AWS", IAMRoleID: "32b6e34b3d91647abb20e7ba"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.SeedFlexSnapshot(project, "flex-prod", atlassim.SeedFlexSnapshot{Age: time.Hour}); err != nil {
		t.Fatal(err)
	}
	sim.AddServiceAccount(clientID, secret)
	return launch(t, dir, sim)
}

// launch starts a daemon process's worth of components on dir's config
// and journal against sim.
func launch(t *testing.T, dir string, sim *atlassim.Sim) *env {
	t.Helper()
	logs := &syncBuffer{}
	nt := &notes{}
	d, err := daemon.New(daemon.Options{
		ConfigPath: filepath.Join(dir, goodConfig), Env: policy.OSEnv(), Clock: clock.Real(),
		LogOutput: zapcore.AddSync(logs), Transport: sim.Transport(), NoListen: true, Notifier: nt,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	e := &env{notes: nt, dir: dir, sim: sim, logs: logs, d: d, h: d.Handler(), done: done}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v", err)
			}
		})
	}
	return e
}

func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func (e *env) metric(t *testing.T, line string) bool {
	t.Helper()
	_, body := e.get(t, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestScriptedRunMetricsStatusAndSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, flexPolicy)
		defer e.stop()

		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz = %d %s", code, body)
		}
		// Let the next hourly slot fire and its chain finish.
		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + 30*time.Minute)
		synctest.Wait()

		lbl := `{cluster="prod-a",policy="hourly",project="` + project + `"`
		for _, want := range []string{
			`backupd_runs_total` + lbl + `,result="success"} 1`,
			`backupd_last_run_success` + lbl + `} 1`,
			`backupd_schedule_interval_seconds{policy="hourly"} 3600`,
			`backupd_policy_info{action="snapshot",policy="hourly",schedule="0 * * * *",timezone="UTC"} 1`,
			`backupd_atlas_requests_total{code="200",operation="take_snapshot"} 1`,
			`backupd_atlas_requests_total{code="200",operation="create_export"} 1`,
			`backupd_inflight_runs{stage="snapshotting"} 0`,
		} {
			if !e.metric(t, want) {
				_, body := e.get(t, "/metrics")
				t.Fatalf("metrics lack %q:\n%s", want, grep(body, "backupd_"))
			}
		}
		_, body := e.get(t, "/metrics")
		for _, stage := range []string{"snapshot", "export"} {
			if !strings.Contains(body, `backupd_last_success_timestamp_seconds`+lbl+`,stage="`+stage+`"}`) {
				t.Fatalf("no last success for stage %s:\n%s", stage, grep(body, "last_success"))
			}
		}
		if !strings.Contains(body, "backupd_snapshot_size_bytes"+lbl+"}") || !strings.Contains(body, "backupd_next_run_timestamp_seconds"+lbl+"}") {
			t.Fatalf("snapshot size or next run missing:\n%s", grep(body, "backupd_"))
		}
		problems, err := promlint.New(strings.NewReader(body)).Lint()
		if err != nil || len(problems) > 0 {
			t.Fatalf("promlint: %v %v", err, problems)
		}

		// Status shows the run and the paused cluster's reason.
		code, sbody := e.get(t, "/api/v1/status")
		var st run.Status
		if code != 200 || json.Unmarshal([]byte(sbody), &st) != nil {
			t.Fatalf("status = %d %s", code, sbody)
		}
		var hourly run.PolicyStatus
		for _, p := range st.Policies {
			if p.Name == "hourly" {
				hourly = p
			}
		}
		if len(hourly.Targets) != 1 || hourly.Targets[0].LastRun == nil || hourly.Targets[0].LastRun.Stage != run.StageSucceeded || hourly.Targets[0].NextRun.IsZero() {
			t.Fatalf("hourly status = %+v", hourly)
		}
		if len(hourly.Unresolved) != 1 || hourly.Unresolved[0].Target.Cluster != "prod-paused" || hourly.Unresolved[0].Reason != run.ReasonNotSupported {
			t.Fatalf("unresolved = %+v", hourly.Unresolved)
		}

		// A manual trigger through the API.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/api/v1/policies/refresh/trigger", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("trigger = %d %s", rec.Code, rec.Body.String())
		}
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		if len(e.sim.RestoreJobs(project, "flex-prod")) != 1 {
			t.Fatalf("restore jobs = %+v", e.sim.RestoreJobs(project, "flex-prod"))
		}
		_, runs := e.get(t, "/api/v1/runs?policy=refresh")
		if !strings.Contains(runs, `"stage":"succeeded"`) {
			t.Fatalf("runs = %s", runs)
		}

		// No secret reaches logs, metrics, status or the API.
		_, metricsText := e.get(t, "/metrics")
		for where, text := range map[string]string{"logs": e.logs.String(), "metrics": metricsText, "status": sbody, "runs": runs} {
			for _, s := range []string{secret, adminToken, "Bearer "} {
				if strings.Contains(text, s) {
					t.Errorf("%s contain secret %q", where, s)
				}
			}
		}
		if !strings.Contains(e.logs.String(), `"snapshotID"`) {
			t.Fatal("run log lines carry no Atlas ids")
		}
	})
}

func TestReloadKeepsOldConfigOnErrorAndDropsRemovedPolicies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, flexPolicy)
		defer e.stop()
		ctx := context.Background()

		// A broken config is rejected and counted; the old one stays.
		if err := os.WriteFile(filepath.Join(e.dir, goodConfig), []byte("policies: [{name: Bad!}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := e.d.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), "config.yaml:") {
			t.Fatalf("Reload(bad) = %v, want a located error", err)
		}
		if !e.metric(t, `backupd_config_reloads_total{result="failure"} 1`) {
			t.Fatal("failed reload not counted")
		}
		if len(e.d.Config().Policies) != 2 {
			t.Fatalf("old config replaced: %d policies", len(e.d.Config().Policies))
		}

		// A good config without the flex policy: its series go away.
		if !e.metric(t, `backupd_schedule_interval_seconds{policy="refresh"} 86400`) {
			t.Fatal("refresh policy metrics missing before reload")
		}
		writeConfig(t, e.dir, "")
		if err := e.d.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if !e.metric(t, `backupd_config_reloads_total{result="success"} 1`) {
			t.Fatal("successful reload not counted")
		}
		_, body := e.get(t, "/metrics")
		if strings.Contains(body, `policy="refresh"`) {
			t.Fatalf("series of the removed policy remain:\n%s", grep(body, "refresh"))
		}
		code, _ := e.get(t, "/api/v1/status")
		if code != 200 || len(e.d.Status().Policies) != 1 {
			t.Fatalf("status after reload: %d, %d policies", code, len(e.d.Status().Policies))
		}
		e.stop()
		// systemd heard: ready, then each reload bracketed by RELOADING=1/READY=1, then stopping.
		if got, want := e.notes.String(), "READY=1,RELOADING=1,READY=1,RELOADING=1,READY=1,STOPPING=1"; got != want {
			t.Fatalf("notifications = %s, want %s", got, want)
		}
	})
}

func TestInvalidConfigNeverStarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("atlas: {baseURL: 3}\nbogus: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := daemon.New(daemon.Options{ConfigPath: path, Env: policy.OSEnv()})
	var perrs *policy.Errors
	if err == nil || !asErrors(err, &perrs) || len(perrs.List) < 2 {
		t.Fatalf("New = %v, want every located error", err)
	}
}

func asErrors(err error, target **policy.Errors) bool {
	pe, ok := err.(*policy.Errors)
	if ok {
		*target = pe
	}
	return ok
}

func grep(body, substr string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDowntimeCollapsesMissedSlots stops the daemon for three hourly slots
// and restarts it on the same journal: missed: once runs one catch-up for
// the newest missed slot; missed: skip records it as skipped{missed}.
func TestDowntimeCollapsesMissedSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const skipPolicy = `
  - name: hourly-skip
    schedule: "30 * * * *"
    missed: skip
    targets: [{projectID: ` + project + `, clusters: ["prod-a"]}]
    snapshot: {retentionInDays: 1}
`
		e := startDaemon(t, skipPolicy)
		start := time.Now()
		time.Sleep(time.Until(start.Truncate(time.Hour).Add(time.Hour + 50*time.Minute))) // 01:50: both slots ran
		synctest.Wait()
		e.stop()
		before := len(e.sim.Snapshots(project, "prod-a"))

		time.Sleep(150 * time.Minute) // down from 01:50 to 04:20: slots 02:00-04:00 and 02:30, 03:30 missed
		e2 := launch(t, e.dir, e.sim)
		defer e2.stop()
		time.Sleep(25 * time.Minute) // 04:45: catch-up done, 04:30 ran on time, 05:00 not yet due
		synctest.Wait()

		var got struct {
			Runs []run.Run `json:"runs"`
		}
		for _, pol := range []string{"hourly", "hourly-skip"} {
			_, body := e2.get(t, "/api/v1/runs?policy="+pol)
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if pol == "hourly-skip" {
				// 00:30 and 01:30 ran, 03:30 (the newest missed) is skipped, 04:30 ran on time.
				if len(got.Runs) != 4 {
					t.Fatalf("%s: %d runs, want 4: %s", pol, len(got.Runs), body)
				}
				newest := got.Runs[1]
				wantSlot := start.Truncate(time.Hour).Add(3*time.Hour + 30*time.Minute)
				if newest.Stage != run.StageSkipped || newest.Reason != run.ReasonMissed || !newest.Slot.Equal(wantSlot) {
					t.Fatalf("hourly-skip after downtime = %s{%s} slot %v, want skipped{missed} for %v", newest.Stage, newest.Reason, newest.Slot, wantSlot)
				}
				continue
			}
			if len(got.Runs) != 2 {
				t.Fatalf("%s: %d runs, want the first slot and one for the downtime: %s", pol, len(got.Runs), body)
			}
			newest := got.Runs[0]
			wantSlot := start.Truncate(time.Hour).Add(4 * time.Hour)
			if newest.Stage != run.StageSucceeded || !newest.CatchUp || !newest.Slot.Equal(wantSlot) {
				t.Fatalf("hourly after downtime = %s catchUp=%v slot %v, want a succeeded catch-up for %v", newest.Stage, newest.CatchUp, newest.Slot, wantSlot)
			}
		}
		if after := len(e2.sim.Snapshots(project, "prod-a")); after != before+2 {
			t.Fatalf("snapshots %d → %d across the downtime, want one catch-up and the on-time 04:30", before, after)
		}
		if !e2.metric(t, `backupd_runs_skipped_total{cluster="prod-a",policy="hourly-skip",project="`+project+`",reason="missed"} 1`) {
			t.Fatal("skipped{missed} not counted")
		}
	})
}

// TestDiscoveryPicksUpNewClusters: a cluster created in Atlas that matches
// a policy's glob is scheduled at the next discovery, and a deleted one is
// dropped with its series.
func TestDiscoveryPicksUpNewClusters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, "")
		defer e.stop()
		targets := func() []string {
			var out []string
			for _, p := range e.d.Status().Policies {
				for _, ts := range p.Targets {
					out = append(out, ts.Target.Cluster)
				}
			}
			return out
		}
		if got := strings.Join(targets(), ","); got != "prod-a" {
			t.Fatalf("targets at start = %s", got)
		}
		if err := e.sim.AddCluster(project, atlassim.ClusterSpec{Name: "prod-b", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}); err != nil {
			t.Fatal(err)
		}
		if err := e.sim.DeleteCluster(project, "prod-a"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		if got := strings.Join(targets(), ","); got != "prod-a" {
			t.Fatalf("targets before the 10m discovery interval = %s, want unchanged", got)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := strings.Join(targets(), ","); got != "prod-b" {
			t.Fatalf("targets after discovery = %s, want prod-b", got)
		}
		_, body := e.get(t, "/metrics")
		if strings.Contains(body, `cluster="prod-a"`) || !strings.Contains(body, `backupd_next_run_timestamp_seconds{cluster="prod-b"`) {
			t.Fatalf("series after discovery:\n%s", grep(body, "next_run"))
		}
	})
}

// TestRunsOfUnknownPolicyIs404: the run history of a policy that is not
// configured is 404 (docs/http-api.md), not an empty 200.
func TestRunsOfUnknownPolicyIs404(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, "")
		defer e.stop()
		if code, body := e.get(t, "/api/v1/runs?policy=unknown"); code != http.StatusNotFound || !strings.Contains(body, `"field":"policy"`) {
			t.Fatalf("runs of an unknown policy = %d %s, want 404 naming the policy", code, body)
		}
		if code, body := e.get(t, "/api/v1/runs?policy=hourly"); code != http.StatusOK {
			t.Fatalf("runs of a configured policy = %d %s, want 200", code, body)
		}
	})
}

// TestReloadWithNewTimezoneKeepsScheduleHistory: a reload that changes only
// a policy's timezone keeps its mark (docs/scheduling.md), so a slot that has
// passed but whose jittered fire time has not yet come still runs. Resetting
// the history would mark the schedule as new at the reload and lose that run.
func TestReloadWithNewTimezoneKeepsScheduleHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tzPolicy = `
  - name: tz-moves
    schedule: "0 * * * *"
    timezone: TZ
    jitter: 50m
    targets: [{projectID: ` + project + `, clusters: ["prod-a"]}]
    snapshot: {retentionInDays: 1}
`
		off := policy.JitterOffset("tz-moves", run.Target{ProjectID: project, Cluster: "prod-a"}, 50*time.Minute)
		if off < 2*time.Minute {
			t.Fatalf("test needs a jitter offset of at least 2m, got %s", off)
		}
		e := startDaemon(t, strings.Replace(tzPolicy, "TZ", "UTC", 1))
		defer e.stop()
		slot := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(slot.Add(time.Minute))) // the slot has passed; its fire time slot+off has not
		synctest.Wait()

		// Europe/London is UTC in January: the same hourly slots, a new zone.
		writeConfig(t, e.dir, strings.Replace(tzPolicy, "TZ", "Europe/London", 1))
		if err := e.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(slot.Add(off + 5*time.Minute)))
		synctest.Wait()

		var got struct {
			Runs []run.Run `json:"runs"`
		}
		_, body := e.get(t, "/api/v1/runs?policy=tz-moves")
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Runs) != 1 || !got.Runs[0].Slot.Equal(slot) {
			t.Fatalf("runs of tz-moves after the timezone reload = %s, want one for the slot %v", body, slot)
		}
	})
}
