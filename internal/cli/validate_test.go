package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

const (
	validateTestProject = "32b6e34b3d91647abb20e7b8"
	validateTestBucket  = "32b6e34b3d91647abb20e7b9"
	validateTestSecret  = "validate-test-secret-Hq2"
)

// validateNow is a fixed "now" just before the 2026 spring-forward night.
var validateNow = time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)

// validateTestEnv reads real files and takes credentials from vars.
func validateTestEnv(vars map[string]string) policy.Env {
	env := policy.OSEnv()
	env.Getenv = func(k string) string { return vars[k] }
	return env
}

func validateWriteConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func validateRun(t *testing.T, env policy.Env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Validate(context.Background(), args, &out, &errb, env, func() time.Time { return validateNow }, nil)
	return code, out.String(), errb.String()
}

const validateGood = `policies:
  - name: nightly
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    targets:
      - projectID: 32b6e34b3d91647abb20e7b8
        clusters: [billing, "prod-*"]
        exclude: [prod-scratch]
    snapshot: {retentionInDays: 7}
  - name: restore
    schedule: "@every 12h"
    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: flex-prod, targetCluster: staging, confirmOverwrite: true}
`

var validateSAEnv = map[string]string{policy.EnvClientID: "mdb_sa_id_test", policy.EnvClientSecret: validateTestSecret}

func TestValidateOfflinePlan(t *testing.T) {
	path := validateWriteConfig(t, validateGood)
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// The literal cluster gets exact times in its zone; the DST night fires once, at 03:00.
	wantLines := []string{
		"policy nightly: snapshot (retention 7d)",
		`  schedule "30 2 * * *" in Europe/Berlin, no jitter, every 24h0m0s`,
		"32b6e34b3d91647abb20e7b8/billing           2026-03-28 02:30:00 CET  2026-03-29 03:00:00 CEST  2026-03-30 02:30:00 CEST  2026-03-31 02:30:00 CEST  2026-04-01 02:30:00 CEST",
		"32b6e34b3d91647abb20e7b8/prod-* (glob)",
		"32b6e34b3d91647abb20e7b8 excluding         prod-scratch",
		"policy restore: flexRestore 32b6e34b3d91647abb20e7b8/flex-prod -> 32b6e34b3d91647abb20e7b8/staging",
		"32b6e34b3d91647abb20e7b8/flex-prod  2026-03-28 00:00:00 UTC  2026-03-28 12:00:00 UTC  2026-03-29 00:00:00 UTC  2026-03-29 12:00:00 UTC  2026-03-30 00:00:00 UTC",
		path + ": valid (2 policies; not checked against Atlas, use -online)",
	}
	for _, l := range wantLines {
		if !strings.Contains(validateSquash(out), validateSquash(l)) {
			t.Errorf("stdout lacks %q:\n%s", l, out)
		}
	}
	if strings.Contains(out+errOut, validateTestSecret) {
		t.Fatal("validate printed the secret")
	}
}

// validateSquash collapses runs of blanks, so assertions do not depend on
// tabwriter padding.
func validateSquash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestValidateOfflineJitter(t *testing.T) {
	path := validateWriteConfig(t, strings.Replace(validateGood, "    timezone: Europe/Berlin\n", "    timezone: Europe/Berlin\n    jitter: 10m\n", 1))
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	off := policy.JitterOffset("nightly", run.Target{ProjectID: validateTestProject, Cluster: "billing"}, 10*time.Minute)
	first := time.Date(2026, 3, 28, 2, 30, 0, 0, berlin).Add(off).Format("2006-01-02 15:04:05 MST")
	for _, l := range []string{
		`schedule "30 2 * * *" in Europe/Berlin, jitter < 10m, every 24h0m0s`,
		"32b6e34b3d91647abb20e7b8/billing " + first,
		"32b6e34b3d91647abb20e7b8/prod-* (glob) 2026-03-28 02:30:00 CET",
		"(slots; each cluster starts at its own offset < 10m after them)",
	} {
		if !strings.Contains(validateSquash(out), l) {
			t.Errorf("stdout lacks %q:\n%s", l, out)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	text := strings.Replace(strings.Replace(validateGood, "retentionInDays: 7", "retentionInDays: 0", 1), "timezone: Europe/Berlin", "timezone: Europe/Berln", 1) + "bogus: 1\n"
	path := validateWriteConfig(t, text)
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path)
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := path + `:4:15: policies[0].timezone: unknown time zone "Europe/Berln": use an IANA name such as Europe/Berlin or UTC
` + path + `:9:33: policies[0].snapshot.retentionInDays: must be at least 1
` + path + `:13:1: bogus: unknown key (allowed: atlas, server, state, log, ha, defaults, policies, monitor, notify)
backupd validate: configuration invalid (3 errors)
`
	if errOut != want {
		t.Fatalf("stderr\n got:\n%s\nwant:\n%s", errOut, want)
	}
}

func TestValidateFlagsAndDefaults(t *testing.T) {
	path := validateWriteConfig(t, validateGood)
	env := validateTestEnv(map[string]string{policy.EnvClientID: "id", policy.EnvClientSecret: "s", "BACKUPD_CONFIG": path})
	if code, out, _ := validateRun(t, env); code != 0 || !strings.Contains(out, path+": valid") {
		t.Fatalf("BACKUPD_CONFIG not used: exit %d\n%s", code, out)
	}
	noEnv := validateTestEnv(map[string]string{policy.EnvClientID: "id", policy.EnvClientSecret: "s"})
	if _, out, errOut := validateRun(t, noEnv); !strings.Contains(out+errOut, DefaultConfigPath) {
		t.Fatalf("default path %s not used:\n%s%s", DefaultConfigPath, out, errOut)
	}
	code, _, errOut := validateRun(t, env, "-h")
	if code != 0 || !strings.Contains(errOut, "usage: backupd validate [-config PATH] [-online]") || !strings.Contains(errOut, "-online") {
		t.Fatalf("-h: exit %d\n%s", code, errOut)
	}
	if code, _, _ := validateRun(t, env, "-nope"); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
	if code, _, errOut := validateRun(t, env, "extra"); code != 2 || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Fatalf("extra argument: exit %d\n%s", code, errOut)
	}
}

