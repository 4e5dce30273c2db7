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
