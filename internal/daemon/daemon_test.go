package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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
	dir, sim := setup(t, extra)
	return launch(t, dir, sim)
}

// setup writes the config and secrets into a new directory and fills a
// simulator: prod-a (eligible), prod-paused, flex-prod and staging.
func setup(t *testing.T, extra string) (string, *atlassim.Sim) {
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
	return dir, sim
}

// launch starts a daemon process's worth of components on dir's config
// and journal against sim.
func launch(t *testing.T, dir string, sim *atlassim.Sim) *env {
	t.Helper()
	e := launchWith(t, dir, sim, sim.Transport())
	synctest.Wait() // targets resolve in the background
	return e
}

// launchWith starts the daemon with rt as its transport to Atlas and
// returns as soon as it serves.
func launchWith(t *testing.T, dir string, sim *atlassim.Sim, rt http.RoundTripper) *env {
	t.Helper()
	return launchOpts(t, dir, sim, daemon.Options{Transport: rt})
}

// launchOpts is launchWith with more options (Transport is required).
func launchOpts(t *testing.T, dir string, sim *atlassim.Sim, opts daemon.Options) *env {
	t.Helper()
	logs := &syncBuffer{}
	nt := &notes{}
	opts.ConfigPath, opts.Env, opts.Clock = filepath.Join(dir, goodConfig), policy.OSEnv(), clock.Real()
	opts.LogOutput, opts.NoListen, opts.Notifier = zapcore.AddSync(logs), true, nt
	d, err := daemon.New(opts)
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

// trigger starts a manual run of policy through the API, as an operator would.
func (e *env) trigger(t *testing.T, policy string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/policies/"+policy+"/trigger", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("trigger %s = %d %s", policy, rec.Code, rec.Body.String())
	}
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

		e.trigger(t, "refresh") // a manual trigger through the API
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		if len(e.sim.RestoreJobs(project, "flex-prod")) != 1 {
			t.Fatalf("restore jobs = %+v", e.sim.RestoreJobs(project, "flex-prod"))
		}
		_, runs := e.get(t, "/api/v1/runs?policy=refresh")
		if !strings.Contains(runs, `"stage":"succeeded"`) {
			t.Fatalf("runs = %s", runs)
		}

		if !strings.Contains(sbody, `"interval":"1h0m0s"`) {
			t.Errorf("status does not give the hourly policy's interval as a string: %s", sbody)
		}

		// The status page, on the same server, shows the same fleet and
		// a page per run.
		code, pageBody := e.get(t, "/")
		if code != 200 || !strings.Contains(pageBody, "/ui/runs/"+string(hourly.Targets[0].LastRun.ID)) ||
			!strings.Contains(pageBody, `<span class="badge ok">succeeded</span>`) || !strings.Contains(pageBody, "(every 1h)") ||
			!strings.Contains(pageBody, "not_supported: cluster is paused") {
			t.Fatalf("status page = %d\n%s", code, pageBody)
		}
		code, runPage := e.get(t, "/ui/runs/"+string(hourly.Targets[0].LastRun.ID))
		if code != 200 || !strings.Contains(runPage, hourly.Targets[0].LastRun.SnapshotID) {
			t.Fatalf("run page = %d\n%s", code, runPage)
		}

		// No secret reaches logs, metrics, status, the API or the page.
		_, metricsText := e.get(t, "/metrics")
		for where, text := range map[string]string{"logs": e.logs.String(), "metrics": metricsText, "status": sbody, "runs": runs, "page": pageBody, "run page": runPage} {
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
			// prod-paused's slots are recorded as skipped{not_supported}.
			got.Runs = slices.DeleteFunc(got.Runs, func(r run.Run) bool { return r.Target.Cluster != "prod-a" })
			if len(got.Runs) != 2 {
				t.Fatalf("%s: %d runs on prod-a, want the first slot and one for the downtime: %s", pol, len(got.Runs), body)
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

// gate fails every request to Atlas while closed, as an unreachable Atlas.
type gate struct {
	mu   sync.Mutex
	open bool
	rt   http.RoundTripper
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		return nil, errors.New("dial tcp: connection refused")
	}
	return g.rt.RoundTrip(r)
}

func (g *gate) setOpen() { g.set(true) }

func (g *gate) set(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
}

// TestReadyzReportsAtlasOutage: once every Atlas request has failed for
// two minutes, /readyz says so (it stayed 200 for the 15-minute
// authentication window before); the first answer after the outage makes
// the daemon ready again.
func TestReadyzReportsAtlasOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		g := &gate{rt: sim.Transport(), open: true}
		e := launchWith(t, dir, sim, g)
		defer e.stop()
		synctest.Wait()
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz before the outage = %d %s", code, body)
		}
		g.set(false)
		// Discovery (every 10 minutes) is the next Atlas request; its
		// retries fail, and two minutes later readiness says so.
		time.Sleep(10*time.Minute + atlasGrace)
		synctest.Wait()
		code, body := e.get(t, "/readyz")
		if code != 503 || !strings.Contains(body, "requests to Atlas failing for") || !strings.Contains(body, "no answer to list_clusters") {
			t.Fatalf("/readyz during the outage = %d %q, want 503 naming the failing requests", code, body)
		}
		if strings.Contains(body, secret) {
			t.Fatalf("/readyz leaks the client secret: %q", body)
		}
		var st struct{ Ready bool }
		if _, sb := e.get(t, "/api/v1/status"); json.Unmarshal([]byte(sb), &st) != nil || st.Ready {
			t.Fatalf("status during the outage = %s, want ready false", sb)
		}

		g.set(true)
		time.Sleep(10 * time.Minute) // the next discovery succeeds
		synctest.Wait()
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz after the outage = %d %s", code, body)
		}
	})
}