func TestValidateWarningsKeepExitZero(t *testing.T) {
	path := validateWriteConfig(t, strings.Replace(validateGood, `"30 2 * * *"`, `"* * * * *"`, 1))
	code, _, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path)
	want := "warning: " + path + ":3:15: policies[0].schedule: fires every 1m0s but a run may take up to 6h0m0s; overlapping slots will be skipped\n"
	if code != 0 || errOut != want {
		t.Fatalf("exit %d, stderr\n got %q\nwant %q", code, errOut, want)
	}
}

// validateSim starts a simulated Atlas with one project: billing and
// prod-1 usable, prod-paused paused, flex-prod a flex cluster, staging the
// restore target, and one export bucket.
func validateSim(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	return validateSimWith(t, func(h http.Handler) http.Handler { return h })
}

// validateSimWith is validateSim with wrap between the server and the
// simulator, to break some answers.
func validateSimWith(t *testing.T, wrap func(http.Handler) http.Handler) (*httptest.Server, string) {
	t.Helper()
	sim := atlassim.New(atlassim.Options{})
	sim.AddServiceAccount("mdb_sa_id_test", validateTestSecret)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sim.AddProject(validateTestProject))
	must(sim.AddCluster(validateTestProject, atlassim.ClusterSpec{Name: "billing", Tier: "M10", BackupEnabled: true}))
	must(sim.AddCluster(validateTestProject, atlassim.ClusterSpec{Name: "prod-1", Tier: "M30", BackupEnabled: true}))
	must(sim.AddCluster(validateTestProject, atlassim.ClusterSpec{Name: "prod-paused", Tier: "M10", BackupEnabled: true, Paused: true}))
	must(sim.AddCluster(validateTestProject, atlassim.ClusterSpec{Name: "staging", Tier: "M10", BackupEnabled: true}))
	must(sim.AddFlexCluster(validateTestProject, "flex-prod"))
	bucket, err := sim.AddBucket(validateTestProject, atlas.ExportBucket{ID: validateTestBucket, BucketName: "exports", CloudProvider: "AWS", IAMRoleID: validateTestProject})
	must(err)
	srv := httptest.NewServer(wrap(sim))
	t.Cleanup(srv.Close)
	return srv, bucket
}

func TestValidateOnline(t *testing.T) {
	srv, bucket := validateSim(t)
	text := "atlas: {baseURL: \"" + srv.URL + "\"}\n" + strings.Replace(validateGood,
		"    snapshot: {retentionInDays: 7}\n",
		"    snapshot: {retentionInDays: 7}\n    timeouts: {export: 12h}\n    export: {bucketID: "+bucket+"}\n", 1)
	path := validateWriteConfig(t, text)
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path, "-online")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
	for _, l := range []string{
		"32b6e34b3d91647abb20e7b8/billing      2026-03-28 02:30:00 CET",
		"32b6e34b3d91647abb20e7b8/prod-1       2026-03-28 02:30:00 CET",
		"32b6e34b3d91647abb20e7b8/prod-paused  skipped: not_supported (cluster is paused)",
		"32b6e34b3d91647abb20e7b8/flex-prod  2026-03-28 00:00:00 UTC",
		"valid (2 policies, checked against " + srv.URL + ")",
	} {
		if !strings.Contains(validateSquash(out), validateSquash(l)) {
			t.Errorf("stdout lacks %q:\n%s", l, out)
		}
	}
}

