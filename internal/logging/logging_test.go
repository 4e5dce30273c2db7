package logging

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/backupd/backupd/internal/run"
)

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// fixedClock pins log timestamps so assertions do not depend on wall time.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func newJSON(t *testing.T, level string) (*zap.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	l, err := New(level, "json", zapcore.AddSync(&buf), zap.WithClock(fixedClock{t0}))
	if err != nil {
		t.Fatal(err)
	}
	return l, &buf
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func sampleRun() run.Run {
	return run.Run{
		ID: run.NewID("nightly-prod", "32b6e34b3d91647abb20e7b8", "prod-a", t0, false), Policy: "nightly-prod",
		Action: run.ActionSnapshot, Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-a"},
		Slot: t0, ScheduledAt: t0, Stage: run.StageSnapshotting, SnapshotID: "6650c0f9a2b3c4d5e6f70819",
	}
}

func TestNewRejectsBadLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range []struct{ level, format, want string }{
		{"verbose", "json", `log.level "verbose"`},
		{"INFO", "json", `log.level "INFO"`},
		{"info", "logfmt", `log.format "logfmt"`},
	} {
		l, err := New(tc.level, tc.format, zapcore.AddSync(&buf))
		if err == nil || l != nil {
			t.Errorf("New(%q, %q) = %v, %v; want an error", tc.level, tc.format, l, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %q) error %q does not name %s", tc.level, tc.format, err, tc.want)
		}
	}
}

func TestNewJSONLevelAndTime(t *testing.T) {
	l, buf := newJSON(t, "info")
	l.Debug("hidden")
	l.Info("shown", zap.Int("n", 1))
	got := lines(t, buf)
	if len(got) != 1 {
		t.Fatalf("got %d lines, want 1 (debug filtered at info): %s", len(got), buf)
	}
	if got[0]["msg"] != "shown" || got[0]["level"] != "info" || got[0]["n"] != float64(1) {
		t.Errorf("line = %v", got[0])
	}
	if got[0]["time"] != "2026-03-01T02:00:00.000Z" {
		t.Errorf("time = %v, want ISO8601", got[0]["time"])
	}

	// Defaults: info, json.
	var b2 bytes.Buffer
	l2, err := New("", "", zapcore.AddSync(&b2))
	if err != nil {
		t.Fatal(err)
	}
	l2.Debug("hidden")
	l2.Info("shown")
	if n := len(lines(t, &b2)); n != 1 {
		t.Errorf("default logger wrote %d lines, want 1 JSON line", n)
	}
}

func TestNewConsole(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("debug", "console", zapcore.AddSync(&buf), zap.WithClock(fixedClock{t0}))
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hello", zap.String("policy", "nightly"))
	out := buf.String()
	for _, want := range []string{"2026-03-01T02:00:00.000Z", "DEBUG", "hello", `"policy": "nightly"`} {
		if !strings.Contains(out, want) {
			t.Errorf("console output %q lacks %q", out, want)
		}
	}
	if json.Valid([]byte(strings.TrimSpace(out))) {
		t.Error("console output is JSON")
	}
}

func TestRunObserverTransition(t *testing.T) {
	l, buf := newJSON(t, "debug")
	r := sampleRun()
	r.Stage = run.StageExporting
	r.ExportBucketID, r.ExportJobID = "32b6e34b3d91647abb20e7b9", "6650c0f9a2b3c4d5e6f7081a"
	RunObserver(l).Observe(run.Event{Run: r, From: run.StageSnapshotting, At: t0, StageDuration: 90 * time.Second})

	got := lines(t, buf)
	if len(got) != 1 {
		t.Fatalf("got %d lines, want 1", len(got))
	}
	want := map[string]any{
		"msg": "run stage changed", "level": "info", "policy": "nightly-prod", "action": "snapshot",
		"project": "32b6e34b3d91647abb20e7b8", "cluster": "prod-a", "run": string(r.ID),
		"from": "snapshotting", "stage": "exporting", "stageDuration": "1m30s",
		"snapshotID": "6650c0f9a2b3c4d5e6f70819", "exportBucketID": "32b6e34b3d91647abb20e7b9", "exportJobID": "6650c0f9a2b3c4d5e6f7081a",
	}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v", k, got[0][k], v)
		}
	}
	for _, absent := range []string{"reason", "detail", "restoreJobID", "flexSnapshotID", "manual", "catchUp", "note"} {
		if _, ok := got[0][absent]; ok {
			t.Errorf("unset field %s logged: %v", absent, got[0][absent])
		}
	}
}

