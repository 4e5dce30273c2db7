package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/verify"
)

// slowVerifier takes d of (virtual) time per command, or until its
// context ends (a shutdown), and exits 0.
type slowVerifier struct {
	d       time.Duration
	mu      sync.Mutex
	started []time.Time
	ended   []time.Time
}

func (s *slowVerifier) Run(ctx context.Context, req verify.Request) verify.Result {
	s.mu.Lock()
	s.started = append(s.started, time.Now())
	s.mu.Unlock()
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return verify.Result{ExitCode: -1, Err: ctx.Err()}
	}
	s.mu.Lock()
	s.ended = append(s.ended, time.Now())
	s.mu.Unlock()
	return verify.Result{ExitCode: 0, Duration: s.d}
}

// awaitStart waits, in virtual time, until a command has started.
func (s *slowVerifier) awaitStart() {
	for started, _ := s.runs(); started == 0; started, _ = s.runs() {
		time.Sleep(time.Minute)
	}
}

func (s *slowVerifier) runs() (started, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.started), len(s.ended)
}

// A drill's long verify command holds no engine worker: with a single
// worker, another policy's snapshot chain fired while the command runs
// ends in the minutes Atlas takes, not after the command.
func TestRestoreDrillVerifyHoldsNoWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		sv := &slowVerifier{d: 3 * time.Hour}
		d := drillPolicy("drill", "/usr/local/bin/check-restore")
		s := snapshotPolicy("staging-nightly", "staging", true)
		h := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(clientFor(t, sim)), Verifier: sv, Workers: 1}, d, s)
		defer h.stop()
		did := fire(t, h, d, "rs", slot)
		sv.awaitStart()
		firedAt := time.Now()
		sid := fire(t, h, s, "staging", slot)
		sr := h.await(sid)
		if sr.Stage != run.StageSucceeded || sr.ExportJobID == "" {
			t.Fatalf("chain = %s{%s} %s", sr.Stage, sr.Reason, sr.Detail)
		}
		if took := sr.FinishedAt.Sub(firedAt); took > time.Hour {
			t.Fatalf("the snapshot and export chain took %s beside a verify command of %s: it waited for the command's worker", took, sv.d)
		}
		if _, ended := sv.runs(); ended != 0 {
			t.Fatalf("the verify command ended before the chain; the test proves nothing")
		}
		dr := h.await(did)
		if dr.Stage != run.StageSucceeded || dr.Drill.Verification != run.VerifiedByCommand || dr.Drill.VerifyAttempts != 1 {
			t.Fatalf("drill = %s{%s} %s verification %q attempts %d", dr.Stage, dr.Reason, dr.Detail, dr.Drill.Verification, dr.Drill.VerifyAttempts)
		}
	})
}

// VerifyWorkers bounds the commands running at once; a drill past it waits
// for a slot without a worker, and one that gets none within
// timeouts.verify fails verify_failed having run nothing.
func TestRestoreDrillVerifySlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "scratch2", Tier: "M10", BackupEnabled: true}))
		_, err := sim.SeedSnapshot(project, "staging", atlassim.SeedSnapshot{Age: time.Hour})
		must(t, err)
		sv := &slowVerifier{d: 30 * time.Minute}
		a := drillPolicy("drill-a", "/usr/local/bin/check-restore")
		b := drillPolicy("drill-b", "/usr/local/bin/check-restore")
		b.Spec.TargetCluster = "scratch2"
		b.Targets = []run.Target{{ProjectID: project, Cluster: "staging"}}
		b.Spec.Timeouts.Verify = 20 * time.Minute
		h := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(clientFor(t, sim)), Verifier: sv, VerifyWorkers: 1}, a, b)
		defer h.stop()
		aid := fire(t, h, a, "rs", slot)
		sv.awaitStart()
		bid := fire(t, h, b, "staging", slot)
		ar, br := h.await(aid), h.await(bid)
		if ar.Stage != run.StageSucceeded {
			t.Fatalf("first drill = %s{%s} %s", ar.Stage, ar.Reason, ar.Detail)
		}
		if br.Stage != run.StageFailed || br.Reason != run.ReasonVerifyFailed || !strings.Contains(br.Detail, "did not start within timeouts.verify") {
			t.Fatalf("second drill = %s{%s} %s, want failed{verify_failed}: no verify slot within its timeout", br.Stage, br.Reason, br.Detail)
		}
		if started, _ := sv.runs(); started != 1 {
			t.Fatalf("%d verify commands ran with one slot, want 1", started)
		}
	})
}

