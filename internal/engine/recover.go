package engine

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// markerRE parses the marker snapshotDescription writes.
var markerRE = regexp.MustCompile(`backupd:([0-9a-f]{20}) policy=([a-z0-9][a-z0-9-]{0,62}) slot=(\S+?)( manual)?\]`)

// recoverFromMarkers reconciles the journal with what Atlas's markers show
// in flight: snapshots carrying a backupd marker that are still running,
// completed snapshots of export policies whose marked export is missing or
// running, and restore jobs running into a policy's target. The journal
// comes first: a run it holds, or a target it holds a run in flight for, is
// left to it, and only what it lacks is recovered (a new or older journal
// file, a memory journal). It is only used when MarkerRecovery is set.
//
// The targets whose runs are returned now, before anything starts, are
// every target when the journal is empty, and otherwise the targets whose
// scheduler mark the journal lacks: their marks are seeded from the
// markers found (RecoveredSlots) before the scheduler first looks at them.
// The other targets are returned in later and reconciled in the background
// (reconcileLater), so a start with a journal does not wait for Atlas —
// except those whose mark Config.MarkCurrent says is current: no slot was
// due since the journal last fired one, so it lacks nothing a slot started.
func (e *Engine) recoverFromMarkers(ctx context.Context, active []run.Run) (_ []run.Run, later []recoveryTarget, _ error) {
	if !e.cfg.MarkerRecovery {
		return nil, nil, nil
	}
	e.mu.Lock()
	policies := make([]Policy, 0, len(e.policies))
	for _, p := range e.policies {
		policies = append(policies, p)
	}
	e.mu.Unlock()
	sort.Slice(policies, func(i, k int) bool { return policies[i].Name < policies[k].Name })

	// An empty journal (a new file, a memory journal) is one without a run.
	// One run of the history says so: decoding every target's summary
	// took a second of each start at fleet size. A history pruned empty
	// counts as empty too, and costs one reconciliation of every target.
	newest, err := e.j.History(journal.Query{Limit: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("reading the journal's newest run: %w", err)
	}
	empty := (len(active) == 0 && len(newest) == 0) || e.cfg.ReconcileAll
	busy := make(map[string]bool, len(active))
	for _, r := range active {
		busy[key(r.Policy, r.Target)] = true
	}
	markCurrent := e.cfg.MarkCurrent
	e.cfg.MarkCurrent = nil // asked once, here: release what it holds
	now := e.clk.Now()
	var todo []recoveryTarget // reconciled now, before anything starts
	for _, p := range policies {
		for _, t := range p.Targets {
			if !empty {
				if m, has, err := e.j.Mark(key(p.Name, t)); err == nil && has {
					if markCurrent == nil || !markCurrent(key(p.Name, t), m, now) {
						later = append(later, recoveryTarget{p, t})
					}
					continue
				}
			}
			todo = append(todo, recoveryTarget{p, t})
		}
	}
	var out []run.Run
	for i, res := range e.reconcileEach(ctx, todo, func() time.Time { return now }) {
		p, t := todo[i].p, todo[i].t
		if res.err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			// One target Atlas cannot answer for holds up no other: it
			// is retried in the background (its run, if any, is attached
			// then; a slot fired meanwhile adopts its marked snapshot).
			e.log.Warn("cannot reconcile the journal with Atlas markers; retrying in the background",
				zap.String("policy", p.Name), zap.String("project", t.ProjectID), zap.String("cluster", t.Cluster), zap.Error(res.err))
			later = append(later, todo[i])
			continue
		}
		for _, r := range res.runs {
			if e.journalHas(r) {
				continue
			}
			if busy[key(r.Policy, r.Target)] {
				e.queueRecovered(r)
				continue
			}
			if err := e.j.Put(r); err != nil {
				return nil, nil, fmt.Errorf("recording recovered run %s: %w", r.ID, err)
			}
			busy[key(r.Policy, r.Target)] = true
			e.log.Info("recovered run from Atlas markers", runFields(r)...)
			out = append(out, r)
		}
	}
	return out, later, nil
}

