// Package engine carries runs from a fired slot to a terminal state: it waits
// for the cluster, takes the snapshot, chains the export or runs the flex
// restore, and writes every transition to the journal before acting on it.
//
// The engine decides nothing about time: the scheduler tells it which slot
// fired, and it derives the run id from that slot, so a slot can only ever
// produce one run — across crashes, restarts and reloads.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/pollplan"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/verify"
)

// Policy is what the engine needs to know of a configured policy.
type Policy struct {
	Name    string
	Action  run.Action
	Spec    run.Spec
	Targets []run.Target // resolved targets; Trigger acts on these
}

// Config wires the engine's dependencies.
type Config struct {
	Clock    clock.Clock
	Journal  journal.Journal
	Atlas    Atlas
	Observer run.Observer // receives every transition after the journal has it
	Logger   *zap.Logger
	// PollMin and PollMax bound the polling backoff (default 10s and 1m).
	PollMin, PollMax time.Duration
	// MarkerRecovery makes Start reconcile the journal with the markers
	// backupd leaves in Atlas, recovering the runs in flight it lacks (a
	// memory journal, a new or older file; see recoverFromMarkers).
	MarkerRecovery bool
	// MarkCurrent, when set, reports whether a target's journal mark shows
	// every slot due by now fired. The journal is then current for that
	// target and start-up reconciliation skips it: a journal that restarts
	// normally costs Atlas nothing, while an older copy (marks behind the
	// schedule) is still reconciled. Nil reconciles every target with a mark.
	// It is asked only during Start and released after: what it closes
	// over (the daemon's index of every scheduler entry, MiBs at fleet
	// size) is not kept for the life of the process.
	MarkCurrent func(key string, m journal.Mark, now time.Time) bool
	// RecoveryWindow bounds how far back marker recovery looks (default 48h).
	RecoveryWindow time.Duration
	// Fence, when set, admits every creating request to Atlas (leader
	// election: see Fencer). Nil sends them unfenced, as a single replica.
	Fence Fencer
	// ReconcileAll makes Start reconcile every target with Atlas's markers
	// before anything runs, as for an empty journal, whatever the journal's
	// marks say: a replica that has just become leader cannot know from its
	// own journal what the previous leader did.
	ReconcileAll bool
	// Reconciled, when set, is told each time marker recovery has read a
	// snapshot or export policy's target from Atlas (at Start, and for the
	// targets left to the background, when they are read): the newest run
	// of the policy there that Atlas's markers show finished, nil when they
	// show none. A new leader's journal stops at its last term; this is
	// what the previous leaders did (the daemon publishes the last-run
	// series from it). Restore policies leave no markers and are not
	// reported. Targets are reconciled several at once, so it is called
	// concurrently and must be safe for that.
	Reconciled func(policy string, t run.Target, newest *Finished)
	// Verifier runs restore drills' verify commands (default verify.Runner
	// on the engine's clock).
	Verifier Verifier
	// Workers bounds how many runs are stepped at once (default 64). Runs
	// that wait for Atlas hold no worker, so this bounds concurrent Atlas
	// requests and memory, not the number of runs in flight.
	Workers int
	// VerifyWorkers bounds how many drill verify commands run at once
	// (default 4). They run beside the workers, not in them: a command may
	// take many minutes, and one holding a worker meanwhile would starve
	// the snapshot and export chains once as many drills verify as there
	// are workers. A drill past the bound waits without a worker.
	VerifyWorkers int
	// FixedPolling polls every job with the backoff alone, ignoring the
	// cluster's history: a baseline to measure learned polling against.
	FixedPolling bool
}

// ErrUnknownPolicy and ErrUnknownTarget are returned by Trigger.
var (
	ErrUnknownPolicy = errors.New("unknown policy")
	ErrUnknownTarget = errors.New("target is not one of the policy's resolved targets")
	ErrStopping      = errors.New("backupd is shutting down")
)