// A restart while the verify command runs loses nothing: the attempt was
// journaled before the command started, so the next start runs it again
// and says so; one cut off maxVerifyAttempts times is not started again.
func TestRestoreDrillCrashDuringVerify(t *testing.T) {
	for _, crashes := range []int{1, 3} {
		t.Run(map[int]string{1: "once", 3: "every-time"}[crashes], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim, _ := drillFleet(t)
				p := drillPolicy("drill", "/usr/local/bin/check-restore")
				path := filepath.Join(t.TempDir(), "state.db")
				var id run.ID
				sv := &slowVerifier{d: 5 * time.Minute}
				for i := range crashes {
					j, err := journal.Open(path, journal.Options{NoSync: true})
					must(t, err)
					slow := &slowVerifier{d: 24 * time.Hour}
					h := startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: slow}, p)
					if i == 0 {
						id = fire(t, h, p, "rs", slot)
					}
					slow.awaitStart()
					h.stop() // the process dies with the command running
					stored, ok, err := j.Get(id)
					must(t, err)
					if !ok || stored.Stage != run.StageVerifying || stored.Drill.VerifyAttempts != i+1 {
						t.Fatalf("journal after crash %d: %v %s attempts %d, want verifying with attempt %d journaled", i+1, ok, stored.Stage, stored.Drill.VerifyAttempts, i+1)
					}
					must(t, j.Close())
				}
				j, err := journal.Open(path, journal.Options{NoSync: true})
				must(t, err)
				defer j.Close()
				h := startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: sv}, p)
				defer h.stop()
				r := h.await(id)
				started, _ := sv.runs()
				if crashes == 1 {
					if r.Stage != run.StageSucceeded || r.Drill.VerifyAttempts != 2 || started != 1 || !strings.Contains(r.Detail, "on attempt 2") {
						t.Fatalf("after one crash: %s{%s} %q attempts %d, %d commands run after the restart", r.Stage, r.Reason, r.Detail, r.Drill.VerifyAttempts, started)
					}
				} else if r.Stage != run.StageFailed || r.Reason != run.ReasonVerifyFailed || started != 0 || !strings.Contains(r.Detail, "started 3 times") {
					t.Fatalf("after %d crashes: %s{%s} %q, %d commands run, want failed{verify_failed} without a fourth", crashes, r.Stage, r.Reason, r.Detail, started)
				}
				if n := len(sim.ClusterRestoreJobs(project, "rs")); n != 1 {
					t.Fatalf("%d restore jobs, want 1: a restart during verification restored again", n)
				}
			})
		})
	}
}

// A drill re-attached in verifying takes its clusters' locks before a run
// that was waiting for them: another drill into the same scratch cluster
// must not restore over it while its command runs again.
func TestRestoreDrillVerifyingKeepsTargetAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		_, err := sim.SeedSnapshot(project, "staging", atlassim.SeedSnapshot{Age: time.Hour})
		must(t, err)
		a := drillPolicy("drill-a", "/usr/local/bin/check-restore")
		b := drillPolicy("drill-b", "/usr/local/bin/check-restore")
		b.Targets = []run.Target{{ProjectID: project, Cluster: "staging"}}
		path := filepath.Join(t.TempDir(), "state.db")
		j, err := journal.Open(path, journal.Options{NoSync: true})
		must(t, err)
		slow := &slowVerifier{d: 24 * time.Hour}
		h := startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: slow}, a, b)
		aid := fire(t, h, a, "rs", slot)
		slow.awaitStart()
		bid := fire(t, h, b, "staging", slot)
		time.Sleep(time.Minute)
		h.stop()
		must(t, j.Close())

		j, err = journal.Open(path, journal.Options{NoSync: true})
		must(t, err)
		defer j.Close()
		sv := &slowVerifier{d: 10 * time.Minute}
		// One worker steps the re-attached runs one by one, in the order
		// Start launches them.
		h = startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: sv, Workers: 1}, a, b)
		defer h.stop()
		ar, br := h.await(aid), h.await(bid)
		if ar.Stage != run.StageSucceeded || br.Stage != run.StageSucceeded {
			t.Fatalf("drill a %s{%s} %s; drill b %s{%s} %s", ar.Stage, ar.Reason, ar.Detail, br.Stage, br.Reason, br.Detail)
		}
		if restoring := h.rec.entered(bid, run.StageRestoring); restoring.Before(ar.FinishedAt) {
			t.Fatalf("drill b began restoring into the scratch cluster at %v, while drill a still verified it (until %v)", restoring, ar.FinishedAt)
		}
	})
}
