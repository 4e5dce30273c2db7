package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
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

const (
	project  = "32b6e34b3d91647abb20e7b8"
	bucketID = "32b6e34b3d91647abb20e7b9"
	saID     = "mdb_sa_id_engine"
	saSecret = "mdb_sa_sk_engine-secret"
)

var timeouts = run.Timeouts{Wait: 2 * time.Hour, Snapshot: 4 * time.Hour, Export: 24 * time.Hour, Restore: 6 * time.Hour}

// fleet builds a simulator with the clusters the tests use. It must be
// called inside the synctest bubble so its clock is virtual.
func fleet(t *testing.T) *atlassim.Sim {
	t.Helper()
	sim := atlassim.New(atlassim.Options{Clock: clock.Real(), Seed: 1})
	must(t, sim.AddProject(project))
	must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "rs", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
	must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "sharded", Type: atlas.ClusterSharded, Tier: "M30", State: atlas.ClusterIdle, BackupEnabled: true, Shards: 2}))
	must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "paused", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, Paused: true, BackupEnabled: true}))
	must(t, sim.AddCluster(project, atlassim.ClusterSpec{Name: "staging", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
	must(t, sim.AddFlexCluster(project, "flex-prod"))
	_, err := sim.SeedFlexSnapshot(project, "flex-prod", atlassim.SeedFlexSnapshot{Age: 6 * time.Hour})
	must(t, err)
	_, err = sim.AddBucket(project, atlas.ExportBucket{ID: bucketID, BucketName: "backups", CloudProvider: "AWS", IAMRoleID: "32b6e34b3d91647abb20e7ba"})
	must(t, err)
	sim.AddServiceAccount(saID, saSecret)
	return sim
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// recorder collects events and lets a test wait for a run to end.
type recorder struct {
	mu     sync.Mutex
	events []run.Event
	ended  map[run.ID]chan run.Run
	hook   func(run.Event)
}

func newRecorder() *recorder { return &recorder{ended: map[run.ID]chan run.Run{}} }

func (r *recorder) ch(id run.ID) chan run.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.ended[id]
	if !ok {
		c = make(chan run.Run, 1)
		r.ended[id] = c
	}
	return c
}

func (r *recorder) Observe(e run.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(e)
	}
	if e.Run.Stage.Terminal() && e.From != e.Run.Stage {
		select {
		case r.ch(e.Run.ID) <- e.Run:
		default:
		}
	}
}

// entered returns when run id entered stage.
func (r *recorder) entered(id run.ID, stage run.Stage) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Run.ID == id && e.Run.Stage == stage && e.From != stage {
			return e.At
		}
	}
	return time.Time{}
}

func (r *recorder) stages(id run.ID) []run.Stage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []run.Stage
	for _, e := range r.events {
		if e.Run.ID == id && e.From != e.Run.Stage {
			out = append(out, e.Run.Stage)
		}
	}
	return out
}

// harness is one engine "process" over a simulator and a journal.
type harness struct {
	t      *testing.T
	sim    *atlassim.Sim
	j      journal.Journal
	rec    *recorder
	eng    *engine.Engine
	cancel context.CancelFunc
}

func start(t *testing.T, sim *atlassim.Sim, j journal.Journal, policies []engine.Policy, markerRecovery bool, wrap func(engine.Atlas) engine.Atlas) *harness {
	t.Helper()
	return startWorkers(t, sim, j, policies, markerRecovery, wrap, 0)
}

// startWorkers is start with engine.Config.Workers set (0: the default).
func startWorkers(t *testing.T, sim *atlassim.Sim, j journal.Journal, policies []engine.Policy, markerRecovery bool, wrap func(engine.Atlas) engine.Atlas, workers int) *harness {
	t.Helper()
	var a engine.Atlas = engine.FromClient(clientFor(t, sim))
	if wrap != nil {
		a = wrap(a)
	}
	return startConfig(t, sim, engine.Config{Journal: j, Atlas: a, MarkerRecovery: markerRecovery, Workers: workers}, policies...)
}

