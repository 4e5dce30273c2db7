package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

const testProject = "32b6e34b3d91647abb20e7b8"

var cliT0 = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)

// scriptBackend is a daemon's API backend over a memory journal whose
// triggered runs move one stage along their policy's script each time
// they are looked at, so a test decides every step without a clock.
type scriptBackend struct {
	j       *journal.Memory
	mu      sync.Mutex
	status  run.Status
	scripts map[string][]run.Run // policy → the stages after pending
	steps   map[run.ID][]run.Run
}

func (b *scriptBackend) Status(context.Context) run.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

func (b *scriptBackend) Runs(_ context.Context, q httpapi.RunQuery) ([]run.Run, error) {
	return b.j.History(journal.Query{Policy: q.Policy, Limit: q.Limit, Before: q.After.CreatedAt, BeforeID: q.After.ID, Since: q.Since, Keep: q.Match})
}

func (b *scriptBackend) Run(_ context.Context, id run.ID) (run.Run, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok, err := b.j.Get(id)
	if !ok || err != nil {
		return r, ok, err
	}
	if steps := b.steps[id]; len(steps) > 0 {
		next := steps[0]
		r.Stage, r.Reason, r.Detail, r.SnapshotID, r.ExportJobID = next.Stage, next.Reason, next.Detail, next.SnapshotID, next.ExportJobID
		b.steps[id] = steps[1:]
		if err := b.j.Put(r); err != nil {
			return r, false, err
		}
	}
	return r, true, nil
}

func (b *scriptBackend) Trigger(_ context.Context, policy string, _ *run.Target) ([]run.Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	script, ok := b.scripts[policy]
	if !ok {
		return nil, httpapi.ErrUnknownPolicy
	}
	r := run.Run{ID: run.NewID(policy, testProject, "prod", cliT0, true), Policy: policy, Manual: true,
		Target: run.Target{ProjectID: testProject, Cluster: "prod"}, Stage: run.StagePending, CreatedAt: cliT0}
	if policy == "skip" {
		r.Stage, r.Reason, r.Detail = run.StageSkipped, run.ReasonOverlap, "a run is in flight"
	}
	if err := b.j.Put(r); err != nil {
		return nil, err
	}
	b.steps[r.ID] = script
	return []run.Run{r}, nil
}

// testDaemon serves the real API handlers over scriptBackend.
func testDaemon(t *testing.T) (*scriptBackend, string, string) {
	t.Helper()
	b := &scriptBackend{j: journal.NewMemory(), steps: map[run.ID][]run.Run{}, scripts: map[string][]run.Run{
		"good": {{Stage: run.StageWaiting}, {Stage: run.StageSnapshotting, SnapshotID: "65f1a0000000000000000002"},
			{Stage: run.StageExporting, SnapshotID: "65f1a0000000000000000002", ExportJobID: "65f1a0000000000000000009"},
			{Stage: run.StageSucceeded, SnapshotID: "65f1a0000000000000000002", ExportJobID: "65f1a0000000000000000009"}},
		"bad":   {{Stage: run.StageSnapshotting}, {Stage: run.StageFailed, Reason: run.ReasonSnapshotFailed, Detail: "Atlas: snapshot failed (disk full)"}},
		"skip":  nil,
		"stuck": nil,
	}}
	srv := httpapi.New(httpapi.Config{Listen: "127.0.0.1:0", AdminToken: func() string { return "tok" }, Backend: b, Clock: clock.NewFake(cliT0)})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return b, hs.URL, tokenFile
}

