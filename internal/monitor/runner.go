package monitor

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// Lister lists a project's clusters, dedicated and flex. A listing that
// fails keeps the project's watched clusters as they were.
type Lister interface {
	Clusters(ctx context.Context, projectID string) ([]run.Target, error)
}

// RunnerConfig is what a Runner needs. Reader, Lister and Collector are
// required.
type RunnerConfig struct {
	Plan      Plan
	Reader    Reader
	Lister    Lister
	Collector *Collector
	Clock     clock.Clock // default clock.Real()
	Logger    *zap.Logger // default zap.NewNop()
	// Concurrency bounds the reads in flight (default 4): reads are spread
	// over the interval, so more only helps when Atlas is slow.
	Concurrency int
	// ReadTimeout bounds one read, every page and retry included (default
	// 2m); ListTimeout one project's listing (default 2m).
	ReadTimeout, ListTimeout time.Duration
	// ListEvery is how often the projects are listed again, so new
	// clusters are watched and deleted ones forgotten (default 15m).
	ListEvery time.Duration
	// Forget, if set, is told of every cluster no longer watched.
	Forget func(run.Target)
}

// Runner reads every selected cluster at its Plan time and reports to the
// Collector. The Collector's record of a cluster is also the Runner's (its
// next read, its last error): one record and one map per cluster, not
// two; the Runner takes the Collector's lock for them, after its own.
type Runner struct {
	cfg  RunnerConfig
	poke chan struct{}

	mu      sync.Mutex
	plan    Plan
	relist  bool // a listing is asked for (start, reload)
	listing bool // a listing is in progress
	// wakeAt is when Run looks for due reads next (Unix nanoseconds): a
	// read that ends wakes it earlier only if its next read comes before.
	// At 10,000 clusters Run then looks once per due second, not also
	// after each of 10,000 reads an hour.
	wakeAt   int64
	listErrs map[string]run.ResolutionError
}

// NewRunner returns a Runner; Run starts it.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Concurrency = cmp.Or(max(cfg.Concurrency, 0), 4)
	cfg.ReadTimeout = cmp.Or(max(cfg.ReadTimeout, 0), 2*time.Minute)
	cfg.ListTimeout = cmp.Or(max(cfg.ListTimeout, 0), 2*time.Minute)
	cfg.ListEvery = cmp.Or(max(cfg.ListEvery, 0), 15*time.Minute)
	return &Runner{cfg: cfg, plan: cfg.Plan, poke: make(chan struct{}, 1), relist: true,
		listErrs: map[string]run.ResolutionError{}}
}

// SetPlan replaces the plan (on reload): the projects are listed again at
// once, and with a new interval every cluster's next read moves to the new
// plan's time. With the same interval the reads keep their times (they
// depend on nothing else): a reload neither skips nor bunches them.
func (r *Runner) SetPlan(p Plan) {
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	if p.Interval() != r.plan.Interval() {
		c := r.cfg.Collector
		c.mu.Lock()
		for t, o := range c.clusters {
			if !o.inflight {
				o.next = p.NextRead(t, now).UnixNano()
			}
		}
		c.mu.Unlock()
	}
	r.plan, r.relist = p, true
	r.mu.Unlock()
	r.cfg.Collector.SetInterval(p.Interval())
	r.wake()
}