// atlasGrace mirrors the daemon's atlasOutageGrace (2 minutes) plus the
// discovery's retry budget.
const atlasGrace = 3 * time.Minute

// TestStartDoesNotWaitForAtlas: with Atlas unreachable, the daemon serves
// /healthz and sends READY=1 before any target resolves (no virtual time
// passes), /readyz says why it is not ready, and once Atlas answers the
// targets resolve and the next slot runs.
func TestStartDoesNotWaitForAtlas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, flexPolicy)
		g := &gate{rt: sim.Transport()}
		start := time.Now()
		e := launchWith(t, dir, sim, g)
		defer e.stop()
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("serving waited %s for Atlas", waited)
		}
		if code, body := e.get(t, "/healthz"); code != 200 {
			t.Fatalf("/healthz = %d %s", code, body)
		}
		if got := e.notes.String(); got != "READY=1" {
			t.Fatalf("notifications = %q, want READY=1", got)
		}
		time.Sleep(2 * time.Minute) // retries against the unreachable Atlas
		synctest.Wait()
		if code, body := e.get(t, "/healthz"); code != 200 {
			t.Fatalf("/healthz while Atlas is unreachable = %d %s", code, body)
		}
		if code, body := e.get(t, "/readyz"); code != 503 || !strings.Contains(body, "not yet resolved") {
			t.Fatalf("/readyz while Atlas is unreachable = %d %s, want 503 naming the unresolved targets", code, body)
		}

		g.setOpen()
		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + 30*time.Minute)
		synctest.Wait()
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz once Atlas answers = %d %s", code, body)
		}
		if n := len(sim.Snapshots(project, "prod-a")); n != 1 {
			t.Fatalf("snapshots of prod-a = %d, want the slot after Atlas came back", n)
		}
	})
}

