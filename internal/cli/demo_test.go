package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoShowsTheWholeChain runs `backupd demo` with a very fast clock and
// checks a newcomer sees every kind of run finish.
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
		"prod-archive   not acted on: not_supported (cluster is paused)",
		"prod-archive   slot fired → skipped{not_supported}", // a paused cluster stays a target
		"quarter-hourly-prod      prod-main      ✔ succeeded: snapshot",
		"quarter-hourly-prod      prod-shards    ✔ succeeded: snapshot",
		"export-native-analytics  analytics      ✔ succeeded: snapshot 65f1a0000000000000000002 exported",
		"refresh-staging          flex-prod      ✔ succeeded: restore job",
		"InProgress",
		"backupd demo: ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
}
