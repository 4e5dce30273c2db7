package engine_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// A journal older than Atlas (a restored copy of the state directory)
// holds a run that had not yet requested its snapshot, while Atlas holds
// the snapshot it went on to take: the re-attached run adopts that
// snapshot by its marker instead of taking a second one.
func TestOlderJournalAdoptsTheSnapshotByItsMarker(t *testing.T) {
	for _, copied := range []run.Stage{run.StageWaiting, run.StageSnapshotting} {
		t.Run(string(copied), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				p := snapshotPolicy("nightly", "rs", false)
				path, old, j := boltWithCopy(t)
				h := start(t, sim, j, []engine.Policy{p}, true, nil)
				h.rec.mu.Lock()
				h.rec.hook = func(e run.Event) {
					if e.Run.Stage == copied && e.From != copied {
						copyFile(t, path, old)
					}
				}
				h.rec.mu.Unlock()
				id := fire(t, h, p, "rs", slot)
				if r := h.await(id); r.Stage != run.StageSucceeded {
					t.Fatalf("first run = %s{%s}", r.Stage, r.Reason)
				}
				h.stop()
				must(t, j.Close())
				must(t, os.Rename(old, path))

				j2, err := journal.Open(path, journal.Options{NoSync: true})
				must(t, err)
				defer j2.Close()
				if r, ok, err := j2.Get(id); err != nil || !ok || r.Stage != copied || r.SnapshotRequested {
					t.Fatalf("the older journal holds %+v (%v), want the run %s without a snapshot request", r, err, copied)
				}
				h2 := start(t, sim, j2, []engine.Policy{p}, true, nil)
				defer h2.stop()
				r := h2.await(id)
				if r.Stage != run.StageSucceeded {
					t.Fatalf("re-attached run = %s{%s} %s", r.Stage, r.Reason, r.Detail)
				}
				assertExactlyOnce(t, sim, "rs", []run.ID{id}, false)
				if n := sim.Calls("take_snapshot"); n != 1 {
					t.Fatalf("take_snapshot calls = %d, want 1", n)
				}
				if r.SnapshotID != sim.Snapshots(project, "rs")[0].ID {
					t.Fatalf("run adopted snapshot %q, want %q", r.SnapshotID, sim.Snapshots(project, "rs")[0].ID)
				}
			})
		})
	}
}

// Reconciling with the markers at start leaves to the journal what it
// holds and recovers what it lacks: a run the journal has in flight is
// re-attached once (not also from its marker), and a run missing from an
// older journal, whose target has a mark, is recovered in the background
// and finished without a second snapshot or export.
func TestReconcileRecoversOnlyWhatTheJournalLacks(t *testing.T) {
	for _, older := range []bool{false, true} {
		name := "journal-current"
		if older {
			name = "journal-older"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				p := snapshotPolicy("nightly", "rs", true)
				path, old, j := boltWithCopy(t)
				k := engine.Key(p.Name, p.Targets[0])
				must(t, j.SetMark(k, journal.Mark{LastSlot: slot.Add(-24 * time.Hour), Since: slot.Add(-48 * time.Hour), Schedule: "0 2 * * *"}))
				h := start(t, sim, j, []engine.Policy{p}, true, nil)
				if r := h.await(fire(t, h, p, "rs", slot.Add(-24*time.Hour))); r.Stage != run.StageSucceeded {
					t.Fatalf("earlier run = %s{%s}", r.Stage, r.Reason)
				}
				copyFile(t, path, old)

				crashed := make(chan struct{})
				var once sync.Once
				h.rec.mu.Lock()
				h.rec.hook = func(e run.Event) {
					if e.Run.Stage == run.StageSnapshotting && e.Run.SnapshotID != "" {
						once.Do(func() { close(crashed) })
					}
				}
				h.rec.mu.Unlock()
				id := fire(t, h, p, "rs", slot)
				<-crashed
				h.stop()
				must(t, j.Close())
				if older {
					must(t, os.Rename(old, path))
				}

				j2, err := journal.Open(path, journal.Options{NoSync: true})
				must(t, err)
				defer j2.Close()
				if _, ok, err := j2.Get(id); err != nil || ok == older {
					t.Fatalf("journal has the run: %v (%v), want %v", ok, err, !older)
				}
				h2 := start(t, sim, j2, []engine.Policy{p}, true, nil)
				defer h2.stop()
				r := h2.await(id)
				if r.Stage != run.StageSucceeded {
					t.Fatalf("run after the restart = %s{%s} %s", r.Stage, r.Reason, r.Detail)
				}
				attached := 0
				h2.rec.mu.Lock()
				for _, e := range h2.rec.events {
					if e.Run.ID == id && e.Note == "re-attached after restart" {
						attached++
					}
				}
				h2.rec.mu.Unlock()
				if attached != 1 {
					t.Fatalf("run re-attached %d times, want once", attached)
				}
				assertExactlyOnce(t, sim, "rs", []run.ID{id}, true)
			})
		})
	}
}

