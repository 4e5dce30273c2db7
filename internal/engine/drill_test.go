package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/verify"
)

// drillFleet is fleet plus a scratch cluster and a completed snapshot of rs
// taken three hours ago, whose id it returns.
func drillFleet(t *testing.T) (*atlassim.Sim, string) {
	t.Helper()
	sim := fleet(t)
	must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "scratch", Tier: "M10", BackupEnabled: true}))
	id, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Age: 3 * time.Hour})
	must(t, err)
	return sim, id
}

func drillPolicy(name string, command ...string) engine.Policy {
	to := timeouts
	to.Verify = 10 * time.Minute
	return engine.Policy{Name: name, Action: run.ActionRestoreDrill, Targets: []run.Target{{ProjectID: project, Cluster: "rs"}},
		Spec: run.Spec{DrillSnapshot: "latest", TargetProjectID: project, TargetCluster: "scratch", VerifyCommand: command, Timeouts: to}}
}

// A drill restores the newest completed snapshot into the scratch cluster,
// waits out the job and the target's return to IDLE, and records restore
// time and snapshot age on Atlas's clock; without a verify command it says
// it was verified at the Atlas level only.
func TestRestoreDrill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, snapID := drillFleet(t)
		p := drillPolicy("drill")
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		id := fire(t, h, p, "rs", slot)
		r := h.await(id)
		if r.Stage != run.StageSucceeded || r.SnapshotID != snapID || r.RestoreStatus != string(atlas.RestoreSucceeded) {
			t.Fatalf("run = %s{%s} %s snapshot %s job %s %s", r.Stage, r.Reason, r.Detail, r.SnapshotID, r.RestoreJobID, r.RestoreStatus)
		}
		want := []run.Stage{run.StagePending, run.StageWaiting, run.StageRestoring, run.StageSucceeded}
		if got := h.rec.stages(id); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stages = %v, want %v", got, want)
		}
		d := r.Drill
		if d.Verification != run.VerifiedAtlasOnly || !strings.Contains(r.Detail, "verified at the Atlas level only") {
			t.Errorf("verification %q detail %q", d.Verification, r.Detail)
		}
		if got := d.RestoreDuration(); got < atlassim.DefaultTimings.ClusterRestore-time.Second || got > atlassim.DefaultTimings.ClusterRestore+time.Second {
			t.Errorf("restore duration %s, want the simulator's %s", got, atlassim.DefaultTimings.ClusterRestore)
		}
		if age := d.SnapshotAge(); age < 3*time.Hour || age > 3*time.Hour+5*time.Minute {
			t.Errorf("snapshot age at restore start %s, want about 3h", age)
		}
		// The run ended only once the target was IDLE again.
		if !d.TargetIdleAt.After(d.JobFinishedAt.Add(atlassim.DefaultTimings.ClusterRestoreSettle - time.Second)) {
			t.Errorf("target seen IDLE at %v, job finished %v: the settle was not waited out", d.TargetIdleAt, d.JobFinishedAt)
		}
		jobs := sim.ClusterRestoreJobs(project, "rs")
		if len(jobs) != 1 || jobs[0].ID != r.RestoreJobID || jobs[0].TargetClusterName != "scratch" || jobs[0].DeliveryType != atlas.DeliveryAutomated {
			t.Fatalf("restore jobs = %+v", jobs)
		}
	})
}