// TestPausedClusterStaysTarget: a selected cluster that is paused stays
// the policy's target: its slots end skipped{not_supported} and are
// counted, its series stay, status gives the reason; unpaused, the same
// target carries on with its history.
func TestPausedClusterStaysTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, "")
		defer e.stop()
		lbl := `{cluster="prod-a",policy="hourly",project="` + project + `"`
		hour := time.Now().Truncate(time.Hour)
		time.Sleep(time.Until(hour.Add(time.Hour + 30*time.Minute))) // 01:30: the 01:00 run succeeded
		synctest.Wait()
		if !e.metric(t, `backupd_runs_total`+lbl+`,result="success"} 1`) {
			t.Fatal("first run did not succeed")
		}

		if err := e.sim.PauseCluster(project, "prod-a", true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(hour.Add(2*time.Hour + 30*time.Minute))) // discovery, then the 02:00 slot
		synctest.Wait()
		for _, want := range []string{
			`backupd_runs_skipped_total` + lbl + `,reason="not_supported"} 1`,
			`backupd_runs_total` + lbl + `,result="success"} 1`,
			`backupd_last_run_success` + lbl + `} 1`,
		} {
			if !e.metric(t, want) {
				_, body := e.get(t, "/metrics")
				t.Fatalf("metrics lack %q while paused:\n%s", want, grep(body, "prod-a"))
			}
		}
		_, body := e.get(t, "/metrics")
		if !strings.Contains(body, `backupd_last_success_timestamp_seconds`+lbl+`,stage="snapshot"}`) {
			t.Fatalf("last success series dropped while paused:\n%s", grep(body, "last_success"))
		}
		var unresolved []run.SkippedTarget
		for _, p := range e.d.Status().Policies {
			unresolved = append(unresolved, p.Unresolved...)
		}
		if !slices.ContainsFunc(unresolved, func(s run.SkippedTarget) bool {
			return s.Target.Cluster == "prod-a" && s.Reason == run.ReasonNotSupported && strings.Contains(s.Detail, "paused")
		}) {
			t.Fatalf("status while paused: unresolved = %+v", unresolved)
		}

		if err := e.sim.PauseCluster(project, "prod-a", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(hour.Add(3*time.Hour + 30*time.Minute))) // discovery, then the 03:00 slot
		synctest.Wait()
		if !e.metric(t, `backupd_runs_total`+lbl+`,result="success"} 2`) {
			_, body := e.get(t, "/metrics")
			t.Fatalf("unpaused target did not carry on:\n%s", grep(body, "prod-a"))
		}
		_, runs := e.get(t, "/api/v1/runs?policy=hourly")
		var got struct {
			Runs []run.Run `json:"runs"`
		}
		if err := json.Unmarshal([]byte(runs), &got); err != nil {
			t.Fatal(err)
		}
		var prodA int
		for _, r := range got.Runs {
			if r.Target.Cluster == "prod-a" {
				prodA++
				if r.Stage == run.StageSkipped && !strings.Contains(r.Detail, "paused") {
					t.Fatalf("the skipped run's detail = %q, want why (the cluster is paused)", r.Detail)
				}
			}
		}
		if prodA != 3 {
			t.Fatalf("prod-a history = %d runs, want success, skipped, success: %s", prodA, runs)
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

// TestRestartDoesNotResurrectDeletedTargets: a cluster whose last run
// failed and that was deleted while backupd was down loses the series the
// restart rebuilt from the journal, so BackupdLastRunFailed stops.
func TestRestartDoesNotResurrectDeletedTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, "")
		e.sim.FailNextSnapshots(1)
		time.Sleep(time.Until(time.Now().Truncate(time.Hour).Add(90 * time.Minute)))
		synctest.Wait()
		lbl := `{cluster="prod-a",policy="hourly",project="` + project + `"`
		if !e.metric(t, `backupd_last_run_success`+lbl+`} 0`) {
			_, body := e.get(t, "/metrics")
			t.Fatalf("the run did not fail:\n%s", grep(body, "prod-a"))
		}
		e.stop()
		if err := e.sim.DeleteCluster(project, "prod-a"); err != nil {
			t.Fatal(err)
		}
		e2 := launch(t, e.dir, e.sim)
		defer e2.stop()
		if _, body := e2.get(t, "/metrics"); strings.Contains(body, `cluster="prod-a"`) {
			t.Fatalf("series of the deleted target came back:\n%s", grep(body, "prod-a"))
		}
	})
}

// TestFreshJournalRecoversFromMarkers: a journal file that is new (a
// corrupt one moved aside) while a run had taken its snapshot: the run is
// re-attached from its Atlas marker and exported, not forgotten.
func TestFreshJournalRecoversFromMarkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, "")
		time.Sleep(time.Until(time.Now().Truncate(time.Hour).Add(time.Hour + 3*time.Minute))) // 01:03: snapshotting
		synctest.Wait()
		e.stop()
		if n := len(e.sim.Snapshots(project, "prod-a")); n != 1 {
			t.Fatalf("snapshots before the restart = %d, want 1", n)
		}
		if err := os.Rename(filepath.Join(e.dir, "state.db"), filepath.Join(e.dir, "state.db.corrupt")); err != nil {
			t.Fatal(err)
		}
		e2 := launch(t, e.dir, e.sim)
		defer e2.stop()
		time.Sleep(30 * time.Minute) // 01:33: before the 02:00 slot
		synctest.Wait()
		_, body := e2.get(t, "/api/v1/runs?policy=hourly")
		var got struct {
			Runs []run.Run `json:"runs"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(got.Runs, func(r run.Run) bool { return r.Target.Cluster == "prod-a" })
		if i < 0 || got.Runs[i].Stage != run.StageSucceeded || got.Runs[i].ExportJobID == "" {
			t.Fatalf("prod-a's in-flight run after a fresh journal was not re-attached and exported: %s", body)
		}
		if n := len(e2.sim.Snapshots(project, "prod-a")); n != 1 {
			t.Fatalf("snapshots after the restart = %d, want the one run's", n)
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
