package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/metrics"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/scheduler"
)

// With an ha: section the daemon acts in terms: a term is one spell of
// holding the lease, and only during a term do an engine and a scheduler
// run. Every replica resolves targets, serves HTTP and metrics; only the
// leader fires slots, accepts triggers and sends to Atlas, each POST through
// the elector's fence. A term starts like a restart on a journal that knows
// nothing: the engine reconciles every target with Atlas's markers (the
// previous leader's runs are in its journal, not ours) and the scheduler's
// marks are advanced to the newest slot Atlas shows, so a slot the previous
// leader ran is not run again and one missed during the change of leader
// gets the policy's missed treatment. Losing the lease ends the term at
// once: the engine stops with every run parked in its journal state.

// leadership is the daemon's side of the election.
type leadership struct {
	el    leader.Elector
	cfg   policy.HA
	gauge *metrics.Leadership
	// outcomes are the run-outcome series, exported only while leading.
	outcomes *metrics.Metrics
	kick     chan struct{} // capacity 1: leadership changed

	endMu sync.Mutex // serialises endTerm: whoever calls it returns once the term has stopped
	mu    sync.Mutex
	term  *term // nil between terms
}

// term is one spell of leading.
type term struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once its scheduler and engine have stopped
	eng    *engine.Engine
	ready  bool // the engine re-attached the runs and the scheduler runs
}

// publish sets the leadership gauges and hides the run-outcome series
// unless this replica acts: a standby's journal is not the leader's and
// goes stale while it stands by, so only the leader exports them
// (metrics.SetStandby), and only once its term is ready, after the engine
// reconciled the targets with Atlas (metrics.Reconciled) and before that
// they would show what its own journal last knew.
func (l *leadership) publish(leading bool, leader string) {
	l.gauge.Set(leading, leader)
	l.mu.Lock()
	acting := leading && l.term != nil && l.term.ready
	l.mu.Unlock()
	l.outcomes.SetStandby(!acting)
}

func (l *leadership) changed() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// stopping ends the current term's context without waiting: called from
// the elector's StoppedLeading hook, so nothing more is sent from now on.
func (l *leadership) stopping() {
	l.mu.Lock()
	if l.term != nil {
		l.term.cancel()
	}
	l.mu.Unlock()
	l.changed()
}

// newLeadership builds the elector from the ha: section.
func (d *Daemon) newLeadership(cfg *policy.Config) (*leadership, error) {
	l := &leadership{cfg: *cfg.HA, kick: make(chan struct{}, 1), gauge: d.metrics.Leadership(), outcomes: d.metrics}
	// The fence runs on real time, not on d.clk: the other replicas expire
	// the lease by their real clocks, so under -time-scale a fence on the
	// scaled clock would close ten times too early (and, on a slowed clock,
	// too late).
	el, err := d.opts.Elect(*cfg.HA, leader.Options{Clock: clock.Real(), Logger: d.log.Named("ha"), Hooks: leader.Hooks{
		StartedLeading: l.changed,
		StoppedLeading: l.stopping,
		NewLeader:      func(string) { l.changed() },
		// On graceful stop, park the runs while still leading, once the
		// fenced requests have returned; then the lease is released.
		BeforeRelease: func(context.Context) { d.endTerm() },
	}})
	if err != nil {
		return nil, fmt.Errorf("setting up leader election on lease %s/%s: %w", cfg.HA.Namespace, cfg.HA.LeaseName, err)
	}
	l.el = el
	l.publish(false, "")
	return l, nil
}

// followLeadership starts a term whenever this replica leads and ends it
// when it stops leading, until ctx ends. parent is the runs' context.
func (d *Daemon) followLeadership(ctx, parent context.Context) {
	l := d.lead
	retry := time.Time{}
	for {
		leading := l.el.Leading()
		l.publish(leading, l.el.Leader())
		l.mu.Lock()
		cur := l.term
		l.mu.Unlock()
		switch {
		case leading && cur == nil && !d.clk.Now().Before(retry):
			if err := d.startTerm(parent); err != nil {
				d.log.Error("cannot act as leader yet: re-attaching the runs in flight failed; retrying", zap.Error(err))
				retry = d.clk.Now().Add(10 * time.Second)
			}
			continue
		case !leading && cur != nil:
			d.endTerm()
			continue
		}
		var wake <-chan time.Time
		var timer interface{ Stop() bool }
		if leading && cur == nil {
			t := d.clk.NewTimer(retry.Sub(d.clk.Now()))
			timer, wake = t, t.C()
		}
		select {
		case <-ctx.Done():
		case <-l.kick:
		case <-wake:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			d.endTerm()
			return
		}
	}
}