// queueRecovered keeps, with ReconcileAll, a run the markers show in flight
// on a target the journal holds another run in flight for. A replica that
// leads again holds a journal as old as its last term: its run there may
// have been carried to the end by another leader, which then started this
// one. The journal's run goes first (it adopts what Atlas shows by its
// markers); this one is attached when it ends (attachQueued). Without
// ReconcileAll the journal is the truth and the run is not queued.
func (e *Engine) queueRecovered(r run.Run) {
	if !e.cfg.ReconcileAll {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := key(r.Policy, r.Target)
	e.queued[k] = append(e.queued[k], r)
	e.log.Info("run found by its Atlas marker waits for the journal's run on its target", runFields(r)...)
}

// attachQueued attaches the first run queued for key that the journal
// still lacks, once the run in flight there has ended.
func (e *Engine) attachQueued(ctx context.Context, k string) {
	e.mu.Lock()
	rs := e.queued[k]
	delete(e.queued, k)
	e.mu.Unlock()
	for i, r := range rs {
		if e.attachRecovered(ctx, r) {
			if rest := rs[i+1:]; len(rest) > 0 {
				e.mu.Lock()
				e.queued[k] = append(e.queued[k], rest...)
				e.mu.Unlock()
			}
			return
		}
	}
}

// recoveryTarget is a policy's target left for reconcileLater.
type recoveryTarget struct {
	p Policy
	t run.Target
}

// journalHas reports whether the journal already knows the run a marker
// shows: by its id, or (restore jobs carry no marker) by its job id among
// the target's recent runs.
func (e *Engine) journalHas(r run.Run) bool {
	if _, ok, err := e.j.Get(r.ID); err != nil || ok {
		return true // unreadable: leave it to the journal rather than risk a second run
	}
	if r.RestoreJobID == "" {
		return false
	}
	t := r.Target
	rs, err := e.j.History(journal.Query{Policy: r.Policy, Target: &t, Limit: 64})
	if err != nil {
		return true
	}
	return slices.ContainsFunc(rs, func(h run.Run) bool { return h.RestoreJobID == r.RestoreJobID })
}

// reconcileLater recovers, one target at a time, what the markers show in
// flight on targets the journal has marks for (or that Atlas could not
// answer for at start), and attaches each run the journal lacks unless its
// target has a run in flight by then. Targets Atlas cannot answer for are
// retried, backing off from a minute to 15, for as long as a marker could
// still matter (RecoveryWindow).
func (e *Engine) reconcileLater(ctx context.Context, targets []recoveryTarget) {
	defer e.wg.Done()
	const firstRetry, maxRetry = time.Minute, 15 * time.Minute
	giveUp := e.clk.Now().Add(e.cfg.RecoveryWindow)
	found, total := 0, len(targets)
	for wait := firstRetry; ; wait = min(2*wait, maxRetry) {
		var failed []recoveryTarget
		for i, res := range e.reconcileEach(ctx, targets, e.clk.Now) {
			rt := targets[i]
			if ctx.Err() != nil {
				return
			}
			if res.err != nil {
				e.log.Warn("cannot reconcile the journal with Atlas markers", zap.String("policy", rt.p.Name),
					zap.String("project", rt.t.ProjectID), zap.String("cluster", rt.t.Cluster), zap.Error(res.err))
				failed = append(failed, rt)
				continue
			}
			for _, r := range res.runs {
				if e.attachRecovered(ctx, r) {
					found++
				}
			}
		}
		if len(failed) == 0 {
			e.log.Info("reconciled the journal with Atlas markers", zap.Int("targets", total), zap.Int("recoveredRuns", found))
			return
		}
		if !e.clk.Now().Add(wait).Before(giveUp) {
			e.log.Error("gave up reconciling the journal with Atlas markers: runs in flight on these targets before the start may not be carried to the end",
				zap.Int("targets", len(failed)), zap.Duration("tried", e.cfg.RecoveryWindow))
			return
		}
		if clock.Sleep(ctx, e.clk, wait) != nil {
			return
		}
		targets = failed
	}
}

// reconcileParallel is how many targets are reconciled with Atlas's markers
// at once. Each costs two or three reads, and a project's reads wait for its
// request budget: one target at a time, the 30,000 reads of a fresh journal
// (or a new leader's term) at 10,000 targets took hours at Atlas's 100
// requests a minute per project (a fleet run read 235 targets in 200
// simulated seconds); at once, each project's budget is the only bound.
const reconcileParallel = 32

// reconciled is what reconcileTarget answered for one target.
type reconciled struct {
	runs []run.Run
	err  error
}

// reconcileEach reconciles targets, up to reconcileParallel at once, and
// returns their answers in the order of targets; now gives each its time.
// Once ctx ends, the targets not yet started answer ctx's error.
func (e *Engine) reconcileEach(ctx context.Context, targets []recoveryTarget, now func() time.Time) []reconciled {
	out := make([]reconciled, len(targets))
	sem := make(chan struct{}, reconcileParallel)
	var wg sync.WaitGroup
	for i, rt := range targets {
		if ctx.Err() != nil {
			out[i].err = ctx.Err()
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i].runs, out[i].err = e.reconcileTarget(ctx, rt.p, rt.t, now())
		})
	}
	wg.Wait()
	return out
}