// startConfig starts an engine configured by cfg on the real (in the
// bubble, virtual) clock, with a memory journal unless cfg has one, and
// records its events.
func startConfig(t *testing.T, sim *atlassim.Sim, cfg engine.Config, policies ...engine.Policy) *harness {
	t.Helper()
	if cfg.Journal == nil {
		cfg.Journal = journal.NewMemory()
	}
	rec := newRecorder()
	cfg.Clock, cfg.Observer = clock.Real(), rec
	eng := engine.New(cfg)
	eng.SetPolicies(policies)
	ctx, cancel := context.WithCancel(context.Background())
	must(t, eng.Start(ctx))
	return &harness{t: t, sim: sim, j: cfg.Journal, rec: rec, eng: eng, cancel: cancel}
}

// clientFor is an Atlas client of the simulator, as the engine's.
func clientFor(t *testing.T, sim *atlassim.Sim) *atlas.Client {
	t.Helper()
	return clientOver(t, sim.Transport())
}

// clientOver is clientFor over a transport that may alter the simulator's answers.
func clientOver(t *testing.T, tr http.RoundTripper) *atlas.Client {
	t.Helper()
	client, err := atlas.New(atlas.Config{
		BaseURL:           "http://atlas.sim",
		ServiceAccount:    &atlas.ServiceAccount{ClientID: saID, ClientSecret: saSecret},
		Transport:         tr,
		RequestsPerMinute: 6000,
		Clock:             clock.Real(),
	})
	must(t, err)
	return client
}

// stop simulates the process dying: everything is cancelled at once.
func (h *harness) stop() {
	h.cancel()
	h.eng.Wait()
}

func (h *harness) await(id run.ID) run.Run {
	h.t.Helper()
	select {
	case r := <-h.rec.ch(id):
		return r
	case <-time.After(72 * time.Hour): // virtual time inside the bubble
		h.t.Fatalf("run %s did not end within 72h of virtual time; stages %v", id, h.rec.stages(id))
		return run.Run{}
	}
}

func snapshotPolicy(name, cluster string, export bool) engine.Policy {
	p := engine.Policy{
		Name: name, Action: run.ActionSnapshot,
		Spec:    run.Spec{RetentionInDays: 7, Description: "nightly", Timeouts: timeouts},
		Targets: []run.Target{{ProjectID: project, Cluster: cluster}},
	}
	if export {
		p.Spec.ExportBucketID = bucketID
		p.Spec.CustomData = []run.Label{{Key: "team", Value: "payments"}}
	}
	return p
}

var slot = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

func fire(t *testing.T, h *harness, p engine.Policy, target string, s time.Time) run.ID {
	t.Helper()
	tg := run.Target{ProjectID: project, Cluster: target}
	must(t, h.eng.Fire(context.Background(), p.Name, tg, s, s, false, "", ""))
	return run.NewID(p.Name, project, target, s, false)
}