// startTerm starts acting: an engine that reconciles every target with
// Atlas's markers and re-attaches the journal's runs, marks advanced to
// what Atlas shows, then the scheduler.
func (d *Daemon) startTerm(parent context.Context) error {
	d.reloadMu.Lock() // a reload meanwhile applies to the started components
	defer d.reloadMu.Unlock()
	l := d.lead
	tctx, cancel := context.WithCancel(parent)
	t := &term{cancel: cancel, done: make(chan struct{})}
	l.mu.Lock()
	l.term = t
	l.mu.Unlock()
	if !l.el.Leading() { // lost before we began: StoppedLeading may have run already
		d.dropTerm(t)
		return nil
	}
	d.log.Info("this replica leads: re-attaching the runs in flight from the journal and Atlas's markers")
	cfg := d.Config()
	// The last-run results this replica holds are its journal's, as old as
	// its last term: withheld until the engine's reconciliation tells what
	// Atlas shows (reconciled) or a run of this term ends.
	d.metrics.BeginTerm()
	eng := d.newEngine(true)
	eng.SetPolicies(d.enginePolicies(cfg))
	if err := eng.Start(tctx); err != nil {
		cancel()
		eng.Wait()
		d.dropTerm(t)
		if tctx.Err() != nil {
			return nil // the term ended while starting
		}
		return err
	}
	d.advanceMarksFromAtlas(cfg, eng.RecoveredSlots())
	sched := d.newScheduler(eng)
	sched.Set(d.entries(cfg))
	d.actMu.Lock()
	d.engine, d.sched = eng, sched
	d.actMu.Unlock()
	l.mu.Lock()
	t.eng, t.ready = eng, true
	l.mu.Unlock()
	l.publish(l.el.Leading(), l.el.Leader())
	go func() {
		defer close(t.done)
		_ = sched.Run(tctx)
		eng.Wait()
	}()
	d.log.Info("this replica acts: firing slots and accepting triggers")
	return nil
}

// dropTerm forgets a term that never ran.
func (d *Daemon) dropTerm(t *term) {
	t.cancel()
	close(t.done)
	l := d.lead
	l.mu.Lock()
	if l.term == t {
		l.term = nil
	}
	l.mu.Unlock()
}

// endTerm stops acting and waits until the scheduler and the engine have
// stopped. The runs stay in the journal in their last recorded state, as
// at a shutdown; the next leader finds them by their markers. A fresh,
// unstarted engine and scheduler replace the stopped ones, so status shows
// no runs this replica no longer drives.
func (d *Daemon) endTerm() {
	l := d.lead
	l.endMu.Lock()
	defer l.endMu.Unlock()
	l.mu.Lock()
	t := l.term
	l.term = nil
	l.mu.Unlock()
	if t == nil {
		return
	}
	t.cancel()
	<-t.done
	cfg := d.Config()
	eng := d.newEngine(true)
	eng.SetPolicies(d.enginePolicies(cfg))
	sched := d.newScheduler(eng)
	d.actMu.Lock()
	d.engine, d.sched = eng, sched
	d.actMu.Unlock()
	d.log.Info("this replica stands by: no slot fires and nothing is sent to Atlas until it leads again")
}

// acting is nil when this replica may start runs, else why not.
func (d *Daemon) acting() *httpapi.StandbyError {
	l := d.lead
	if l == nil {
		return nil
	}
	l.mu.Lock()
	t := l.term
	l.mu.Unlock()
	switch {
	case !l.el.Leading():
		return &httpapi.StandbyError{Leader: otherLeader(l.el), Reason: "standby: another replica holds the lease"}
	case t == nil || !t.ready:
		return &httpapi.StandbyError{Leader: "", Reason: "just acquired the lease and re-attaching the runs in flight"}
	}
	return nil
}

func otherLeader(el leader.Elector) string {
	if id := el.Leader(); id != el.Identity() {
		return id
	}
	return ""
}

