package cli

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemoShowsTheWholeChain runs `backupd demo` with a very fast clock and
// checks a newcomer sees every kind of run finish, the injected export
// failure handled, and the demo end by itself with a summary whose counts
// are the runs it printed.
func TestDemoShowsTheWholeChain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a few seconds")
	}
	var out, errOut bytes.Buffer
	code := Demo(context.Background(), []string{"-speed", "3000", "-duration", "4s"}, &out, &errOut, OSEnv())
	if code != 0 {
		t.Fatalf("demo exit %d; stderr:\n%s", code, errOut.String())
	}
	text := out.String()
	for _, want := range []string{
		"metrics: http://127.0.0.1:",
		"ends by itself after 4s",
		"fault injected: Atlas fails the first export job",
		"prod-archive   not acted on: not_supported (cluster is paused)",
		"prod-archive   slot fired → skipped{not_supported}", // a paused cluster stays a target
		"quarter-hourly-prod      prod-main      ✔ succeeded: snapshot",
		"quarter-hourly-prod      prod-shards    ✔ succeeded: snapshot",
		"export-native-analytics  analytics      ✔ succeeded: snapshot 65f1a0000000000000000002 exported",
		"refresh-staging          flex-prod      ✔ succeeded: restore job",
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