func TestSnapshotThenExportChain(t *testing.T) {
	for _, cluster := range []string{"rs", "sharded"} {
		t.Run(cluster, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				p := snapshotPolicy("nightly", cluster, true)
				h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
				defer h.stop()
				began := time.Now()
				id := fire(t, h, p, cluster, slot)
				r := h.await(id)

				if r.Stage != run.StageSucceeded {
					t.Fatalf("run ended %s{%s}: %s", r.Stage, r.Reason, r.Detail)
				}
				want := []run.Stage{run.StagePending, run.StageWaiting, run.StageSnapshotting, run.StageExporting, run.StageSucceeded}
				if got := h.rec.stages(id); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("stages = %v, want %v", got, want)
				}
				snaps := sim.Snapshots(project, cluster)
				if len(snaps) != 1 || !strings.Contains(snaps[0].Description, "backupd:"+string(id)) || !strings.HasPrefix(snaps[0].Description, "nightly") {
					t.Fatalf("snapshots in Atlas = %+v, want one carrying the run marker", snaps)
				}
				wantKind := atlas.KindReplicaSet
				if cluster == "sharded" {
					wantKind = atlas.KindShardedCluster
				}
				if r.SnapshotKind != string(wantKind) || r.SnapshotID != snaps[0].ID || r.SnapshotBytes <= 0 {
					t.Fatalf("run snapshot fields = kind %q id %q bytes %d", r.SnapshotKind, r.SnapshotID, r.SnapshotBytes)
				}
				exports := sim.Exports(project, cluster)
				if len(exports) != 1 || exports[0].SnapshotID != r.SnapshotID || exports[0].ExportBucketID != bucketID {
					t.Fatalf("exports = %+v", exports)
				}
				labels := map[string]string{}
				for _, l := range exports[0].CustomData {
					labels[l.Key] = l.Value
				}
				if labels["team"] != "payments" || labels["backupd.run"] != string(id) || labels["backupd.policy"] != "nightly" || labels["backupd.scheduledAt"] != "2026-11-24T02:00:00Z" {
					t.Fatalf("export customData = %v", labels)
				}
				// Polling backs off to at most a minute: completion is noticed
				// within a poll interval of Atlas finishing.
				if finished := exports[0].FinishedAt; r.FinishedAt.Sub(finished) > time.Minute {
					t.Fatalf("export finished at %v but the run noticed at %v", finished, r.FinishedAt)
				}
				if elapsed := time.Since(began); elapsed > 2*time.Hour {
					t.Fatalf("chain took %v of virtual time", elapsed)
				}
			})
		})
	}
}

func TestExportLatestUsesNewestCompletedNonFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		now := time.Now()
		older, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: now.Add(-48 * time.Hour)})
		must(t, err)
		newest, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: now.Add(-24 * time.Hour)})
		must(t, err)
		_, err = sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotFallback, Status: atlas.SnapshotCompleted, CreatedAt: now.Add(-time.Hour)})
		must(t, err)
		_ = older

		p := engine.Policy{Name: "weekly", Action: run.ActionExport, Targets: []run.Target{{ProjectID: project, Cluster: "rs"}},
			Spec: run.Spec{ExportBucketID: bucketID, ExportSource: "latest", Timeouts: timeouts}}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		r := h.await(fire(t, h, p, "rs", slot))
		if r.Stage != run.StageSucceeded || r.SnapshotID != newest {
			t.Fatalf("run = %s{%s} snapshot %s, want succeeded exporting %s", r.Stage, r.Reason, r.SnapshotID, newest)
		}
		if n := sim.Calls("take_snapshot"); n != 0 {
			t.Fatalf("source: latest took %d snapshots, want 0", n)
		}
	})
}

func TestExportLatestWithoutSnapshotFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := engine.Policy{Name: "weekly", Action: run.ActionExport, Targets: []run.Target{{ProjectID: project, Cluster: "rs"}},
			Spec: run.Spec{ExportBucketID: bucketID, ExportSource: "latest", Timeouts: timeouts}}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		r := h.await(fire(t, h, p, "rs", slot))
		if r.Stage != run.StageFailed || r.Reason != run.ReasonNoSnapshot {
			t.Fatalf("run = %s{%s}, want failed{no_snapshot}", r.Stage, r.Reason)
		}
	})
}

func TestFlexRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := engine.Policy{Name: "refresh", Action: run.ActionFlexRestore, Targets: []run.Target{{ProjectID: project, Cluster: "flex-prod"}},
			Spec: run.Spec{FlexSnapshot: "latest", TargetProjectID: project, TargetCluster: "staging", Timeouts: timeouts}}
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		id := fire(t, h, p, "flex-prod", slot)
		r := h.await(id)
		if r.Stage != run.StageSucceeded || r.RestoreJobID == "" || r.RestoreStatus != string(atlas.FlexCompleted) {
			t.Fatalf("run = %s{%s} %s job %q status %q", r.Stage, r.Reason, r.Detail, r.RestoreJobID, r.RestoreStatus)
		}
		want := []run.Stage{run.StagePending, run.StageWaiting, run.StageRestoring, run.StageSucceeded}
		if got := h.rec.stages(id); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stages = %v, want %v", got, want)
		}
		jobs := sim.RestoreJobs(project, "flex-prod")
		if len(jobs) != 1 || jobs[0].TargetDeploymentItemName != "staging" {
			t.Fatalf("restore jobs = %+v", jobs)
		}
		// Like a drill, it records the snapshot's age when the restore
		// began and the restore time, on Atlas's clock.
		d, j := r.Drill, jobs[0]
		if !d.JobCreatedAt.Equal(j.RestoreScheduledDate) || !d.JobFinishedAt.Equal(j.RestoreFinishedDate) || !d.SnapshotAt.Equal(j.SnapshotFinishedDate) {
			t.Fatalf("recorded snapshot %v, job %v to %v; Atlas says %v, %v to %v", d.SnapshotAt, d.JobCreatedAt, d.JobFinishedAt,
				j.SnapshotFinishedDate, j.RestoreScheduledDate, j.RestoreFinishedDate)
		}
		if age := d.SnapshotAge(); age < 6*time.Hour || age > 6*time.Hour+10*time.Minute {
			t.Errorf("snapshot age at restore start %s, want about the seeded 6h", age)
		}
		if took := d.RestoreDuration(); took <= 0 || took > 10*time.Minute {
			t.Errorf("restore time %s", took)
		}
	})
}

func TestAtlasSideFailures(t *testing.T) {
	cases := []struct {
		name       string
		setup      func(*atlassim.Sim)
		cluster    string
		export     bool
		wantStage  run.Stage
		wantReason string
	}{
		{"snapshot failed", func(s *atlassim.Sim) { s.FailNextSnapshots(1) }, "rs", true, run.StageFailed, run.ReasonSnapshotFailed},
		{"export failed", func(s *atlassim.Sim) { s.FailNextExports(1, false) }, "rs", true, run.StageFailed, run.ReasonExportFailed},
		{"export cancelled", func(s *atlassim.Sim) { s.FailNextExports(1, true) }, "rs", true, run.StageFailed, run.ReasonExportCancelled},
		{"paused cluster", func(*atlassim.Sim) {}, "paused", false, run.StageSkipped, run.ReasonNotSupported},
		{"unknown cluster", func(*atlassim.Sim) {}, "gone", false, run.StageFailed, run.ReasonNotFound},
		{"flex cluster", func(*atlassim.Sim) {}, "flex-prod", false, run.StageSkipped, run.ReasonNotSupported},
		{"bucket removed", func(s *atlassim.Sim) { must(t, s.RemoveBucket(project, bucketID)) }, "rs", true, run.StageFailed, run.ReasonNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				tc.setup(sim)
				p := snapshotPolicy("nightly", tc.cluster, tc.export)
				h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
				defer h.stop()
				r := h.await(fire(t, h, p, tc.cluster, slot))
				if r.Stage != tc.wantStage || r.Reason != tc.wantReason {
					t.Fatalf("run = %s{%s} (%s), want %s{%s}", r.Stage, r.Reason, r.Detail, tc.wantStage, tc.wantReason)
				}
				if r.Detail == "" {
					t.Fatal("a failed or skipped run must say why in Detail")
				}
				// The next slot runs normally.
				if tc.cluster == "rs" {
					next := h.await(fire(t, h, p, tc.cluster, slot.Add(24*time.Hour)))
					if next.Stage != run.StageSucceeded && tc.name != "bucket removed" {
						t.Fatalf("next slot = %s{%s} %s, want succeeded", next.Stage, next.Reason, next.Detail)
					}
				}
			})
		})
	}
}

func TestClusterDeletedMidRunFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", true)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		var once sync.Once
		h.rec.mu.Lock()
		h.rec.hook = func(e run.Event) {
			if e.Run.SnapshotID != "" {
				once.Do(func() { must(t, sim.DeleteCluster(project, "rs")) })
			}
		}
		h.rec.mu.Unlock()
		r := h.await(fire(t, h, p, "rs", slot))
		if r.Stage != run.StageFailed || r.Reason != run.ReasonNotFound {
			t.Fatalf("run = %s{%s} (%s), want failed{not_found}", r.Stage, r.Reason, r.Detail)
		}
	})
}

func TestWaitsOutForeignOnDemandSnapshotAndBusyCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		// Someone else's on-demand snapshot is in progress (for 20 minutes),
		// and the cluster is updating (for 10).
		sim.SetTimings(atlassim.Timings{SnapshotInProgress: 20 * time.Minute})
		_, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotOnDemand, Status: atlas.SnapshotInProgress, CreatedAt: time.Now()})
		must(t, err)
		must(t, sim.SetClusterState(project, "rs", atlas.ClusterUpdating))
		p := snapshotPolicy("nightly", "rs", false)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		began := time.Now()
		id := fire(t, h, p, "rs", slot)
		// Atlas finishes the update ten (virtual) minutes later.
		time.AfterFunc(10*time.Minute, func() { _ = sim.SetClusterState(project, "rs", atlas.ClusterIdle) })
		synctest.Wait()
		if waiting, ok := h.eng.InFlight(p.Name, run.Target{ProjectID: project, Cluster: "rs"}); !ok || waiting.Detail != "cluster is UPDATING" {
			t.Fatalf("in-flight run while the cluster updates = %+v, want detail \"cluster is UPDATING\"", waiting)
		}
		r := h.await(id)
		if r.Stage != run.StageSucceeded {
			t.Fatalf("run = %s{%s} %s", r.Stage, r.Reason, r.Detail)
		}
		// Once the cluster is IDLE the run asks for its snapshot; Atlas's
		// UNFINISHED_ON_DEMAND_SNAPSHOT says wait, and it asks again with the
		// backoff until the foreign snapshot is done: one snapshot is taken,
		// after it, and the answers that said wait created nothing.
		var taken []time.Time
		for _, c := range sim.CallLog() {
			if c.Op == "take_snapshot" && c.Status/100 == 2 {
				taken = append(taken, c.At)
			}
		}
		if len(taken) != 1 {
			t.Fatalf("%d snapshot requests were accepted, want 1", len(taken))
		}
		if taken[0].Sub(began) < 20*time.Minute {
			t.Fatalf("snapshot taken %v after the run began, before the foreign on-demand snapshot finished", taken[0].Sub(began))
		}
		if n := len(sim.Snapshots(project, "rs")); n != 2 {
			t.Fatalf("%d snapshots on the cluster, want the foreign one and the run's", n)
		}
	})
}

func TestWaitTimeoutFailsWithoutDeleting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		must(t, sim.SetClusterState(project, "rs", atlas.ClusterRepairing))
		p := snapshotPolicy("nightly", "rs", false)
		p.Spec.Timeouts.Wait = 30 * time.Minute
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		began := time.Now()
		r := h.await(fire(t, h, p, "rs", slot))
		if r.Stage != run.StageFailed || r.Reason != run.ReasonTimeout {
			t.Fatalf("run = %s{%s}, want failed{timeout}", r.Stage, r.Reason)
		}
		if took := time.Since(began); took < 30*time.Minute || took > 31*time.Minute {
			t.Fatalf("timed out after %v, want 30m", took)
		}
		if r.Result() != "timeout" || sim.Calls("take_snapshot") != 0 {
			t.Fatalf("result %q, take_snapshot calls %d", r.Result(), sim.Calls("take_snapshot"))
		}
	})
}

