package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// drillCfg is a snapshot policy of prod-* with exclusions, and a drill.
// Lines: 1 policies, 2 name nightly, 3 schedule, 4 targets, 5 snapshot,
// 6 name drill, 7 schedule, 8 restoreDrill, 9 projectID, 10 cluster,
// 11 targetCluster, 12 confirmOverwrite.
const drillCfg = `policies:
  - name: nightly
    schedule: "0 2 * * *"
    targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: ["prod-*", billing], exclude: [prod-scratch]}]
    snapshot: {retentionInDays: 7}
  - name: drill
    schedule: "0 6 1 * *"
    restoreDrill:
      projectID: 32b6e34b3d91647abb20e7b8
      cluster: prod-main
      targetCluster: TARGET
      confirmOverwrite: true
`

func drill(target string) string { return strings.Replace(drillCfg, "TARGET", target, 1) }

func TestRestoreDrillParses(t *testing.T) {
	cfg := mustParse(t, drill("prod-scratch")+`      snapshot: exported
      verify:
        command: [/usr/local/bin/check-restore, --quick]
        timeout: 5m
`, saEnv)
	p, ok := cfg.Policy("drill")
	if !ok || p.Action() != run.ActionRestoreDrill {
		t.Fatalf("drill policy %+v", p)
	}
	rd := p.RestoreDrill
	want := RestoreDrillAction{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-main", Snapshot: DrillSnapshotExported,
		TargetProjectID: "32b6e34b3d91647abb20e7b8", TargetCluster: "prod-scratch", ConfirmOverwrite: true}
	got := *rd
	got.Verify = nil
	if got != want || rd.Verify == nil || !slices.Equal(rd.Verify.Command, []string{"/usr/local/bin/check-restore", "--quick"}) || rd.Verify.Timeout != 5*time.Minute {
		t.Errorf("restoreDrill = %+v verify %+v", rd, rd.Verify)
	}
	if d := p.MaxRunDuration(); d != DefaultWaitTimeout+DefaultRestoreTimeout+5*time.Minute {
		t.Errorf("MaxRunDuration = %s", d)
	}
	if !Selects(p, run.Target{ProjectID: rd.ProjectID, Cluster: "prod-main"}) || Selects(p, run.Target{ProjectID: rd.ProjectID, Cluster: "prod-scratch"}) {
		t.Error("a drill selects its source, not its target")
	}
	if s := cfg.String(); !strings.Contains(s, `"restoreDrill":{`) || !strings.Contains(s, `"verify":{"command":["/usr/local/bin/check-restore","--quick"],"timeout":"5m"}`) {
		t.Errorf("view lacks the drill: %s", s)
	}
	// Defaults: the newest completed snapshot, no verify command.
	p = mustParse(t, drill("prod-scratch"), saEnv).Policies[1]
	if p.RestoreDrill.Snapshot != DrillSnapshotLatest || p.RestoreDrill.Verify != nil {
		t.Errorf("defaults: %+v", p.RestoreDrill)
	}
	v := mustParse(t, drill("prod-scratch")+"      verify: {command: [check]}\n", saEnv).Policies[1].RestoreDrill.Verify
	if v.Timeout != DefaultVerifyTimeout {
		t.Errorf("verify timeout default %s", v.Timeout)
	}
}