// drive runs verb with a fake clock, advancing it by step whenever the
// verb waits on it, until the verb returns (or stop says so).
func drive(t *testing.T, step time.Duration, verb func(env Env) int, onWait func(n int) bool) int {
	t.Helper()
	fake := clock.NewFake(cliT0)
	env := OSEnv()
	env.Clock, env.Now = fake, fake.Now
	done := make(chan int, 1)
	go func() { done <- verb(env) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for n := 0; ; n++ {
		waited := make(chan error, 1)
		go func() { waited <- fake.WaitForTimers(ctx, 1) }()
		select {
		case code := <-done:
			return code
		case err := <-waited:
			if err != nil {
				t.Fatal("the verb neither returned nor waited")
			}
			if onWait != nil && !onWait(n) {
				return <-done
			}
			fake.Advance(step)
		}
	}
}

// TestTriggerWaitExitCodes: -wait follows a run to its end, printing each
// stage as it changes, and exits 0 when it succeeded, 4 when it failed, 3
// when it was skipped and 5 when -timeout passed first.
func TestTriggerWaitExitCodes(t *testing.T) {
	for _, tc := range []struct {
		policy string
		extra  []string
		code   int
		out    []string
		err    string
	}{
		{"good", nil, exitOK, []string{": pending", ": waiting", ": snapshotting snapshot=65f1a0000000000000000002",
			": exporting snapshot=65f1a0000000000000000002 export=65f1a0000000000000000009", ": succeeded snapshot=65f1a0000000000000000002 export=65f1a0000000000000000009"}, ""},
		{"bad", nil, exitRunFailed, []string{": pending", ": snapshotting", ": failed{snapshot_failed} Atlas: snapshot failed (disk full)"}, "1 of 1 run(s) failed"},
		{"skip", nil, exitSkipped, []string{": skipped{overlap} a run is in flight"}, "1 of 1 run(s) skipped"},
		{"stuck", []string{"-timeout", "30s", "-interval", "10s"}, exitWaitTimeout, []string{": pending"}, "still in flight after 30s"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			_, addr, tokenFile := testDaemon(t)
			var out, errOut bytes.Buffer
			waits := 0
			code := drive(t, 10*time.Second, func(env Env) int {
				args := append([]string{"-addr", addr, "-token-file", tokenFile, "-policy", tc.policy, "-wait"}, tc.extra...)
				return Trigger(context.Background(), args, &out, &errOut, env)
			}, func(int) bool { waits++; return true })
			if code != tc.code || !strings.Contains(errOut.String(), tc.err) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.code, tc.err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != len(tc.out) {
				t.Fatalf("printed %d lines, want one per stage %q:\n%s", len(lines), tc.out, out.String())
			}
			for i, want := range tc.out {
				if !strings.HasSuffix(lines[i], want) {
					t.Errorf("line %d = %q, want it to end in %q", i, lines[i], want)
				}
			}
			if tc.policy == "stuck" && waits != 3 {
				t.Errorf("waited %d times for a 30s timeout at 10s intervals, want 3", waits)
			}
		})
	}
}