func (r *Runner) wake() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run lists and reads until ctx ends, then waits for the reads in flight
// (each bounded by ReadTimeout, and cancelled with ctx).
func (r *Runner) Run(ctx context.Context) {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var nextList time.Time
	for {
		now := r.cfg.Clock.Now()
		r.mu.Lock()
		listing := r.listing
		relist := (r.relist || !now.Before(nextList)) && !listing
		if relist {
			r.relist, r.listing = false, true
		}
		r.mu.Unlock()
		if listing && !now.Before(nextList) {
			// A listing longer than ListEvery: the next one starts
			// ListEvery after this moment (a reload's is asked for apart,
			// and starts when this one ends).
			nextList = now.Add(r.cfg.ListEvery)
		}
		if relist {
			// Listing 1,000 projects takes 2,000 calls, minutes against
			// Atlas: the reads go on meanwhile, at their times, instead
			// of waiting and then all going at once.
			nextList = now.Add(r.cfg.ListEvery)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.discover(ctx)
				r.mu.Lock()
				r.listing = false
				r.mu.Unlock()
				r.wake()
			}()
		}
		wakeAt := nextList
		var due []run.Target
		r.mu.Lock()
		c := r.cfg.Collector
		c.mu.Lock()
		for t, o := range c.clusters {
			switch {
			case o.inflight:
			case now.UnixNano() >= o.next:
				o.inflight = true
				due = append(due, t)
			case o.next < wakeAt.UnixNano():
				wakeAt = time.Unix(0, o.next)
			}
		}
		c.mu.Unlock()
		r.wakeAt = wakeAt.UnixNano()
		r.mu.Unlock()
		slices.SortFunc(due, compareTargets)
		for _, t := range due {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-sem }()
				if r.read(ctx, t) {
					r.wake()
				}
			}()
		}
		timer := r.cfg.Clock.NewTimer(wakeAt.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		case <-r.poke:
		}
		timer.Stop()
	}
}

// discover lists every project of the plan and watches what the plan
// selects. A project that cannot be listed keeps its watched clusters.
func (r *Runner) discover(ctx context.Context) {
	r.mu.Lock()
	plan := r.plan
	r.mu.Unlock()
	projects := plan.Projects()
	listed := map[string][]run.Target{}
	for _, p := range projects {
		lctx, cancel := clock.WithTimeout(ctx, r.cfg.Clock, r.cfg.ListTimeout)
		ts, err := r.cfg.Lister.Clusters(lctx, p)
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if err != nil {
			e, ok := r.listErrs[p]
			if !ok {
				e = run.ResolutionError{ProjectID: p, Since: r.cfg.Clock.Now(), KeptFrom: "resolution"}
			}
			e.Error = err.Error()
			r.listErrs[p] = e
			r.mu.Unlock()
			r.cfg.Logger.Warn("monitor: cannot list the clusters of a project; its watched clusters stay", zap.String("project", p), zap.Error(err))
			continue
		}
		delete(r.listErrs, p)
		r.mu.Unlock()
		listed[p] = ts
	}
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.listErrs {
		if !slices.Contains(projects, p) {
			delete(r.listErrs, p)
		}
	}
	plan = r.plan // a reload during the listing: new clusters take its times
	keep := map[run.Target]bool{}
	for _, ts := range listed {
		for _, t := range ts {
			if plan.Selects(t) {
				keep[t] = true
			}
		}
	}
	// A cluster kept keeps its next read: moving it to the slot after now
	// would skip a read due during the listing.
	c := r.cfg.Collector
	c.mu.Lock()
	var gone []run.Target
	for t := range c.clusters {
		_, failed := r.listErrs[t.ProjectID]
		switch {
		case keep[t], failed && plan.Selects(t):
		default:
			c.forget(t)
			gone = append(gone, t)
		}
	}
	for t := range keep {
		if _, ok := c.clusters[t]; !ok {
			c.clusters[t] = &observed{t: t, since: now.UnixNano(), next: plan.NextRead(t, now).UnixNano()}
			c.dirty = true
		}
	}
	c.mu.Unlock()
	if r.cfg.Forget != nil {
		for _, t := range gone {
			r.cfg.Forget(t)
		}
	}
}