// haStatus is the status section of the election.
func (d *Daemon) haStatus() *run.HAStatus {
	l := d.lead
	if l == nil {
		return nil
	}
	s := &run.HAStatus{Identity: l.el.Identity(), Lease: l.cfg.Namespace + "/" + l.cfg.LeaseName, Role: run.RoleStandby, Leader: l.el.Leader()}
	if l.el.Leading() {
		s.Role, s.Leader = run.RoleAcquiring, l.el.Identity()
		if d.acting() == nil {
			s.Role = run.RoleLeader
		}
	}
	return s
}

// advanceMarksFromAtlas moves each target's scheduler mark up to the newest
// slot Atlas's markers show (or sets it, when the journal has none): slots
// the previous leader ran are not run again, and the ones after it are
// caught up per the policy's missed setting.
func (d *Daemon) advanceMarksFromAtlas(cfg *policy.Config, slots map[string]time.Time) {
	for _, p := range cfg.Policies {
		for _, t := range d.resolution(p.Name).Targets {
			e := entryFor(p, t)
			s, ok := slots[e.Key]
			if !ok {
				continue
			}
			m, has, err := d.journal.Mark(e.Key)
			switch {
			case err != nil:
				continue
			case !has:
				m = journal.Mark{LastSlot: s, Since: s, Schedule: e.Spec}
			case legacySpec(m.Schedule) == e.Spec && s.After(m.LastSlot):
				m.LastSlot = s
			default:
				continue
			}
			if err := d.journal.SetMark(e.Key, m); err != nil {
				d.log.Warn("cannot advance a scheduler mark to the slot Atlas shows", zap.String("key", e.Key), zap.Error(err))
			}
		}
	}
}

// newEngine builds an engine; fenced ones (ha:) reconcile every target with
// the markers at their start and send each POST through the fence.
func (d *Daemon) newEngine(fenced bool) *engine.Engine {
	observers := run.Observers{d.metrics, d.drills, d.runLog, d.notifier}
	for _, o := range d.opts.Observers {
		observers = append(observers, o)
	}
	c := engine.Config{
		Clock: d.clk, Journal: d.journal, Atlas: d.atlas, Observer: observers, Logger: d.log,
		PollMin: d.opts.PollMin, PollMax: d.opts.PollMax, FixedPolling: d.opts.FixedPolling, MarkerRecovery: true, MarkCurrent: d.markCurrent(),
	}
	if fenced {
		c.Fence, c.ReconcileAll, c.MarkCurrent = d.lead.el, true, nil
		c.Reconciled = d.reconciled
	}
	return engine.New(c)
}

// fireParallel is how many slots of one scheduler pass are handed to the
// engine at once: their runs share journal commits, so a fleet's slots fire
// on time when the disk is slow and a loop that fell behind catches up.
const fireParallel = 64

// newScheduler builds a scheduler whose slots fire on eng.
func (d *Daemon) newScheduler(eng *engine.Engine) *scheduler.Scheduler {
	return scheduler.New(d.clk, markStore{d.journal}, func(ctx context.Context, f scheduler.Firing) error {
		return d.fire(ctx, eng, f)
	}, scheduler.Options{
		Logf:     func(f string, a ...any) { d.log.Sugar().Infof(f, a...) },
		Parallel: fireParallel,
	})
}

func (d *Daemon) eng() *engine.Engine {
	d.actMu.Lock()
	defer d.actMu.Unlock()
	return d.engine
}

func (d *Daemon) schd() *scheduler.Scheduler {
	d.actMu.Lock()
	defer d.actMu.Unlock()
	return d.sched
}

// runElection takes part in the election until ctx ends; it returns once
// the lease is released (after the runs were parked).
func (d *Daemon) runElection(ctx context.Context) {
	d.lead.el.Run(ctx)
	d.lead.publish(false, otherLeader(d.lead.el))
}

// reconciled hands what Atlas's markers show of a target to the metrics, so
// a new leader publishes the last run the previous leaders ended rather
// than the one its own journal last saw (metrics.BeginTerm).
func (d *Daemon) reconciled(policy string, t run.Target, newest *engine.Finished) {
	if newest == nil {
		d.metrics.Reconciled(policy, t, nil)
		return
	}
	d.metrics.Reconciled(policy, t, &metrics.AtlasRun{
		Slot: newest.Slot, Succeeded: newest.Succeeded,
		SnapshotAt: newest.SnapshotAt, ExportAt: newest.ExportAt, SnapshotBytes: newest.SnapshotBytes,
	})
}