func TestOverlapSkipsAndClusterLockSerialisesPolicies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		a := snapshotPolicy("a", "rs", true)
		b := snapshotPolicy("b", "rs", false)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{a, b}, false, nil)
		defer h.stop()
		first := fire(t, h, a, "rs", slot)
		second := fire(t, h, a, "rs", slot.Add(time.Minute)) // a's previous run still in flight
		other := fire(t, h, b, "rs", slot)                   // another policy on the same cluster

		sk, ok, err := h.j.Get(second)
		must(t, err)
		if !ok || sk.Stage != run.StageSkipped || sk.Reason != run.ReasonOverlap {
			t.Fatalf("second slot = %+v, want skipped{overlap}", sk)
		}
		ra, rb := h.await(first), h.await(other)
		if ra.Stage != run.StageSucceeded || rb.Stage != run.StageSucceeded {
			t.Fatalf("runs = %s{%s}, %s{%s}", ra.Stage, ra.Reason, rb.Stage, rb.Reason)
		}
		// One operation at a time on the cluster: the two runs' active
		// periods (snapshot requested → run finished) never intersect.
		early, late := ra, rb
		if rb.FinishedAt.Before(ra.FinishedAt) {
			early, late = rb, ra
		}
		began := h.rec.entered(late.ID, run.StageSnapshotting)
		if began.Before(early.FinishedAt) {
			t.Fatalf("run %s began snapshotting at %v, before run %s finished at %v", late.Policy, began, early.Policy, early.FinishedAt)
		}
		// The release wakes the waiting run at once, not at its next poll.
		if late := began.Sub(early.FinishedAt); late > time.Second {
			t.Fatalf("run %s began snapshotting %v after run %s released the cluster, want at once", late, rb.Policy, early.Policy)
		}
		if n := sim.Calls("take_snapshot"); n != 2 {
			t.Fatalf("take_snapshot calls = %d, want 2", n)
		}
	})
}

func TestFiringASlotTwiceRunsItOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", false)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		id := fire(t, h, p, "rs", slot)
		h.await(id)
		fire(t, h, p, "rs", slot)
		synctest.Wait()
		if n := sim.Calls("take_snapshot"); n != 1 {
			t.Fatalf("take_snapshot calls = %d, want 1", n)
		}
	})
}

func TestManualTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", false)
		p.Targets = append(p.Targets, run.Target{ProjectID: project, Cluster: "sharded"})
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()

		if _, err := h.eng.Trigger(context.Background(), "nope", nil); !errors.Is(err, engine.ErrUnknownPolicy) {
			t.Fatalf("unknown policy: err = %v", err)
		}
		if _, err := h.eng.Trigger(context.Background(), "nightly", &run.Target{ProjectID: project, Cluster: "other"}); !errors.Is(err, engine.ErrUnknownTarget) {
			t.Fatalf("unknown target: err = %v", err)
		}
		one, err := h.eng.Trigger(context.Background(), "nightly", &run.Target{ProjectID: project, Cluster: "rs"})
		must(t, err)
		if again, err := h.eng.Trigger(context.Background(), "nightly", &run.Target{ProjectID: project, Cluster: "rs"}); err != nil || again[0].ID != one[0].ID {
			t.Fatalf("a second trigger at the same instant = %v, %v; want the same run", again, err)
		}
		time.Sleep(time.Second) // virtual: the operator triggers again a second later
		again, err := h.eng.Trigger(context.Background(), "nightly", nil)
		must(t, err)
		if len(one) != 1 || !one[0].Manual || len(again) != 2 {
			t.Fatalf("triggered %d then %d runs", len(one), len(again))
		}
		for _, r := range again {
			if r.Target.Cluster == "rs" && (r.Stage != run.StageSkipped || r.Reason != run.ReasonOverlap) {
				t.Fatalf("trigger while rs is in flight = %s{%s}, want skipped{overlap}", r.Stage, r.Reason)
			}
		}
		for _, r := range append(one, again...) {
			if !r.Stage.Terminal() {
				if got := h.await(r.ID); got.Stage != run.StageSucceeded {
					t.Fatalf("manual run on %s = %s{%s}", got.Target, got.Stage, got.Reason)
				}
			}
		}
	})
}

