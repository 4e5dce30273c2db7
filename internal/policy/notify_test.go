package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// notifyEnv holds the URL files the notify tests name (relative paths
// resolve against the config's directory, ".").
func notifyEnv(files map[string]string) Env {
	e := testEnv(map[string]string{EnvClientID: "mdb_sa_id_test", EnvClientSecret: "env-secret-value"}, fakeFS{files: files})
	return e
}

const slackURL = "https://hooks.slack.com/services/T000/B000/SECRETtoken"

func TestNotifySection(t *testing.T) {
	text := base + `notify:
  queueSize: 50
  attempts: 4
  timeout: 5s
  backoff: 10s
  maxBackoff: 5m
  webhooks:
    - name: chat
      urlFile: slack-url
      format: slack
      events: [failed, skipped]
      policies: [p]
    - name: ops
      urlFile: /etc/backupd/ops-url
  pings:
    - policy: p
      urlFile: hc-url
      fail: /fail
      start: ""
      send: [success, fail]
      method: GET
`
	cfg := mustParse(t, text, notifyEnv(map[string]string{
		"slack-url": slackURL + "\n", "/etc/backupd/ops-url": "http://127.0.0.1:8080/hook", "hc-url": "https://hc-ping.com/uuid",
	}))
	n := cfg.Notify
	if n == nil {
		t.Fatal("no notify section")
	}
	if n.QueueSize != 50 || n.Attempts != 4 || n.Timeout != 5*time.Second || n.Backoff != 10*time.Second || n.MaxBackoff != 5*time.Minute {
		t.Errorf("bounds %+v", n)
	}
	if len(n.Webhooks) != 2 || len(n.Pings) != 1 {
		t.Fatalf("webhooks %d pings %d", len(n.Webhooks), len(n.Pings))
	}
	chat, ops := n.Webhooks[0], n.Webhooks[1]
	if chat.Name != "chat" || chat.Format != FormatSlack || chat.URL.Reveal() != slackURL || chat.URLFile != "slack-url" ||
		!slices.Equal(chat.Events, []string{EventFailed, EventSkipped}) || !slices.Equal(chat.Policies, []string{"p"}) {
		t.Errorf("chat %+v", chat)
	}
	if !chat.Wants(EventFailed, "p") || chat.Wants(EventSucceeded, "p") || chat.Wants(EventFailed, "other") {
		t.Error("chat's filter")
	}
	// Defaults: json, failures only, every policy.
	if ops.Format != FormatJSON || !slices.Equal(ops.Events, []string{EventFailed}) || len(ops.Policies) != 0 || !ops.Wants(EventFailed, "any") {
		t.Errorf("ops defaults %+v", ops)
	}
	p := n.Pings[0]
	if path, ok := p.Path(PingFail); !ok || path != "/fail" {
		t.Errorf("fail path %q %v", path, ok)
	}
	if _, ok := p.Path(PingStart); ok {
		t.Error("start is not in send")
	}
	if path, ok := p.Path(PingSuccess); !ok || path != "" || p.Method != "GET" {
		t.Errorf("success %q %v %s", path, ok, p.Method)
	}
	// The URL is a Secret: printing the config never shows it.
	if s := fmt.Sprintf("%v %+v", n, cfg); strings.Contains(s, "SECRETtoken") {
		t.Errorf("config prints the URL: %s", s)
	}

	// Defaults of the section.
	cfg = mustParse(t, base+"notify:\n  pings: [{policy: p, urlFile: hc-url}]\n", notifyEnv(map[string]string{"hc-url": "https://hc-ping.com/uuid"}))
	n = cfg.Notify
	if n.QueueSize != DefaultNotifyQueueSize || n.Attempts != DefaultNotifyAttempts || n.Timeout != DefaultNotifyTimeout ||
		n.Backoff != DefaultNotifyBackoff || n.MaxBackoff != DefaultNotifyMaxBackoff {
		t.Errorf("defaults %+v", n)
	}
	p = n.Pings[0]
	for sig, want := range map[string]string{PingStart: "/start", PingSuccess: "", PingFail: "/fail"} {
		if got, ok := p.Path(sig); !ok || got != want {
			t.Errorf("default path of %s: %q %v", sig, got, ok)
		}
	}
	if p.Method != "POST" {
		t.Errorf("default method %s", p.Method)
	}
	if cfg := mustParse(t, base, saEnv); cfg.Notify != nil {
		t.Error("notify without a section")
	}
}

