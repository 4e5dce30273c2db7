package policy

import (
	"slices"
	"strings"
	"testing"
)

// base is a minimal valid policy list; cases below edit copies of it.
// Lines: 1 policies, 2 name, 3 schedule, 4 targets, 5 snapshot.
const base = `policies:
  - name: p
    schedule: "0 2 * * *"
    targets: [{projectID: 32b6e34b3d91647abb20e7b8}]
    snapshot: {retentionInDays: 7}
`

func TestBaseIsValid(t *testing.T) {
	cfg := mustParse(t, base, saEnv)
	if len(cfg.Policies) != 1 || cfg.Policies[0].Name != "p" || len(cfg.Warnings) != 0 {
		t.Fatalf("got %+v, warnings %v", cfg.Policies, cfg.Warnings)
	}
}

// TestValidationMessages pins every rule's exact message and location.
func TestValidationMessages(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string
	}{
		{"empty file", "", []string{"cfg.yaml:1: the file is empty: expected a mapping with atlas, server, state, log, defaults and policies"}},
		{"comments only", "# nothing\n", []string{"cfg.yaml:1: the file is empty: expected a mapping with atlas, server, state, log, defaults and policies"}},
		{"null document", "~\n", []string{"cfg.yaml:1:1: the file is empty: expected a mapping with atlas, server, state, log, defaults and policies"}},
		{"two documents", base + "---\npolicies: []\n", []string{"cfg.yaml:6:1: only one YAML document is allowed: remove the second document (starting with ---)"}},
		{"syntax error", "policies: [\n", []string{"cfg.yaml:1: invalid YAML: did not find expected node content"}},
		{"top level list", "- a\n", []string{"cfg.yaml:1:1: must be a mapping (key: value), got a list"}},
		{"unknown top key with suggestion", base + "polices: []\n", []string{`cfg.yaml:6:1: polices: unknown key (did you mean "policies"?)`}},
		{"unknown key without suggestion", base + "zzzzzzzzzz: 1\n", []string{`cfg.yaml:6:1: zzzzzzzzzz: unknown key (allowed: atlas, server, state, log, ha, defaults, policies, monitor, notify)`}},
		{"duplicate top key", base + "log: {}\nlog: {}\n", []string{"cfg.yaml:7:1: log: duplicate key (first defined at line 6)"}},
		{"missing policies", "log: {level: info}\n", []string{"cfg.yaml:1:1: policies: required: list at least one policy, or a monitor: section"}},
		{"policies not a list", "policies: {}\n", []string{"cfg.yaml:1:11: policies: must be a list, got a mapping"}},
		{"policy not a mapping", "policies: [x]\n", []string{"cfg.yaml:1:12: policies[0]: must be a mapping (key: value), got a string"}},
		{"merge key", "defaults: &d {jitter: 1m}\npolicies:\n  - <<: *d\n    name: p\n", []string{
			"cfg.yaml:3:5: policies[0].<<: merge keys (<<) are not supported: put shared settings in defaults",
			`cfg.yaml:3:5: policies[0].schedule: required: a 5-field cron expression such as "0 2 * * *", or @daily, @every 6h`,
			"cfg.yaml:3:5: policies[0]: no action: add snapshot (optionally with export), export with source: latest, flexRestore or restoreDrill",
		}},
		{"bad name", strings.Replace(base, "name: p", "name: Prod_1", 1), []string{"cfg.yaml:2:11: policies[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$"}},
		{"name too long", strings.Replace(base, "name: p", "name: "+strings.Repeat("a", 64), 1), []string{"cfg.yaml:2:11: policies[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$"}},
		{"missing name", strings.Replace(base, "- name: p\n    ", "- ", 1), []string{"cfg.yaml:2:5: policies[0].name: required: a unique name matching ^[a-z0-9][a-z0-9-]{0,62}$"}},
		{"duplicate policy name", base + strings.TrimPrefix(base, "policies:\n"), []string{`cfg.yaml:6:11: policies[1].name: duplicate policy name "p" (first used at line 2)`}},
		{"duplicate key in policy", strings.Replace(base, "    snapshot:", "    name: q\n    snapshot:", 1), []string{"cfg.yaml:5:5: policies[0].name: duplicate key (first defined at line 2)"}},
		{"name wrong type", strings.Replace(base, "name: p", "name: true", 1), []string{`cfg.yaml:2:11: policies[0].name: must be a string, got a boolean (quote it if you mean the text)`}},
		{"schedule missing", strings.Replace(base, "    schedule: \"0 2 * * *\"\n", "", 1), []string{`cfg.yaml:2:5: policies[0].schedule: required: a 5-field cron expression such as "0 2 * * *", or @daily, @every 6h`}},
		{"schedule six fields", strings.Replace(base, `"0 2 * * *"`, `"0 0 2 * * *"`, 1), []string{`cfg.yaml:3:15: policies[0].schedule: invalid cron schedule: expected exactly 5 fields, found 6: [0 0 2 * * *] (use 5 fields "minute hour day-of-month month day-of-week" or @hourly, @daily, @weekly, @monthly, @yearly, @every 6h)`}},
		{"schedule CRON_TZ", strings.Replace(base, `"0 2 * * *"`, `"CRON_TZ=Europe/Berlin 0 2 * * *"`, 1), []string{"cfg.yaml:3:15: policies[0].schedule: must not contain CRON_TZ= or TZ=: set the policy's timezone key instead"}},
		{"schedule TZ", strings.Replace(base, `"0 2 * * *"`, `"TZ=UTC"`, 1), []string{"cfg.yaml:3:15: policies[0].schedule: must not contain CRON_TZ= or TZ=: set the policy's timezone key instead"}},
		{"schedule never fires", strings.Replace(base, `"0 2 * * *"`, `"0 2 30 2 *"`, 1), []string{"cfg.yaml:3:15: policies[0].schedule: never fires (no matching date, e.g. 30 February)"}},
		{"schedule every too short", strings.Replace(base, `"0 2 * * *"`, `"@every 30s"`, 1), []string{"cfg.yaml:3:15: policies[0].schedule: @every interval must be whole seconds from 1m0s to 366d"}},
		{"schedule every too long", strings.Replace(base, `"0 2 * * *"`, `"@every 400d"`, 1), []string{"cfg.yaml:3:15: policies[0].schedule: @every interval must be whole seconds from 1m0s to 366d"}},
		{"schedule every bad", strings.Replace(base, `"0 2 * * *"`, `"@every often"`, 1), []string{`cfg.yaml:3:15: policies[0].schedule: invalid @every interval "often": use a duration such as @every 6h or @every 1d`}},
		{"unknown timezone", strings.Replace(base, "    targets", "    timezone: Europe/Berln\n    targets", 1), []string{`cfg.yaml:4:15: policies[0].timezone: unknown time zone "Europe/Berln": use an IANA name such as Europe/Berlin or UTC`}},
		{"Local timezone", strings.Replace(base, "    targets", "    timezone: Local\n    targets", 1), []string{"cfg.yaml:4:15: policies[0].timezone: Local is not allowed (it depends on the host): name an IANA time zone such as Europe/Berlin or UTC"}},
		{"negative jitter", strings.Replace(base, "    targets", "    jitter: -1m\n    targets", 1), []string{"cfg.yaml:4:13: policies[0].jitter: must not be negative"}},
		{"bad duration", strings.Replace(base, "    targets", "    jitter: soon\n    targets", 1), []string{`cfg.yaml:4:13: policies[0].jitter: invalid duration "soon": use a number with a unit, such as 30s, 15m, 2h30m or 90d`}},
		{"duration without unit", strings.Replace(base, "    targets", "    jitter: 30\n    targets", 1), []string{`cfg.yaml:4:13: policies[0].jitter: invalid duration "30": use a number with a unit, such as 30s, 15m, 2h30m or 90d`}},
		{"jitter not shorter than interval", strings.Replace(base, "    targets", "    jitter: 1d\n    targets", 1), []string{"cfg.yaml:4:13: policies[0].jitter: must be shorter than the schedule's interval (24h0m0s), got 24h0m0s"}},
		{"inherited jitter too long", "defaults: {jitter: 2h}\n" + strings.Replace(base, `"0 2 * * *"`, `"@hourly"`, 1), []string{"cfg.yaml:1:20: policies[0].jitter: must be shorter than the schedule's interval (1h0m0s), got 2h0m0s (inherited from defaults.jitter)"}},
		{"zero timeout", strings.Replace(base, "    targets", "    timeouts: {wait: 0s}\n    targets", 1), []string{"cfg.yaml:4:22: policies[0].timeouts.wait: must be a positive duration"}},
		{"unknown timeout", strings.Replace(base, "    targets", "    timeouts: {snapshots: 1h}\n    targets", 1), []string{`cfg.yaml:4:16: policies[0].timeouts.snapshots: unknown key (did you mean "snapshot"?)`}},
		{"missed", strings.Replace(base, "    targets", "    missed: all\n    targets", 1), []string{`cfg.yaml:4:13: policies[0].missed: must be one of once, skip, got "all"`}},
		{"overlap", strings.Replace(base, "    targets", "    overlap: queue\n    targets", 1), []string{`cfg.yaml:4:14: policies[0].overlap: must be one of skip, got "queue"`}},
		{"no action", strings.Replace(base, "    snapshot: {retentionInDays: 7}\n", "", 1), []string{"cfg.yaml:2:5: policies[0]: no action: add snapshot (optionally with export), export with source: latest, flexRestore or restoreDrill"}},
		{"retention zero", strings.Replace(base, "retentionInDays: 7", "retentionInDays: 0", 1), []string{"cfg.yaml:5:33: policies[0].snapshot.retentionInDays: must be at least 1"}},
		{"retention string", strings.Replace(base, "retentionInDays: 7", `retentionInDays: "7"`, 1), []string{"cfg.yaml:5:33: policies[0].snapshot.retentionInDays: must be an integer, got a string"}},
		{"retention missing", strings.Replace(base, "{retentionInDays: 7}", "{description: x}", 1), []string{"cfg.yaml:5:15: policies[0].snapshot.retentionInDays: required: how many days Atlas keeps the snapshot (at least 1)"}},
		{"description too long", strings.Replace(base, "{retentionInDays: 7}", "{retentionInDays: 7, description: "+strings.Repeat("x", 201)+"}", 1), []string{"cfg.yaml:5:49: policies[0].snapshot.description: must be at most 200 characters (backupd appends its run marker)"}},
		{"description with marker", strings.Replace(base, "{retentionInDays: 7}", `{retentionInDays: 7, description: "backupd:abc"}`, 1), []string{`cfg.yaml:5:49: policies[0].snapshot.description: must not contain "backupd:", which marks backupd's own runs`}},
		{"bad project id", strings.Replace(base, "32b6e34b3d91647abb20e7b8", "32B6E34B3D91647ABB20E7B8", 1), []string{"cfg.yaml:4:27: policies[0].targets[0].projectID: must match ^[a-f0-9]{24}$"}},
		{"missing project id", strings.Replace(base, "[{projectID: 32b6e34b3d91647abb20e7b8}]", "[{clusters: [a]}]", 1), []string{"cfg.yaml:4:15: policies[0].targets[0].projectID: required: the 24-hex id of the Atlas project"}},
		{"empty targets", strings.Replace(base, "[{projectID: 32b6e34b3d91647abb20e7b8}]", "[]", 1), []string{"cfg.yaml:4:14: policies[0].targets: must list at least one project"}},
		{"missing targets", strings.Replace(base, "    targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n", "", 1), []string{"cfg.yaml:2:5: policies[0].targets: required: list the projects (and cluster names or globs) to act on"}},
		{"empty clusters", strings.Replace(base, "7b8}", "7b8, clusters: []}", 1), []string{"cfg.yaml:4:63: policies[0].targets[0].clusters: must not be empty (omit clusters to select every cluster)"}},
		{"bad cluster name", strings.Replace(base, "7b8}", "7b8, clusters: [prod_1]}", 1), []string{"cfg.yaml:4:64: policies[0].targets[0].clusters[0]: must match ^[a-zA-Z0-9][a-zA-Z0-9-]*$ (globs may use * ? and [...])"}},
		{"bad glob chars", strings.Replace(base, "7b8}", "7b8, clusters: [\"prod_*\"]}", 1), []string{"cfg.yaml:4:64: policies[0].targets[0].clusters[0]: glob may contain only letters, digits, - and the glob characters ! * ? [ ] ^"}},
		{"malformed glob", strings.Replace(base, "7b8}", "7b8, clusters: [\"prod-[a\"]}", 1), []string{"cfg.yaml:4:64: policies[0].targets[0].clusters[0]: malformed glob: syntax error in pattern"}},
		{"bad exclude", strings.Replace(base, "7b8}", "7b8, exclude: [\"-x\"]}", 1), []string{"cfg.yaml:4:63: policies[0].targets[0].exclude[0]: must match ^[a-zA-Z0-9][a-zA-Z0-9-]*$ (globs may use * ? and [...])"}},
		{"export alone without source", strings.Replace(base, "snapshot: {retentionInDays: 7}", "export: {bucketID: 32b6e34b3d91647abb20e7b9}", 1), []string{"cfg.yaml:5:5: policies[0].export.source: required for an export-only policy: set source: latest to export the newest completed snapshot, or add snapshot to take one"}},
		{"export source with snapshot", base + "    export: {bucketID: 32b6e34b3d91647abb20e7b9, source: latest}\n", []string{"cfg.yaml:6:5: policies[0].export.source: must be omitted when the policy takes a snapshot (the export uses that snapshot); source: latest is for export-only policies"}},
		{"export bad source", strings.Replace(base, "snapshot: {retentionInDays: 7}", "export: {bucketID: 32b6e34b3d91647abb20e7b9, source: newest}", 1), []string{
			`cfg.yaml:5:58: policies[0].export.source: must be one of latest, got "newest"`}},
		{"export bad bucket", base + "    export: {bucketID: nope}\n", []string{"cfg.yaml:6:24: policies[0].export.bucketID: must match ^[a-f0-9]{24}$"}},
		{"export missing bucket", base + "    export: {customData: {a: b}}\n", []string{"cfg.yaml:6:13: policies[0].export.bucketID: required: the 24-hex id of the export bucket"}},
		{"reserved customData", base + "    export:\n      bucketID: 32b6e34b3d91647abb20e7b9\n      customData: {team: x, backupd.run: y}\n", []string{`cfg.yaml:8:29: policies[0].export.customData.backupd.run: keys starting with "backupd." are reserved: backupd sets backupd.policy, backupd.run and backupd.scheduledAt itself`}},
		{"duplicate customData", base + "    export:\n      bucketID: 32b6e34b3d91647abb20e7b9\n      customData: {team: x, team: y}\n", []string{"cfg.yaml:8:29: policies[0].export.customData.team: duplicate key (first defined at line 8)"}},
		{"customData list", base + "    export:\n      bucketID: 32b6e34b3d91647abb20e7b9\n      customData: [a]\n", []string{"cfg.yaml:8:19: policies[0].export.customData: must be a mapping of labels (key: value), got a list"}},
		{"flexRestore combined with snapshot", base + "    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: s, confirmOverwrite: true}\n", []string{
			"cfg.yaml:6:5: policies[0].flexRestore: a policy has exactly one action: flexRestore cannot be combined with snapshot, export or restoreDrill; split it into two policies"}},
		{"flexRestore confirm false", "policies:\n  - name: r\n    schedule: \"@daily\"\n    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: s, confirmOverwrite: false}\n", []string{
			"cfg.yaml:4:104: policies[0].flexRestore.confirmOverwrite: must be true: the restore replaces all data in s"}},
		{"flexRestore confirm missing", "policies:\n  - name: r\n    schedule: \"@daily\"\n    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: s}\n", []string{
			"cfg.yaml:4:18: policies[0].flexRestore.confirmOverwrite: required: set confirmOverwrite: true to acknowledge that the restore replaces all data in s"}},
		{"flexRestore confirm string", "policies:\n  - name: r\n    schedule: \"@daily\"\n    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: s, confirmOverwrite: \"yes\"}\n", []string{
			`cfg.yaml:4:104: policies[0].flexRestore.confirmOverwrite: must be true or false, got a string`}},
		{"flexRestore onto itself", "policies:\n  - name: r\n    schedule: \"@daily\"\n    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: f, confirmOverwrite: true}\n", []string{
			"cfg.yaml:4:83: policies[0].flexRestore.targetCluster: must differ from the source cluster: a cluster cannot be restored onto itself"}},
		{"flexRestore bad target", "policies:\n  - name: r\n    schedule: \"@daily\"\n    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: \"a b\", confirmOverwrite: true}\n", []string{
			`cfg.yaml:4:83: policies[0].flexRestore.targetCluster: must match ^[\p{L}\p{N}\-_.(),:&@+']{1,64}$`}},
		{"flexRestore missing keys", "policies:\n  - name: r\n    schedule: \"@daily\"\n    flexRestore: {snapshot: oldest}\n", []string{
			"cfg.yaml:4:18: policies[0].flexRestore.projectID: required: the 24-hex id of the flex cluster's project",
			"cfg.yaml:4:18: policies[0].flexRestore.cluster: required: the name of the flex cluster whose snapshots are restored",
			"cfg.yaml:4:18: policies[0].flexRestore.targetCluster: required: the cluster whose data the restore replaces",
			"cfg.yaml:4:18: policies[0].flexRestore.confirmOverwrite: required: set confirmOverwrite: true to acknowledge that the restore replaces all data in the target cluster",
			`cfg.yaml:4:29: policies[0].flexRestore.snapshot: must be one of latest, got "oldest"`}},
		{"flexRestore with targets", "policies:\n  - name: r\n    schedule: \"@daily\"\n    targets: [{projectID: 32b6e34b3d91647abb20e7b8}]\n    flexRestore: {projectID: 32b6e34b3d91647abb20e7b8, cluster: f, targetCluster: s, confirmOverwrite: true}\n", []string{
			"cfg.yaml:4:5: policies[0].targets: does not apply to flexRestore: the source is flexRestore.projectID and flexRestore.cluster"}},
		{"log level", "log: {level: verbose}\n" + base, []string{`cfg.yaml:1:14: log.level: must be one of debug, info, warn, error, got "verbose"`}},
		{"log format", "log: {format: text}\n" + base, []string{`cfg.yaml:1:15: log.format: must be one of json, console, got "text"`}},
		{"listen", "server: {listen: localhost}\n" + base, []string{"cfg.yaml:1:18: server.listen: must be host:port such as 127.0.0.1:9469 or :9469"}},
		{"listen port", "server: {listen: \"127.0.0.1:99999\"}\n" + base, []string{"cfg.yaml:1:18: server.listen: port must be a number from 0 to 65535"}},
		{"inline admin token", "server: {adminToken: hunter2}\n" + base, []string{"cfg.yaml:1:10: server.adminToken: inline secrets are not accepted: write the token to a file and set adminTokenFile"}},
		{"state path null", "state: {path: null}\n" + base, []string{"cfg.yaml:1:15: state.path: must be a string, got nothing (null) (quote it if you mean the text)"}},
		{"history runs", "state: {historyRuns: 0}\n" + base, []string{"cfg.yaml:1:22: state.historyRuns: must be at least 1"}},
		{"history age", "state: {historyAge: 0s}\n" + base, []string{"cfg.yaml:1:21: state.historyAge: must be a positive duration"}},
		{"baseURL", "atlas: {baseURL: \"ftp://x\"}\n" + base, []string{"cfg.yaml:1:18: atlas.baseURL: must be an http(s) URL such as https://cloud.mongodb.com"}},
		// validate passed these and run then failed building the client.
		{"baseURL with user and password", "atlas: {baseURL: \"https://alice:hunter2@cloud.mongodb.com\"}\n" + base, []string{"cfg.yaml:1:18: atlas.baseURL: must not contain user information (user:password@): credentials come from atlas.auth"}},
		{"baseURL with user", "atlas: {baseURL: \"https://alice@cloud.mongodb.com\"}\n" + base, []string{"cfg.yaml:1:18: atlas.baseURL: must not contain user information (user:password@): credentials come from atlas.auth"}},
		{"requests per minute", "atlas: {requestsPerMinute: 0}\n" + base, []string{"cfg.yaml:1:28: atlas.requestsPerMinute: must be at least 1"}},
		{"discovery interval", "atlas: {discoveryInterval: -5m}\n" + base, []string{"cfg.yaml:1:28: atlas.discoveryInterval: must be a positive duration"}},
		{"defaults unknown key", "defaults: {snapshot: {retentionInDays: 1}}\n" + base, []string{`cfg.yaml:1:12: defaults.snapshot: unknown key (allowed: schedule, timezone, jitter, missed, overlap, timeouts, targets)`}},
		{"defaults bad timezone", "defaults: {timezone: Mars/Olympus}\n" + base, []string{`cfg.yaml:1:22: defaults.timezone: unknown time zone "Mars/Olympus": use an IANA name such as Europe/Berlin or UTC`}},
		{"all errors at once", strings.Replace(strings.Replace(base, "name: p", "name: P", 1), "retentionInDays: 7", "retentionInDays: -1", 1) + "extra: 1\n", []string{
			"cfg.yaml:2:11: policies[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$",
			"cfg.yaml:5:33: policies[0].snapshot.retentionInDays: must be at least 1",
			`cfg.yaml:6:1: extra: unknown key (allowed: atlas, server, state, log, ha, defaults, policies, monitor, notify)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parseIssues(t, tc.text, saEnv)
			if !slices.Equal(got, tc.want) {
				t.Errorf("issues:\n got: %s\nwant: %s", joinLines(got), joinLines(tc.want))
			}
		})
	}
}
