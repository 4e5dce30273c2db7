// Package daemon wires backupd's components into the long-running service:
// it starts them in a fixed order, reloads the configuration on request,
// keeps the resolved targets fresh, and stops everything in reverse order.
//
// Start order: journal → metrics (rebuilt from the journal) → Atlas client →
// authentication → HTTP server → READY=1, then in the background: one
// target resolution (each project within its own deadline; a project that
// fails keeps the targets the journal knows for it) → engine (re-attaches
// in-flight runs: the journal's, and those only Atlas's markers show) →
// scheduler, and resolution retried with backoff for the projects that
// have not answered yet (for at most atlas.discoveryInterval, then at each
// discovery). Nothing on the way to
// READY=1 waits for Atlas, so /healthz answers at once; /readyz reports
// targets not yet resolved. Stop order is the reverse; the engine's runs
// persist their state and resume at the next start.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/buildinfo"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/drillmetrics"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/logging"
	"github.com/backupd/backupd/internal/metrics"
	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/scheduler"
	"github.com/backupd/backupd/internal/webui"
)

// Notifier is systemd's notify protocol (READY=1, RELOADING=1, STOPPING=1,
// WATCHDOG=1). The daemon calls it at each lifecycle step; outside systemd
// it is a no-op.
type Notifier interface {
	Notify(state string) error
	// WatchdogInterval is WatchdogSec as systemd set it, or 0 when off.
	WatchdogInterval() time.Duration
}

// Options are the daemon's injected dependencies.
type Options struct {
	ConfigPath string
	Env        policy.Env
	Clock      clock.Clock
	// LogOutput receives the logs (default: stderr).
	LogOutput zapcore.WriteSyncer
	// Transport is the base HTTP transport to Atlas (default: a fresh one).
	// The demo passes the in-process simulator's.
	Transport http.RoundTripper
	// Listen overrides server.listen (tests and the demo use ":0").
	Listen string
	// NoListen serves HTTP only through Handler, with no socket: in-process
	// tests run the whole daemon in a testing/synctest bubble this way.
	NoListen bool
	// Notifier defaults to a no-op.
	Notifier Notifier
	// Observers also receive every run event (the demo's live summary).
	Observers []run.Observer
	// NotifyTransport sends notifications (default: a fresh transport;
	// in-process tests pass a receiver that needs no network).
	NotifyTransport http.RoundTripper
	// PollMin and PollMax override the engine's polling backoff (the demo).
	PollMin, PollMax time.Duration
	// FixedPolling turns learned polling off (engine.Config.FixedPolling):
	// the baseline cmd/fleetbench measures it against.
	FixedPolling bool
	// WrapJournal, when set, wraps the opened journal (tests make its
	// writes fail as a full disk would).
	WrapJournal func(journal.Journal) journal.Journal
	// Elect builds the leader elector of an ha: section; nil in a binary
	// built without the `ha` tag, which then refuses such a configuration.
	Elect leader.Factory
}

// Daemon is one backupd process's worth of components.
type Daemon struct {
	opts Options
	clk  clock.Clock
	mon  monitorState

	reloadMu sync.Mutex // serialises Reload and discovery
	mu       sync.RWMutex
	cfg      *policy.Config
	resolved map[string]policy.Resolution // by policy name
	// resErrs are, by policy, the projects the last resolution could not
	// list; answered are the projects that have been listed since start.
	resErrs  map[string][]run.ResolutionError
	answered map[string]bool
	client   *atlas.Client

	log     *zap.Logger
	journal journal.Journal
	watched *journal.Watched // d.journal, for readiness
	metrics *metrics.Metrics
	drills  *drillmetrics.Metrics // restore drills' gauges, on metrics' registry
	atlas   *swapAtlas
	runLog  run.Observer
	// engine and sched are replaced at each leadership term (ha:); read
	// them through eng() and schd().
	actMu  sync.Mutex
	engine *engine.Engine
	sched  *scheduler.Scheduler
	lead   *leadership // nil without ha:
	// notifier sends webhooks and pings on run events (internal/notify).
	notifier *notify.Notifier
	http     *httpapi.Server
	addr     net.Addr
	started  time.Time
	ready    chan struct{}

	// startupDone is closed when the background start (resolution, engine,
	// scheduler) has finished or given up; runsStarted is set once the
	// scheduler runs, startErr when the engine could not start.
	startupDone chan struct{}
	runsReady   chan struct{} // closed once the scheduler runs
	stateMu     sync.Mutex
	runsStarted bool
	runsAt      time.Time // when the scheduler was started
	startErr    error

	atlasHealth *atlasHealth // outcome of recent Atlas requests, for /readyz
}