// Every rule that keeps a drill from wiping a cluster that matters, with
// its exact message and location.
func TestRestoreDrillRefusals(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string
	}{
		{"target selected by a glob", drill("prod-main2"), []string{
			`cfg.yaml:11:22: policies[1].restoreDrill.targetCluster: 32b6e34b3d91647abb20e7b8/prod-main2 is backed up by policy nightly (line 2), whose clusters "prod-*" select it: a drill deletes all data on its target, so it must be a scratch cluster no snapshot or export policy selects (exclude it there, or pick another target)`}},
		{"target selected by name", drill("billing"), []string{
			`cfg.yaml:11:22: policies[1].restoreDrill.targetCluster: 32b6e34b3d91647abb20e7b8/billing is backed up by policy nightly (line 2), whose clusters "billing" select it: a drill deletes all data on its target, so it must be a scratch cluster no snapshot or export policy selects (exclude it there, or pick another target)`}},
		{"target selected by defaults.targets", "defaults:\n  targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n" + strings.Replace(drill("scratch"), "    targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: [\"prod-*\", billing], exclude: [prod-scratch]}]\n", "", 1), []string{
			`cfg.yaml:12:22: policies[1].restoreDrill.targetCluster: 32b6e34b3d91647abb20e7b8/scratch is backed up by policy nightly (line 4), whose clusters "*" select it: a drill deletes all data on its target, so it must be a scratch cluster no snapshot or export policy selects (exclude it there, or pick another target)`}},
		{"target selected by an export policy", drill("scratch") + "  - name: exp\n    schedule: \"@weekly\"\n    targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: [\"s*\"]}]\n    export: {bucketID: 32b6e34b3d91647abb20e7b9, source: latest}\n", []string{
			`cfg.yaml:11:22: policies[1].restoreDrill.targetCluster: 32b6e34b3d91647abb20e7b8/scratch is backed up by policy exp (line 13), whose clusters "s*" select it`}},
		{"onto itself", drill("prod-main"), []string{
			"cfg.yaml:11:22: policies[1].restoreDrill.targetCluster: must differ from the source cluster: the drill would delete the data it restores",
			`cfg.yaml:11:22: policies[1].restoreDrill.targetCluster: 32b6e34b3d91647abb20e7b8/prod-main is backed up by policy nightly (line 2)`}},
		{"confirm false", strings.Replace(drill("prod-scratch"), "confirmOverwrite: true", "confirmOverwrite: false", 1), []string{
			"cfg.yaml:12:25: policies[1].restoreDrill.confirmOverwrite: must be true: every drill deletes all data in prod-scratch"}},
		{"confirm missing", strings.Replace(drill("prod-scratch"), "      confirmOverwrite: true\n", "", 1), []string{
			"cfg.yaml:9:7: policies[1].restoreDrill.confirmOverwrite: required: set confirmOverwrite: true to acknowledge that every drill deletes all data in prod-scratch"}},
		{"missing keys", "policies:\n  - name: r\n    schedule: \"@daily\"\n    restoreDrill: {snapshot: oldest}\n", []string{
			"cfg.yaml:4:19: policies[0].restoreDrill.projectID: required: the 24-hex id of the source cluster's project",
			"cfg.yaml:4:19: policies[0].restoreDrill.cluster: required: the name of the dedicated cluster whose snapshot is restored",
			"cfg.yaml:4:19: policies[0].restoreDrill.targetCluster: required: the scratch cluster whose data every drill replaces",
			"cfg.yaml:4:19: policies[0].restoreDrill.confirmOverwrite: required: set confirmOverwrite: true to acknowledge that every drill deletes all data in the target cluster",
			`cfg.yaml:4:30: policies[0].restoreDrill.snapshot: must be one of latest, exported, got "oldest"`}},
		{"bad target name", drill(`"a b"`), []string{
			`cfg.yaml:11:22: policies[1].restoreDrill.targetCluster: must match ^[a-zA-Z0-9][a-zA-Z0-9-]*$`}},
		{"combined with snapshot", drill("prod-scratch") + "    snapshot: {retentionInDays: 1}\n", []string{
			"cfg.yaml:8:5: policies[1].restoreDrill: a policy has exactly one action: restoreDrill cannot be combined with snapshot or export; split it into two policies"}},
		{"targets given", drill("prod-scratch") + "    targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", []string{
			"cfg.yaml:13:5: policies[1].targets: does not apply to restoreDrill: the source is restoreDrill.projectID and restoreDrill.cluster"}},
		{"verify without command", drill("prod-scratch") + "      verify: {timeout: 1m}\n", []string{
			"cfg.yaml:13:15: policies[1].restoreDrill.verify.command: required: the program to run and its arguments (no shell), e.g. [/usr/local/bin/check-restore, --quick]"}},
		{"verify empty command", drill("prod-scratch") + "      verify: {command: []}\n", []string{
			"cfg.yaml:13:25: policies[1].restoreDrill.verify.command: must name the program to run and its arguments, e.g. [/usr/local/bin/check-restore, --quick]"}},
		{"verify blank program", drill("prod-scratch") + "      verify: {command: [\" \", x]}\n", []string{
			"cfg.yaml:13:26: policies[1].restoreDrill.verify.command[0]: must name the program to run"}},
		{"verify zero timeout", drill("prod-scratch") + "      verify: {command: [x], timeout: 0s}\n", []string{
			"cfg.yaml:13:39: policies[1].restoreDrill.verify.timeout: must be a positive duration"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parseIssues(t, tc.text, saEnv)
			if len(got) != len(tc.want) {
				t.Fatalf("issues:\n%s\nwant:\n%s", joinLines(got), joinLines(tc.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("issue %d:\n got %s\nwant %s", i, got[i], tc.want[i])
				}
			}
		})
	}
	// An excluded cluster, another project, or a flexRestore's source is
	// no obstacle.
	mustParse(t, drill("prod-scratch"), saEnv)
	mustParse(t, strings.Replace(drill("prod-main2"), "      confirmOverwrite", "      targetProjectID: 32b6e34b3d91647abb20e7b9\n      confirmOverwrite", 1), saEnv)
}