// snapshot: exported picks the newest snapshot backupd exported, not the
// newest one; latest skips a newer fallback snapshot.
func TestRestoreDrillSnapshotChoice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, older := drillFleet(t)
		newer, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Age: time.Hour})
		must(t, err)
		_, err = sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Age: time.Minute, Type: atlas.SnapshotFallback})
		must(t, err)
		c := clientFor(t, sim)
		// A foreign export of the newer snapshot (no backupd marker), and
		// backupd's of the older one.
		_, err = c.Exports.Create(context.Background(), project, "rs", atlas.ExportJobRequest{ExportBucketID: bucketID, SnapshotID: newer})
		must(t, err)
		_, err = c.Exports.Create(context.Background(), project, "rs", atlas.ExportJobRequest{ExportBucketID: bucketID, SnapshotID: older,
			CustomData: []atlas.Label{{Key: "backupd.run", Value: "0123456789abcdef0123"}}})
		must(t, err)
		time.Sleep(atlassim.DefaultTimings.ExportQueued + atlassim.DefaultTimings.ExportInProgress)

		exported := drillPolicy("drill-exported")
		exported.Spec.DrillSnapshot = "exported"
		latest := drillPolicy("drill-latest")
		h := start(t, sim, journal.NewMemory(), []engine.Policy{exported, latest}, false, nil)
		defer h.stop()
		r := h.await(fire(t, h, exported, "rs", slot))
		if r.Stage != run.StageSucceeded || r.SnapshotID != older || r.Drill.SourceExportID == "" {
			t.Fatalf("exported drill = %s{%s} %s snapshot %s (want %s) export %q", r.Stage, r.Reason, r.Detail, r.SnapshotID, older, r.Drill.SourceExportID)
		}
		r = h.await(fire(t, h, latest, "rs", slot))
		if r.Stage != run.StageSucceeded || r.SnapshotID != newer {
			t.Fatalf("latest drill = %s{%s} %s snapshot %s, want %s (not the fallback)", r.Stage, r.Reason, r.Detail, r.SnapshotID, newer)
		}
	})
}

func TestRestoreDrillWithoutSnapshotFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "scratch", Tier: "M10", BackupEnabled: true}))
		for _, choice := range []string{"latest", "exported"} {
			p := drillPolicy("drill-" + choice)
			p.Spec.DrillSnapshot = choice
			h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
			r := h.await(fire(t, h, p, "rs", slot))
			h.stop()
			if r.Stage != run.StageFailed || r.Reason != run.ReasonNoSnapshot {
				t.Fatalf("%s: run = %s{%s} %s, want failed{no_snapshot}", choice, r.Stage, r.Reason, r.Detail)
			}
		}
		if n := len(sim.ClusterRestoreJobs(project, "rs")); n != 0 {
			t.Fatalf("%d restore jobs created without a snapshot", n)
		}
	})
}

// Atlas ending the job failed, cancelled or expired fails the run with
// that reason.
func TestRestoreDrillAtlasOutcomes(t *testing.T) {
	for end, reason := range map[atlas.RestoreState]string{
		atlas.RestoreFailed: run.ReasonRestoreFailed, atlas.RestoreCancelled: run.ReasonRestoreCancelled, atlas.RestoreExpired: run.ReasonRestoreExpired,
	} {
		t.Run(string(end), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim, _ := drillFleet(t)
				must(t, sim.FailNextClusterRestores(1, end))
				p := drillPolicy("drill", "/bin/true")
				h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
				defer h.stop()
				r := h.await(fire(t, h, p, "rs", slot))
				if r.Stage != run.StageFailed || r.Reason != reason || !strings.Contains(r.Detail, string(end)) || r.Drill.Verification != "" {
					t.Fatalf("run = %s{%s} %q verification %q, want failed{%s} unverified", r.Stage, r.Reason, r.Detail, r.Drill.Verification, reason)
				}
			})
		})
	}
}