// New loads and validates the configuration; an invalid one is returned as
// *policy.Errors and nothing is started.
func New(opts Options) (*Daemon, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Notifier == nil {
		opts.Notifier = nopNotifier{}
	}
	cfg, err := policy.Load(opts.ConfigPath, opts.Env)
	if err != nil {
		return nil, err
	}
	if cfg.HA != nil && opts.Elect == nil {
		return nil, leader.Unsupported(cfg.HA)
	}
	return &Daemon{
		opts: opts, clk: opts.Clock, cfg: cfg, resolved: map[string]policy.Resolution{}, answered: map[string]bool{},
		ready: make(chan struct{}), startupDone: make(chan struct{}), runsReady: make(chan struct{}),
		atlasHealth: &atlasHealth{clk: opts.Clock},
	}, nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *policy.Config {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cfg
}

// Addr is the HTTP server's address once Run has started it.
func (d *Daemon) Addr() net.Addr {
	<-d.ready
	return d.addr
}

// Handler is the daemon's HTTP handler (valid once Ready is closed).
func (d *Daemon) Handler() http.Handler {
	<-d.ready
	return d.http.Handler()
}

// Ready is closed once the daemon is serving.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// RunsStarted is closed once targets have resolved (or the start gave up
// waiting for them) and the engine and scheduler run.
func (d *Daemon) RunsStarted() <-chan struct{} { return d.runsReady }

// Run starts every component, serves until ctx ends, then stops them in
// reverse order. It returns an error only if start-up failed.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.Config()
	out := d.opts.LogOutput
	if out == nil {
		out = zapcore.Lock(zapcore.AddSync(stderr{}))
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, out)
	if err != nil {
		return fmt.Errorf("setting up logging: %w", err)
	}
	d.log = log
	defer func() { _ = log.Sync() }()
	d.started = d.clk.Now()
	for _, w := range cfg.Warnings {
		log.Warn("config warning", zap.String("where", w.String()))
	}

	// 1. The journal: nothing runs without knowing what was in flight.
	// Its writes are watched: a journal that cannot be written shows in
	// /readyz and backupd_journal_write_errors_total.
	d.metrics = metrics.New(buildinfo.String())
	d.drills = drillmetrics.New()
	if err := d.metrics.Registry().Register(d.metrics.Gate(d.drills)); err != nil {
		return fmt.Errorf("registering the restore drill metrics: %w", err)
	}
	var j journal.Journal
	if cfg.State.Path == "" {
		j = journal.NewMemory()
		log.Warn("state.path is empty: the journal is in memory only; recovery after a restart relies on the markers in Atlas")
	} else {
		b, err := journal.Open(cfg.State.Path, journal.Options{})
		if err != nil {
			return err
		}
		j = b
	}
	if d.opts.WrapJournal != nil {
		j = d.opts.WrapJournal(j)
	}
	d.watched = journal.Watch(j, func(error) { d.metrics.JournalWriteError() })
	d.journal = d.watched
	defer d.journal.Close()
	// Notifications: stopped after the engine (deferred earlier), so
	// the events of its last steps are saved for the next start.
	defer d.startNotify(cfg, log)()

	// 2. Metrics, rebuilt from the journal. The summaries are read once:
	// decoding them is most of a start at fleet size (10,000 targets), and
	// startRuns needs only which targets they covered.
	rebuilt, err := d.rebuildMetrics()
	if err != nil {
		return err
	}

	// 3. The Atlas client.
	client, err := d.newClient(cfg)
	if err != nil {
		return err
	}
	d.client = client
	d.atlas = &swapAtlas{}
	d.atlas.set(engine.FromClient(client))

	// 4. Authenticate. Failure is not fatal: the daemon is not ready until
	// Atlas answers, and keeps trying.
	if err := client.Authenticate(ctx); err != nil {
		log.Error("cannot authenticate to Atlas yet; will retry", zap.Error(err))
	} else {
		log.Info("authenticated to Atlas", zap.String("baseURL", cfg.Atlas.BaseURL))
	}

	// 5. The engine and the scheduler exist from here on, but start only
	// once targets are resolved (step 8): serving must not wait for Atlas.
	// With ha:, they are stand-ins until this replica leads: each term
	// of leadership gets its own (leadership.go).
	d.runLog = logging.RunObserver(log)
	if cfg.HA != nil {
		if d.lead, err = d.newLeadership(cfg); err != nil {
			return err
		}
		log.Info("leader election on", zap.String("lease", cfg.HA.Namespace+"/"+cfg.HA.LeaseName), zap.String("identity", d.lead.el.Identity()),
			zap.Duration("leaseDuration", cfg.HA.LeaseDuration), zap.String("atlasPOSTs", "bounded by the fence deadline, not atlas.timeout"))
	}
	d.engine = d.newEngine(d.lead != nil)
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { d.eng().Wait() }()
	defer stopRuns()
	d.sched = d.newScheduler(d.engine)
	d.metrics.SetPolicies(policyInfos(cfg))
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan struct{})
	defer func() { stopSched(); <-d.startupDone; <-schedDone }()

	// 6. HTTP, then READY=1: /healthz answers at once, and /readyz says
	// what is still missing while targets resolve.
	listen := cfg.Server.Listen
	if d.opts.Listen != "" {
		listen = d.opts.Listen
	}
	page, err := webui.New(backend{d}, webui.Options{Clock: d.clk, Logger: log.Named("webui")})
	if err != nil {
		close(d.startupDone)
		close(schedDone)
		return fmt.Errorf("building the status page: %w", err)
	}
	d.http = httpapi.New(httpapi.Config{
		Listen: listen, AdminToken: d.adminToken, Metrics: d.metrics.Handler(), Backend: backend{d}, Reporter: d, Page: page,
		Healthy: d.healthy, Ready: d.readyErr, Logger: log, Clock: d.clk,
	})
	if !d.opts.NoListen {
		addr, err := d.http.Start(ctx)
		if err != nil {
			close(d.startupDone)
			close(schedDone)
			return fmt.Errorf("starting the HTTP server on %s: %w", listen, err)
		}
		d.addr = addr
		listen = addr.String()
	}
	log.Info("backupd started", zap.String("version", buildinfo.String()), zap.String("listen", listen),
		zap.Int("policies", len(cfg.Policies)), zap.String("config", cfg.Source))
	_ = d.opts.Notifier.Notify("READY=1")
	close(d.ready) // after READY=1, so whoever waits on Ready sees it sent

	// The monitor of Atlas's native backups, after the HTTP server (its
	// status and series are served there) and stopped before it.
	d.startMonitor(schedCtx, cfg)
	defer d.stopMonitor()

	// 7. In the background: resolve targets (retrying while Atlas cannot
	// answer), re-attach what was in flight, start the scheduler, then the
	// upkeep: target discovery, next-run gauges, pruning.
	var bg sync.WaitGroup
	bg.Add(2)
	electionDone := make(chan struct{})
	go func() {
		defer bg.Done()
		defer close(d.startupDone)
		if err := d.startRuns(schedCtx, runCtx, rebuilt); err != nil {
			if schedCtx.Err() == nil {
				log.Error("cannot re-attach the runs in flight; no run starts", zap.Error(err))
				d.setStartErr(err)
			}
			close(schedDone)
			close(electionDone)
			return
		}
		if d.lead != nil {
			// Standing for election only once targets are resolved: a
			// replica that cannot act must not hold the lease.
			go func() { defer close(electionDone); d.runElection(ctx) }()
			go func() { defer close(schedDone); d.followLeadership(schedCtx, runCtx) }()
		} else {
			close(electionDone)
			go func() { defer close(schedDone); _ = d.schd().Run(schedCtx) }()
		}
		d.upkeep(schedCtx)
	}()
	go func() { defer bg.Done(); d.watchdog(schedCtx) }()

	<-ctx.Done()
	log.Info("stopping: no new runs start; runs in flight persist and resume at the next start")
	_ = d.opts.Notifier.Notify("STOPPING=1")
	stopSched()
	bg.Wait()
	<-schedDone
	<-electionDone // with ha:, the lease is released by now, after the runs were parked
	d.stopMonitor()
	shutCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := d.http.Shutdown(shutCtx); err != nil {
		log.Warn("HTTP server did not stop cleanly", zap.Error(err))
	}
	stopRuns()
	d.eng().Wait()
	log.Info("stopped")
	return nil
}

