package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
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

// HANames are the leader-election families, for checks of the names the
// shipped alert rules use (deploy).
func HANames() []string { return []string{"backupd_ha_leading", "backupd_ha_leader"} }
