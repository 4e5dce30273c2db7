// Package drillmetrics exports what restore drills prove, per drill policy
// and source cluster: when the last drill succeeded, how long its restore
// took, how old its snapshot was, and whether a verify command checked it.
// It is a run.Observer and a prometheus.Collector of its own, rebuilt from
// the journal at start, so the metrics package stays about runs in general.
package drillmetrics

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupd/backupd/internal/run"
)

var labels = []string{"policy", "project", "cluster"}

var (
	lastSuccessDesc = prometheus.NewDesc("backupd_drill_last_success_timestamp_seconds",
		"When the last successful restore drill of the policy on the source cluster ended (Unix seconds).", labels, nil)
	durationDesc = prometheus.NewDesc("backupd_drill_restore_duration_seconds",
		"Restore time of the last successful drill: the restore job's creation to its finishedAt, on Atlas's clock.", labels, nil)
	ageDesc = prometheus.NewDesc("backupd_drill_snapshot_age_seconds",
		"Age of the restored snapshot when the last successful drill's restore began, on Atlas's clock.", labels, nil)
	verifiedDesc = prometheus.NewDesc("backupd_drill_verified",
		"1 when the last successful drill was verified by its verify command, 0 when at the Atlas level only.", labels, nil)
	firstDesc = prometheus.NewDesc("backupd_drill_first_run_timestamp_seconds",
		"When the oldest drill run of the policy on the source cluster the journal holds began (Unix seconds): the age a drill that never succeeded is measured from.", labels, nil)
)

type key struct{ policy, project, cluster string }

// last is the last successful drill of one key.
type last struct {
	at       time.Time
	duration time.Duration
	age      time.Duration
	verified bool
}

// Metrics holds the last successful drill per policy and source cluster.
type Metrics struct {
	mu    sync.Mutex
	last  map[key]last
	first map[key]time.Time // the oldest drill run known per key
}

// New returns empty drill metrics; register them on the daemon's registry.
func New() *Metrics { return &Metrics{last: map[key]last{}, first: map[key]time.Time{}} }

func keyOf(r run.Run) key { return key{r.Policy, r.Target.ProjectID, r.Target.Cluster} }

// record keeps r's start when it is the oldest drill run known, and r
// when it is a successful drill newer than the one known.
func (m *Metrics) record(r run.Run, at time.Time) {
	if r.Action != run.ActionRestoreDrill {
		return
	}
	k := keyOf(r)
	began := r.CreatedAt
	if began.IsZero() {
		began = at
	}
	if f, ok := m.first[k]; !ok || began.Before(f) {
		m.first[k] = began
	}
	if r.Stage != run.StageSucceeded {
		return
	}
	if !r.FinishedAt.IsZero() {
		at = r.FinishedAt
	}
	if prev, ok := m.last[k]; ok && !at.After(prev.at) {
		return
	}
	m.last[k] = last{at: at, duration: r.Drill.RestoreDuration(), age: r.Drill.SnapshotAge(),
		verified: r.Drill.Verification == run.VerifiedByCommand}
}

// Observe implements run.Observer.
func (m *Metrics) Observe(e run.Event) {
	if e.Note != "" || e.From == e.Run.Stage {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record(e.Run, e.At)
}

// Rebuild adds the journal's drill runs (any order: the oldest start and
// the newest success per policy and cluster win), at start.
func (m *Metrics) Rebuild(runs []run.Run) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range runs {
		m.record(r, r.UpdatedAt)
	}
}

// Keep drops the series of policies not in names (after a reload) and of
// targets keep reports false for.
func (m *Metrics) Keep(names []string, keep func(policy string, t run.Target) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.first {
		if !slices.Contains(names, k.policy) || (keep != nil && !keep(k.policy, run.Target{ProjectID: k.project, Cluster: k.cluster})) {
			delete(m.last, k)
			delete(m.first, k)
		}
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lastSuccessDesc, durationDesc, ageDesc, verifiedDesc, firstDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, f := range m.first {
		ch <- prometheus.MustNewConstMetric(firstDesc, prometheus.GaugeValue, float64(f.UnixMilli())/1000, k.policy, k.project, k.cluster)
	}
	for k, l := range m.last {
		lv := []string{k.policy, k.project, k.cluster}
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(l.at.UnixMilli())/1000, lv...)
		ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, l.duration.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, l.age.Seconds(), lv...)
		v := 0.0
		if l.verified {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(verifiedDesc, prometheus.GaugeValue, v, lv...)
	}
}

// Names lists the names of the drill series, for checks of rules and
// dashboards against what backupd exports.
func Names() []string {
	return []string{"backupd_drill_last_success_timestamp_seconds", "backupd_drill_restore_duration_seconds",
		"backupd_drill_snapshot_age_seconds", "backupd_drill_verified", "backupd_drill_first_run_timestamp_seconds"}
}