// Engine runs policies on targets. Create it with New, call Start once, then
// Fire (from the scheduler) and Trigger (from the admin API).
type Engine struct {
	cfg         Config
	clk         clock.Clock
	j           journal.Journal
	atlas       Atlas
	obs         run.Observer
	log         *zap.Logger
	locks       *clusterLocks
	disp        *dispatcher
	workers     chan struct{} // one token per run being stepped
	verifySlots chan struct{} // one token per verify command running

	mu       sync.Mutex
	policies map[string]Policy
	// specs are the policies' specs by name, one copy each, which the
	// runs in flight of a policy share while theirs is the same (taskRun).
	specs     map[string]*run.Spec
	inflight  map[string]*task     // key: policy|project|cluster → the run in flight
	seen      map[run.ID]bool      // runs marker recovery found in Atlas
	lastSlots map[string]time.Time // newest slot per key marker recovery found
	queued    map[string][]run.Run // runs marker recovery found behind the journal's run on their key (queueRecovered)
	ctx       context.Context      // set by Start; the dispatcher and steps live under it
	startedAt time.Time            // when Start ran: stages entered before are from an earlier process
	wg        sync.WaitGroup       // the dispatcher and the steps under way

	// unsavedRuns counts the runs waiting for the journal to take a
	// transition it refused; unsavedErr is the last refusal.
	unsavedRuns int
	unsavedErr  error

	// hist is the clusters' recent job durations learned polling plans from.
	hist history
}

// New returns an engine; nothing runs until Start.
func New(cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Observer == nil {
		cfg.Observer = run.Observers(nil)
	}
	if cfg.PollMin <= 0 {
		cfg.PollMin = 10 * time.Second
	}
	if cfg.PollMax <= 0 {
		cfg.PollMax = time.Minute
	}
	if cfg.RecoveryWindow <= 0 {
		cfg.RecoveryWindow = 48 * time.Hour
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.VerifyWorkers <= 0 {
		cfg.VerifyWorkers = 4
	}
	if cfg.Verifier == nil {
		cfg.Verifier = verify.Runner{Clock: cfg.Clock, MaxOutput: run.MaxVerifyOutput}
	}
	e := &Engine{
		cfg: cfg, clk: cfg.Clock, j: cfg.Journal, atlas: cfg.Atlas, obs: cfg.Observer, log: cfg.Logger,
		disp:        newDispatcher(),
		workers:     make(chan struct{}, cfg.Workers),
		verifySlots: make(chan struct{}, cfg.VerifyWorkers),
		policies:    map[string]Policy{},
		inflight:    map[string]*task{},
		seen:        map[run.ID]bool{},
		lastSlots:   map[string]time.Time{},
		queued:      map[string][]run.Run{},
	}
	e.hist = newHistory(pollplan.Plan{Min: cfg.PollMin, Max: cfg.PollMax})
	if cfg.Fence != nil {
		e.atlas = fencedAtlas{Atlas: cfg.Atlas, f: cfg.Fence}
	}
	e.locks = newClusterLocks(func(t *task) { e.disp.schedule(t, e.clk.Now()) })
	return e
}

func key(policy string, t run.Target) string { return policy + "|" + t.ProjectID + "|" + t.Cluster }

// SetPolicies replaces the policy set (start and reload). Runs in flight keep
// the spec they started with.
func (e *Engine) SetPolicies(ps []Policy) {
	m := make(map[string]Policy, len(ps))
	specs := make(map[string]*run.Spec, len(ps))
	for _, p := range ps {
		m[p.Name] = p
		specs[p.Name] = new(p.Spec)
	}
	e.mu.Lock()
	e.policies = m
	e.specs = specs
	e.mu.Unlock()
}

// Policy returns a configured policy by name.
func (e *Engine) Policy(name string) (Policy, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.policies[name]
	return p, ok
}

// Start re-attaches every run the journal holds in flight (and, with
// MarkerRecovery, every run Atlas's markers show in flight that the journal
// lacks) and carries each to the end in the background. Runs stop, with their state
// persisted, when ctx ends; Wait waits for the steps under way.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.ctx != nil {
		e.mu.Unlock()
		return errors.New("engine already started")
	}
	e.ctx = ctx
	e.startedAt = e.clk.Now()
	e.mu.Unlock()

	active, err := e.j.Active()
	if err != nil {
		return fmt.Errorf("reading in-flight runs from the journal: %w", err)
	}
	recovered, later, err := e.recoverFromMarkers(ctx, active)
	if err != nil {
		return err
	}
	active = append(active, recovered...)
	// Runs past the waiting stage already hold their cluster in Atlas's
	// eyes: they take their locks before any waiting run can.
	sort.SliceStable(active, func(i, k int) bool {
		return stageOrder(active[i].Stage) > stageOrder(active[k].Stage)
	})
	for _, r := range active {
		e.log.Info("re-attaching run", runFields(r)...)
		k := key(r.Policy, r.Target)
		e.mu.Lock()
		t := newTask(r, e.specs[r.Policy])
		e.inflight[k] = t
		e.mu.Unlock()
		e.launch(t)
	}
	e.wg.Add(1)
	go e.dispatch(ctx)
	if len(later) > 0 {
		e.wg.Add(1)
		go e.reconcileLater(ctx, later)
	}
	return nil
}