// TestStatusWatchRedraws: -watch draws a new frame after each -interval,
// showing what changed, and ends with exit 0 when interrupted.
func TestStatusWatchRedraws(t *testing.T) {
	b, addr, _ := testDaemon(t)
	b.status = run.Status{Version: "v1", Now: cliT0, Ready: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	code := drive(t, 2*time.Second, func(env Env) int {
		return Status(ctx, []string{"-addr", addr, "-watch", "-interval", "2s"}, &out, &errOut, env)
	}, func(n int) bool {
		if n == 2 {
			cancel() // SIGINT
			return false
		}
		b.mu.Lock()
		b.status.Version = []string{"v2", "v3"}[n]
		b.mu.Unlock()
		return true
	})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var frames []string
	for line := range strings.SplitSeq(out.String(), "\n") {
		if strings.HasPrefix(line, "backupd v") {
			frames = append(frames, strings.Fields(line)[1])
		}
	}
	if strings.Join(frames, " ") != "v1, v2, v3," {
		t.Fatalf("frames = %q, want v1 v2 v3:\n%s", frames, out.String())
	}
}

// TestRunsAndDescribe: runs pages with -cursor and filters; describe
// shows one run in full; bad input is a usage error.
func TestRunsAndDescribe(t *testing.T) {
	b, addr, _ := testDaemon(t)
	var ids []run.ID
	for i := range 7 {
		r := run.Run{ID: run.NewID("nightly", testProject, "prod", cliT0.Add(time.Duration(i)*time.Hour), false),
			Policy: []string{"nightly", "weekly"}[i%2], Action: run.ActionSnapshot, Target: run.Target{ProjectID: testProject, Cluster: "prod"},
			Stage: run.StageSucceeded, CreatedAt: cliT0.Add(time.Duration(i) * time.Hour), FinishedAt: cliT0.Add(time.Duration(i)*time.Hour + 90*time.Second)}
		if i == 3 {
			// Put as the engine does, stage by stage: the journal keeps the times.
			r.StageStartedAt = r.CreatedAt
			for _, st := range []run.Stage{run.StagePending, run.StageSnapshotting, run.StageExporting} {
				r.Stage = st
				if err := b.j.Put(r); err != nil {
					t.Fatal(err)
				}
				r.StageStartedAt = r.StageStartedAt.Add(30 * time.Second)
			}
			r.Stage, r.Reason, r.Detail = run.StageFailed, run.ReasonExportFailed, "Atlas reports export Failed: bucket policy denies s3:PutObject"
			r.SnapshotID, r.ExportBucketID, r.ExportJobID, r.ExportProgress = "65f1a0000000000000000002", "65f1a0000000000000000007", "65f1a0000000000000000009", "3/9"
		}
		if err := b.j.Put(r); err != nil {
			t.Fatal(err)
		}
		ids = append([]run.ID{r.ID}, ids...)
	}
	exec := func(verb func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := verb(context.Background(), append([]string{"-addr", addr}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	runs := func(ctx context.Context, a []string, o, e *bytes.Buffer) int { return Runs(ctx, a, o, e, OSEnv()) }
	describe := func(ctx context.Context, a []string, o, e *bytes.Buffer) int { return Describe(ctx, a, o, e, OSEnv()) }

	var seen []string
	args := []string{"-limit", "3"}
	for page := 0; page < 5; page++ {
		code, out, errOut := exec(runs, args...)
		if code != exitOK || !strings.HasPrefix(out, "RUN ") {
			t.Fatalf("runs %v: exit %d, %q %q", args, code, out, errOut)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			seen = append(seen, strings.Fields(line)[0])
		}
		_, cursor, ok := strings.Cut(strings.TrimSpace(errOut), "more runs: add -cursor ")
		if !ok {
			break
		}
		args = []string{"-limit", "3", "-cursor", cursor}
	}
	if strings.Join(seen, " ") != strings.Join(func() []string {
		var s []string
		for _, id := range ids {
			s = append(s, string(id))
		}
		return s
	}(), " ") {
		t.Fatalf("paged runs = %v, want %v", seen, ids)
	}

	code, out, _ := exec(runs, "-policy", "weekly", "-result", "failure", "-o", "json")
	var page runsPage
	if err := json.Unmarshal([]byte(out), &page); code != exitOK || err != nil || len(page.Runs) != 1 || page.Runs[0].Reason != run.ReasonExportFailed {
		t.Fatalf("runs -o json filtered: exit %d, %v, %s", code, err, out)
	}
	failedID := string(page.Runs[0].ID)

	code, out, _ = exec(describe, failedID)
	for _, want := range []string{"Run:", failedID, "weekly (snapshot, scheduled)", "failed{export_failed}",
		"Atlas said:     Atlas reports export Failed: bucket policy denies s3:PutObject",
		"Snapshot:       65f1a0000000000000000002", "Export bucket:  65f1a0000000000000000007",
		"Export job:     65f1a0000000000000000009 (3/9 collections)", "Took:           1m30s",
		"Stages:\n  pending       2026-11-24T06:00:00Z  30s\n  snapshotting  2026-11-24T06:00:30Z  30s\n  exporting     2026-11-24T06:01:00Z  30s\n  failed        2026-11-24T06:01:30Z  -\n"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("describe lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	code, out, _ = exec(describe, "-o", "json", failedID)
	var r run.Run
	if err := json.Unmarshal([]byte(out), &r); code != exitOK || err != nil || r.ExportJobID != "65f1a0000000000000000009" {
		t.Fatalf("describe -o json: exit %d, %v, %s", code, err, out)
	}

	for _, tc := range []struct {
		verb func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		code int
		err  string
	}{
		{describe, []string{"0123456789abcdef0123"}, exitFailure, "404 id: no run 0123456789abcdef0123"},
		{describe, []string{"not-a-run"}, exitUsage, "400 id: run id must match"},
		{describe, nil, exitUsage, "give one run id"},
		{describe, []string{failedID, "extra"}, exitUsage, `unexpected argument "extra"`},
		{describe, []string{"-o", "yaml", failedID}, exitUsage, "must be table or json"},
		{runs, []string{"-stage", "done"}, exitUsage, `stage: stage "done" is not a stage`},
		{runs, []string{"-since", "yesterday"}, exitUsage, "since: since must be an RFC 3339 time"},
		{runs, []string{"stray"}, exitUsage, `unexpected argument "stray"`},
	} {
		code, _, errOut := exec(tc.verb, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
	var out2, errOut2 bytes.Buffer
	if code := Status(context.Background(), []string{"-addr", addr, "stray"}, &out2, &errOut2, OSEnv()); code != exitUsage {
		t.Errorf("status with a stray argument: exit %d", code)
	}
	if code := Trigger(context.Background(), []string{"-addr", addr, "-policy", "good", "stray"}, &out2, &errOut2, OSEnv()); code != exitUsage {
		t.Errorf("trigger with a stray argument: exit %d", code)
	}
}