func TestRunObserverLevels(t *testing.T) {
	l, buf := newJSON(t, "debug")
	o := RunObserver(l)
	r := sampleRun()
	o.Observe(run.Event{Run: r, From: run.StageSnapshotting, At: t0, Note: "snapshot inProgress"})
	r.Stage, r.Reason, r.Detail = run.StageFailed, run.ReasonTimeout, "snapshot still inProgress after 4h"
	o.Observe(run.Event{Run: r, From: run.StageSnapshotting, At: t0, StageDuration: 4 * time.Hour})
	r.Stage, r.Reason, r.Detail = run.StageSkipped, run.ReasonOverlap, ""
	o.Observe(run.Event{Run: r, From: run.StagePending, At: t0})
	r = sampleRun()
	r.Stage = run.StagePending
	o.Observe(run.Event{Run: r, At: t0})

	got := lines(t, buf)
	if len(got) != 4 {
		t.Fatalf("got %d lines, want 4: %s", len(got), buf)
	}
	checks := []struct{ level, msg string }{
		{"debug", "run progress"}, {"warn", "run stage changed"}, {"info", "run stage changed"}, {"info", "run stage changed"},
	}
	for i, c := range checks {
		if got[i]["level"] != c.level || got[i]["msg"] != c.msg {
			t.Errorf("line %d: level %v msg %v, want %s %q", i, got[i]["level"], got[i]["msg"], c.level, c.msg)
		}
	}
	if got[0]["note"] != "snapshot inProgress" {
		t.Errorf("progress note = %v", got[0]["note"])
	}
	if _, ok := got[0]["from"]; ok {
		t.Error("a progress line carries from, but it is not a stage change")
	}
	if got[1]["reason"] != "timeout" || got[1]["detail"] != "snapshot still inProgress after 4h" || got[1]["stageDuration"] != "4h0m0s" {
		t.Errorf("failed line = %v", got[1])
	}
	if _, ok := got[3]["from"]; ok {
		t.Error("a first event (no From) logged from")
	}

	// At info level, progress is not logged.
	l2, buf2 := newJSON(t, "info")
	RunObserver(l2).Observe(run.Event{Run: sampleRun(), Note: "export 12/40"})
	if buf2.Len() != 0 {
		t.Errorf("progress logged at info level: %s", buf2)
	}
}

// fillStrings sets every string, bool and int field of a struct to a
// non-zero value, so the test sees what RunFields would do with any field
// run.Run has or gains later.
func fillStrings(v reflect.Value, mark string) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(mark + v.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int64, reflect.Int:
			f.SetInt(42)
		case reflect.Struct:
			if f.Type() != reflect.TypeFor[time.Time]() {
				fillStrings(f, mark)
			}
		}
	}
}

// TestOnlyRunFieldsAreLogged pins the exact set of keys a run line can have.
// A field added to run.Run (for instance anything credential-like) cannot
// reach the logs without a deliberate change here.
func TestOnlyRunFieldsAreLogged(t *testing.T) {
	var r run.Run
	fillStrings(reflect.ValueOf(&r).Elem(), "v-")
	l, buf := newJSON(t, "debug")
	RunObserver(l).Observe(run.Event{Run: r, From: run.StagePending, At: t0, StageDuration: time.Second})
	RunObserver(l).Observe(run.Event{Run: r, From: run.StagePending, At: t0, Note: "progress"})

	allowed := []string{"action", "caller", "catchUp", "cluster", "detail", "exportBucketID", "exportJobID", "flexSnapshotID",
		"from", "level", "manual", "msg", "policy", "project", "reason", "restoreJobID", "run", "snapshotID", "stage", "stageDuration", "time"}
	for i, line := range lines(t, buf) {
		var keys []string
		for k := range line {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		want := allowed
		if i == 1 {
			want = []string{"action", "caller", "catchUp", "cluster", "detail", "exportBucketID", "exportJobID", "flexSnapshotID",
				"level", "manual", "msg", "note", "policy", "project", "reason", "restoreJobID", "run", "snapshotID", "stage", "time"}
		}
		if strings.Join(keys, ",") != strings.Join(want, ",") {
			t.Errorf("line %d keys\n got %v\nwant %v", i, keys, want)
		}
	}
	// Fields outside the list never appear, whatever their value.
	for _, notLogged := range []string{"v-SnapshotKind", "v-SnapshotStatus", "v-ExportState", "v-ExportProgress", "v-RestoreStatus"} {
		if strings.Contains(buf.String(), notLogged) {
			t.Errorf("output contains %s", notLogged)
		}
	}
}

// secretConfig stands in for the policy package's config: a struct with a
// credential that redacts itself. RunFields takes only a run.Run, so the
// config (or anything else) cannot be passed to it; the engine logging a
// run next to a config-bearing error must still only show run fields.
type secretConfig struct {
	ClientID     string
	ClientSecret string
}

func (c secretConfig) String() string { return "serviceAccount(" + c.ClientID + ", secret redacted)" }

func TestSecretNeverReachesRunLines(t *testing.T) {
	const secret = "mdb_sa_sk_TOPSECRET0123456789"
	cfg := secretConfig{ClientID: "mdb_sa_id_123", ClientSecret: secret}
	l, buf := newJSON(t, "debug")
	r := sampleRun()
	r.Stage, r.Reason, r.Detail = run.StageFailed, run.ReasonAtlasError, "Atlas refused the request: 401 UNAUTHORIZED"
	RunObserver(l).Observe(run.Event{Run: r, From: run.StageSnapshotting, At: t0})
	l.Warn("auth failed", append(RunFields(r), zap.Stringer("auth", cfg))...)
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("secret reached the log: %s", buf)
	}
	if !strings.Contains(buf.String(), "secret redacted") {
		t.Errorf("expected the redacted form in %s", buf)
	}
}