// launch hands a re-attached run, already in the in-flight table, to the
// dispatcher; one past the waiting stage takes its cluster locks first.
func (e *Engine) launch(t *task) {
	if stageOrder(t.r.Stage) == 2 {
		e.locks.tryAcquire(t.r.lockKeys(), t.r.ID, nil)
	}
	e.emit(t.r.get(), t.r.Stage, 0, "re-attached after restart")
	e.disp.schedule(t, e.clk.Now())
}

func stageOrder(s run.Stage) int {
	switch s {
	case run.StageSnapshotting, run.StageExporting, run.StageRestoring, run.StageVerifying:
		return 2
	case run.StageWaiting:
		return 1
	}
	return 0
}

// Wait blocks, after the Start context ended, until the dispatcher and every
// step under way have returned. Parked runs need no waiting: their state is
// in the journal.
func (e *Engine) Wait() { e.wg.Wait() }

// Active returns the runs in flight, oldest first.
func (e *Engine) Active() []run.Run {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]run.Run, 0, len(e.inflight))
	for _, t := range e.inflight {
		out = append(out, t.r.get())
	}
	sort.Slice(out, func(i, k int) bool { return out[i].CreatedAt.Before(out[k].CreatedAt) })
	return out
}

// JournalHealth is nil unless runs are waiting for the journal to take a
// transition it refused (a full disk): they go on only once it does, so
// readiness reports it.
func (e *Engine) JournalHealth() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unsavedRuns == 0 {
		return nil
	}
	return fmt.Errorf("%d runs wait for the journal to record their state: %w", e.unsavedRuns, e.unsavedErr)
}

// InFlight returns the run in flight for a policy on a target.
func (e *Engine) InFlight(policy string, t run.Target) (run.Run, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tk, ok := e.inflight[key(policy, t)]
	if !ok {
		return run.Run{}, false
	}
	return tk.r.get(), true
}

// Fire starts the run for one scheduled slot. It returns once the run is
// durable in the journal (or was already there: firing a slot twice is
// harmless). skip, when set, records the slot as skipped for that reason,
// and detail says why in the run's history (a paused cluster, say).
func (e *Engine) Fire(ctx context.Context, policy string, t run.Target, slot, at time.Time, catchUp bool, skip, detail string) error {
	p, ok := e.Policy(policy)
	if !ok {
		return fmt.Errorf("firing %s for %s: %w", policy, t, ErrUnknownPolicy)
	}
	r := e.newRun(p, t, slot, at, false)
	r.CatchUp = catchUp
	if skip != "" {
		r.Detail = detail
	}
	_, err := e.admit(ctx, r, skip)
	return err
}