// The run waits for its target: not there yet, then busy, then IDLE; a
// target that never comes fails the run at the wait timeout, having
// created nothing.
func TestRestoreDrillWaitsForTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		_, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Age: time.Hour})
		must(t, err)
		p := drillPolicy("drill")
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		id := fire(t, h, p, "rs", slot)
		time.Sleep(20 * time.Minute)
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "scratch", Tier: "M10", BackupEnabled: true, State: atlas.ClusterUpdating}))
		time.Sleep(20 * time.Minute)
		if n := len(sim.ClusterRestoreJobs(project, "rs")); n != 0 {
			t.Fatalf("restore requested into a target that is not IDLE (%d jobs)", n)
		}
		must(t, sim.SetClusterState(project, "scratch", atlas.ClusterIdle))
		r := h.await(id)
		if r.Stage != run.StageSucceeded {
			t.Fatalf("run = %s{%s} %s", r.Stage, r.Reason, r.Detail)
		}
		if waited := h.rec.entered(id, run.StageRestoring).Sub(h.rec.entered(id, run.StageWaiting)); waited < 40*time.Minute {
			t.Errorf("left waiting after %s, before the target existed and was IDLE", waited)
		}

		gone := drillPolicy("drill-gone")
		gone.Spec.TargetCluster = "never"
		h2 := start(t, sim, journal.NewMemory(), []engine.Policy{gone}, false, nil)
		defer h2.stop()
		r = h2.await(fire(t, h2, gone, "rs", slot))
		if r.Stage != run.StageFailed || r.Reason != run.ReasonTimeout || !strings.Contains(r.Detail, "does not exist") {
			t.Fatalf("run without target = %s{%s} %s, want failed{timeout} naming the missing target", r.Stage, r.Reason, r.Detail)
		}
		if n := len(sim.ClusterRestoreJobs(project, "rs")); n != 1 {
			t.Fatalf("%d restore jobs, want only the first run's", n)
		}
	})
}

// A restore that outlasts timeouts.restore fails the run timeout and is
// left running in Atlas: nothing is cancelled or deleted.
func TestRestoreDrillTimeoutCancelsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		sim.SetTimings(atlassim.Timings{ClusterRestore: 9 * time.Hour})
		p := drillPolicy("drill")
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		r := h.await(fire(t, h, p, "rs", slot))
		if r.Stage != run.StageFailed || r.Reason != run.ReasonTimeout || !strings.Contains(r.Detail, "nothing was deleted") {
			t.Fatalf("run = %s{%s} %s, want failed{timeout}", r.Stage, r.Reason, r.Detail)
		}
		jobs := sim.ClusterRestoreJobs(project, "rs")
		if len(jobs) != 1 || jobs[0].State() != atlas.RestoreRunning {
			t.Fatalf("after the timeout Atlas shows %+v, want the job still running", jobs)
		}
	})
}

// Both clusters are locked: a snapshot run of the scratch cluster waits
// until the drill has released it.
func TestRestoreDrillLocksItsTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		d := drillPolicy("drill")
		s := snapshotPolicy("scratch-snap", "scratch", false)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{d, s}, false, nil)
		defer h.stop()
		did := fire(t, h, d, "rs", slot)
		time.Sleep(time.Minute)
		sid := fire(t, h, s, "scratch", slot)
		dr, sr := h.await(did), h.await(sid)
		if dr.Stage != run.StageSucceeded || sr.Stage != run.StageSucceeded {
			t.Fatalf("drill %s{%s}, snapshot %s{%s}", dr.Stage, dr.Reason, sr.Stage, sr.Reason)
		}
		if started := h.rec.entered(sid, run.StageSnapshotting); started.Before(dr.FinishedAt) {
			t.Fatalf("the scratch cluster's snapshot began at %v, before the drill released it at %v", started, dr.FinishedAt)
		}
	})
}

// fakeVerifier records requests and answers with a set exit code.
type fakeVerifier struct {
	mu   sync.Mutex
	reqs []verify.Request
	res  verify.Result
}

func (f *fakeVerifier) Run(_ context.Context, req verify.Request) verify.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.res
}