func TestValidateOnlineProblems(t *testing.T) {
	srv, _ := validateSim(t)
	text := "atlas: {baseURL: \"" + srv.URL + "\"}\n" + `policies:
  - name: nightly
    schedule: "30 2 * * *"
    targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: [billing, missing, prod-paused]}]
    snapshot: {retentionInDays: 7}
    timeouts: {export: 12h}
    export: {bucketID: 32b6e34b3d91647abb20e7ff}
  - name: restore
    schedule: "@every 12h"
    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: flex-prod, targetCluster: nowhere, confirmOverwrite: true}
`
	path := validateWriteConfig(t, text)
	code, _, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path, "-online")
	want := path + `:3:5: policies[0].targets: cluster 32b6e34b3d91647abb20e7b8/missing is named explicitly but cannot be used: not_found (no cluster named missing in project 32b6e34b3d91647abb20e7b8)
` + path + `:3:5: policies[0].targets: cluster 32b6e34b3d91647abb20e7b8/prod-paused is named explicitly but cannot be used: not_supported (cluster is paused)
` + path + `:3:5: policies[0].export.bucketID: bucket 32b6e34b3d91647abb20e7ff not found in project 32b6e34b3d91647abb20e7b8
` + path + `:9:5: policies[1].flexRestore: restore target: no cluster named nowhere in project 32b6e34b3d91647abb20e7b8
backupd validate: ` + path + `: 4 problems found in Atlas
`
	if code != 2 || errOut != want {
		t.Fatalf("exit %d, stderr\n got:\n%s\nwant:\n%s", code, errOut, want)
	}
}

func TestValidateOnlineAuthFailure(t *testing.T) {
	srv, _ := validateSim(t)
	path := validateWriteConfig(t, "atlas: {baseURL: \""+srv.URL+"\"}\n"+validateGood)
	env := validateTestEnv(map[string]string{policy.EnvClientID: "mdb_sa_id_test", policy.EnvClientSecret: "wrong-secret-Zz9"})
	code, _, errOut := validateRun(t, env, "-config", path, "-online")
	if code != 2 || !strings.Contains(errOut, "policies[0].targets[0].projectID: cannot resolve its targets:") || strings.Contains(errOut, "wrong-secret-Zz9") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestValidateOnlineReportsEachFailingProject: a project whose cluster
// list cannot be decoded is reported as a problem located at its selector,
// and the policy's other project is still resolved and printed.
func TestValidateOnlineReportsEachFailingProject(t *testing.T) {
	const bad = "32b6e34b3d91647abb20e7c1"
	srv, _ := validateSimWith(t, func(sim http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/groups/"+bad+"/") {
				sim.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/vnd.atlas.2024-08-05+json")
			_, _ = io.WriteString(w, `{"results": [{"name": "b-main",`)
		})
	})
	text := "atlas: {baseURL: \"" + srv.URL + "\"}\n" + `policies:
  - name: nightly
    schedule: "30 2 * * *"
    targets: [{projectID: ` + validateTestProject + `, clusters: [billing]}, {projectID: ` + bad + `, clusters: ["*"]}]
    snapshot: {retentionInDays: 7}
`
	path := validateWriteConfig(t, text)
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path, "-online")
	wantErr := path + ":3:5: policies[0].targets[1].projectID: cannot resolve its targets: list clusters of project " + bad + ": "
	if code != 2 || !strings.HasPrefix(errOut, wantErr) || !strings.Contains(errOut, "1 problem found in Atlas") {
		t.Fatalf("exit %d, stderr:\n%s\nwant it to start with %q", code, errOut, wantErr)
	}
	if l := validateTestProject + "/billing  2026-03-28 02:30:00 UTC"; !strings.Contains(validateSquash(out), validateSquash(l)) {
		t.Fatalf("stdout lacks the healthy project's target %q:\n%s", l, out)
	}
}

