package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHAAbsentMeansSingleReplica(t *testing.T) {
	if cfg := mustParse(t, base, saEnv); cfg.HA != nil {
		t.Fatalf("ha without an ha: section: %+v", cfg.HA)
	}
}

func TestHADefaults(t *testing.T) {
	cfg := mustParse(t, "ha:\n  lease: {namespace: apps, name: backupd-leader}\n"+base, saEnv)
	want := HA{Namespace: "apps", LeaseName: "backupd-leader", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Pos: Position{File: "cfg.yaml", Line: 1, Column: 1}}
	if cfg.HA == nil || *cfg.HA != want {
		t.Fatalf("ha = %+v, want %+v", cfg.HA, want)
	}
}

func TestHAAllKeys(t *testing.T) {
	text := `ha:
  lease: {namespace: apps, name: backupd.leader}
  identity: replica-a
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 4s
  kubeconfig: kube/config
` + base
	cfg, err := Parse([]byte(text), "/etc/backupd/config.yaml", saEnv)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.HA
	if h.Identity != "replica-a" || h.LeaseDuration != 30*time.Second || h.RenewDeadline != 20*time.Second || h.RetryPeriod != 4*time.Second {
		t.Errorf("ha = %+v", h)
	}
	if h.Kubeconfig != "/etc/backupd/kube/config" {
		t.Errorf("relative kubeconfig resolved to %q, want it next to the config file", h.Kubeconfig)
	}
}

func TestHAErrors(t *testing.T) {
	cases := []struct {
		name, ha string
		want     []string
	}{
		{"lease missing", "ha: {identity: a}\n",
			[]string{"cfg.yaml:1:1: ha.lease: required: name the Lease with lease.namespace and lease.name"}},
		{"bad names", "ha:\n  lease: {namespace: Apps, name: -x}\n", []string{
			`cfg.yaml:2:22: ha.lease.namespace: "Apps" is not a valid name: must be a DNS-1123 label such as backupd (lowercase letters, digits and '-'), at most 63 characters`,
			`cfg.yaml:2:34: ha.lease.name: "-x" is not a valid name: must be a DNS-1123 subdomain such as backupd-leader (lowercase letters, digits, '-' and '.'), at most 253 characters`,
		}},
		{"name missing", "ha:\n  lease: {namespace: apps}\n",
			[]string{"cfg.yaml:2:10: ha.lease.name: required: a DNS-1123 subdomain such as backupd-leader (lowercase letters, digits, '-' and '.')"}},
		{"unknown key", "ha:\n  lease: {namespace: apps, name: l}\n  leaseDuraton: 10s\n",
			[]string{`cfg.yaml:3:3: ha.leaseDuraton: unknown key (did you mean "leaseDuration"?)`}},
		{"fractional lease", "ha:\n  lease: {namespace: apps, name: l}\n  leaseDuration: 15500ms\n",
			[]string{"cfg.yaml:3:18: ha.leaseDuration: must be a whole number of seconds (the Lease stores seconds)"}},
		{"renew not below lease", "ha:\n  lease: {namespace: apps, name: l}\n  renewDeadline: 15s\n",
			[]string{"cfg.yaml:3:18: ha.renewDeadline: must be shorter than leaseDuration (15s): the leader must give up before the others take over"}},
		{"renew default not below lease", "ha:\n  lease: {namespace: apps, name: l}\n  leaseDuration: 5s\n",
			[]string{"cfg.yaml:1:1: ha.renewDeadline: must be shorter than leaseDuration (5s): the leader must give up before the others take over"}},
		{"retry too long", "ha:\n  lease: {namespace: apps, name: l}\n  retryPeriod: 9s\n",
			[]string{"cfg.yaml:3:16: ha.retryPeriod: must be shorter than renewDeadline (10s) divided by 1.2 (client-go's retry jitter), so the leader retries at least once before giving up"}},
		{"empty identity and kubeconfig", "ha:\n  lease: {namespace: apps, name: l}\n  identity: ' '\n  kubeconfig: ''\n", []string{
			"cfg.yaml:3:13: ha.identity: must not be empty (leave it out to use POD_NAME, else the hostname)",
			"cfg.yaml:4:15: ha.kubeconfig: must name a kubeconfig file (leave it out for in-cluster credentials)",
		}},
		{"negative duration", "ha:\n  lease: {namespace: apps, name: l}\n  retryPeriod: -2s\n",
			nil}, // message owned by the duration decoder; only its location is checked below
	}
	for _, c := range cases {
		_, issues := parseIssues(t, c.ha+base, saEnv)
		if len(issues) == 0 {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if c.want == nil {
			if want := "cfg.yaml:3:16: ha.retryPeriod: "; len(issues) != 1 || issues[0][:len(want)] != want {
				t.Errorf("%s: %q, want one issue at %s", c.name, issues, want)
			}
			continue
		}
		if !slices.Equal(issues, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, issues, c.want)
		}
	}
}

// The defaults leave a fenced POST 3.5 s even at the renew deadline; timings
// that leave less than a second are valid but warned about.
func TestHAFenceWindowWarning(t *testing.T) {
	if cfg := mustParse(t, "ha:\n  lease: {namespace: apps, name: l}\n"+base, saEnv); len(cfg.Warnings) != 0 {
		t.Fatalf("defaults warn: %v", cfg.Warnings)
	}
	cfg := mustParse(t, "ha:\n  lease: {namespace: apps, name: l}\n  leaseDuration: 4s\n  renewDeadline: 3s\n  retryPeriod: 1s\n"+base, saEnv)
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Path != "ha.renewDeadline" || cfg.Warnings[0].Line != 4 ||
		!strings.Contains(cfg.Warnings[0].Message, "may get only 600ms before another replica could take over") {
		t.Fatalf("warnings = %v", cfg.Warnings)
	}
}