// Reload re-reads the configuration. An invalid one is rejected, counted
// and logged, and the running one stays.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	// Plain RELOADING=1 suits Type=notify; Type=notify-reload would also
	// want MONOTONIC_USEC, which the unit does not use.
	_ = d.opts.Notifier.Notify("RELOADING=1")
	defer func() { _ = d.opts.Notifier.Notify("READY=1") }()
	cfg, err := policy.Load(d.opts.ConfigPath, d.opts.Env)
	if err == nil && cfg.HA != nil && d.opts.Elect == nil {
		err = leader.Unsupported(cfg.HA)
	}
	if err != nil {
		d.metrics.ConfigReload(false)
		d.log.Error("config reload rejected; the running configuration stays", zap.Error(err))
		return err
	}
	old := d.Config()
	if !sameHA(old.HA, cfg.HA) {
		d.log.Warn("ha settings change at the next restart: leader election goes on as started")
	}
	if atlasChanged(old.Atlas, cfg.Atlas) {
		client, err := d.newClient(cfg)
		if err != nil {
			d.metrics.ConfigReload(false)
			d.log.Error("config reload rejected; the running configuration stays", zap.Error(err))
			return err
		}
		d.mu.Lock()
		d.client = client
		d.mu.Unlock()
		d.atlas.set(engine.FromClient(client))
		if err := client.Authenticate(ctx); err != nil {
			d.log.Error("cannot authenticate to Atlas with the new configuration; will retry", zap.Error(err))
		}
	}
	if old.Log != cfg.Log {
		d.log.Warn("log settings change at the next restart")
	}
	if old.State.Path != cfg.State.Path || old.Server.Listen != cfg.Server.Listen {
		d.log.Warn("state.path and server.listen change at the next restart")
	}
	for _, w := range cfg.Warnings {
		d.log.Warn("config warning", zap.String("where", w.String()))
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.resolveAllLocked(ctx, cfg)
	d.apply(cfg)
	d.reloadMonitor(cfg)
	if d.notifier != nil {
		d.notifier.SetConfig(cfg.Notify)
	}
	d.metrics.ConfigReload(true)
	d.log.Info("configuration reloaded", zap.Int("policies", len(cfg.Policies)))
	return nil
}

// apply pushes the configuration and resolved targets to the engine,
// scheduler and metrics.
func (d *Daemon) apply(cfg *policy.Config) {
	d.eng().SetPolicies(d.enginePolicies(cfg))
	d.schd().Set(d.entries(cfg))
	d.metrics.SetPolicies(policyInfos(cfg))
	d.keepDrillSeries(cfg)
}

// keepDrillSeries drops the drill series of policies a reload removed and
// of sources a drill no longer acts on.
func (d *Daemon) keepDrillSeries(cfg *policy.Config) {
	names := make([]string, 0, len(cfg.Policies))
	for _, p := range cfg.Policies {
		names = append(names, p.Name)
	}
	d.drills.Keep(names, func(name string, t run.Target) bool {
		return slices.Contains(scheduled(d.resolution(name)), t)
	})
}

func atlasChanged(a, b policy.Atlas) bool {
	if a.BaseURL != b.BaseURL || a.RequestsPerMinute != b.RequestsPerMinute || a.Timeout != b.Timeout {
		return true
	}
	sa := func(s *policy.ServiceAccount) string {
		if s == nil {
			return ""
		}
		return s.ClientID + "\x00" + s.ClientSecret.Reveal()
	}
	ak := func(k *policy.APIKey) string {
		if k == nil {
			return ""
		}
		return k.PublicKey + "\x00" + k.PrivateKey.Reveal()
	}
	return sa(a.ServiceAccount) != sa(b.ServiceAccount) || ak(a.APIKey) != ak(b.APIKey)
}

func (d *Daemon) newClient(cfg *policy.Config) (*atlas.Client, error) {
	ac := atlas.Config{
		BaseURL: cfg.Atlas.BaseURL, RequestsPerMinute: cfg.Atlas.RequestsPerMinute, Timeout: cfg.Atlas.Timeout,
		Transport: d.opts.Transport, Clock: d.clk, UserAgent: "backupd/" + buildinfo.String(), Logger: d.log.Named("atlas"),
		Hook: func(i atlas.RequestInfo) {
			d.metrics.ObserveAtlasRequest(i.Operation, metrics.AttemptCode(i.StatusCode, i.Undecodable), i.Duration, i.RateLimited)
			if i.Priority != 0 { // token requests take no budget
				d.metrics.ObserveAtlasBudgetWait(i.Priority, i.BudgetWait)
			}
			d.atlasHealth.observe(i)
		},
	}
	if sa := cfg.Atlas.ServiceAccount; sa != nil {
		ac.ServiceAccount = &atlas.ServiceAccount{ClientID: sa.ClientID, ClientSecret: sa.ClientSecret.Reveal()}
	}
	if k := cfg.Atlas.APIKey; k != nil {
		ac.APIKey = &atlas.APIKey{PublicKey: k.PublicKey, PrivateKey: k.PrivateKey.Reveal()}
	}
	c, err := atlas.New(ac)
	if err != nil {
		return nil, fmt.Errorf("configuring the Atlas client: %w", err)
	}
	return c, nil
}

