package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupd/backupd/internal/run"
)

// Leadership is the leader-election pair of series, registered only when
// the configuration has an ha: section (a single replica has neither).
type Leadership struct {
	leading prometheus.Gauge
	leader  *prometheus.GaugeVec

	mu     sync.Mutex
	shown  string // the identity backupd_ha_leader has a series for
	hasOne bool
}

// Leadership registers backupd_ha_leading and backupd_ha_leader and returns
// their setter. Call it once.
func (m *Metrics) Leadership() *Leadership {
	l := &Leadership{
		leading: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ha_leading",
			Help: "1 while this replica holds the lease and acts (fires slots, accepts triggers, sends to Atlas); 0 on a standby.",
		}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ha_leader",
			Help: "Always 1, for the identity this replica last saw holding the lease; no series while no leader is known.",
		}, []string{"identity"}),
	}
	m.reg.MustRegister(l.leading, l.leader)
	return l
}

// Set publishes whether this replica leads and who does ("" unknown). The
// leader series is replaced, never added to: one series at most.
func (l *Leadership) Set(leading bool, leader string) {
	if leading {
		l.leading.Set(1)
	} else {
		l.leading.Set(0)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hasOne && l.shown == leader {
		return
	}
	if l.hasOne {
		l.leader.DeleteLabelValues(l.shown)
		l.hasOne = false
	}
	if leader != "" {
		l.leader.WithLabelValues(leader).Set(1)
		l.shown, l.hasOne = leader, true
	}
}

// SetStandby hides (true) or shows (false) the run-outcome series: the
// per-target families (runs_total, runs_skipped_total,
// last_success_timestamp_seconds, last_run_success,
// next_run_timestamp_seconds, snapshot_size_bytes), backupd_inflight_runs
// (the runs it parked are the next leader's to count) and every collector
// wrapped by Gate. A standby's journal stops at its last term, so its
// values go stale while another replica acts; exported, they would make
// every staleness and failure alert fire on every standby. Only the leader
// exports them, from the moment it leads (docs/metrics.md, "Several
// replicas"). The values themselves are kept: they show again when this
// replica leads.
func (m *Metrics) SetStandby(standby bool) { m.standby.Store(standby) }

// Gate wraps a collector of run-outcome series (the restore drills'
// gauges) so that it is hidden with the per-target families while this
// replica stands by (SetStandby).
func (m *Metrics) Gate(c prometheus.Collector) prometheus.Collector {
	return gated{c: c, m: m}
}

type gated struct {
	c prometheus.Collector
	m *Metrics
}

func (g gated) Describe(ch chan<- *prometheus.Desc) { g.c.Describe(ch) }

func (g gated) Collect(ch chan<- prometheus.Metric) {
	if !g.m.standby.Load() {
		g.c.Collect(ch)
	}
}

// GateSource wraps a Source so that its families have no series while
// this replica stands by (SetStandby), as Gate does for a collector. The
// monitor reads Atlas on every replica (a new leader's series are fresh at
// once), but only the leader exports them: every replica exporting the
// same clusters' series would fire each monitor alert once per replica.
func (m *Metrics) GateSource(s Source) Source { return gatedSource{s: s, m: m} }

type gatedSource struct {
	s Source
	m *Metrics
}

func (g gatedSource) Families() []SourceFamily {
	fs := g.s.Families()
	for i := range fs {
		walk := fs[i].Walk
		fs[i].Walk = func(buf []SourceSample, emit func([]SourceSample) error) error {
			if g.m.standby.Load() {
				return nil
			}
			return walk(buf, emit)
		}
	}
	return fs
}

// BeginTerm withholds every target's backupd_last_run_success: called when
// this replica starts to lead, before it reconciles with Atlas. Its values
// come from its own journal, which stops at its last term while other
// replicas ran the slots since; published, a failure it saw long ago would
// fire BackupdLastRunFailed for a target whose last run succeeded on the
// previous leader. A target's result shows again once it is known for
// this term: when Reconciled reports what Atlas's markers show, or when a
// run of this term ends (Observe). Restore policies leave no markers, so
// theirs shows again at their next run's end. The last-success timestamps
// are not withheld (an old success is still a success; Reconciled raises
// them to what Atlas shows).
func (m *Metrics) BeginTerm() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.targets.byKey {
		if s.has&hasLastRun != 0 {
			s.setWithheld(true)
		}
	}
}

// AtlasRun is the newest finished run of a policy on a target that Atlas's
// markers show (another replica may have run it).
type AtlasRun struct {
	Slot      time.Time
	Succeeded bool
	// SnapshotAt and ExportAt are when its snapshot completed and its
	// export succeeded, as far as Atlas tells (zero: not at all).
	SnapshotAt, ExportAt time.Time
	SnapshotBytes        int64
}

// Reconciled publishes a target's last-run result for this term after it
// was reconciled with Atlas: the newer (by slot) of the result it holds
// and newest, which is nil when Atlas's markers show no finished run (the
// journal's result is then the newest there is). The last-success
// timestamps are raised to newest's where they are later, and the snapshot
// size is newest's when newest is the newer run.
func (m *Metrics) Reconciled(policy string, t run.Target, newest *AtlasRun) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.targets.get(policy, t.ProjectID, t.Cluster)
	if newest == nil {
		if s != nil {
			s.setWithheld(false)
		}
		return
	}
	if s == nil {
		s = m.targets.getOrCreate(policy, t.ProjectID, t.Cluster)
	}
	mask := m.stageMaskLocked(policy)
	raise := func(stage int, at time.Time) {
		if at.IsZero() || mask&(1<<stage) == 0 {
			return
		}
		if v := unixSeconds(at); s.has&(hasLastSuccess<<stage) == 0 || v > s.lastSuccess[stage] {
			s.setLastSuccess(stage, v)
		}
	}
	raise(stageSnapshot, newest.SnapshotAt)
	raise(stageExport, newest.ExportAt)
	if s.has&hasLastRun != 0 && s.lastRunSlot != 0 && newest.Slot.UnixMilli() <= s.lastRunSlot {
		s.setWithheld(false) // the result held is as new
		return
	}
	if newest.SnapshotBytes > 0 {
		s.setSnapshotSize(float64(newest.SnapshotBytes))
	}
	s.setLastRun(newest.Succeeded, newest.Slot)
}

// HANames are the leader-election families, for checks of the names the
// shipped alert rules use (deploy).
func HANames() []string { return []string{"backupd_ha_leading", "backupd_ha_leader"} }