func TestNotifyErrorsAreLocatedAndNeverQuoteTheURL(t *testing.T) {
	files := map[string]string{
		"good":  "https://example.com/hook",
		"ftp":   "ftp://example.com/SECRETtoken",
		"junk":  "::not a url SECRETtoken",
		"frag":  "https://example.com/x#SECRETtoken",
		"plain": "http://example.com/SECRETtoken",
	}
	cases := []struct {
		name, notify string
		want         []string
	}{
		{"inline url", "  webhooks: [{name: a, url: \"https://x/SECRETtoken\"}]\n",
			[]string{"cfg.yaml:7:24: notify.webhooks[0].url: inline URLs are not accepted"}},
		{"no urlFile", "  webhooks:\n    - name: a\n", []string{"cfg.yaml:8:7: notify.webhooks[0].urlFile: required"}},
		{"missing file", "  webhooks: [{name: a, urlFile: nope}]\n", []string{`cfg.yaml:7:33: notify.webhooks[0].urlFile: cannot read secret file "nope": no such file`}},
		{"not http", "  webhooks: [{name: a, urlFile: ftp}]\n", []string{`cfg.yaml:7:33: notify.webhooks[0].urlFile: secret file "ftp" does not hold an http(s) URL`}},
		{"junk", "  webhooks: [{name: a, urlFile: junk}]\n", []string{`cfg.yaml:7:33: notify.webhooks[0].urlFile: secret file "junk" does not hold an http(s) URL`}},
		{"fragment", "  webhooks: [{name: a, urlFile: frag}]\n", []string{`must not have a #fragment`}},
		{"bad name", "  webhooks: [{name: A_B, urlFile: good}]\n", []string{"cfg.yaml:7:21: notify.webhooks[0].name: must match"}},
		{"duplicate name", "  webhooks: [{name: a, urlFile: good}, {name: a, urlFile: good}]\n", []string{`cfg.yaml:7:47: notify.webhooks[1].name: duplicate webhook name "a" (first used at line 7)`}},
		{"bad event", "  webhooks: [{name: a, urlFile: good, events: [failed, started]}]\n", []string{`cfg.yaml:7:56: notify.webhooks[0].events[1]: must be one of succeeded, failed, skipped, got "started"`}},
		{"empty events", "  webhooks: [{name: a, urlFile: good, events: []}]\n", []string{"notify.webhooks[0].events: must list at least one of"}},
		{"twice", "  webhooks: [{name: a, urlFile: good, events: [failed, failed]}]\n", []string{`notify.webhooks[0].events[1]: "failed" is listed twice`}},
		{"bad format", "  webhooks: [{name: a, urlFile: good, format: teams}]\n", []string{`notify.webhooks[0].format: must be one of json, slack, got "teams"`}},
		{"unknown policy", "  webhooks: [{name: a, urlFile: good, policies: [p, q]}]\n", []string{`cfg.yaml:7:53: notify.webhooks[0].policies[1]: no policy is named "q"`}},
		{"ping unknown policy", "  pings: [{policy: q, urlFile: good}]\n", []string{`cfg.yaml:7:20: notify.pings[0].policy: no policy is named "q"`}},
		{"ping twice", "  pings: [{policy: p, urlFile: good}, {policy: p, urlFile: good}]\n", []string{`notify.pings[1].policy: policy "p" already has a ping (line 7)`}},
		{"ping path", "  pings: [{policy: p, urlFile: good, fail: fail}]\n", []string{"notify.pings[0].fail: must be empty or a path starting with /"}},
		{"ping method", "  pings: [{policy: p, urlFile: good, method: PUT}]\n", []string{`notify.pings[0].method: must be one of POST, GET, got "PUT"`}},
		{"ping send", "  pings: [{policy: p, urlFile: good, send: [ok]}]\n", []string{`notify.pings[0].send[0]: must be one of start, success, fail, got "ok"`}},
		{"bounds", "  queueSize: 0\n  attempts: 1000\n  timeout: 0s\n", []string{
			"cfg.yaml:7:14: notify.queueSize: must be from 1 to 100000", "cfg.yaml:8:13: notify.attempts: must be from 1 to 100", "cfg.yaml:9:12: notify.timeout: must be a positive duration"}},
		{"backoff order", "  backoff: 1h\n  maxBackoff: 1m\n", []string{"cfg.yaml:8:15: notify.maxBackoff: must be at least backoff (1h)"}},
		{"unknown key", "  webhook: []\n", []string{`cfg.yaml:7:3: notify.webhook: unknown key (did you mean "webhooks"?)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, issues := parseIssues(t, base+"notify:\n"+c.notify, notifyEnv(files))
			all := strings.Join(issues, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("issues lack %q:\n%s", w, all)
				}
			}
			if strings.Contains(all, "SECRETtoken") || len(issues) == 0 {
				t.Errorf("issues (%d) quote the URL or are missing:\n%s", len(issues), all)
			}
		})
	}
	// Plain http to a non-local host is allowed, with a warning that does not quote it.
	cfg := mustParse(t, base+"notify:\n  webhooks: [{name: a, urlFile: plain}]\n", notifyEnv(files))
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].String(), "plain http") || strings.Contains(cfg.Warnings[0].String(), "SECRETtoken") {
		t.Errorf("warnings %v", cfg.Warnings)
	}
}