func (d *Daemon) currentClient() *atlas.Client {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.client
}

// startRuns resolves targets once and starts the engine and the scheduler
// on what resolved, and on the journal's targets of the projects that did
// not: one project Atlas cannot list holds up no other. upkeep retries the
// projects that have not answered.
func (d *Daemon) startRuns(ctx, runCtx context.Context, rebuilt []seriesKey) error {
	d.resolveAll(ctx, d.Config())
	if err := ctx.Err(); err != nil {
		return err
	}
	d.reloadMu.Lock() // a reload meanwhile applies to the started components
	defer d.reloadMu.Unlock()
	cfg := d.Config()
	d.pruneRebuiltSeries(cfg, rebuilt)
	d.eng().SetPolicies(d.enginePolicies(cfg))
	if d.lead == nil {
		if err := d.eng().Start(runCtx); err != nil {
			return err
		}
		d.seedMarksFromAtlas(cfg)
		d.schd().Set(d.entries(cfg))
	}
	d.metrics.SetPolicies(policyInfos(cfg))
	d.keepDrillSeries(cfg)
	d.stateMu.Lock()
	d.runsStarted, d.runsAt = true, d.clk.Now()
	d.stateMu.Unlock()
	close(d.runsReady)
	return nil
}

// pruneRebuiltSeries deletes the series rebuilt from journal summaries of
// targets a resolved policy no longer schedules (a cluster deleted while
// backupd was down), so no alert fires forever for a target that is gone.
func (d *Daemon) pruneRebuiltSeries(cfg *policy.Config, rebuilt []seriesKey) {
	d.mu.RLock()
	keep := map[string]bool{}
	resolved := map[string]bool{}
	for _, p := range cfg.Policies {
		res, ok := d.resolved[p.Name]
		if !ok {
			continue // unknown yet: keep its series
		}
		resolved[p.Name] = true
		for _, t := range scheduled(res) {
			keep[engine.Key(p.Name, t)] = true
		}
	}
	d.mu.RUnlock()
	for _, k := range rebuilt {
		if resolved[k.policy] && !keep[engine.Key(k.policy, k.target)] {
			d.metrics.DeleteTarget(k.policy, k.target)
		}
	}
}

func (d *Daemon) setStartErr(err error) {
	d.stateMu.Lock()
	d.startErr = err
	d.stateMu.Unlock()
}

