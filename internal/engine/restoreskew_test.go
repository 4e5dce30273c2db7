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

// lostRestoreAnswer loses the next flex restore POST's answer, as a
// connection reset does: the outcome is unknown. applied says whether
// Atlas took the request first.
type lostRestoreAnswer struct {
	engine.Atlas
	mu      sync.Mutex
	lose    bool
	applied bool
}

func (l *lostRestoreAnswer) CreateFlexRestore(ctx context.Context, p, n string, req atlas.FlexRestoreJobRequest) (*atlas.FlexRestoreJob, error) {
	l.mu.Lock()
	lose, applied := l.lose, l.applied
	l.lose = false
	l.mu.Unlock()
	if !lose {
		return l.Atlas.CreateFlexRestore(ctx, p, n, req)
	}
	if applied {
		if _, err := l.Atlas.CreateFlexRestore(ctx, p, n, req); err != nil {
			return nil, err
		}
	}
	return nil, &atlas.Error{Operation: "create_flex_restore", Method: "POST", OutcomeUnknown: true, Attempts: 1}
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
		sim := atlassim.New(atlassim.Options{Clock: skewed{clock.Real(), skew}, Seed: 1})
		must(t, sim.AddProject(project))
		must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "staging", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
		must(t, sim.AddFlexCluster(project, "flex-prod"))
		_, err := sim.SeedFlexSnapshot(project, "flex-prod", atlassim.SeedFlexSnapshot{Age: 6 * time.Hour})
		must(t, err)
		sim.AddServiceAccount(saID, saSecret)

		p := engine.Policy{Name: "refresh", Action: run.ActionFlexRestore, Targets: []run.Target{{ProjectID: project, Cluster: "flex-prod"}},
			Spec: run.Spec{FlexSnapshot: "latest", TargetProjectID: project, TargetCluster: "staging", Timeouts: timeouts}}
		lost := &lostRestoreAnswer{}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, func(a engine.Atlas) engine.Atlas { lost.Atlas = a; return lost })
		defer h.stop()

		// An earlier restore of the same snapshot into the same
		// target, finished a few minutes ago.
		earlier := h.await(fire(t, h, p, "flex-prod", slot))
		if earlier.Stage != run.StageSucceeded {
			t.Fatalf("earlier restore = %s{%s} %s", earlier.Stage, earlier.Reason, earlier.Detail)
		}
		time.Sleep(5 * time.Minute)

		lost.mu.Lock()
		lost.lose, lost.applied = true, applied
		lost.mu.Unlock()
		rs, err := h.eng.Trigger(context.Background(), p.Name, nil)
		must(t, err)
		r := h.await(rs[0].ID)
		if r.Stage != run.StageSucceeded {
			t.Fatalf("restore after the unknown outcome = %s{%s} %s", r.Stage, r.Reason, r.Detail)
		}
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