// attachRecovered records and starts a run found by its marker, unless the
// journal has it or its target has a run in flight.
func (e *Engine) attachRecovered(ctx context.Context, r run.Run) bool {
	k := key(r.Policy, r.Target)
	e.mu.Lock()
	if _, busy := e.inflight[k]; busy || ctx.Err() != nil || e.journalHas(r) {
		e.mu.Unlock()
		return false
	}
	t := newTask(r, e.specs[r.Policy])
	e.inflight[k] = t // reserved: a slot fired meanwhile sees it
	e.mu.Unlock()
	if err := e.j.Put(r); err != nil {
		e.mu.Lock()
		if e.inflight[k] == t {
			delete(e.inflight, k)
		}
		e.mu.Unlock()
		e.log.Warn("cannot record a run recovered from Atlas markers", append(runFields(r), zap.Error(err))...)
		return false
	}
	e.log.Info("recovered run from Atlas markers", runFields(r)...)
	e.launch(t)
	return true
}

// Finished is a run Atlas's markers show ended: its snapshot failed or
// completed (and, for a policy that exports, its marked export ended), or,
// for an export policy, its labelled export job ended.
type Finished struct {
	ID        run.ID
	Slot      time.Time
	Succeeded bool
	// SnapshotAt is when its completed snapshot was taken (zero when the
	// snapshot failed, or for an export policy); a lower bound of when the
	// run saw it complete.
	SnapshotAt time.Time
	// ExportAt is when its export finished successfully (zero otherwise).
	ExportAt time.Time
	// SnapshotBytes is the size of its completed snapshot (0 unknown).
	SnapshotBytes int64
}

// newer reports whether f ended a later run than g: by slot, then by id so
// that two runs of one slot (a manual one) compare the same way every time.
func (f *Finished) newer(g *Finished) bool {
	if g == nil {
		return true
	}
	if !f.Slot.Equal(g.Slot) {
		return f.Slot.After(g.Slot)
	}
	return f.ID > g.ID
}

// reconcileTarget is recoverTarget, telling Config.Reconciled what it saw.
func (e *Engine) reconcileTarget(ctx context.Context, p Policy, t run.Target, now time.Time) ([]run.Run, error) {
	rs, newest, err := e.recoverTarget(ctx, p, t, now)
	if err == nil && e.cfg.Reconciled != nil && (p.Action == run.ActionSnapshot || p.Action == run.ActionExport) {
		e.cfg.Reconciled(p.Name, t, newest)
	}
	return rs, err
}