// TestValidateListsWhatTheMonitorWatches: offline, validate prints the
// monitor's selection and timing; -online lists the clusters it would
// watch (glob and excludes applied, flex included) with their first read,
// and a project Atlas cannot list is a located problem (exit 2).
func TestValidateListsWhatTheMonitorWatches(t *testing.T) {
	srv, _ := validateSim(t)
	monitorOnly := "atlas: {baseURL: \"" + srv.URL + "\"}\n" + `monitor:
  interval: 30m
  targets:
    - projectID: ` + validateTestProject + `
      clusters: ["prod-*", flex-prod]
      exclude: [prod-paused]
`
	path := validateWriteConfig(t, monitorOnly)
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path)
	if code != 0 {
		t.Fatalf("offline: exit %d, stderr:\n%s", code, errOut)
	}
	for _, l := range []string{"each cluster read every 30m", validateTestProject + "  prod-*, flex-prod  prod-paused"} {
		if !strings.Contains(validateSquash(out), validateSquash(l)) {
			t.Errorf("offline stdout lacks %q:\n%s", l, out)
		}
	}

	code, out, errOut = validateRun(t, validateTestEnv(validateSAEnv), "-config", path, "-online")
	if code != 0 {
		t.Fatalf("online: exit %d, stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
	for _, l := range []string{validateTestProject + "/prod-1  REPLICASET  enabled", validateTestProject + "/flex-prod  FLEX  always"} {
		if !strings.Contains(validateSquash(out), validateSquash(l)) {
			t.Errorf("online stdout lacks %q:\n%s", l, out)
		}
	}
	for _, absent := range []string{"/prod-paused", "/billing", "/staging"} {
		if strings.Contains(out, absent) {
			t.Errorf("online stdout lists %s, which the monitor does not select:\n%s", absent, out)
		}
	}

	// A project that lists but where the selectors match nothing is a
	// warning, not a failure: the clusters may come later.
	none := strings.Replace(monitorOnly, `["prod-*", flex-prod]`, `["nomatch-*"]`, 1)
	code, out, errOut = validateRun(t, validateTestEnv(validateSAEnv), "-config", validateWriteConfig(t, none), "-online")
	if code != 0 || !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "monitor.targets: project "+validateTestProject+": selects no cluster right now") ||
		strings.Contains(out, validateTestProject+"/") {
		t.Fatalf("selectors matching nothing: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	unknown := strings.Replace(monitorOnly, "projectID: "+validateTestProject, "projectID: 5f0a1b2c3d4e5f60718293ff", 1)
	code, _, errOut = validateRun(t, validateTestEnv(validateSAEnv), "-config", validateWriteConfig(t, unknown), "-online")
	if code != 2 || !strings.Contains(errOut, "monitor.targets: project 5f0a1b2c3d4e5f60718293ff: cannot list its clusters") {
		t.Fatalf("unknown project: exit %d, stderr:\n%s", code, errOut)
	}
}

// The README's "Watch Atlas's own backups only" config is valid as
// written (its client secret file beside it), and validate says what it
// watches.
func TestReadmeMonitorOnlyConfigValidates(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Watch Atlas's own backups only\n")
	if !ok {
		t.Fatal("README has no \"Watch Atlas's own backups only\" section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the section has no yaml block")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client-secret"), []byte(validateTestSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := validateRun(t, validateTestEnv(map[string]string{"CREDENTIALS_DIRECTORY": dir}), "-config", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s\nconfig:\n%s", code, errOut, block)
	}
	for _, l := range []string{"each cluster read every 1h", validateTestProject, "32b6e34b3d91647abb20e7b9  prod-*  prod-scratch"} {
		if !strings.Contains(validateSquash(out), validateSquash(l)) {
			t.Errorf("stdout lacks %q:\n%s", l, out)
		}
	}
}

// TestValidateSummarisesNotify: validate prints the notify section's
// webhooks (format, events, policies) and pings (signals) and the delivery
// bounds, and never a URL or anything read from a urlFile.
func TestValidateSummarisesNotify(t *testing.T) {
	dir := t.TempDir()
	const hookSecret, pingSecret = "SECRET-hook-path", "SECRET-ping-uuid"
	hook, ping := filepath.Join(dir, "hook-url"), filepath.Join(dir, "ping-url")
	for f, url := range map[string]string{hook: "https://hooks.example.com/services/" + hookSecret, ping: "https://hc-ping.example.com/" + pingSecret} {
		if err := os.WriteFile(f, []byte(url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := validateWriteConfig(t, validateGood+`notify:
  webhooks:
    - {name: ops, urlFile: `+hook+`, format: slack, events: [failed], policies: [nightly]}
    - {name: audit, urlFile: `+hook+`, events: [succeeded, failed, skipped]}
  pings:
    - {policy: nightly, urlFile: `+ping+`}
`)
	code, out, errOut := validateRun(t, validateTestEnv(validateSAEnv), "-config", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, l := range []string{
		"notify: 2 webhooks, 1 ping;",
		"  ops  slack  failed  nightly",
		"  audit  json  succeeded, failed, skipped  all",
		"  nightly  POST  start, success, fail",
	} {
		if !strings.Contains(validateSquash(out), validateSquash(l)) {
			t.Errorf("stdout lacks %q:\n%s", l, out)
		}
	}
	for _, s := range []string{hookSecret, pingSecret, "https://"} {
		if strings.Contains(out+errOut, s) {
			t.Errorf("validate printed %q:\n%s", s, out)
		}
	}
}
