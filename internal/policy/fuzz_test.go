package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// exampleEnv provides the secret files config.example.yaml names, where
// systemd's LoadCredential= puts them for backupd.service.
func exampleEnv() Env {
	return testEnv(map[string]string{EnvCredentialDir: "/run/credentials/backupd.service"}, fakeFS{files: map[string]string{
		"/run/credentials/backupd.service/client-secret": "example-client-secret\n",
		"/run/credentials/backupd.service/admin-token":   "example-admin-token\n",
		"/run/credentials/backupd.service/slack-url":     "https://hooks.slack.com/services/T0/B0/example\n",
	}})
}

// FuzzLoad feeds arbitrary bytes to the parser: it must never panic or
// hang, every rejection must be located, and every accepted config must be
// printable and plannable.
//
// The example config is seeded without its comments. Whole, it is 9 KB,
// mostly comments, and every input the fuzzer derives from it is as long:
// the fuzzer minimises each input that finds new coverage, which costs a
// number of runs quadratic in its length, up to -fuzzminimizetime (60 s)
// per input, during which no new input is run. Seeded whole, the fuzzer
// spent nearly all its time minimising (0 execs/s after the baseline).
// Stripped, it is 2 KB of the same keys and values (checked below).
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	stripped := stripComments(example)
	whole, err1 := Parse(example, "config.example.yaml", exampleEnv())
	bare, err2 := Parse(stripped, "config.example.yaml", exampleEnv())
	if err1 != nil || err2 != nil || whole.String() != bare.String() {
		f.Fatalf("config.example.yaml without comments is another config:\nwhole: %v\nbare: %v", err1, err2)
	}
	f.Add(stripped)
	for _, s := range []string{
		base,
		"",
		"policies: &p [*p]\n",
		"a: 1\n---\nb: 2\n",
		"policies:\n  - name: x\n    schedule: \"TZ=UTC\"\n",
		"policies:\n  - {name: x, schedule: \"@every 1d\", flexRestore: {}}\n",
		"policies:\n  - {name: x, schedule: \"@every 1d\", restoreDrill: {}}\n",
		drillCfg,
		drill("prod-x") + "      snapshot: exported\n      verify: {command: [check, \"--uri\"], timeout: 2m}\n",
		drill("prod-scratch") + "      verify: {command: []}\n",
		"defaults: {jitter: 99999999d}\n" + base,
		base + "notify:\n  queueSize: 3\n  webhooks: [{name: chat, urlFile: slack-url, format: slack, events: [failed, skipped], policies: [p]}]\n  pings: [{policy: p, urlFile: slack-url, start: \"\", send: [start]}]\n",
		base + "notify: {webhooks: [{name: x, url: y}], pings: [{policy: q}], backoff: 1h, maxBackoff: 1s}\n",
	} {
		f.Add([]byte(s))
	}
	env := exampleEnv()
	env.Getenv = saEnv.Getenv
	target := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "c"}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", env)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("rejection without issues: %v", err)
			}
			for _, is := range errs.List {
				if is.File != "fuzz.yaml" || is.Line < 1 || is.Message == "" {
					t.Fatalf("unlocated issue %+v", is)
				}
			}
			return
		}
		_ = cfg.String()
		for _, p := range cfg.Policies {
			if p.Cron == nil || p.Location == nil {
				t.Fatalf("accepted policy %q without schedule or zone", p.Name)
			}
			_ = p.Interval()
			_ = NextFires(p, target, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), 3)
		}
	})
}

// stripComments drops YAML comments and blank lines: a '#' at the start
// of a line or after a blank, outside quotes, starts a comment.
func stripComments(data []byte) []byte {
	var out []byte
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		var quote rune
		for i, r := range line {
			switch {
			case quote != 0:
				if r == quote {
					quote = 0
				}
			case r == '"' || r == '\'':
				quote = r
			case r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
				line = line[:i]
			}
			if len(line) <= i {
				break
			}
		}
		if line = strings.TrimRight(line, " \t"); line != "" {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

func TestExampleConfig(t *testing.T) {
	cfg, err := Load("../../config.example.yaml", withRealConfig(exampleEnv()))
	if err != nil {
		t.Fatalf("config.example.yaml is invalid:\n%v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Fatalf("config.example.yaml has warnings: %v", cfg.Warnings)
	}
	// systemd's credentials directory is named after the unit, backupd.service.
	if got, want := cfg.Server.AdminTokenFile, "/run/credentials/backupd.service/admin-token"; got != want {
		t.Errorf("adminTokenFile resolves to %q, want %q", got, want)
	}
	var actions []run.Action
	for _, p := range cfg.Policies {
		actions = append(actions, p.Action())
	}
	if len(actions) != 4 || actions[0] != run.ActionSnapshot || actions[1] != run.ActionExport || actions[2] != run.ActionFlexRestore || actions[3] != run.ActionRestoreDrill {
		t.Fatalf("example should show all four actions, got %v", actions)
	}
}

// withRealConfig reads the config file itself from disk and everything
// else from env.
func withRealConfig(env Env) Env {
	inner := env.ReadFile
	env.ReadFile = func(p string, limit int64) ([]byte, error) {
		if p == "../../config.example.yaml" {
			return ReadRegularFile(p, limit)
		}
		return inner(p, limit)
	}
	return env
}

// documentedKeys is every key of the schema. The example and the reference
// must both mention each one, so neither drifts from the loader.
var documentedKeys = []string{
	"atlas", "baseURL", "auth", "serviceAccount", "clientID", "clientSecretFile", "apiKey", "publicKey", "privateKeyFile",
	"requestsPerMinute", "timeout", "discoveryInterval",
	"server", "listen", "adminTokenFile",
	"state", "path", "historyRuns", "historyAge",
	"log", "level", "format",
	"defaults", "schedule", "timezone", "jitter", "missed", "overlap", "timeouts", "wait", "snapshot", "export", "restore", "targets",
	"policies", "name", "projectID", "clusters", "exclude", "retentionInDays", "description",
	"bucketID", "source", "customData",
	"flexRestore", "cluster", "targetProjectID", "targetCluster", "confirmOverwrite",
	"restoreDrill", "verify", "command",
	"notify", "webhooks", "pings", "queueSize", "attempts", "backoff", "maxBackoff", "urlFile", "events", "policy",
	"start", "success", "fail", "send", "method",
}

func TestEveryKeyIsDocumented(t *testing.T) {
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range documentedKeys {
		if !strings.Contains(string(example), k+":") {
			t.Errorf("config.example.yaml does not show %q", k)
		}
		if !strings.Contains(string(doc), "`"+k) && !strings.Contains(string(doc), "."+k+"`") {
			t.Errorf("docs/configuration.md does not document %q", k)
		}
	}
}