// recoverTarget returns the runs of p on t that Atlas's markers show in
// flight, and the newest one they show finished (nil: none, or a restore
// policy, whose jobs carry no marker).
func (e *Engine) recoverTarget(ctx context.Context, p Policy, t run.Target, now time.Time) (_ []run.Run, newest *Finished, _ error) {
	base := func(id run.ID, slot time.Time, manual bool) run.Run {
		r := e.newRun(p, t, slot, slot, manual)
		r.ID = id
		r.StageStartedAt = now
		return r
	}
	switch p.Action {
	case run.ActionFlexRestore:
		jobs, err := e.atlas.ListFlexRestores(ctx, t.ProjectID, t.Cluster)
		if err != nil {
			return nil, nil, err
		}
		var out []run.Run
		for _, j := range jobs {
			if j.Status.Terminal() || j.TargetDeploymentItemName != p.Spec.TargetCluster {
				continue
			}
			slot := j.RestoreScheduledDate
			r := base(run.NewID(p.Name, t.ProjectID, t.Cluster, slot, false), slot, false)
			r.Stage = run.StageRestoring
			r.FlexSnapshotID, r.RestoreRequested = j.SnapshotID, true
			out = append(out, adoptFlexJob(r, &j))
		}
		return out, newest, nil
	case run.ActionRestoreDrill:
		// Without a journal, a drill's unfinished restore into its target
		// is re-attached and waited out; the job carries no marker, so the
		// slot is its creation time.
		jobs, err := e.atlas.ListRestores(ctx, t.ProjectID, t.Cluster)
		if err != nil {
			return nil, nil, err
		}
		var out []run.Run
		tgt := run.Target{ProjectID: p.Spec.TargetProjectID, Cluster: p.Spec.TargetCluster}
		for i := range jobs {
			j := &jobs[i]
			at, ok := j.CreatedAt()
			if !ok || j.State().Terminal() || !restoresInto(j, tgt) {
				continue
			}
			r := base(run.NewID(p.Name, t.ProjectID, t.Cluster, at, false), at, false)
			r.Stage = run.StageRestoring
			r.SnapshotID, r.RestoreRequested = j.SnapshotID, true
			r.Drill.SnapshotAt = j.Timestamp
			r = adoptDrillJob(r, j)
			out = append(out, r)
		}
		return out, newest, nil
	}

	c, err := e.atlas.GetCluster(ctx, t.ProjectID, t.Cluster)
	if atlas.IsNotFound(err) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	kind := atlas.KindReplicaSet
	if c.ClusterType == atlas.ClusterSharded || c.ClusterType == atlas.ClusterGeoSharded {
		kind = atlas.KindShardedCluster
	}
	var exports []atlas.ExportJob
	if p.Spec.ExportBucketID != "" {
		if exports, err = e.atlas.ListExports(ctx, t.ProjectID, t.Cluster); err != nil {
			return nil, nil, err
		}
	}
	var out []run.Run
	if p.Action == run.ActionExport {
		for _, j := range exports {
			if label(j, "backupd.policy") != p.Name {
				continue
			}
			if j.State.Terminal() {
				slot, _ := time.Parse(time.RFC3339, label(j, "backupd.scheduledAt"))
				id := run.ID(label(j, "backupd.run"))
				e.noteRecovered(base(id, slot, false))
				f := &Finished{ID: id, Slot: slot, Succeeded: j.State == atlas.ExportSuccessful}
				if f.Succeeded {
					f.ExportAt = exportFinishedAt(j)
				}
				if f.newer(newest) {
					newest = f
				}
				continue
			}
			slot, _ := time.Parse(time.RFC3339, label(j, "backupd.scheduledAt"))
			r := base(run.ID(label(j, "backupd.run")), slot, false)
			e.noteRecovered(r)
			r.Stage, r.SnapshotKind = run.StageExporting, string(kind)
			r.SnapshotID, r.ExportBucketID, r.ExportJobID, r.ExportState, r.ExportRequested = j.SnapshotID, j.ExportBucketID, j.ID, string(j.State), true
			out = append(out, r)
		}
		return out, newest, nil
	}

	snaps, err := e.atlas.ListSnapshots(ctx, t.ProjectID, t.Cluster, kind)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range snaps {
		m := markerRE.FindStringSubmatch(s.Description)
		if m == nil || m[2] != p.Name || now.Sub(s.CreatedAt) > e.cfg.RecoveryWindow {
			continue
		}
		slot, err := time.Parse(time.RFC3339, m[3])
		if err != nil {
			continue
		}
		r := base(run.ID(m[1]), slot, m[4] != "")
		e.noteRecovered(r)
		r = adoptSnapshot(r, &s)
		r.SnapshotRequested = true
		switch {
		case !s.Status.Terminal():
			r.Stage = run.StageSnapshotting
		case s.Status == atlas.SnapshotCompleted && p.Spec.ExportBucketID != "":
			j := findExport(exports, r.ID)
			if j != nil && j.State.Terminal() {
				f := &Finished{ID: r.ID, Slot: slot, Succeeded: j.State == atlas.ExportSuccessful, SnapshotAt: s.CreatedAt, SnapshotBytes: s.StorageSizeBytes}
				if f.Succeeded {
					f.ExportAt = exportFinishedAt(*j)
				}
				if f.newer(newest) {
					newest = f
				}
				continue // the run finished
			}
			r.Stage = run.StageExporting
			if j != nil {
				r.ExportJobID, r.ExportState, r.ExportRequested = j.ID, string(j.State), true
			}
		default: // finished: completed without export, or failed
			f := &Finished{ID: r.ID, Slot: slot, Succeeded: s.Status == atlas.SnapshotCompleted}
			if f.Succeeded {
				f.SnapshotAt, f.SnapshotBytes = s.CreatedAt, s.StorageSizeBytes
			}
			if f.newer(newest) {
				newest = f
			}
			continue
		}
		e.log.Debug("marker found", zap.String("snapshotID", s.ID), zap.String("run", m[1]))
		out = append(out, r)
	}
	return out, newest, nil
}