// unresolved names the policies whose targets have never resolved.
func (d *Daemon) unresolved() error {
	cfg := d.Config()
	d.mu.RLock()
	defer d.mu.RUnlock()
	var missing, why []string
	for _, p := range cfg.Policies {
		if _, ok := d.resolved[p.Name]; !ok {
			missing = append(missing, p.Name)
			continue
		}
		waiting := false
		for _, e := range d.resErrs[p.Name] {
			if !d.answered[e.ProjectID] {
				waiting = true
				why = append(why, fmt.Sprintf("project %s: %s", e.ProjectID, e.Error))
			}
		}
		if waiting {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(why)
	why = slices.Compact(why)
	if len(why) == 0 {
		why = []string{"Atlas has not answered their cluster lists"}
	}
	return fmt.Errorf("targets of policies %v not yet resolved (%s)", missing, strings.Join(why, "; "))
}

// startedErr is readiness's own check on the background start: the
// scheduler runs, and every policy's targets resolved at least once.
func (d *Daemon) startedErr() error {
	d.stateMu.Lock()
	started, serr := d.runsStarted, d.startErr
	d.stateMu.Unlock()
	if serr != nil {
		return fmt.Errorf("runs did not start: %w", serr)
	}
	if err := d.unresolved(); err != nil {
		return err
	}
	if !started {
		return errors.New("starting: re-attaching the runs in flight")
	}
	return nil
}

// resolveAll resolves every policy's targets against Atlas.
func (d *Daemon) resolveAll(ctx context.Context, cfg *policy.Config) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.resolveAllLocked(ctx, cfg)
}

// resolveAllLocked resolves each project within its own deadline. A
// project Atlas cannot list keeps its last known targets: those of the
// previous resolution, or, when it has not been listed since the start,
// those the journal has runs of; an outage never drops targets from the
// schedule, and one bad project holds up no other. It reports whether any
// policy's targets changed.
func (d *Daemon) resolveAllLocked(ctx context.Context, cfg *policy.Config) bool {
	// Discovery yields the project's budget to the runs: a late list only
	// delays noticing a new or deleted cluster (docs/atlas-client.md#rate-limits).
	results := policy.ResolveAll(atlas.WithPriority(ctx, atlas.PriorityDiscovery), cfg.Policies, d.currentClient().Clusters,
		policy.ResolveOptions{Clock: d.clk, ProjectTimeout: policy.ProjectTimeout(cfg.Atlas)})
	if ctx.Err() != nil {
		return false // stopping: what failed is no news about Atlas
	}
	now := d.clk.Now()
	d.mu.RLock()
	prev, prevErrs := d.resolved, d.resErrs
	d.mu.RUnlock()
	next := map[string]policy.Resolution{}
	nextErrs := map[string][]run.ResolutionError{}
	failed := map[string]bool{}
	var known []journal.Summary // read once, when a project needs it
	knownRead := false
	for i, p := range cfg.Policies {
		res := results[i]
		old, hadOld := prev[p.Name]
		for _, f := range res.Failed {
			failed[f.ProjectID] = true
			re := run.ResolutionError{ProjectID: f.ProjectID, Error: f.Err.Error(), Since: now}
			if j := slices.IndexFunc(prevErrs[p.Name], func(e run.ResolutionError) bool { return e.ProjectID == f.ProjectID }); j >= 0 {
				re.Since = prevErrs[p.Name][j].Since
			}
			inProject := func(t run.Target) bool {
				return p.FlexRestore != nil || p.RestoreDrill != nil || t.ProjectID == f.ProjectID
			}
			var kept int
			if hadOld && d.answeredOnce(f.ProjectID) {
				re.KeptFrom = "resolution"
				for _, t := range old.Targets {
					if inProject(t) {
						res.Targets = append(res.Targets, t)
						kept++
					}
				}
				for _, s := range old.Skipped {
					if inProject(s.Target) {
						res.Skipped = append(res.Skipped, s)
						kept++
					}
				}
			} else {
				if !knownRead {
					knownRead = true
					var err error
					if known, err = d.journal.Summaries(); err != nil {
						d.log.Warn("reading the journal's targets for a project Atlas cannot list", zap.Error(err))
					}
				}
				for _, s := range known {
					if s.Policy == p.Name && inProject(s.Target) && policy.Selects(p, s.Target) && !slices.Contains(res.Targets, s.Target) {
						res.Targets = append(res.Targets, s.Target)
						kept++
					}
				}
				if kept > 0 {
					re.KeptFrom = "journal"
				}
			}
			d.log.Warn("cannot list a project's clusters; keeping its last known targets",
				zap.String("policy", p.Name), zap.String("project", f.ProjectID), zap.String("keptFrom", re.KeptFrom),
				zap.Int("kept", kept), zap.Time("failingSince", re.Since), zap.Error(f.Err))
			nextErrs[p.Name] = append(nextErrs[p.Name], re)
		}
		slices.SortFunc(res.Targets, compareTargets)
		slices.SortFunc(res.Skipped, func(a, b run.SkippedTarget) int { return compareTargets(a.Target, b.Target) })
		next[p.Name] = res
	}
	for pr := range failed {
		d.metrics.ResolutionFailed(pr)
	}
	// Targets that disappeared lose their series; one that became
	// not_supported (paused, backup disabled) keeps them.
	for name, old := range prev {
		kept := map[run.Target]bool{}
		for _, t := range scheduled(next[name]) {
			kept[t] = true
		}
		for _, t := range scheduled(old) {
			if !kept[t] {
				d.metrics.DeleteTarget(name, t)
			}
		}
	}
	changed := len(next) != len(prev)
	for name, res := range next {
		if old, ok := prev[name]; !ok || !slices.Equal(old.Targets, res.Targets) || !slices.Equal(old.Skipped, res.Skipped) {
			changed = true
		}
	}
	d.mu.Lock()
	d.resolved, d.resErrs = next, nextErrs
	for _, p := range cfg.Policies {
		for _, pr := range projectsOf(p) {
			if !failed[pr] {
				d.answered[pr] = true
			}
		}
	}
	d.mu.Unlock()
	return changed
}

// compareTargets orders targets as policy.Resolve does: by project, then
// cluster.
func compareTargets(a, b run.Target) int {
	return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), cmp.Compare(a.Cluster, b.Cluster))
}

// answeredOnce reports whether project's clusters have been listed since
// the start.
func (d *Daemon) answeredOnce(project string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.answered[project]
}

// projectsOf lists the projects p's resolution lists.
func projectsOf(p policy.Policy) []string {
	if fr := p.FlexRestore; fr != nil {
		return []string{fr.ProjectID, fr.TargetProjectID}
	}
	if rd := p.RestoreDrill; rd != nil {
		return []string{rd.ProjectID, rd.TargetProjectID}
	}
	out := make([]string, 0, len(p.Targets))
	for _, sel := range p.Targets {
		out = append(out, sel.ProjectID)
	}
	return out
}

// scheduled is what a policy's slots fire on: its targets, and the clusters
// it selects that cannot be acted on now (paused, backup disabled), whose
// slots end skipped{not_supported} so they stay counted and alerted on.
func scheduled(res policy.Resolution) []run.Target {
	out := slices.Clone(res.Targets)
	for _, s := range res.Skipped {
		if s.Reason == run.ReasonNotSupported {
			out = append(out, s.Target)
		}
	}
	return out
}

// notSupported reports whether a policy selects t but cannot act on it.
func (d *Daemon) notSupported(policyName string, t run.Target) (run.SkippedTarget, bool) {
	sk := d.resolution(policyName).Skipped
	i := slices.IndexFunc(sk, func(s run.SkippedTarget) bool {
		return s.Target == t && s.Reason == run.ReasonNotSupported
	})
	if i < 0 {
		return run.SkippedTarget{}, false
	}
	return sk[i], true
}

func (d *Daemon) resolutionErrors(name string) []run.ResolutionError {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.resErrs[name])
}

func (d *Daemon) resolution(name string) policy.Resolution {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.resolved[name]
}

// enginePolicies converts the configuration for the engine.
func (d *Daemon) enginePolicies(cfg *policy.Config) []engine.Policy {
	out := make([]engine.Policy, 0, len(cfg.Policies))
	for _, p := range cfg.Policies {
		out = append(out, engine.Policy{Name: p.Name, Action: p.Action(), Spec: specOf(p), Targets: d.resolution(p.Name).Targets})
	}
	return out
}