// Trigger runs a policy now on one target (or on all its resolved targets
// when t is nil), with the same locks and overlap rules as a scheduled slot.
// It returns the runs it created, including ones recorded as skipped.
func (e *Engine) Trigger(ctx context.Context, policy string, t *run.Target) ([]run.Run, error) {
	p, ok := e.Policy(policy)
	if !ok {
		return nil, fmt.Errorf("triggering %q: %w", policy, ErrUnknownPolicy)
	}
	targets := p.Targets
	if t != nil {
		found := false
		for _, pt := range p.Targets {
			if pt == *t {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("triggering %q on %s: %w", policy, t, ErrUnknownTarget)
		}
		targets = []run.Target{*t}
	}
	now := e.clk.Now()
	var out []run.Run
	for _, tg := range targets {
		r := e.newRun(p, tg, now, now, true)
		r, err := e.admit(ctx, r, "")
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *Engine) newRun(p Policy, t run.Target, slot, at time.Time, manual bool) run.Run {
	now := e.clk.Now()
	return run.Run{
		ID:             run.NewID(p.Name, t.ProjectID, t.Cluster, slot, manual),
		Policy:         p.Name,
		Action:         p.Action,
		Target:         t,
		Slot:           slot,
		ScheduledAt:    at,
		Manual:         manual,
		Spec:           p.Spec,
		Stage:          run.StagePending,
		CreatedAt:      now,
		StageStartedAt: now,
		UpdatedAt:      now,
	}
}

// admit persists a new run (pending, or skipped) and hands it to the
// dispatcher. A run id already in the journal is returned as it is: its slot
// was handled.
func (e *Engine) admit(ctx context.Context, r run.Run, skip string) (run.Run, error) {
	r, t, launched, err := e.record(ctx, r, skip)
	if err != nil || !launched {
		return r, err
	}
	e.emit(r, "", 0, "")
	if t != nil {
		e.disp.schedule(t, e.clk.Now())
	}
	return r, nil
}

// record decides what becomes of a new run and persists it; t is its task
// when it is to run. launched is false when the run already existed. The
// decision is taken under the engine's lock, which the journal write is not:
// a run in flight is reserved first, so a slot fired meanwhile on the same
// target sees it, and every other run's progress goes on during the write.
func (e *Engine) record(ctx context.Context, r run.Run, skip string) (_ run.Run, _ *task, launched bool, _ error) {
	e.mu.Lock()
	if e.ctx == nil {
		e.mu.Unlock()
		return r, nil, false, errors.New("engine not started")
	}
	k := key(r.Policy, r.Target)
	prev, busy := e.inflight[k]
	if busy && prev.r.ID == r.ID {
		defer e.mu.Unlock()
		return prev.r.get(), nil, false, nil
	}
	if existing, ok, err := e.j.Get(r.ID); err != nil {
		e.mu.Unlock()
		return r, nil, false, fmt.Errorf("looking up run %s: %w", r.ID, err)
	} else if ok {
		e.mu.Unlock()
		return existing, nil, false, nil
	}
	if e.seen[r.ID] {
		e.mu.Unlock()
		r.Detail = "already started before the restart (found by its Atlas marker)"
		return r, nil, false, nil
	}
	if e.ctx.Err() != nil || ctx.Err() != nil {
		if !r.Manual {
			e.mu.Unlock()
			// Not recorded: the scheduler keeps the slot and a restart catches it up.
			return r, nil, false, ErrStopping
		}
		skip = run.ReasonShutdown
	}
	if busy && skip == "" {
		skip = run.ReasonOverlap
		r.Detail = "run " + string(prev.r.ID) + " is still " + string(prev.r.Stage)
	}
	if skip != "" {
		r.Stage = run.StageSkipped
		r.Reason = skip
		r.FinishedAt = r.CreatedAt
		if r.Detail == "" {
			r.Detail = skipDetail(skip)
		}
	}
	var t *task
	if !r.Stage.Terminal() {
		t = newTask(r, e.specs[r.Policy])
		e.inflight[k] = t
	}
	e.mu.Unlock()

	if err := e.j.Put(r); err != nil {
		if t != nil {
			e.mu.Lock()
			if e.inflight[k] == t {
				delete(e.inflight, k)
			}
			e.mu.Unlock()
		}
		return r, nil, false, fmt.Errorf("recording run %s: %w", r.ID, err)
	}
	return r, t, true, nil
}

func skipDetail(reason string) string {
	switch reason {
	case run.ReasonMissed:
		return "the slot passed while backupd was not running (missed: skip)"
	case run.ReasonShutdown:
		return "backupd was shutting down"
	}
	return ""
}

// save persists r (stamping UpdatedAt) and tells observers. It is called
// before the engine acts on the new state. When the journal refuses the
// write, the error is an *unsavedError carrying the write: step retries
// exactly that write, and until it succeeds the engine knows the run only
// in its last durable state.
func (e *Engine) save(r run.Run, from run.Stage, note string) (run.Run, error) {
	now := e.clk.Now()
	w := pendingWrite{r: r, from: from, note: note}
	if from != r.Stage {
		w.stageDur = now.Sub(r.StageStartedAt)
		w.r.StageStartedAt = now
		if r.Stage.Terminal() {
			w.r.FinishedAt = now
		}
	}
	w.r.UpdatedAt = now
	if err := e.commit(w, false); err != nil {
		return w.r, &unsavedError{w: w, err: err}
	}
	return w.r, nil
}

// pendingWrite is one transition as save persists it.
type pendingWrite struct {
	r        run.Run
	from     run.Stage
	stageDur time.Duration
	note     string
}

// unsavedError is a transition the journal refused (disk full, I/O error).
type unsavedError struct {
	w   pendingWrite
	err error
}

func (u *unsavedError) Error() string {
	return fmt.Sprintf("recording run %s stage %s: %v", u.w.r.ID, u.w.r.Stage, u.err)
}

func (u *unsavedError) Unwrap() error { return u.err }

// commit writes w to the journal and, once it is durable, updates the
// in-flight table (a terminal run leaves it, freeing its target for the
// next slot) and tells observers. retry marks the write of a transition
// the journal refused before: the run no longer waits for the journal.
func (e *Engine) commit(w pendingWrite, retry bool) error {
	r := w.r
	if err := e.j.Put(r); err != nil {
		return err
	}
	e.mu.Lock()
	if retry {
		e.unsavedRuns--
	}
	k := key(r.Policy, r.Target)
	if cur, ok := e.inflight[k]; ok && cur.r.ID == r.ID {
		if r.Stage.Terminal() {
			delete(e.inflight, k)
		} else {
			cur.r.set(r, nil)
		}
	}
	e.mu.Unlock()
	e.learn(r, w.from)
	e.emit(r, w.from, w.stageDur, w.note)
	return nil
}

func (e *Engine) emit(r run.Run, from run.Stage, d time.Duration, note string) {
	e.obs.Observe(run.Event{Run: r, From: from, At: e.clk.Now(), StageDuration: d, Note: note})
}

func runFields(r run.Run) []zap.Field {
	fs := []zap.Field{
		zap.String("policy", r.Policy), zap.String("project", r.Target.ProjectID),
		zap.String("cluster", r.Target.Cluster), zap.String("run", string(r.ID)), zap.String("stage", string(r.Stage)),
	}
	for _, kv := range [][2]string{{"snapshotID", r.SnapshotID}, {"exportJobID", r.ExportJobID}, {"exportBucketID", r.ExportBucketID}, {"flexSnapshotID", r.FlexSnapshotID}, {"restoreJobID", r.RestoreJobID}} {
		if kv[1] != "" {
			fs = append(fs, zap.String(kv[0], kv[1]))
		}
	}
	return fs
}