// The verify command gets the target's project, name and SRV string and the
// snapshot's id and time; its exit code decides, and its output is kept.
func TestRestoreDrillVerification(t *testing.T) {
	for _, pass := range []bool{true, false} {
		t.Run(fmt.Sprint("pass=", pass), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim, snapID := drillFleet(t)
				fv := &fakeVerifier{res: verify.Result{ExitCode: 0, Output: "42 orders found\n", Duration: 3 * time.Second}}
				if !pass {
					fv.res = verify.Result{ExitCode: 2, Output: "collection orders is empty\n"}
				}
				p := drillPolicy("drill", "/usr/local/bin/check-restore", "--quick")
				j := journal.NewMemory()
				h := startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: fv}, p)
				defer h.stop()
				id := fire(t, h, p, "rs", slot)
				r := h.await(id)
				fv.mu.Lock()
				reqs := fv.reqs
				fv.mu.Unlock()
				if len(reqs) != 1 || !slices.Equal(reqs[0].Command, []string{"/usr/local/bin/check-restore", "--quick"}) || reqs[0].Timeout != 10*time.Minute {
					t.Fatalf("verify requests %+v", reqs)
				}
				env := strings.Join(reqs[0].Env, "\n")
				snap := sim.Snapshots(project, "rs")[0]
				for _, want := range []string{"BACKUPD_DRILL_PROJECT_ID=" + project, "BACKUPD_DRILL_CLUSTER=scratch", "BACKUPD_DRILL_SRV=mongodb+srv://scratch.",
					"BACKUPD_DRILL_SNAPSHOT_ID=" + snapID, "BACKUPD_DRILL_SNAPSHOT_TIME=" + snap.CreatedAt.UTC().Format(time.RFC3339)} {
					if !strings.Contains(env, want) {
						t.Errorf("verify env lacks %s:\n%s", want, env)
					}
				}
				stored, ok, err := j.Get(id)
				must(t, err)
				if !ok || stored.Drill.VerifyOutput != fv.res.Output || stored.Drill.VerifyExitCode != fv.res.ExitCode {
					t.Errorf("journal keeps %+v", stored.Drill)
				}
				if !slices.Contains(h.rec.stages(id), run.StageVerifying) {
					t.Errorf("stages %v lack verifying", h.rec.stages(id))
				}
				if pass {
					if r.Stage != run.StageSucceeded || r.Drill.Verification != run.VerifiedByCommand {
						t.Fatalf("run = %s{%s} %s verification %q", r.Stage, r.Reason, r.Detail, r.Drill.Verification)
					}
					return
				}
				if r.Stage != run.StageFailed || r.Reason != run.ReasonVerifyFailed || r.Drill.Verification != run.VerifyFailed ||
					!strings.Contains(r.Detail, "exited 2: collection orders is empty") {
					t.Fatalf("run = %s{%s} %q verification %q", r.Stage, r.Reason, r.Detail, r.Drill.Verification)
				}
			})
		})
	}
}

// lostDrillAnswer loses the next drill restore POST's answer once armed.
type lostDrillAnswer struct {
	engine.Atlas
	answerLoser
}

func (l *lostDrillAnswer) CreateRestore(ctx context.Context, p, c string, req atlas.RestoreJobRequest) (*atlas.RestoreJob, error) {
	return loseAnswer(&l.answerLoser, atlas.OpCreateRestore, func() (*atlas.RestoreJob, error) { return l.Atlas.CreateRestore(ctx, p, c, req) })
}

// After a drill's POST whose outcome is unknown, the run adopts the job it
// created, matched by snapshot and target among the jobs its baseline did
// not hold (an earlier drill of the same snapshot into the same target, a
// few seconds before, is not taken for it), or requests again when the
// lost POST never reached Atlas. Atlas's clock is off the daemon's either
// way: no local time is compared.
func TestRestoreDrillAdoptsAfterUnknownOutcome(t *testing.T) {
	for _, skew := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		for _, applied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/applied=%v", skew, applied), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					sim := skewedSim(t, skew)
					must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "rs", Tier: "M10", BackupEnabled: true}))
					must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "scratch", Tier: "M10", BackupEnabled: true}))
					_, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Age: time.Hour})
					must(t, err)
					p := drillPolicy("drill")
					lost := &lostDrillAnswer{}
					h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, func(a engine.Atlas) engine.Atlas { lost.Atlas = a; return lost })
					defer h.stop()
					earlier, r := afterLostAnswer(t, h, p, "rs", &lost.answerLoser, applied, 0)
					jobs := sim.ClusterRestoreJobs(project, "rs")
					if len(jobs) != 2 {
						t.Fatalf("Atlas holds %d restore jobs, want 2 (one per run): %+v", len(jobs), jobs)
					}
					if r.RestoreJobID != jobs[0].ID || r.RestoreJobID == earlier.RestoreJobID {
						t.Fatalf("adopted %s, want the newest job %s (the earlier run's is %s)", r.RestoreJobID, jobs[0].ID, earlier.RestoreJobID)
					}
					if want, posts := map[bool]int{true: 2, false: 3}[applied], lost.sent(); posts != want {
						t.Errorf("%d POSTs, want %d", posts, want)
					}
				})
			})
		}
	}
}