// SpecOf copies what a run needs from a policy.
func specOf(p policy.Policy) run.Spec {
	s := run.Spec{Timeouts: run.Timeouts{Wait: p.Timeouts.Wait, Snapshot: p.Timeouts.Snapshot, Export: p.Timeouts.Export, Restore: p.Timeouts.Restore}}
	if p.Snapshot != nil {
		s.RetentionInDays, s.Description = p.Snapshot.RetentionInDays, p.Snapshot.Description
	}
	if p.Export != nil {
		s.ExportBucketID, s.ExportSource = p.Export.BucketID, p.Export.Source
		for _, l := range p.Export.CustomData {
			s.CustomData = append(s.CustomData, run.Label{Key: l.Key, Value: l.Value})
		}
	}
	if f := p.FlexRestore; f != nil {
		s.FlexSnapshot, s.TargetProjectID, s.TargetCluster = f.Snapshot, f.TargetProjectID, f.TargetCluster
	}
	if rd := p.RestoreDrill; rd != nil {
		s.DrillSnapshot, s.TargetProjectID, s.TargetCluster = rd.Snapshot, rd.TargetProjectID, rd.TargetCluster
		if v := rd.Verify; v != nil {
			s.VerifyCommand, s.Timeouts.Verify = slices.Clone(v.Command), v.Timeout
		}
	}
	return s
}

// entries builds the scheduler's entries: one per policy and scheduled
// target (resolved, or selected but not supported right now).
func (d *Daemon) entries(cfg *policy.Config) []scheduler.Entry {
	var out []scheduler.Entry
	for _, p := range cfg.Policies {
		for _, t := range scheduled(d.resolution(p.Name)) {
			out = append(out, entryFor(p, t))
		}
	}
	return out
}

func entryFor(p policy.Policy, t run.Target) scheduler.Entry {
	return scheduler.Entry{
		Key: engine.Key(p.Name, t), Policy: p.Name, Target: t,
		// Spec is the schedule text alone: a changed timezone or jitter
		// keeps the mark (docs/scheduling.md), only a new schedule resets it.
		Spec: p.Schedule, Schedule: p.Cron, Location: p.Location,
		Offset: policy.JitterOffset(p.Name, t, p.Jitter), Missed: p.Missed,
	}
}

func policyInfos(cfg *policy.Config) []metrics.PolicyInfo {
	out := make([]metrics.PolicyInfo, 0, len(cfg.Policies))
	for _, p := range cfg.Policies {
		out = append(out, metrics.PolicyInfo{
			Name: p.Name, Action: string(p.Action()), Schedule: p.Schedule, Timezone: p.Timezone, Interval: p.Interval(),
			// A reload that drops a stage (export: removed) drops its
			// last-success series, so no lag alert fires for it.
			Stages: metrics.SuccessStages(p.Action(), p.Export != nil),
		})
	}
	return out
}

// fire hands a scheduler firing to the engine; a slot of a target the
// policy cannot act on now is recorded as skipped{not_supported}.
func (d *Daemon) fire(ctx context.Context, eng *engine.Engine, f scheduler.Firing) error {
	skip, detail := f.Skip, ""
	if skip == "" {
		if s, ok := d.notSupported(f.Entry.Policy, f.Entry.Target); ok {
			skip, detail = run.ReasonNotSupported, s.Detail
		}
	}
	return eng.Fire(ctx, f.Entry.Policy, f.Entry.Target, f.Slot, f.At, f.CatchUp, skip, detail)
}

// markCurrent tells the engine's start-up reconciliation which journal
// marks are up to date: same schedule, and the next slot after the mark not
// yet due (jitter included). A restart on the journal it wrote reconciles
// nothing, instead of two or three Atlas reads per target (tens of
// thousands for a large fleet, out of the same request budget as the
// backups); an older journal copy is behind the schedule and reconciled.
// The engine asks at its start, once targets resolved; the entries are
// indexed on the first question.
func (d *Daemon) markCurrent() func(string, journal.Mark, time.Time) bool {
	var once sync.Once
	var byKey map[string]scheduler.Entry
	return func(key string, m journal.Mark, now time.Time) bool {
		once.Do(func() {
			byKey = map[string]scheduler.Entry{}
			for _, e := range d.entries(d.Config()) {
				byKey[e.Key] = e
			}
		})
		e, ok := byKey[key]
		if !ok || m.Schedule != e.Spec {
			return false
		}
		next := scheduler.NextSlot(e, m.LastSlot)
		return !next.IsZero() && next.Add(max(e.Offset, 0)).After(now)
	}
}

// seedMarksFromAtlas gives the scheduler, for each target whose journal
// has no mark, the newest slot Atlas's markers show, so slots after it are
// caught up per the policy's missed setting instead of being forgotten.
func (d *Daemon) seedMarksFromAtlas(cfg *policy.Config) {
	slots := d.eng().RecoveredSlots()
	for _, p := range cfg.Policies {
		for _, t := range d.resolution(p.Name).Targets {
			e := entryFor(p, t)
			if _, has, err := d.journal.Mark(e.Key); err != nil || has {
				continue
			}
			if s, ok := slots[e.Key]; ok {
				_ = d.journal.SetMark(e.Key, journal.Mark{LastSlot: s, Since: s, Schedule: e.Spec})
			}
		}
	}
}

// seriesKey names the per-target series of one policy.
type seriesKey struct {
	policy string
	target run.Target
}