// exportFinishedAt is when an ended export job finished, by Atlas's
// finishedAt, else its creation (a lower bound).
func exportFinishedAt(j atlas.ExportJob) time.Time {
	if !j.FinishedAt.IsZero() {
		return j.FinishedAt
	}
	return j.CreatedAt
}

func label(j atlas.ExportJob, k string) string {
	for _, l := range j.CustomData {
		if l.Key == k {
			return l.Value
		}
	}
	return ""
}

// noteRecovered remembers a run Atlas's markers show was started, finished
// or not, so Fire never starts its slot again and the scheduler can resume
// from the newest slot Atlas has seen (RecoveredSlots).
func (e *Engine) noteRecovered(r run.Run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen[r.ID] = true
	if r.Manual {
		return
	}
	k := key(r.Policy, r.Target)
	if r.Slot.After(e.lastSlots[k]) {
		e.lastSlots[k] = r.Slot
	}
}

// RecoveredSlots returns, per policy and target, the newest scheduled slot
// whose marker Start found in Atlas. Without a journal the daemon seeds the
// scheduler's marks from it, so a slot that fired before a crash but never
// reached Atlas is caught up, and one that did is not fired again.
func (e *Engine) RecoveredSlots() map[string]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]time.Time, len(e.lastSlots))
	for k, v := range e.lastSlots {
		out[k] = v
	}
	return out
}

// Key is the scheduler and RecoveredSlots key of a policy on a target.
func Key(policy string, t run.Target) string { return key(policy, t) }