func TestAtlasStormsDuringEveryStage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		sim.SetFaults(atlassim.Faults{ErrorRate: 0.3, DropAfterApplyRate: 0.3})
		sim.Burst429(5, 30*time.Second)
		p := snapshotPolicy("nightly", "rs", true)
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, nil)
		defer h.stop()
		var ids []run.ID
		for i := range 5 {
			ids = append(ids, fire(t, h, p, "rs", slot.Add(time.Duration(i)*24*time.Hour)))
			if r := h.await(ids[i]); r.Stage != run.StageSucceeded {
				t.Fatalf("run %d = %s{%s} %s", i, r.Stage, r.Reason, r.Detail)
			}
		}
		assertExactlyOnce(t, sim, "rs", ids, true)
	})
}

// assertExactlyOnce checks Atlas holds exactly one snapshot (and export)
// per run marker.
func assertExactlyOnce(t *testing.T, sim *atlassim.Sim, cluster string, ids []run.ID, export bool) {
	t.Helper()
	for _, id := range ids {
		n := 0
		var snapID string
		for _, s := range sim.Snapshots(project, cluster) {
			if strings.Contains(s.Description, id.Marker()) {
				n++
				snapID = s.ID
			}
		}
		if n != 1 {
			t.Fatalf("run %s: %d snapshots carry its marker, want 1", id, n)
		}
		if !export {
			continue
		}
		e := 0
		for _, j := range sim.Exports(project, cluster) {
			for _, l := range j.CustomData {
				if l.Key == "backupd.run" && l.Value == string(id) {
					e++
					if j.SnapshotID != snapID {
						t.Fatalf("run %s exported snapshot %s, want %s", id, j.SnapshotID, snapID)
					}
				}
			}
		}
		if e != 1 {
			t.Fatalf("run %s: %d exports carry its marker, want 1", id, e)
		}
	}
}

// crashAfterPost cuts the "process" right after a POST took effect in
// Atlas, before the engine could record the id it returned.
type crashAfterPost struct {
	engine.Atlas
	op     string
	cancel func()
	done   bool
}

func (c *crashAfterPost) crash(op string, err error) error {
	if err == nil && op == c.op && !c.done {
		c.done = true
		c.cancel()
		return context.Canceled
	}
	return err
}

func (c *crashAfterPost) TakeSnapshot(ctx context.Context, p, cl string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	s, err := c.Atlas.TakeSnapshot(ctx, p, cl, req)
	return s, c.crash("take_snapshot", err)
}

func (c *crashAfterPost) CreateExport(ctx context.Context, p, cl string, req atlas.ExportJobRequest) (*atlas.ExportJob, error) {
	j, err := c.Atlas.CreateExport(ctx, p, cl, req)
	return j, c.crash("create_export", err)
}

// crashPoint is where a crash test cuts the process: after the run's
// afterEvent-th event, or (afterEvent 0) right after the POST afterPost.
type crashPoint struct {
	name       string
	afterEvent int
	afterPost  string
}

// crashPoints are a crash after each of the first events events (a clean
// run persists no more), then one after each POST named.
func crashPoints(events int, posts ...string) []crashPoint {
	var out []crashPoint
	for i := 1; i <= events; i++ {
		out = append(out, crashPoint{name: fmt.Sprintf("after-event-%d", i), afterEvent: i})
	}
	for _, op := range posts {
		out = append(out, crashPoint{name: "after-" + op, afterPost: op})
	}
	return out
}

// crasher is one crash test's process: the journal each start opens (the
// same file, or without one a new memory journal) and the cut.
type crasher struct {
	t       *testing.T
	durable bool
	path    string
	crashed chan struct{}
	once    sync.Once
}

