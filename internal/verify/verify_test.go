package verify

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestExitCodeDecides(t *testing.T) {
	v := Runner{}
	ok := v.Run(t.Context(), Request{Command: []string{"/bin/sh", "-c", `echo "srv=$BACKUPD_DRILL_SRV"`}, Env: []string{"BACKUPD_DRILL_SRV=mongodb+srv://scratch.example.net"}})
	if !ok.OK() || ok.ExitCode != 0 || strings.TrimSpace(ok.Output) != "srv=mongodb+srv://scratch.example.net" {
		t.Errorf("passing command: %+v", ok)
	}
	bad := v.Run(t.Context(), Request{Command: []string{"/bin/sh", "-c", "echo missing collection orders >&2; exit 3"}})
	if bad.OK() || bad.ExitCode != 3 || bad.Err != nil || !strings.Contains(bad.Output, "missing collection orders") {
		t.Errorf("failing command: %+v", bad)
	}
	missing := v.Run(t.Context(), Request{Command: []string{"/nonexistent/check-restore"}})
	if missing.OK() || missing.Err == nil || !strings.Contains(missing.Err.Error(), "could not run") {
		t.Errorf("missing program: %+v", missing)
	}
	if r := v.Run(t.Context(), Request{}); r.OK() || r.Err == nil {
		t.Errorf("empty command: %+v", r)
	}
}

// The daemon's environment (its Atlas credentials included) is not passed
// on: only the allow-listed variables and the request's own.
func TestEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("MONGODB_ATLAS_CLIENT_SECRET", "s3cret-value")
	r := Runner{}.Run(t.Context(), Request{Command: []string{"/usr/bin/env"}, Env: []string{"BACKUPD_DRILL_CLUSTER=scratch"}})
	if !r.OK() || strings.Contains(r.Output, "s3cret-value") || !strings.Contains(r.Output, "BACKUPD_DRILL_CLUSTER=scratch") {
		t.Errorf("environment: %+v", r)
	}
	if os.Getenv("PATH") != "" && !strings.Contains(r.Output, "PATH=") {
		t.Errorf("PATH not inherited: %q", r.Output)
	}
}

// Only the tail of a long output is kept.
func TestOutputIsBounded(t *testing.T) {
	r := Runner{MaxOutput: 64}.Run(t.Context(), Request{Command: []string{"/bin/sh", "-c", "i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done"}})
	if !r.OK() || len(r.Output) > 64 || !r.Truncated || !strings.HasSuffix(r.Output, "line499\n") {
		t.Errorf("bounded output: %d bytes, truncated %v: %q", len(r.Output), r.Truncated, r.Output)
	}
}

// A command past its timeout is killed with everything it started.
func TestTimeoutKillsTheGroup(t *testing.T) {
	r := Runner{KillGrace: time.Second}.Run(t.Context(), Request{Command: []string{"/bin/sh", "-c", "sleep 600 & sleep 600; echo never"}, Timeout: 200 * time.Millisecond})
	if r.OK() || !r.TimedOut || r.Err == nil || !strings.Contains(r.Err.Error(), "timed out after 200ms") || strings.Contains(r.Output, "never") {
		t.Errorf("timed out command: %+v", r)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if r := (Runner{}).Run(ctx, Request{Command: []string{"/bin/true"}}); r.OK() || r.TimedOut {
		t.Errorf("cancelled: %+v", r)
	}
}