// crashAfterDrillPost cuts the process right after the restore POST took
// effect, before the engine recorded the job's id.
type crashAfterDrillPost struct {
	engine.Atlas
	cancel func()
	once   sync.Once
}

func (c *crashAfterDrillPost) CreateRestore(ctx context.Context, p, cl string, req atlas.RestoreJobRequest) (*atlas.RestoreJob, error) {
	j, err := c.Atlas.CreateRestore(ctx, p, cl, req)
	if err == nil {
		crashed := false
		c.once.Do(func() { crashed = true; c.cancel() })
		if crashed {
			return nil, context.Canceled
		}
	}
	return j, err
}

// TestRestoreDrillCrashAtEveryBoundary kills the engine after each
// persisted transition of a verified drill and right after the restore
// POST, restarts it on the same journal (or, with none, from what Atlas
// shows) and checks the slot made exactly one restore job and succeeded.
func TestRestoreDrillCrashAtEveryBoundary(t *testing.T) {
	forEachCrash(t, crashPoints(16, "create_restore"), "atlas-only", func(t *testing.T, pt crashPoint, c *crasher) {
		sim, _ := drillFleet(t)
		p := drillPolicy("drill", "/usr/local/bin/check-restore")
		fv := &fakeVerifier{res: verify.Result{ExitCode: 0}}
		var a engine.Atlas = engine.FromClient(clientFor(t, sim))
		if pt.afterPost != "" {
			a = &crashAfterDrillPost{Atlas: a, cancel: c.crash}
		}
		j := c.open()
		h := startConfig(t, sim, engine.Config{Journal: j, Atlas: a, Verifier: fv, MarkerRecovery: !c.durable}, p)
		id, ended := c.fire(h, p, "rs", pt.afterEvent)
		_ = j.Close()
		if ended != nil {
			if ended.Stage != run.StageSucceeded {
				t.Fatalf("run = %s{%s} %s", ended.Stage, ended.Reason, ended.Detail)
			}
			if n := len(sim.ClusterRestoreJobs(project, "rs")); n != 1 {
				t.Fatalf("%d restore jobs, want 1", n)
			}
			return
		}

		j2 := c.open()
		defer j2.Close()
		h2 := startConfig(t, sim, engine.Config{Journal: j2, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: fv, MarkerRecovery: !c.durable}, p)
		defer h2.stop()
		got, ok, err := j2.Get(id)
		must(t, err)
		if ok && !got.Stage.Terminal() {
			got = h2.await(id)
		} else if !ok {
			// Without a journal: Atlas's unfinished job, if any,
			// is re-attached under an id of its own; wait it out.
			synctest.Wait()
			time.Sleep(atlassim.DefaultTimings.ClusterRestore + time.Hour)
			got.Stage = run.StageSucceeded
		}
		if got.Stage != run.StageSucceeded {
			t.Fatalf("after restart run = %s{%s} %s", got.Stage, got.Reason, got.Detail)
		}
		jobs := sim.ClusterRestoreJobs(project, "rs")
		if c.durable && len(jobs) != 1 {
			t.Fatalf("%d restore jobs for one slot, want 1: %+v", len(jobs), jobs)
		}
		if len(jobs) > 1 {
			t.Fatalf("%d restore jobs for one slot, want at most 1", len(jobs))
		}
	})
}