// forEachCrash runs body in a synctest bubble at every point, with a
// journal file and without one (named noJournal).
func forEachCrash(t *testing.T, points []crashPoint, noJournal string, body func(t *testing.T, pt crashPoint, c *crasher)) {
	for _, durable := range []bool{true, false} {
		for _, pt := range points {
			name := pt.name + "/journal"
			if !durable {
				name = pt.name + "/" + noJournal
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					body(t, pt, &crasher{t: t, durable: durable, path: filepath.Join(t.TempDir(), "state.db"), crashed: make(chan struct{})})
				})
			})
		}
	}
}

func (c *crasher) open() journal.Journal {
	if !c.durable {
		return journal.NewMemory()
	}
	j, err := journal.Open(c.path, journal.Options{NoSync: true})
	must(c.t, err)
	return j
}

// crash cuts the process (the first call counts).
func (c *crasher) crash() { c.once.Do(func() { close(c.crashed) }) }

// fire fires p's slot on target and cuts h after the run's afterEvent-th
// event (0: only when crash is called). h is stopped either way; ended is
// the run when it ended before the cut.
func (c *crasher) fire(h *harness, p engine.Policy, target string, afterEvent int) (id run.ID, ended *run.Run) {
	count := 0
	h.rec.mu.Lock()
	h.rec.hook = func(run.Event) {
		count++
		if afterEvent > 0 && count == afterEvent {
			c.crash()
		}
	}
	h.rec.mu.Unlock()
	id = fire(c.t, h, p, target, slot)
	select {
	case <-c.crashed:
		h.stop()
		return id, nil
	case r := <-h.rec.ch(id):
		h.stop()
		return id, &r
	}
}

// TestCrashAtEveryBoundary kills the engine after each persisted transition
// of a snapshot+export chain and after each POST, restarts it on the same
// journal (or, without a journal, from Atlas markers alone) and checks the
// slot produced exactly one snapshot and one export.
func TestCrashAtEveryBoundary(t *testing.T) {
	forEachCrash(t, crashPoints(14, "take_snapshot", "create_export"), "markers-only", func(t *testing.T, pt crashPoint, c *crasher) {
		sim := fleet(t)
		p := snapshotPolicy("nightly", "rs", true)
		wrap := func(a engine.Atlas) engine.Atlas {
			if pt.afterPost == "" {
				return a
			}
			return &crashAfterPost{Atlas: a, op: pt.afterPost, cancel: c.crash}
		}
		j := c.open()
		id, ended := c.fire(start(t, sim, j, []engine.Policy{p}, !c.durable, wrap), p, "rs", pt.afterEvent)
		_ = j.Close()
		if ended != nil {
			// The run ended before this crash point: nothing to test beyond once-ness.
			if ended.Stage != run.StageSucceeded {
				t.Fatalf("run = %s{%s}", ended.Stage, ended.Reason)
			}
			assertExactlyOnce(t, sim, "rs", []run.ID{id}, true)
			return
		}

		// Restart: a new engine, the journal reopened (or empty).
		j2 := c.open()
		defer j2.Close()
		h2 := start(t, sim, j2, []engine.Policy{p}, !c.durable, nil)
		defer h2.stop()
		// The scheduler would fire the slot again if its mark was not
		// advanced; firing twice must be harmless.
		if c.durable || h2.eng.RecoveredSlots()[engine.Key(p.Name, run.Target{ProjectID: project, Cluster: "rs"})].IsZero() {
			fire(t, h2, p, "rs", slot)
		}
		got, ok, err := j2.Get(id)
		must(t, err)
		switch {
		case ok && !got.Stage.Terminal():
			got = h2.await(id)
		case !ok:
			// Without a journal a run that had already finished
			// leaves nothing to re-attach: Atlas holds its result.
			synctest.Wait()
			got.Stage = run.StageSucceeded
		}
		if got.Stage != run.StageSucceeded {
			t.Fatalf("after restart run = %s{%s} %s", got.Stage, got.Reason, got.Detail)
		}
		assertExactlyOnce(t, sim, "rs", []run.ID{id}, true)
	})
}
