package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// failingGetCluster answers the first n cluster reads with an error, as a
// project Atlas cannot answer for at start.
type failingGetCluster struct {
	engine.Atlas
	mu sync.Mutex
	n  int
}

func (f *failingGetCluster) GetCluster(ctx context.Context, p, c string) (*atlas.Cluster, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("list clusters of project: 503 Service Unavailable")
	}
	return f.Atlas.GetCluster(ctx, p, c)
}

// TestReconcileFailureDoesNotFailTheStart: with an empty journal, a target
// Atlas cannot answer for at start no longer fails the engine's start (no
// run at all started); it is reconciled in the background once Atlas
// answers, and its run in flight is carried to the end exactly once.
func TestReconcileFailureDoesNotFailTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", true)
		crashed := make(chan struct{})
		var once sync.Once
		wrap := func(a engine.Atlas) engine.Atlas {
			return &crashAfterPost{Atlas: a, op: "take_snapshot", cancel: func() { once.Do(func() { close(crashed) }) }}
		}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, true, wrap)
		id := fire(t, h, p, "rs", slot)
		<-crashed
		h.stop()

		// Restart on an empty journal while Atlas fails the cluster reads.
		h2 := start(t, sim, journal.NewMemory(), []engine.Policy{p}, true, func(a engine.Atlas) engine.Atlas {
			return &failingGetCluster{Atlas: a, n: 3}
		})
		defer h2.stop()
		if r := h2.await(id); r.Stage != run.StageSucceeded {
			t.Fatalf("recovered run = %s{%s} %s", r.Stage, r.Reason, r.Detail)
		}
		assertExactlyOnce(t, sim, "rs", []run.ID{id}, true)
	})
}
