package cli

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// runDemoVirtual runs the demo for its default 45 simulated minutes (45 s
// at -speed 60) in a testing/synctest bubble: the bubble's clock is the
// demo's, nothing sleeps in real time, and the run is the same every time
// (the bubble starts at 2000-01-01 00:00 UTC).
func runDemoVirtual(t *testing.T) string {
	t.Helper()
	var out, errOut bytes.Buffer
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(60*float64(demoDuration)))
		defer cancel()
		code := runDemo(ctx, demoOptions{Clock: clock.Real(), Speed: 60, NoListen: true, StopText: "ends by itself after 45s, or Ctrl-C",
			Stdout: &out, Stderr: &errOut, Env: OSEnv()})
		if code != 0 {
			t.Fatalf("demo exit %d; stderr:\n%s", code, errOut.String())
		}
	})
	return out.String()
}

// TestDemoShowsTheWholeChain runs `backupd demo` in virtual time and checks
// a newcomer sees every kind of run finish, the injected export failure
// handled, and the demo end by itself with a summary whose counts are the
// runs it printed.
func TestDemoShowsTheWholeChain(t *testing.T) {
	text := runDemoVirtual(t)
	for _, want := range []string{
		"ends by itself after 45s",
		"fault injected: Atlas fails the first export job",
		"prod-archive   not acted on: not_supported (cluster is paused)",
		"prod-archive   slot fired → skipped{not_supported}", // a paused cluster stays a target
		"quarter-hourly-prod      prod-main      ✔ succeeded: snapshot",
		"quarter-hourly-prod      prod-shards    ✔ succeeded: snapshot",
		"export-native-analytics  analytics      ✔ succeeded: snapshot 65f1a0000000000000000002 exported",
		"refresh-staging          flex-prod      ✔ succeeded: flex snapshot ",
		"old) restored into staging in 2m",
		"drill-prod-main          prod-main      restored; drill target is UPDATING",
		"drill-prod-main          prod-main      ✔ succeeded: snapshot ",
		// The drill and prod-main's snapshot slot fire at the same 00:30:
		// whichever takes the cluster's lock first decides whether the
		// drill restores the 00:15 snapshot (15m0s old) or, after that
		// chain, the 00:30 one (9m0s old). Both are right.
		"m0s old) restored into drill-scratch in 4m0s by job ",
		", verified at the Atlas level only",
		"✘ failed{export_failed}: Atlas reports export ",
		"InProgress",
		"backupd demo: done after ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}

	// The summary table: one row per result, then what is in flight.
	head := strings.Index(text, "  RESULT  ")
	if head < 0 {
		t.Fatalf("no summary table:\n%s", text)
	}
	events, summary := text[:head], text[head:]
	rows := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^  (\S+(?: \S+)*?)\s{2,}(\d+)$`).FindAllStringSubmatch(summary, -1) {
		n, _ := strconv.Atoi(m[2])
		rows[m[1]] = n
	}
	printed := map[string]int{
		"succeeded":              strings.Count(events, "✔ succeeded"),
		"failed{export_failed}":  strings.Count(events, "✘ failed{export_failed}"),
		"skipped{not_supported}": strings.Count(events, "→ skipped{not_supported}"),
	}
	for k, n := range printed {
		if rows[k] != n {
			t.Errorf("summary says %d %s, the demo printed %d", rows[k], k, n)
		}
	}
	if rows["failed{export_failed}"] != 1 {
		t.Errorf("summary counts %d failed{export_failed}, want the one injected", rows["failed{export_failed}"])
	}
	if _, ok := rows["still in flight"]; !ok {
		t.Error("summary does not say what is still in flight")
	}
	total := 0
	for k, n := range rows {
		if k != "still in flight" {
			total += n
		}
	}
	if want := "; " + strconv.Itoa(total) + " runs ended"; !strings.Contains(text, want) {
		t.Errorf("summary headline lacks %q", want)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
}

// TestDemoShowsAClusterGoingStale: within the demo's default 45 simulated
// minutes the monitor reads every watched cluster, prod-main's stalled
// native schedule goes stale 20 minutes in (its last slot was 50 minutes
// before the start, the margin 10 minutes) with the alert condition
// printed, the alert fires 5 minutes later, and the demo ends with the
// monitor's view, prod-main overdue and sandbox's backup disabled.
func TestDemoShowsAClusterGoingStale(t *testing.T) {
	text := runDemoVirtual(t)
	defer func() {
		if t.Failed() {
			t.Logf("demo output:\n%s", text)
		}
	}()
	at := func(pattern string) time.Duration {
		t.Helper()
		m := regexp.MustCompile(`(?m)^(\d\d):(\d\d):(\d\d)  monitor\s+` + pattern).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no monitor line matching %q", pattern)
			return -1
		}
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		sec, _ := strconv.Atoi(m[3])
		return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second
	}
	for _, c := range []string{"prod-shards", "prod-main", "flex-prod"} {
		if d := at(c + `\s+read: newest `); d < 0 || d > 6*time.Minute {
			t.Errorf("%s first read at +%s, want within the 5m interval (and the first check after it)", c, d)
		}
	}
	at(`sandbox\s+✘ read: backup is disabled; condition of BackupdNativeBackupDisabled holds`)
	// The checks run once a simulated minute: each line is at most a
	// minute after its moment.
	stale := at(`prod-main\s+✘ stale: no hourly snapshot since the slot its schedule promised \(due 00:20:00, margin included\); condition of BackupdNativeSnapshotOverdue holds: time\(\) - backupd_native_snapshot_due_timestamp_seconds > 0`)
	if stale < demoStaleAfter || stale > demoStaleAfter+time.Minute {
		t.Errorf("prod-main stale at +%s, want +%s (a minute's check later at most)", stale, demoStaleAfter)
	}
	firing := at(`prod-main\s+✘ alert BackupdNativeSnapshotOverdue firing: overdue for 5m0s`)
	if want := demoStaleAfter + overdueFor; firing < want || firing > want+time.Minute {
		t.Errorf("alert firing at +%s, want +%s", firing, want)
	}
	// Only the monitor's lines: the injected export failure ends a run
	// on prod-shards or prod-main, whichever fires first.
	if regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  monitor\s+prod-shards\s+✘`).MatchString(text) {
		t.Error("prod-shards, whose schedule runs, was reported as a problem")
	}

	view := text[strings.Index(text, "\nMONITOR at "):]
	if !strings.HasPrefix(view, "\nMONITOR at 00:4") || !strings.Contains(view, "(Atlas native backups, read every 5m0s)") {
		t.Fatalf("no monitor view at the end:\n%s", view)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(view, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "32b6e34b3d91647abb20e7b8/") {
			rows[strings.TrimPrefix(f[0], "32b6e34b3d91647abb20e7b8/")] = l
		}
	}
	for c, want := range map[string]string{
		"prod-main":   "OVERDUE hourly",
		"sandbox":     "backup is disabled",
		"prod-shards": "hourly ",
		"flex-prod":   "flex ",
	} {
		if !strings.Contains(rows[c], want) {
			t.Errorf("monitor view row of %s = %q, want %q in it", c, rows[c], want)
		}
	}
	if strings.Contains(rows["prod-shards"], "OVERDUE") {
		t.Errorf("prod-shards overdue in the final view: %q", rows["prod-shards"])
	}
}

// TestDemoEndsByItselfByDefault: without -duration the demo still ends,
// within the minute the README promises.
func TestDemoEndsByItselfByDefault(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Demo(context.Background(), []string{"-h"}, &out, &errOut, OSEnv()); code != 0 {
		t.Fatalf("demo -h exit %d", code)
	}
	if !strings.Contains(errOut.String(), "0 runs until interrupted (default 45s)") {
		t.Fatalf("demo's -duration has no default under a minute:\n%s", errOut.String())
	}
	if code := Demo(context.Background(), []string{"-duration", "-1s"}, &out, &errOut, OSEnv()); code != exitUsage {
		t.Fatalf("negative -duration: exit %d", code)
	}
}
