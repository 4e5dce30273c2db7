package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

func TestDefaultsApplied(t *testing.T) {
	cfg := mustParse(t, base, saEnv)
	a := cfg.Atlas
	if a.BaseURL != "https://cloud.mongodb.com" || a.RequestsPerMinute != 100 || a.Timeout != 30*time.Second || a.DiscoveryInterval != 10*time.Minute {
		t.Errorf("atlas defaults: %+v", a)
	}
	if cfg.Server.Listen != "127.0.0.1:9469" || !cfg.Server.AdminToken.IsZero() || cfg.Server.AdminTokenFile != "" {
		t.Errorf("server defaults: %+v", cfg.Server)
	}
	if cfg.State != (State{Path: "/var/lib/backupd/state.db", HistoryRuns: 1_000_000, HistoryAge: 400 * 24 * time.Hour}) {
		t.Errorf("state defaults: %+v", cfg.State)
	}
	if cfg.Log != (Log{Level: "info", Format: "json"}) {
		t.Errorf("log defaults: %+v", cfg.Log)
	}
	p := cfg.Policies[0]
	wantTimeouts := Timeouts{Wait: 2 * time.Hour, Snapshot: 4 * time.Hour, Export: 24 * time.Hour, Restore: 6 * time.Hour}
	if p.Timezone != "UTC" || p.Location != time.UTC || p.Jitter != 0 || p.Missed != "once" || p.Overlap != "skip" || p.Timeouts != wantTimeouts {
		t.Errorf("policy defaults: %+v", p)
	}
	if !slices.Equal(p.Targets[0].Clusters, []string{"*"}) || p.Targets[0].Exclude != nil {
		t.Errorf("target defaults: %+v", p.Targets)
	}
	if p.Action() != run.ActionSnapshot || p.Pos != (Position{File: "cfg.yaml", Line: 2, Column: 5}) {
		t.Errorf("action %v pos %v", p.Action(), p.Pos)
	}
}

func TestStatePathEmptyMeansMemory(t *testing.T) {
	cfg := mustParse(t, "state: {path: \"\"}\n"+base, saEnv)
	if cfg.State.Path != "" {
		t.Fatalf("explicit empty path became %q", cfg.State.Path)
	}
	cfg = mustParse(t, "state: {historyRuns: 5}\n"+base, saEnv)
	if cfg.State.Path != DefaultStatePath || cfg.State.HistoryRuns != 5 {
		t.Fatalf("absent path: %+v", cfg.State)
	}
}

func TestInheritance(t *testing.T) {
	text := `defaults:
  schedule: "@daily"
  timezone: Europe/Berlin
  jitter: 10m
  missed: skip
  timeouts: {wait: 1h, export: 12h}
  targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: ["prod-*"]}]
policies:
  - name: inherits
    snapshot: {retentionInDays: 3}
  - name: overrides
    schedule: "0 3 * * *"
    timezone: Asia/Tokyo
    jitter: 0s
    missed: once
    timeouts: {export: 2h}
    targets: [{projectID: 32b6e34b3d91647abb20e7b9}]
    export: {bucketID: 32b6e34b3d91647abb20e7b9, source: latest}
  - name: restore
    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: s, confirmOverwrite: true}
`
	cfg := mustParse(t, text, saEnv)
	in, over, rs := cfg.Policies[0], cfg.Policies[1], cfg.Policies[2]
	if in.Schedule != "@daily" || in.Timezone != "Europe/Berlin" || in.Location.String() != "Europe/Berlin" || in.Jitter != 10*time.Minute || in.Missed != "skip" {
		t.Errorf("inherits: %+v", in)
	}
	if want := (Timeouts{Wait: time.Hour, Snapshot: 4 * time.Hour, Export: 12 * time.Hour, Restore: 6 * time.Hour}); in.Timeouts != want {
		t.Errorf("inherited timeouts %+v, want %+v", in.Timeouts, want)
	}
	if len(in.Targets) != 1 || in.Targets[0].Clusters[0] != "prod-*" {
		t.Errorf("inherited targets %+v", in.Targets)
	}
	// The inherited schedule is evaluated in the policy's zone: midnight Berlin.
	if next := in.Cron.Next(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)); next.Format("15:04 MST") != "00:00 CEST" {
		t.Errorf("inherited @daily fires at %v", next)
	}
	if over.Schedule != "0 3 * * *" || over.Timezone != "Asia/Tokyo" || over.Jitter != 0 || over.Missed != "once" || over.Timeouts.Export != 2*time.Hour || over.Timeouts.Wait != time.Hour {
		t.Errorf("overrides: %+v", over)
	}
	if over.Targets[0].ProjectID != "32b6e34b3d91647abb20e7b9" || over.Action() != run.ActionExport {
		t.Errorf("overrides targets/action: %+v", over)
	}
	if rs.Action() != run.ActionFlexRestore || rs.Targets != nil || rs.FlexRestore.TargetProjectID != rs.FlexRestore.ProjectID || rs.FlexRestore.Snapshot != "latest" {
		t.Errorf("restore: %+v %+v", rs, rs.FlexRestore)
	}
	if cfg.Defaults.Timezone != "Europe/Berlin" || cfg.Defaults.Jitter != 10*time.Minute {
		t.Errorf("Defaults kept for display: %+v", cfg.Defaults)
	}
}

