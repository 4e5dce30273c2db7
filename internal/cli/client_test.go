package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

func fakeDaemon(t *testing.T, token string) (*httptest.Server, *[]string) {
	t.Helper()
	var bodies []string
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	last := &run.Run{ID: "abc", Policy: "nightly", Stage: run.StageFailed, Reason: run.ReasonExportFailed, FinishedAt: now.Add(-time.Hour)}
	inflight := &run.Run{ID: "def", Stage: run.StageExporting, SnapshotID: "65f1a0000000000000000002", ExportJobID: "65f1a0000000000000000009", ExportProgress: "3/9"}
	st := run.Status{Version: "v1", StartedAt: now.Add(-2 * time.Hour), Now: now, Ready: true, Policies: []run.PolicyStatus{{
		Name: "nightly", Action: run.ActionSnapshot, Schedule: "0 2 * * *", Timezone: "UTC",
		Targets:    []run.TargetStatus{{Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod"}, NextRun: now.Add(23 * time.Hour), LastRun: last, InFlight: inflight}},
		Unresolved: []run.SkippedTarget{{Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "paused"}, Reason: "not_supported", Detail: "cluster is paused"}},
		ResolutionErrors: []run.ResolutionError{{ProjectID: "32b6e34b3d91647abb20e7c1", Error: "list clusters of project 32b6e34b3d91647abb20e7c1: no answer within 2m0s",
			Since: now.Add(-30 * time.Minute), KeptFrom: "resolution"}},
	}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/v1/status":
			_ = json.NewEncoder(w).Encode(st)
		case r.Method == "POST" && r.URL.Path == "/api/v1/policies/nightly/trigger":
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":"missing or wrong admin token"}`)
				return
			}
			b, _ := io.ReadAll(r.Body)
			bodies = append(bodies, string(b))
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(map[string]any{"runs": []run.Run{{ID: "xyz", Policy: "nightly", Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod"}, Stage: run.StagePending}}})
		case r.Method == "POST" && r.URL.Path == "/api/v1/policies/busy/trigger":
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(map[string]any{"runs": []run.Run{
				{ID: "r1", Policy: "busy", Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "a"}, Stage: run.StagePending},
				{ID: "r2", Policy: "busy", Target: run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "b"}, Stage: run.StageSkipped, Reason: run.ReasonOverlap, Detail: "a run is in flight"},
			}})
		case r.Method == "POST" && r.URL.Path == "/api/v1/policies/empty/trigger":
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"runs":[]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"unknown policy","field":"name"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func TestStatusTableAndJSON(t *testing.T) {
	srv, _ := fakeDaemon(t, "tok")
	var out, errOut bytes.Buffer
	if code := Status(context.Background(), []string{"-addr", srv.URL}, &out, &errOut, OSEnv()); code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"backupd v1, up since 2026-11-24T01:00:00Z, ready",
		"nightly", "32b6e34b3d91647abb20e7b8/prod", "1h0m0s ago", "failed{export_failed}", "2026-11-25 02:00:00Z",
		"exporting snapshot=65f1a0000000000000000002 export=65f1a0000000000000000009 progress=3/9",
		"skipped{not_supported}: cluster is paused",
		"32b6e34b3d91647abb20e7c1/*       -           unresolved for 30m0s, last known targets kept: list clusters of project 32b6e34b3d91647abb20e7c1: no answer within 2m0s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := Status(context.Background(), []string{"-addr", srv.URL, "-o", "json"}, &out, &errOut, OSEnv()); code != 0 {
		t.Fatalf("status -json exit %d", code)
	}
	var st run.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Policies[0].Targets[0].InFlight.ExportProgress != "3/9" {
		t.Fatalf("status -json = %v, %s", err, out.String())
	}
	if code := Status(context.Background(), []string{"-addr", "http://127.0.0.1:1"}, &out, &errOut, OSEnv()); code != 1 || !strings.Contains(errOut.String(), "is the daemon running?") {
		t.Fatalf("status against nothing: exit %d, %s", code, errOut.String())
	}
}

func TestTriggerUsesTheTokenAndTarget(t *testing.T) {
	srv, bodies := fakeDaemon(t, "s3cret-token")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Trigger(context.Background(), []string{"-addr", srv.URL, "-token-file", tokenFile, "-policy", "nightly", "-project", "32b6e34b3d91647abb20e7b8", "-cluster", "prod"}, &out, &errOut, OSEnv())
	if code != 0 || !strings.Contains(out.String(), "xyz nightly on 32b6e34b3d91647abb20e7b8/prod: pending") {
		t.Fatalf("trigger exit %d: %s %s", code, out.String(), errOut.String())
	}
	if len(*bodies) != 1 || !strings.Contains((*bodies)[0], `"cluster":"prod"`) {
		t.Fatalf("trigger body = %v", *bodies)
	}

	wrong := filepath.Join(t.TempDir(), "wrong")
	_ = os.WriteFile(wrong, []byte("nope"), 0o600)
	errOut.Reset()
	if code := Trigger(context.Background(), []string{"-addr", srv.URL, "-token-file", wrong, "-policy", "nightly"}, &out, &errOut, OSEnv()); code != 1 || !strings.Contains(errOut.String(), "401 missing or wrong admin token") {
		t.Fatalf("wrong token: exit %d, %s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "nope") {
		t.Fatal("the token leaked into the error output")
	}
	for _, args := range [][]string{{}, {"-policy", "nightly", "-project", "32b6e34b3d91647abb20e7b8"}} {
		if code := Trigger(context.Background(), args, &out, &errOut, OSEnv()); code != 2 {
			t.Fatalf("trigger %v: exit %d, want 2", args, code)
		}
	}
}

// TestTriggerSkippedExitsThree: a trigger whose run is skipped, or that
// starts nothing, does not exit 0, so a script notices nothing will run.
func TestTriggerSkippedExitsThree(t *testing.T) {
	srv, _ := fakeDaemon(t, "tok")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for pol, want := range map[string]string{"busy": "1 of 2 run(s) skipped", "empty": "no runs started"} {
		var out, errOut bytes.Buffer
		code := Trigger(context.Background(), []string{"-addr", srv.URL, "-token-file", tokenFile, "-policy", pol}, &out, &errOut, OSEnv())
		if code != exitSkipped || !strings.Contains(errOut.String(), want) {
			t.Errorf("trigger %s: exit %d, stderr %q; want exit 3 and %q", pol, code, errOut.String(), want)
		}
	}
}
