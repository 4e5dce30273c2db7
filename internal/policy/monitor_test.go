package policy

import (
	"slices"
	"testing"
	"time"
)

// parseMonitor decodes text's monitor: section the way Parse will once it
// is wired, and returns the section and every issue as a string.
func parseMonitor(t *testing.T, text string) (*Monitor, []string) {
	t.Helper()
	d := &decoder{file: "cfg.yaml"}
	root := d.document([]byte(text))
	var mon *Monitor
	if root != nil {
		if top, ok := d.mapping(root, "", "monitor", "other"); ok {
			mon = d.monitorSection(top)
		}
	}
	var out []string
	for _, is := range d.issues {
		out = append(out, is.String())
	}
	return mon, out
}

func TestMonitorSection(t *testing.T) {
	mon, issues := parseMonitor(t, `monitor:
  interval: 30m
  margin: 3h
  targets:
    - projectID: 32b6e34b3d91647abb20e7b8
      clusters: ["prod-*", analytics]
      exclude: [prod-scratch]
    - projectID: 32b6e34b3d91647abb20e7b9
`)
	if len(issues) != 0 || mon == nil {
		t.Fatalf("issues %v", issues)
	}
	want := []TargetSelector{
		{ProjectID: "32b6e34b3d91647abb20e7b8", Clusters: []string{"prod-*", "analytics"}, Exclude: []string{"prod-scratch"}},
		{ProjectID: "32b6e34b3d91647abb20e7b9", Clusters: []string{"*"}},
	}
	if !slices.EqualFunc(mon.Targets, want, func(a, b TargetSelector) bool {
		return a.ProjectID == b.ProjectID && slices.Equal(a.Clusters, b.Clusters) && slices.Equal(a.Exclude, b.Exclude)
	}) {
		t.Errorf("targets %+v, want %+v", mon.Targets, want)
	}
	if mon.Interval != 30*time.Minute || mon.Margin != 3*time.Hour || mon.Pos.String() != "cfg.yaml:1:1" {
		t.Errorf("interval %s margin %s pos %s", mon.Interval, mon.Margin, mon.Pos)
	}

	mon, issues = parseMonitor(t, "monitor:\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n")
	if len(issues) != 0 || mon.Interval != DefaultMonitorInterval || mon.Margin != DefaultMonitorMargin {
		t.Errorf("defaults: %+v %v", mon, issues)
	}
	if mon, issues = parseMonitor(t, "other: 1\n"); mon != nil || len(issues) != 0 {
		t.Errorf("absent section: %+v %v", mon, issues)
	}
}

func TestMonitorSectionErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"not a mapping", "monitor: [a]\n", []string{"cfg.yaml:1:10: monitor: must be a mapping (key: value), got a list"}},
		{"no targets", "monitor:\n  interval: 1h\n", []string{"cfg.yaml:2:3: monitor.targets: required: list the projects (and clusters) to watch, as in a policy's targets"}},
		{"empty targets", "monitor:\n  targets: []\n", []string{"cfg.yaml:2:12: monitor.targets: must list at least one project"}},
		{"bad project", "monitor:\n  targets: [{projectID: nope}]\n", []string{"cfg.yaml:2:25: monitor.targets[0].projectID: must match ^[a-f0-9]{24}$"}},
		{"bad glob", "monitor:\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: ['prod_*']}]\n", []string{
			"cfg.yaml:2:62: monitor.targets[0].clusters[0]: glob may contain only letters, digits, - and the glob characters ! * ? [ ] ^"}},
		{"interval too short", "monitor:\n  interval: 30s\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", []string{"cfg.yaml:2:13: monitor.interval: must be from 1m0s to 24h0m0s"}},
		{"interval too long", "monitor:\n  interval: 2d\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", []string{"cfg.yaml:2:13: monitor.interval: must be from 1m0s to 24h0m0s"}},
		{"margin zero", "monitor:\n  margin: 0s\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", []string{"cfg.yaml:2:11: monitor.margin: must be a positive duration"}},
		{"unknown key", "monitor:\n  intervall: 1h\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", []string{`cfg.yaml:2:3: monitor.intervall: unknown key (did you mean "interval"?)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Parse fails on any issue, so what the section returns
			// besides them does not matter.
			_, issues := parseMonitor(t, tc.text)
			if !slices.Equal(issues, tc.want) {
				t.Errorf("issues\n got %q\nwant %q", issues, tc.want)
			}
		})
	}
}

// TestParseMonitor: Parse reads the monitor: section, and a file with one
// may have no policies at all (a team running backupd only to watch Atlas's
// own backups), while a file with neither still fails.
func TestParseMonitor(t *testing.T) {
	cfg := mustParse(t, "monitor:\n  interval: 30m\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", saEnv)
	if cfg.Monitor == nil || cfg.Monitor.Interval != 30*time.Minute || cfg.Monitor.Pos.String() != "cfg.yaml:1:1" ||
		len(cfg.Monitor.Targets) != 1 || len(cfg.Policies) != 0 {
		t.Fatalf("monitor-only file: %+v", cfg.Monitor)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("monitor-only file warns: %v", cfg.Warnings)
	}
	cfg = mustParse(t, "monitor:\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\npolicies: []\n", saEnv)
	if cfg.Monitor == nil || len(cfg.Warnings) != 0 {
		t.Errorf("empty policies beside a monitor: %+v %v", cfg.Monitor, cfg.Warnings)
	}
	if cfg := mustParse(t, base, saEnv); cfg.Monitor != nil {
		t.Errorf("no monitor section, got %+v", cfg.Monitor)
	}
	_, issues := parseIssues(t, "monitor:\n  targets: []\n", saEnv)
	if want := []string{"cfg.yaml:2:12: monitor.targets: must list at least one project"}; !slices.Equal(issues, want) {
		t.Errorf("bad monitor-only file\n got %q\nwant %q", issues, want)
	}
	_, issues = parseIssues(t, "log: {level: info}\n", saEnv)
	if want := []string{"cfg.yaml:1:1: policies: required: list at least one policy, or a monitor: section"}; !slices.Equal(issues, want) {
		t.Errorf("neither policies nor monitor\n got %q\nwant %q", issues, want)
	}
}