func TestCustomDataKeepsOrder(t *testing.T) {
	text := base + "    export:\n      bucketID: 32b6e34b3d91647abb20e7b9\n      customData: {zeta: \"1\", alpha: two, mid: 3}\n"
	cfg := mustParse(t, text, saEnv)
	want := []atlas.Label{{Key: "zeta", Value: "1"}, {Key: "alpha", Value: "two"}, {Key: "mid", Value: "3"}}
	if got := cfg.Policies[0].Export.CustomData; !slices.Equal(got, want) {
		t.Fatalf("customData %v, want %v", got, want)
	}
	if cfg.Policies[0].Action() != run.ActionSnapshot || cfg.Policies[0].Export.Source != ExportSourceTaken {
		t.Fatalf("snapshot+export: %+v", cfg.Policies[0])
	}
}

func TestWarnings(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"run longer than interval", strings.Replace(base, `"0 2 * * *"`, `"* * * * *"`, 1),
			[]string{"cfg.yaml:3:15: policies[0].schedule: fires every 1m0s but a run may take up to 6h0m0s; overlapping slots will be skipped"}},
		{"export counts too", base + "    export: {bucketID: 32b6e34b3d91647abb20e7b9}\n",
			[]string{"cfg.yaml:3:15: policies[0].schedule: fires every 24h0m0s but a run may take up to 30h0m0s; overlapping slots will be skipped"}},
		{"fits", base + "    timeouts: {export: 12h}\n    export: {bucketID: 32b6e34b3d91647abb20e7b9}\n", nil},
		{"no policies", "policies: []\n", []string{"cfg.yaml:1:11: policies: no policies: the daemon will take no backups"}},
		{"plain http to a remote host", "atlas: {baseURL: \"http://atlas.example.com\"}\n" + base,
			[]string{"cfg.yaml:1:18: atlas.baseURL: plain http to a non-local host sends credentials unencrypted; use https"}},
		{"plain http to the simulator", "atlas: {baseURL: \"http://127.0.0.1:8080/\"}\n" + base, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, tc.text, saEnv)
			var got []string
			for _, w := range cfg.Warnings {
				got = append(got, w.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("warnings\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	cfg := mustParse(t, "atlas: {baseURL: \"http://127.0.0.1:8080/\"}\n"+base, saEnv)
	if cfg.Atlas.BaseURL != "http://127.0.0.1:8080" {
		t.Fatalf("baseURL %q: trailing slash not trimmed", cfg.Atlas.BaseURL)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	env := OSEnv()
	env.Getenv = saEnv.Getenv
	cfg, err := Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != path || cfg.Policies[0].Pos.File != path {
		t.Fatalf("source %q pos %v", cfg.Source, cfg.Policies[0].Pos)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"), env)
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 1 || errs.List[0].Line != 1 ||
		errs.Error() != filepath.Join(dir, "missing.yaml")+":1: cannot read the config file: no such file" {
		t.Fatalf("missing file: %v", err)
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	text := `policies:
  - name: a
    schedule: &s "0 2 * * *"
    targets: &t [{projectID: 32b6e34b3d91647abb20e7b8}]
    snapshot: {retentionInDays: 7}
  - name: b
    schedule: *s
    targets: *t
    snapshot: {retentionInDays: 7}
`
	cfg := mustParse(t, text, saEnv)
	if cfg.Policies[1].Schedule != "0 2 * * *" || cfg.Policies[1].Targets[0].ProjectID != projA {
		t.Fatalf("aliases not followed: %+v", cfg.Policies[1])
	}
	// A self-referencing alias must not hang or panic.
	_, issues := parseIssues(t, "policies: &p [*p]\n", saEnv)
	if len(issues) == 0 {
		t.Fatal("self-referencing alias accepted")
	}
}