// boltWithCopy opens a Bolt journal in a new directory and names the path
// of an older copy of it beside it.
func boltWithCopy(t *testing.T) (path, old string, j *journal.Bolt) {
	t.Helper()
	dir := t.TempDir()
	path, old = filepath.Join(dir, "state.db"), filepath.Join(dir, "state.db.old")
	j, err := journal.Open(path, journal.Options{NoSync: true})
	must(t, err)
	return path, old, j
}

// copyFile copies the journal file as a backup of the state directory
// would, between two of its writes.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o600))
}

// reconciledLog records Config.Reconciled's reports by policy.
type reconciledLog struct {
	mu  sync.Mutex
	got map[string]*engine.Finished
}

func (l *reconciledLog) record(policy string, _ run.Target, f *engine.Finished) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got[policy] = f
}

// Issue 16 (alerts after a takeover): an engine that reconciles every
// target at start (a new leader) reports the newest run Atlas's markers
// show ended, whoever ran it, so the daemon can publish it instead of its
// own journal's: a marked snapshot whose export failed is a failure with
// its snapshot time, a failed snapshot a failure without one, an export
// policy's labelled export its result; a target without markers reports
// nil.
func TestReconcileReportsTheNewestEndedRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		chain := snapshotPolicy("nightly", "rs", true)
		only := snapshotPolicy("hourly", "sharded", false)
		exp := engine.Policy{Name: "weekly", Action: run.ActionExport, Targets: []run.Target{{ProjectID: project, Cluster: "staging"}},
			Spec: run.Spec{ExportBucketID: bucketID, ExportSource: "latest", Timeouts: timeouts}}
		quiet := snapshotPolicy("idle", "paused", false)
		_, err := sim.SeedSnapshot(project, "staging", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: time.Now().Add(-time.Hour)})
		must(t, err)

		// The previous leader: the chain's first slot succeeds, its second
		// slot's export fails; the snapshot policy's run fails; the export
		// policy's run succeeds.
		prev := start(t, sim, journal.NewMemory(), []engine.Policy{chain, only, exp}, false, nil)
		if r := prev.await(fire(t, prev, chain, "rs", slot)); r.Stage != run.StageSucceeded {
			t.Fatalf("first chain run = %s{%s}", r.Stage, r.Reason)
		}
		sim.FailNextExports(1, false)
		second := slot.Add(time.Hour)
		if r := prev.await(fire(t, prev, chain, "rs", second)); r.Stage != run.StageFailed {
			t.Fatalf("second chain run = %s{%s}, want failed", r.Stage, r.Reason)
		}
		sim.FailNextSnapshots(1)
		if r := prev.await(fire(t, prev, only, "sharded", slot)); r.Stage != run.StageFailed {
			t.Fatalf("snapshot run = %s{%s}, want failed", r.Stage, r.Reason)
		}
		if r := prev.await(fire(t, prev, exp, "staging", slot)); r.Stage != run.StageSucceeded {
			t.Fatalf("export run = %s{%s}", r.Stage, r.Reason)
		}
		prev.stop()

		// The next leader, on a journal that knows none of it.
		log := &reconciledLog{got: map[string]*engine.Finished{}}
		next := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(clientFor(t, sim)), MarkerRecovery: true, ReconcileAll: true, Reconciled: log.record},
			chain, only, exp, quiet)
		defer next.stop()

		log.mu.Lock()
		defer log.mu.Unlock()
		if f := log.got["nightly"]; f == nil || !f.Slot.Equal(second) || f.Succeeded || f.SnapshotAt.IsZero() || !f.ExportAt.IsZero() || f.SnapshotBytes <= 0 {
			t.Errorf("chain: reported %+v, want the second slot, failed, with its snapshot's time and size and no export", f)
		}
		if f := log.got["hourly"]; f == nil || !f.Slot.Equal(slot) || f.Succeeded || !f.SnapshotAt.IsZero() {
			t.Errorf("snapshot policy: reported %+v, want its slot, failed, no snapshot time", f)
		}
		if f := log.got["weekly"]; f == nil || !f.Slot.Equal(slot) || !f.Succeeded || f.ExportAt.IsZero() {
			t.Errorf("export policy: reported %+v, want its slot, succeeded, with the export's time", f)
		}
		if f, ok := log.got["idle"]; !ok || f != nil {
			t.Errorf("a target without markers: reported %+v (reported %v), want nil", f, ok)
		}
	})
}
