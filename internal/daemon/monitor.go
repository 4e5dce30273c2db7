package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/monitor"
	"github.com/backupd/backupd/internal/monitor/atlasread"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// monitorState is the running monitor of Atlas's native backups, if the
// configuration has a monitor: section. It starts after the HTTP server
// and stops before it (and so before the journal closes); a reload adds,
// changes or removes it without a restart.
type monitorState struct {
	mu sync.Mutex
	// life is the daemon's run: a monitor a reload adds lives as long.
	life      context.Context
	collector *monitor.Collector // a source of the daemon's metrics while running
	unexpose  func()             // removes collector from the metrics
	runner    *monitor.Runner
	reader    *atlasread.Reader
	stop      context.CancelFunc
	done      chan struct{}
}

// startMonitor starts the monitor of cfg, if any. ctx bounds its life.
func (d *Daemon) startMonitor(ctx context.Context, cfg *policy.Config) {
	m := &d.mon
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.life == nil {
		m.life = ctx
	}
	if cfg.Monitor == nil || m.runner != nil {
		return
	}
	plan := monitor.NewPlan(*cfg.Monitor)
	m.collector = monitor.NewCollector(plan.Interval())
	// A source, not a registry collector: /metrics streams its 30-odd
	// series per cluster a chunk at a time (docs/benchmarks.md). With ha:
	// only the leader exports them (metrics.GateSource), so an alert on
	// them fires once per deployment, not once per replica.
	unexpose, err := d.metrics.AddSource(d.metrics.GateSource(m.collector))
	if err != nil {
		d.log.Sugar().Errorf("monitor: cannot register its metrics, it does not start: %v", err)
		m.collector = nil
		return
	}
	m.unexpose = unexpose
	reader := atlasread.New(currentClusters{d}, currentNative{d}, d.clk, plan.Interval())
	m.reader = reader
	m.runner = monitor.NewRunner(monitor.RunnerConfig{
		Plan: plan, Reader: reader, Lister: reader, Collector: m.collector, Clock: d.clk,
		Logger: d.log.Named("monitor"), ReadTimeout: 4 * policy.ProjectTimeout(cfg.Atlas),
		ListTimeout: policy.ProjectTimeout(cfg.Atlas), ListEvery: monitorListEvery(cfg.Atlas, plan), Forget: reader.Forget,
	})
	rctx, stop := context.WithCancel(ctx)
	m.stop, m.done = stop, make(chan struct{})
	go func(r *monitor.Runner, done chan struct{}) { defer close(done); r.Run(rctx) }(m.runner, m.done)
	d.log.Sugar().Infof("monitor started: %d projects, read every %s", len(plan.Projects()), plan.Interval())
}

// monitorListEvery is how often the monitor lists its projects: every
// atlas.discoveryInterval, but not more often than it reads each cluster.
// A cluster that appears is read within an interval of being listed
// anyway, and listing is two calls per project (dedicated, flex): at the
// defaults (10m, 1h) every 10 minutes would cost more calls than the reads.
func monitorListEvery(a policy.Atlas, p monitor.Plan) time.Duration {
	return max(a.DiscoveryInterval, p.Interval())
}

// stopMonitor stops the monitor and waits for its reads in flight; its
// series leave /metrics. Stopping a stopped monitor does nothing.
func (d *Daemon) stopMonitor() {
	m := &d.mon
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runner == nil {
		return
	}
	m.stop()
	<-m.done
	m.unexpose()
	m.runner, m.reader, m.collector, m.unexpose = nil, nil, nil, nil
}

// reloadMonitor follows a reloaded configuration: a new plan for a
// running monitor, else a start or a stop.
func (d *Daemon) reloadMonitor(cfg *policy.Config) {
	d.mon.mu.Lock()
	r, reader, life := d.mon.runner, d.mon.reader, d.mon.life
	d.mon.mu.Unlock()
	switch {
	case r != nil && cfg.Monitor != nil:
		plan := monitor.NewPlan(*cfg.Monitor)
		reader.SetTTL(plan.Interval())
		r.SetPlan(plan)
	case r != nil:
		d.stopMonitor()
	case life != nil && life.Err() == nil:
		d.startMonitor(life, cfg)
	}
}

// monitorStatus is the monitor's part of status; nil without a monitor.
func (d *Daemon) monitorStatus() *run.MonitorStatus {
	d.mon.mu.Lock()
	r := d.mon.runner
	d.mon.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Status()
}

// currentClusters and currentNative read through the client of the
// moment, which a reload of the atlas: section replaces, at the lowest
// priority of its projects' budgets: the monitor yields to the runs and to
// discovery (docs/atlas-client.md#rate-limits).
type currentClusters struct{ d *Daemon }

func monitorCtx(ctx context.Context) context.Context {
	return atlas.WithPriority(ctx, atlas.PriorityMonitor)
}

func (c currentClusters) List(ctx context.Context, projectID string) ([]atlas.Cluster, error) {
	return c.d.currentClient().Clusters.List(monitorCtx(ctx), projectID)
}

func (c currentClusters) ListFlex(ctx context.Context, projectID string) ([]atlas.FlexCluster, error) {
	return c.d.currentClient().Clusters.ListFlex(monitorCtx(ctx), projectID)
}

type currentNative struct{ d *Daemon }

func (n currentNative) Schedule(ctx context.Context, projectID, cluster string) (*atlas.BackupSchedule, error) {
	return n.d.currentClient().Native.Schedule(monitorCtx(ctx), projectID, cluster)
}

func (n currentNative) CompliancePolicy(ctx context.Context, projectID string) (atlas.ProjectCompliance, error) {
	return n.d.currentClient().Native.CompliancePolicy(monitorCtx(ctx), projectID)
}

func (n currentNative) Snapshots(ctx context.Context, projectID, cluster string, typ atlas.ClusterType) ([]atlas.Snapshot, error) {
	return n.d.currentClient().Native.Snapshots(monitorCtx(ctx), projectID, cluster, typ)
}

func (n currentNative) FlexSnapshots(ctx context.Context, projectID, name string) ([]atlas.FlexSnapshot, error) {
	return n.d.currentClient().Native.FlexSnapshots(monitorCtx(ctx), projectID, name)
}