// rebuildMetrics restores the series from the journal and returns which
// ones it rebuilt.
func (d *Daemon) rebuildMetrics() ([]seriesKey, error) {
	sums, err := d.journal.Summaries()
	if err != nil {
		return nil, fmt.Errorf("reading run summaries from the journal: %w", err)
	}
	rs := make([]metrics.Restored, 0, len(sums))
	keys := make([]seriesKey, 0, len(sums))
	for _, s := range sums {
		rs = append(rs, metrics.Restored{Policy: s.Policy, Target: s.Target, Last: s.Last, LastSuccess: s.LastSuccess, SnapshotBytes: s.LastSnapshotBytes})
		keys = append(keys, seriesKey{s.Policy, s.Target})
	}
	d.metrics.Rebuild(rs)
	// Each drill policy's runs through its own index: a walk of the whole
	// history to find the few drills among them took seconds of every
	// start at fleet size (100,000 runs), and the series of policies no
	// longer configured are dropped anyway.
	for _, p := range d.Config().Policies {
		if p.Action() != run.ActionRestoreDrill {
			continue
		}
		drills, err := d.journal.History(journal.Query{Policy: p.Name, Keep: func(r run.Run) bool {
			return r.Action == run.ActionRestoreDrill
		}})
		if err != nil {
			return nil, fmt.Errorf("reading the restore drills of policy %s from the journal: %w", p.Name, err)
		}
		d.drills.Rebuild(drills)
	}
	active, err := d.journal.Active()
	if err != nil {
		return nil, fmt.Errorf("reading in-flight runs from the journal: %w", err)
	}
	d.metrics.RebuildInflight(active)
	return keys, nil
}

// upkeep refreshes the next-run gauges, re-resolves targets every
// atlas.discoveryInterval (and, during the first discoveryInterval after
// the start, with backoff from 5s to 1m while a project has not answered
// yet), retries authentication and prunes history.
func (d *Daemon) upkeep(ctx context.Context) {
	const gaugeEvery = 15 * time.Second
	lastDiscovery := d.clk.Now()
	retryWait := 5 * time.Second
	retryAt := lastDiscovery.Add(retryWait)
	for {
		d.publishNextRuns()
		cfg := d.Config()
		retrying := d.clk.Now().Sub(d.started) < cfg.Atlas.DiscoveryInterval && d.unresolved() != nil
		sleep := gaugeEvery
		if retrying {
			sleep = max(min(sleep, retryAt.Sub(d.clk.Now())), time.Millisecond)
		}
		if err := clock.Sleep(ctx, d.clk, sleep); err != nil {
			return
		}
		cfg = d.Config()
		now := d.clk.Now()
		due := now.Sub(lastDiscovery) >= cfg.Atlas.DiscoveryInterval
		if retrying && !now.Before(retryAt) {
			due = true
			retryWait = min(2*retryWait, time.Minute)
			retryAt = now.Add(retryWait)
		}
		if !due {
			continue
		}
		lastDiscovery = now
		if now.Sub(d.currentClient().LastAuthenticated()) > cfg.Atlas.DiscoveryInterval {
			if err := d.currentClient().Authenticate(ctx); err != nil {
				d.log.Warn("Atlas authentication failed", zap.Error(err))
			}
		}
		d.reloadMu.Lock()
		cfg = d.Config() // a reload may have replaced it meanwhile
		if d.resolveAllLocked(ctx, cfg) {
			// Only a changed fleet is pushed to the engine and scheduler:
			// re-setting 10,000 unchanged entries would stall firing.
			d.apply(cfg)
		}
		d.reloadMu.Unlock()
		if n, err := d.journal.Prune(d.clk.Now(), cfg.State.HistoryRuns, cfg.State.HistoryAge); err != nil {
			d.log.Warn("pruning run history failed", zap.Error(err))
		} else if n > 0 {
			d.log.Info("pruned run history", zap.Int("runs", n))
		}
	}
}

func (d *Daemon) publishNextRuns() {
	cfg := d.Config()
	next := d.schd().Next()
	for _, p := range cfg.Policies {
		for _, t := range scheduled(d.resolution(p.Name)) {
			if at, ok := next[engine.Key(p.Name, t)]; ok {
				d.metrics.SetNextRun(p.Name, t, at)
			}
		}
	}
}

// healthy: the scheduler loop is alive (it iterates at least every minute).
// Before it starts (targets still resolving in the background) the daemon
// counts as alive: waiting for Atlas is no reason to be restarted.
func (d *Daemon) healthy() error {
	d.stateMu.Lock()
	started, runsAt := d.runsStarted, d.runsAt
	d.stateMu.Unlock()
	if !started {
		return nil
	}
	if d.lead != nil && d.acting() != nil {
		return nil // a standby runs no scheduler loop
	}
	hb := d.schd().Heartbeat()
	if hb.IsZero() {
		hb = runsAt // the loop is starting
	}
	if age := d.clk.Now().Sub(hb); age > 3*time.Minute {
		return fmt.Errorf("scheduler loop last ran %s ago", age.Round(time.Second))
	}
	return nil
}

// readyErr: config valid (it is, or we would not run), the journal open
// and its last write successful, the background start done (startedErr),
// Atlas not failing every request for minutes, and Atlas answered an
// authenticated request recently.
func (d *Daemon) readyErr() error {
	if err := d.healthy(); err != nil {
		return err
	}
	if err := d.eng().JournalHealth(); err != nil {
		return fmt.Errorf("the journal cannot be written: %w", err)
	}
	if err := d.watched.Health(); err != nil {
		return err
	}
	if err := d.startedErr(); err != nil {
		return err
	}
	if err := d.atlasHealth.err(); err != nil {
		return err
	}
	last := d.currentClient().LastAuthenticated()
	window := max(2*d.Config().Atlas.DiscoveryInterval, 15*time.Minute)
	if last.IsZero() {
		return errors.New("not yet authenticated to Atlas")
	}
	if age := d.clk.Now().Sub(last); age > window {
		return fmt.Errorf("no successful Atlas request for %s", age.Round(time.Second))
	}
	return nil
}

func (d *Daemon) adminToken() string {
	return d.Config().Server.AdminToken.Reveal()
}

// watchdog pings systemd at half of WatchdogSec, only while the scheduler
// loop is alive, so a hung loop gets the service restarted.
func (d *Daemon) watchdog(ctx context.Context) {
	watchdogLoop(ctx, d.clk, d.opts.Notifier, d.healthy, func(err error) {
		d.log.Error("withholding the systemd watchdog ping", zap.Error(err))
	})
}

