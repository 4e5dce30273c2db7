package engine_test

import (
	"context"
	"strings"
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

// idleScratch shows the scratch cluster IDLE whatever Atlas says: a target
// whose state does not (yet) show the restore running into it, so only the
// job list or Atlas's 409 can tell the drill to wait.
type idleScratch struct{ engine.Atlas }

func (a idleScratch) GetCluster(ctx context.Context, p, n string) (*atlas.Cluster, error) {
	c, err := a.Atlas.GetCluster(ctx, p, n)
	if err == nil && n == "scratch" {
		cp := *c
		cp.StateName = atlas.ClusterIdle
		c = &cp
	}
	return c, err
}

// noted reports whether an event of run id carried a note or detail
// containing s.
func (r *recorder) noted(id run.ID, s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Run.ID == id && (strings.Contains(e.Note, s) || strings.Contains(e.Run.Detail, s)) {
			return true
		}
	}
	return false
}

// finishedAt is when Atlas finished restore job id of the source cluster.
func finishedAt(t *testing.T, sim *atlassim.Sim, source, id string) time.Time {
	t.Helper()
	for _, j := range sim.ClusterRestoreJobs(project, source) {
		if j.ID == id {
			if j.FinishedAt.IsZero() {
				t.Fatalf("restore job %s has not finished: %+v", id, j)
			}
			return j.FinishedAt
		}
	}
	t.Fatalf("no restore job %s of %s", id, source)
	return time.Time{}
}

// drillBesideRestore starts an automated restore of source's snapshot into
// scratch outside backupd, then runs a drill of rs into scratch with the
// target shown IDLE, and returns the run, its harness and the other job.
func drillBesideRestore(t *testing.T, sim *atlassim.Sim, source, snapshot string) (*harness, run.Run, *atlas.RestoreJob) {
	t.Helper()
	other, err := clientFor(t, sim).Restores.Create(context.Background(), project, source, atlas.RestoreJobRequest{
		DeliveryType: atlas.DeliveryAutomated, SnapshotID: snapshot, TargetClusterName: "scratch", TargetGroupID: project})
	must(t, err)
	p := drillPolicy("drill")
	h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, func(a engine.Atlas) engine.Atlas { return idleScratch{a} })
	t.Cleanup(h.stop)
	return h, h.await(fire(t, h, p, "rs", slot)), other
}

// A restore of the source into the target still running (an earlier
// drill's, left running by its timeout) keeps the drill waiting, read from
// the job list even while the target shows IDLE: it requests nothing until
// that job has ended.
func TestRestoreDrillWaitsOutARunningRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, snapID := drillFleet(t)
		h, r, earlier := drillBesideRestore(t, sim, "rs", snapID)
		id := r.ID
		if r.Stage != run.StageSucceeded || r.RestoreJobID == earlier.ID {
			t.Fatalf("run = %s{%s} %s job %s (the earlier is %s)", r.Stage, r.Reason, r.Detail, r.RestoreJobID, earlier.ID)
		}
		if !h.rec.noted(id, "restore job "+earlier.ID+" into the drill target is still running") {
			t.Error("the wait does not name the running restore job")
		}
		if began, done := h.rec.entered(id, run.StageRestoring), finishedAt(t, sim, "rs", earlier.ID); began.Before(done) {
			t.Errorf("restoring began at %v, before the running restore finished at %v", began, done)
		}
		if n := len(sim.ClusterRestoreJobs(project, "rs")); n != 2 {
			t.Errorf("%d restore jobs of rs, want the earlier and the drill's", n)
		}
	})
}

// A restore into the target from another source, which neither the
// target's state (shown IDLE) nor the source's job list reveals, answers
// the drill's POST 409: the drill says so, waits within timeouts.restore
// and requests again once the other restore is over, creating one job.
func TestRestoreDrillWaitsOutAConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		other, err := sim.SeedSnapshot(project, "staging", atlassim.SeedSnapshot{Age: time.Hour})
		must(t, err)
		h, r, competing := drillBesideRestore(t, sim, "staging", other)
		id := r.ID
		if r.Stage != run.StageSucceeded {
			t.Fatalf("run = %s{%s} %s", r.Stage, r.Reason, r.Detail)
		}
		if !h.rec.noted(id, "a restore into "+project+"/scratch is already in progress") {
			t.Error("the drill does not say a restore into its target was in progress")
		}
		jobs := sim.ClusterRestoreJobs(project, "rs")
		if len(jobs) != 1 || jobs[0].ID != r.RestoreJobID {
			t.Fatalf("restore jobs of rs = %+v, want the drill's one", jobs)
		}
		created, ok := jobs[0].CreatedAt()
		if done := finishedAt(t, sim, "staging", competing.ID); !ok || created.Before(done.Truncate(time.Second)) {
			t.Errorf("the drill's job was created at %v, before the competing restore finished at %v", created, done)
		}
	})
}

// A verifier that returns more than run.MaxVerifyOutput has its output's
// tail kept in the journal, not the whole of it: the record stays bounded
// whatever the Verifier returns, and the failure's detail is its last line.
func TestRestoreDrillKeepsTheVerifyOutputsTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		out := strings.Repeat("checked a collection\n", 1000) + "orders: 0 documents\n"
		fv := &fakeVerifier{res: verify.Result{ExitCode: 1, Output: out}}
		p := drillPolicy("drill", "/usr/local/bin/check-restore")
		j := journal.NewMemory()
		h := startConfig(t, sim, engine.Config{Journal: j, Atlas: engine.FromClient(clientFor(t, sim)), Verifier: fv}, p)
		defer h.stop()
		id := fire(t, h, p, "rs", slot)
		r := h.await(id)
		if r.Stage != run.StageFailed || r.Reason != run.ReasonVerifyFailed || !strings.HasSuffix(r.Detail, ": orders: 0 documents") {
			t.Fatalf("run = %s{%s} %q", r.Stage, r.Reason, r.Detail)
		}
		stored, ok, err := j.Get(id)
		must(t, err)
		if got := stored.Drill.VerifyOutput; !ok || len(got) != run.MaxVerifyOutput || !strings.HasSuffix(out, got) {
			t.Fatalf("journal keeps %d bytes of the verify output, want its last %d", len(got), run.MaxVerifyOutput)
		}
	})
}
