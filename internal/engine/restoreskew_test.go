package engine_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// skewed is Atlas's clock, off the daemon's by d.
type skewed struct {
	clock.Clock
	d time.Duration
}

func (s skewed) Now() time.Time { return s.Clock.Now().Add(s.d) }

// answerLoser loses the next POST's answer once armed, as a connection
// reset does: the outcome is unknown. applied says whether Atlas took the
// request first.
type answerLoser struct {
	mu      sync.Mutex
	lose    bool
	applied bool
	posts   int
}

func (l *answerLoser) arm(applied bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lose, l.applied = true, applied
}

// sent is how many POSTs the engine sent.
func (l *answerLoser) sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.posts
}

// loseAnswer sends a POST through create, or, once armed, loses its answer
// (after Atlas took it when applied) with the error an unknown outcome of
// op gives.
func loseAnswer[T any](l *answerLoser, op string, create func() (T, error)) (T, error) {
	l.mu.Lock()
	lose, applied := l.lose, l.applied
	l.lose = false
	l.posts++
	l.mu.Unlock()
	var none T
	if !lose {
		return create()
	}
	if applied {
		if _, err := create(); err != nil {
			return none, err
		}
	}
	return none, &atlas.Error{Operation: op, Method: "POST", OutcomeUnknown: true, Attempts: 1}
}

// skewedSim is a simulator whose clock is off the daemon's by skew, with
// the test project and service account; the caller adds the clusters.
func skewedSim(t *testing.T, skew time.Duration) *atlassim.Sim {
	t.Helper()
	sim := atlassim.New(atlassim.Options{Clock: skewed{clock.Real(), skew}, Seed: 1})
	must(t, sim.AddProject(project))
	sim.AddServiceAccount(saID, saSecret)
	return sim
}

// afterLostAnswer runs p on source once, waits gap, then triggers it
// again with the restore POST's answer lost (after Atlas took it when
// applied); both runs must succeed.
func afterLostAnswer(t *testing.T, h *harness, p engine.Policy, source string, lost *answerLoser, applied bool, gap time.Duration) (earlier, r run.Run) {
	t.Helper()
	earlier = h.await(fire(t, h, p, source, slot))
	if earlier.Stage != run.StageSucceeded {
		t.Fatalf("earlier run = %s{%s} %s", earlier.Stage, earlier.Reason, earlier.Detail)
	}
	time.Sleep(gap)
	lost.arm(applied)
	rs, err := h.eng.Trigger(context.Background(), p.Name, nil)
	must(t, err)
	if r = h.await(rs[0].ID); r.Stage != run.StageSucceeded {
		t.Fatalf("run after the unknown outcome = %s{%s} %s", r.Stage, r.Reason, r.Detail)
	}
	return earlier, r
}

// lostRestoreAnswer loses the next flex restore POST's answer once armed.
type lostRestoreAnswer struct {
	engine.Atlas
	answerLoser
}

func (l *lostRestoreAnswer) CreateFlexRestore(ctx context.Context, p, n string, req atlas.FlexRestoreJobRequest) (*atlas.FlexRestoreJob, error) {
	return loseAnswer(&l.answerLoser, atlas.OpCreateFlexRestore, func() (*atlas.FlexRestoreJob, error) { return l.Atlas.CreateFlexRestore(ctx, p, n, req) })
}

// After a flex restore POST whose outcome is unknown, the run adopts the
// job it created whatever the skew between Atlas's clock and the daemon's:
// the match is on snapshot, target and Atlas's own timestamps, after the
// jobs Atlas held before the request. Behind by ten minutes, the job
// looked older than the request and was sent again; ahead, an earlier
// job of the same snapshot into the same target was taken for it when
// the lost request had not reached Atlas.
func TestFlexRestoreAdoptionSurvivesClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		for _, applied := range []bool{true, false} {
			name := skew.String() + "/lost-before-atlas"
			if applied {
				name = skew.String() + "/lost-after-atlas"
			}
			t.Run(name, func(t *testing.T) { restoreAfterLostAnswer(t, skew, applied) })
		}
	}
}

func restoreAfterLostAnswer(t *testing.T, skew time.Duration, applied bool) {
	synctest.Test(t, func(t *testing.T) {
		sim := skewedSim(t, skew)
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "staging", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
		must(t, sim.AddFlexCluster(project, "flex-prod"))
		_, err := sim.SeedFlexSnapshot(project, "flex-prod", atlassim.SeedFlexSnapshot{Age: 6 * time.Hour})
		must(t, err)

		p := engine.Policy{Name: "refresh", Action: run.ActionFlexRestore, Targets: []run.Target{{ProjectID: project, Cluster: "flex-prod"}},
			Spec: run.Spec{FlexSnapshot: "latest", TargetProjectID: project, TargetCluster: "staging", Timeouts: timeouts}}
		lost := &lostRestoreAnswer{}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, func(a engine.Atlas) engine.Atlas { lost.Atlas = a; return lost })
		defer h.stop()

		// An earlier restore of the same snapshot into the same
		// target, finished a few minutes before.
		earlier, r := afterLostAnswer(t, h, p, "flex-prod", &lost.answerLoser, applied, 5*time.Minute)
		jobs := sim.RestoreJobs(project, "flex-prod")
		if len(jobs) != 2 {
			t.Fatalf("Atlas holds %d restore jobs, want 2 (one per run): %+v", len(jobs), jobs)
		}
		var newest atlas.FlexRestoreJob
		for _, j := range jobs {
			if j.ID != earlier.RestoreJobID {
				newest = j
			}
		}
		if r.RestoreJobID != newest.ID {
			t.Fatalf("the run adopted restore job %s, want the one it created, %s (the earlier run's is %s)", r.RestoreJobID, newest.ID, earlier.RestoreJobID)
		}
	})
}