func watchdogLoop(ctx context.Context, clk clock.Clock, n Notifier, healthy func() error, unhealthy func(error)) {
	iv := n.WatchdogInterval()
	if iv <= 0 {
		return
	}
	for {
		if err := healthy(); err == nil {
			_ = n.Notify("WATCHDOG=1")
		} else {
			unhealthy(err)
		}
		if clock.Sleep(ctx, clk, iv/2) != nil {
			return
		}
	}
}

// Status is the daemon's view for /api/v1/status and `backupd status`.
func (d *Daemon) Status() run.Status {
	cfg := d.Config()
	sums, err := d.journal.Summaries()
	if err != nil {
		d.log.Warn("reading summaries for status", zap.Error(err))
	}
	byKey := map[string]journal.Summary{}
	for _, s := range sums {
		byKey[engine.Key(s.Policy, s.Target)] = s
	}
	eng := d.eng()
	next := d.schd().Next()
	st := run.Status{Version: buildinfo.String(), StartedAt: d.started, Now: d.clk.Now(), Ready: d.readyErr() == nil,
		Monitor: d.monitorStatus(), HA: d.haStatus()}
	for _, p := range cfg.Policies {
		res := d.resolution(p.Name)
		ps := run.PolicyStatus{Name: p.Name, Action: p.Action(), Schedule: p.Schedule, Timezone: p.Timezone, Interval: run.Duration(p.Interval()), Unresolved: res.Skipped, ResolutionErrors: d.resolutionErrors(p.Name)}
		for _, t := range res.Targets {
			k := engine.Key(p.Name, t)
			ts := run.TargetStatus{Target: t, NextRun: next[k]}
			if s, ok := byKey[k]; ok {
				ts.LastRun = s.Last
				for _, at := range s.LastSuccess {
					if at.After(ts.LastSuccess) {
						ts.LastSuccess = at
					}
				}
			}
			if r, ok := eng.InFlight(p.Name, t); ok {
				ts.InFlight = &r
			}
			ps.Targets = append(ps.Targets, ts)
		}
		st.Policies = append(st.Policies, ps)
	}
	sort.Slice(st.Policies, func(i, k int) bool { return st.Policies[i].Name < st.Policies[k].Name })
	return st
}

// backend adapts the daemon to the HTTP API.
type backend struct{ d *Daemon }

func (b backend) Status(context.Context) run.Status { return b.d.Status() }

func (b backend) Runs(_ context.Context, q httpapi.RunQuery) ([]run.Run, error) {
	if q.Policy != "" && !slices.ContainsFunc(b.d.Config().Policies, func(p policy.Policy) bool { return p.Name == q.Policy }) {
		return nil, fmt.Errorf("listing runs of %q: %w", q.Policy, httpapi.ErrUnknownPolicy)
	}
	jq := journal.Query{Policy: q.Policy, Limit: q.Limit, Before: q.After.CreatedAt, BeforeID: q.After.ID, Since: q.Since, Keep: q.Match}
	if q.ProjectID != "" && q.Cluster != "" {
		jq.Target = &run.Target{ProjectID: q.ProjectID, Cluster: q.Cluster}
	}
	return b.d.journal.History(jq)
}

func (b backend) Run(_ context.Context, id run.ID) (run.Run, bool, error) {
	return b.d.journal.Get(id)
}

func (b backend) Trigger(ctx context.Context, policyName string, t *run.Target) ([]run.Run, error) {
	if why := b.d.acting(); why != nil {
		return nil, why
	}
	rs, err := b.d.eng().Trigger(context.WithoutCancel(ctx), policyName, t)
	switch {
	case errors.Is(err, engine.ErrUnknownPolicy):
		return rs, fmt.Errorf("%w: %v", httpapi.ErrUnknownPolicy, err)
	case errors.Is(err, engine.ErrUnknownTarget):
		return rs, fmt.Errorf("%w: %v", httpapi.ErrUnknownTarget, err)
	}
	return rs, err
}

// markStore adapts the journal's marks to the scheduler's.
type markStore struct{ j journal.Journal }

func (m markStore) Mark(key string) (scheduler.Mark, bool, error) {
	jm, ok, err := m.j.Mark(key)
	return scheduler.Mark{LastSlot: jm.LastSlot, Since: jm.Since, Spec: legacySpec(jm.Schedule)}, ok, err
}

// legacySpec strips the " TZ=<zone>" that earlier versions appended to a
// mark's schedule, so upgrading keeps every schedule's history. A policy's
// schedule never contains " TZ=" (the cron parser rejects it).
func legacySpec(spec string) string {
	if i := strings.LastIndex(spec, " TZ="); i >= 0 && !strings.Contains(spec[i+1:], " ") {
		return spec[:i]
	}
	return spec
}

func (m markStore) SetMark(key string, sm scheduler.Mark) error {
	return m.j.SetMark(key, journal.Mark{LastSlot: sm.LastSlot, Since: sm.Since, Schedule: sm.Spec})
}

func (m markStore) DeleteMark(key string) error { return m.j.DeleteMark(key) }

// swapAtlas lets a reload replace the Atlas client under a running engine.
type swapAtlas struct {
	mu sync.RWMutex
	a  engine.Atlas
}

func (s *swapAtlas) set(a engine.Atlas) {
	s.mu.Lock()
	s.a = a
	s.mu.Unlock()
}

func (s *swapAtlas) get() engine.Atlas {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.a
}

type nopNotifier struct{}

func (nopNotifier) Notify(string) error             { return nil }
func (nopNotifier) WatchdogInterval() time.Duration { return 0 }

// sameHA reports whether two ha: sections elect the same way.
func sameHA(a, b *policy.HA) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Pos, y.Pos = policy.Position{}, policy.Position{}
	return x == y
}