// read reads t once, within ReadTimeout. A failure is logged and counted;
// the last successful read (and its assessment and series) stays. It
// reports whether t's next read comes before Run's next look.
func (r *Runner) read(ctx context.Context, t run.Target) (wake bool) {
	rctx, cancel := clock.WithTimeout(ctx, r.cfg.Clock, r.cfg.ReadTimeout)
	rd, err := r.cfg.Reader.Read(rctx, t)
	cancel()
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum *summary
	if err == nil {
		rd.Target = t
		sum = summarize(Assess(rd, now, r.plan.Margin()))
	}
	if err != nil && ctx.Err() == nil {
		r.cfg.Logger.Warn("monitor: read failed; the last successful read stays", zap.Stringer("target", t), zap.Error(err))
	}
	c := r.cfg.Collector
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.clusters[t]
	if !ok {
		return false // forgotten while reading
	}
	o.inflight = false
	o.lastAttempt = now.UnixNano()
	// The next read is the plan's next slot after now: on the fixed grid,
	// and never a catch-up burst after a slow read.
	o.next = r.plan.NextRead(t, now).UnixNano()
	wake = o.next < r.wakeAt
	if err != nil {
		if ctx.Err() != nil {
			return wake // stopping: not a failure of Atlas
		}
		o.failures++
		o.lastErr = err.Error()
		return wake
	}
	o.s, o.at, o.lastErr = sum, now.UnixNano(), ""
	return wake
}

// Status is every watched cluster, sorted, as of now.
func (r *Runner) Status() *run.MonitorStatus {
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &run.MonitorStatus{Interval: run.Duration(r.plan.Interval()), Clusters: []run.MonitorCluster{}}
	col := r.cfg.Collector
	col.mu.Lock()
	defer col.mu.Unlock()
	for t, o := range col.clusters {
		c := run.MonitorCluster{Target: t, WatchedSince: local(o.since), LastRead: local(o.at), LastAttempt: local(o.lastAttempt),
			LastError: o.lastErr, ReadFailures: int(o.failures), NextRead: local(o.next)}
		if s := o.s; s != nil {
			c.Flex, c.Problems = s.flex(), s.problems()
			s.eachKind(func(kind string, k kindSummary) {
				if k.newest != 0 {
					if c.Newest == nil {
						c.Newest = map[string]time.Time{}
					}
					c.Newest[kind] = stamp(k.newest)
				}
			})
			dueSet := false
			due := func(kind string, n int64) {
				at := stamp(n)
				// A zero due (overdue since ever) is before every other
				// and stays.
				if !dueSet || at.Before(c.Due) {
					c.Due, dueSet = at, true
				}
				if !now.Before(at) {
					c.Overdue = append(c.Overdue, kind)
				}
			}
			if s.flex() {
				due(KindFlex, s.flexDue)
			}
			c.Schedule, c.Compliance = nativeSchedule(s)
			s.eachPromise(func(p promiseSummary) { due(p.frequency, p.due) })
		}
		st.Clusters = append(st.Clusters, c)
	}
	slices.SortFunc(st.Clusters, func(a, b run.MonitorCluster) int { return compareTargets(a.Target, b.Target) })
	for _, e := range r.listErrs {
		st.ListErrors = append(st.ListErrors, e)
	}
	slices.SortFunc(st.ListErrors, func(a, b run.ResolutionError) int { return cmp.Compare(a.ProjectID, b.ProjectID) })
	return st
}

// nativeSchedule is the schedule and the compliance policy of s, for
// status and the evidence report.
func nativeSchedule(s *summary) ([]run.NativeItem, *run.NativeCompliance) {
	var items []run.NativeItem
	s.eachPromise(func(p promiseSummary) {
		items = append(items, run.NativeItem{Frequency: p.frequency, MaxGap: run.Duration(p.maxGap), Retention: run.Duration(p.retention)})
	})
	if !s.hasCompliance() {
		return items, nil
	}
	c := &run.NativeCompliance{Required: []run.NativeItem{}}
	s.eachRequired(func(r Requirement, _, _ bool) {
		c.Required = append(c.Required, run.NativeItem{Frequency: r.Frequency, MaxGap: run.Duration(r.MaxGap), Retention: run.Duration(r.Retention)})
	})
	c.Shortfalls = slices.Clone(s.shortDetails)
	return items, c
}

// local is Unix nanoseconds n as a time in the local zone, as the clock
// gives them; 0 is the zero time.
func local(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func compareTargets(a, b run.Target) int {
	return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), cmp.Compare(a.Cluster, b.Cluster))
}
