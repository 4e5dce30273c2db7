// Package metrics turns backupd's run events, Atlas requests and schedule
// state into the Prometheus series of DESIGN.md. Dashboards and alert rules
// depend on the names, types and labels here, so they are fixed; label
// values are kept to closed sets (never snapshot or run ids) so cardinality
// stays bounded by the number of policies and targets.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/backupd/backupd/internal/run"
)

const namespace = "backupd"

// Label values of backupd_last_success_timestamp_seconds{stage}. They are
// also the keys of Restored.LastSuccess.
const (
	SuccessStageSnapshot = "snapshot" // the snapshot completed
	SuccessStageExport   = "export"   // the export of a snapshot succeeded
	SuccessStageRestore  = "restore"  // a flex restore succeeded
)

// successStages is the closed set of last-success stage label values.
var successStages = []string{SuccessStageSnapshot, SuccessStageExport, SuccessStageRestore}

// Result label values of backupd_runs_total, as returned by run.Run.Result.
var runResults = []string{"success", "failure", "timeout"}

// skipReasons is the closed set of reason label values of
// backupd_runs_skipped_total; other reasons are folded into not_supported.
var skipReasons = []string{run.ReasonOverlap, run.ReasonMissed, run.ReasonNotSupported, run.ReasonShutdown}

// inflightStages is the closed set of stage label values of
// backupd_inflight_runs: the non-terminal run stages.
var inflightStages = []run.Stage{run.StagePending, run.StageWaiting, run.StageSnapshotting, run.StageExporting, run.StageRestoring}

// durationStage maps the run stage a run left to the stage label of
// backupd_stage_duration_seconds. Stages not listed are not timed.
var durationStage = map[run.Stage]string{
	run.StageWaiting:      "wait",
	run.StageSnapshotting: "snapshot",
	run.StageExporting:    "export",
	run.StageRestoring:    "restore",
}

// stageDurationBuckets span a few seconds (an instant Atlas answer) to a day
// (the default export timeout is 24h).
var stageDurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600, 86400}

// atlasDurationBuckets span a fast API answer to the default 30s request
// timeout and beyond.
var atlasDurationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// recentTerminalCap bounds how many finished run ids are remembered to keep
// repeated terminal events from being counted twice.
const recentTerminalCap = 4096

// Metrics owns backupd's private Prometheus registry and every backupd_
// series. It is safe for concurrent use: the engine calls Observe from many
// run goroutines at once.
type Metrics struct {
	reg *prometheus.Registry

	policyInfo       *prometheus.GaugeVec
	runsTotal        *prometheus.CounterVec
	runsSkipped      *prometheus.CounterVec
	stageDuration    *prometheus.HistogramVec
	lastSuccess      *prometheus.GaugeVec
	lastRunSuccess   *prometheus.GaugeVec
	nextRun          *prometheus.GaugeVec
	scheduleInterval *prometheus.GaugeVec
	inflight         *prometheus.GaugeVec
	snapshotSize     *prometheus.GaugeVec
	atlasRequests    *prometheus.CounterVec
	atlasDuration    *prometheus.HistogramVec
	atlasRateLimited *prometheus.CounterVec
	configReloads    *prometheus.CounterVec

	// policyVecs are the vectors with a policy label, cleaned by SetPolicies.
	policyVecs []deletable
	// targetVecs are the vectors with policy, project and cluster labels,
	// cleaned by DeleteTarget.
	targetVecs []deletable

	mu sync.Mutex
	// inflightRuns is the stage each in-flight run is currently counted in,
	// so repeated and re-attached events move a run instead of adding it.
	inflightRuns map[run.ID]run.Stage
	// terminated remembers recently finished runs (a ring of ids) so a
	// repeated terminal event does not count a run twice.
	terminated     map[run.ID]struct{}
	terminatedRing []run.ID
	terminatedNext int
	// seenPolicies is every policy that may have series, so SetPolicies can
	// delete those of policies no longer configured.
	seenPolicies map[string]struct{}
}

// deletable is the part of a metric vector SetPolicies and DeleteTarget use.
type deletable interface {
	DeletePartialMatch(labels prometheus.Labels) int
}

// New creates the registry with every backupd_ metric plus the Go runtime
// and process collectors, and sets backupd_build_info{version, goversion}
// to 1. version is the daemon's build version.
func New(version string) *Metrics {
	target := []string{"policy", "project", "cluster"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_info",
			Help: "Configured policies; always 1. Join on policy to get the action, schedule and time zone.",
		}, []string{"policy", "action", "schedule", "timezone"}),
		runsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_total",
			Help: "Runs that ended, by result: success, failure or timeout.",
		}, append(target, "result")),
		runsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_skipped_total",
			Help: "Runs that were skipped, by reason: overlap, missed, not_supported or shutdown.",
		}, append(target, "reason")),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "stage_duration_seconds",
			Help:    "Time runs spent in a stage (wait, snapshot, export, restore), observed when they leave it.",
			Buckets: stageDurationBuckets,
		}, []string{"policy", "stage"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_success_timestamp_seconds",
			Help: "Unix time a stage (snapshot, export, restore) last completed successfully on a target.",
		}, append(target, "stage")),
		lastRunSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_run_success",
			Help: "1 if the last finished run on a target succeeded, 0 if it failed or timed out. Skips leave it unchanged.",
		}, target),
		nextRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "next_run_timestamp_seconds",
			Help: "Unix time the next run of a policy on a target is due (slot plus jitter).",
		}, target),
		scheduleInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "schedule_interval_seconds",
			Help: "Nominal time between two slots of a policy's schedule; use it to scale staleness alerts.",
		}, []string{"policy"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "inflight_runs",
			Help: "Runs currently in a non-terminal stage (pending, waiting, snapshotting, exporting, restoring).",
		}, []string{"stage"}),
		snapshotSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "snapshot_size_bytes",
			Help: "Size Atlas reported for the latest snapshot a run took or used on a target.",
		}, target),
		atlasRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "atlas_requests_total",
			Help: "Atlas Admin API HTTP attempts, by operation and HTTP status code (\"error\" for transport errors).",
		}, []string{"operation", "code"}),
		atlasDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "atlas_request_duration_seconds",
			Help:    "Latency of Atlas Admin API HTTP attempts, by operation.",
			Buckets: atlasDurationBuckets,
		}, []string{"operation"}),
		atlasRateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "atlas_rate_limited_total",
			Help: "Atlas Admin API attempts answered with a rate limit (429), by operation.",
		}, []string{"operation"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: success or failure.",
		}, []string{"result"}),
		inflightRuns: make(map[run.ID]run.Stage),
		terminated:   make(map[run.ID]struct{}),
		seenPolicies: make(map[string]struct{}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Build of the running daemon; always 1.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	m.policyVecs = []deletable{m.policyInfo, m.runsTotal, m.runsSkipped, m.stageDuration, m.lastSuccess,
		m.lastRunSuccess, m.nextRun, m.scheduleInterval, m.snapshotSize}
	m.targetVecs = []deletable{m.runsTotal, m.runsSkipped, m.lastSuccess, m.lastRunSuccess, m.nextRun, m.snapshotSize}

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, m.policyInfo, m.runsTotal, m.runsSkipped, m.stageDuration, m.lastSuccess,
		m.lastRunSuccess, m.nextRun, m.scheduleInterval, m.inflight, m.snapshotSize,
		m.atlasRequests, m.atlasDuration, m.atlasRateLimited, m.configReloads,
	)
	// Series that exist from the start, so rate() and absence alerts work
	// before the first event.
	for _, s := range inflightStages {
		m.inflight.WithLabelValues(string(s)).Set(0)
	}
	m.configReloads.WithLabelValues("success")
	m.configReloads.WithLabelValues("failure")
	return m
}

// Registry returns the private registry, for tests and for wiring extra
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails does not hide the others.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// ObserveAtlasRequest records one HTTP attempt against the Atlas Admin API.
// operation is the client's bounded operation name; code is the HTTP status
// as a string, or "error" (also used when code is empty) for a transport
// error; rateLimited marks a 429 answer.
func (m *Metrics) ObserveAtlasRequest(operation, code string, d time.Duration, rateLimited bool) {
	if code == "" {
		code = "error"
	}
	m.atlasRequests.WithLabelValues(operation, code).Inc()
	m.atlasDuration.WithLabelValues(operation).Observe(d.Seconds())
	if rateLimited {
		m.atlasRateLimited.WithLabelValues(operation).Inc()
	}
}

// ConfigReload counts one configuration reload attempt.
func (m *Metrics) ConfigReload(ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.configReloads.WithLabelValues(result).Inc()
}

// PolicyInfo is what the metrics need to know about one configured policy.
type PolicyInfo struct {
	Name     string
	Action   string // run.Action as a string
	Schedule string // the schedule as configured
	Timezone string
	// Interval is the nominal time between slots; zero leaves
	// backupd_schedule_interval_seconds unset for the policy.
	Interval time.Duration
}

// SetPolicies publishes the configured policies and deletes every series of
// policies that are no longer configured. Call it at start (after Rebuild)
// and after every successful reload.
func (m *Metrics) SetPolicies(ps []PolicyInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := make(map[string]struct{}, len(ps))
	for _, p := range ps {
		keep[p.Name] = struct{}{}
	}
	for name := range m.seenPolicies {
		if _, ok := keep[name]; ok {
			continue
		}
		for _, v := range m.policyVecs {
			v.DeletePartialMatch(prometheus.Labels{"policy": name})
		}
		delete(m.seenPolicies, name)
	}
	for _, p := range ps {
		m.seenPolicies[p.Name] = struct{}{}
		// The schedule or time zone may have changed: replace the series.
		m.policyInfo.DeletePartialMatch(prometheus.Labels{"policy": p.Name})
		m.policyInfo.WithLabelValues(p.Name, p.Action, p.Schedule, p.Timezone).Set(1)
		if p.Interval > 0 {
			m.scheduleInterval.WithLabelValues(p.Name).Set(p.Interval.Seconds())
		} else {
			m.scheduleInterval.DeleteLabelValues(p.Name)
		}
	}
}

// SetNextRun publishes when a policy next runs on a target; a zero at
// removes the series. It also creates the target's run counters at zero so
// increase() and absence alerts work before its first run.
func (m *Metrics) SetNextRun(policy string, t run.Target, at time.Time) {
	m.seePolicy(policy)
	if at.IsZero() {
		m.nextRun.DeleteLabelValues(policy, t.ProjectID, t.Cluster)
		return
	}
	m.nextRun.WithLabelValues(policy, t.ProjectID, t.Cluster).Set(unixSeconds(at))
	for _, r := range runResults {
		m.runsTotal.WithLabelValues(policy, t.ProjectID, t.Cluster, r)
	}
	for _, r := range skipReasons {
		m.runsSkipped.WithLabelValues(policy, t.ProjectID, t.Cluster, r)
	}
}

// DeleteTarget removes every series of a policy on a target that is no
// longer resolved (cluster deleted, excluded, or no longer matching).
func (m *Metrics) DeleteTarget(policy string, t run.Target) {
	l := prometheus.Labels{"policy": policy, "project": t.ProjectID, "cluster": t.Cluster}
	for _, v := range m.targetVecs {
		v.DeletePartialMatch(l)
	}
}

// Restored is what the journal knows about a policy on a target at start.
type Restored struct {
	Policy string
	Target run.Target
	// Last is the last finished run, if any.
	Last *run.Run
	// LastSuccess maps a success stage ("snapshot", "export", "restore") to
	// when it last succeeded. Other keys are ignored.
	LastSuccess map[string]time.Time
	// SnapshotBytes is the size of the latest snapshot; 0 = unknown.
	SnapshotBytes int64
}

// Rebuild sets the gauges that must survive a restart from the journal:
// backupd_last_success_timestamp_seconds, backupd_last_run_success and
// backupd_snapshot_size_bytes. Counters restart at zero, as Prometheus expects.
func (m *Metrics) Rebuild(rs []Restored) {
	for _, r := range rs {
		m.seePolicy(r.Policy)
		l := []string{r.Policy, r.Target.ProjectID, r.Target.Cluster}
		if r.Last != nil {
			switch r.Last.Stage {
			case run.StageSucceeded:
				m.lastRunSuccess.WithLabelValues(l...).Set(1)
			case run.StageFailed:
				m.lastRunSuccess.WithLabelValues(l...).Set(0)
			}
		}
		for _, stage := range successStages {
			if at, ok := r.LastSuccess[stage]; ok && !at.IsZero() {
				m.lastSuccess.WithLabelValues(append(l, stage)...).Set(unixSeconds(at))
			}
		}
		if r.SnapshotBytes > 0 {
			m.snapshotSize.WithLabelValues(l...).Set(float64(r.SnapshotBytes))
		}
	}
}

// RebuildInflight replaces the in-flight bookkeeping with the journal's
// active runs at start. Terminal runs in active are ignored. Events that
// later re-attach the same runs move them between stages without counting
// them twice.
func (m *Metrics) RebuildInflight(active []run.Run) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.inflightRuns {
		m.inflight.WithLabelValues(string(s)).Dec()
		delete(m.inflightRuns, id)
	}
	for _, r := range active {
		m.seenPolicies[r.Policy] = struct{}{}
		_ = m.trackLocked(r.ID, r.Stage)
	}
}

// Observe implements run.Observer: it maps one run event to the metrics
// (see docs/metrics.md for the mapping). Progress events (Note set) change
// nothing.
func (m *Metrics) Observe(e run.Event) {
	if e.Note != "" {
		return
	}
	r := e.Run
	at := e.At
	if at.IsZero() {
		at = r.UpdatedAt
	}
	l := []string{r.Policy, r.Target.ProjectID, r.Target.Cluster}

	m.mu.Lock()
	m.seenPolicies[r.Policy] = struct{}{}
	// A repeated event (same run, same stage) must not be counted again.
	moved := m.trackLocked(r.ID, r.Stage)
	if r.Stage.Terminal() {
		moved = m.rememberTerminalLocked(r.ID)
	}
	m.mu.Unlock()
	if !moved {
		return
	}

	if label, ok := durationStage[e.From]; ok && e.From != r.Stage && e.StageDuration >= 0 {
		m.stageDuration.WithLabelValues(r.Policy, label).Observe(e.StageDuration.Seconds())
	}
	if r.SnapshotBytes > 0 {
		m.snapshotSize.WithLabelValues(l...).Set(float64(r.SnapshotBytes))
	}
	if e.From == run.StageSnapshotting && (r.Stage == run.StageExporting || r.Stage == run.StageSucceeded) &&
		r.SnapshotStatus == "completed" {
		m.lastSuccess.WithLabelValues(append(l, SuccessStageSnapshot)...).Set(unixSeconds(at))
	}
	if !r.Stage.Terminal() {
		return
	}
	switch r.Stage {
	case run.StageSucceeded:
		m.runsTotal.WithLabelValues(append(l, r.Result())...).Inc()
		m.lastRunSuccess.WithLabelValues(l...).Set(1)
		if r.ExportJobID != "" || e.From == run.StageExporting {
			m.lastSuccess.WithLabelValues(append(l, SuccessStageExport)...).Set(unixSeconds(at))
		}
		if r.Action == run.ActionFlexRestore || r.RestoreJobID != "" || e.From == run.StageRestoring {
			m.lastSuccess.WithLabelValues(append(l, SuccessStageRestore)...).Set(unixSeconds(at))
		}
	case run.StageFailed:
		m.runsTotal.WithLabelValues(append(l, r.Result())...).Inc()
		m.lastRunSuccess.WithLabelValues(l...).Set(0)
	case run.StageSkipped:
		m.runsSkipped.WithLabelValues(append(l, skipReason(r.Reason))...).Inc()
	}
}

// trackLocked moves run id to stage s in backupd_inflight_runs; a terminal
// stage removes it. Repeating the same stage changes nothing and reports
// false.
func (m *Metrics) trackLocked(id run.ID, s run.Stage) bool {
	old, tracked := m.inflightRuns[id]
	if tracked && old == s {
		return false
	}
	if tracked {
		m.inflight.WithLabelValues(string(old)).Dec()
		delete(m.inflightRuns, id)
	}
	if s.Terminal() || !isInflightStage(s) {
		return true
	}
	m.inflightRuns[id] = s
	m.inflight.WithLabelValues(string(s)).Inc()
	return true
}

// rememberTerminalLocked records that run id finished and reports whether
// this is the first terminal event seen for it.
func (m *Metrics) rememberTerminalLocked(id run.ID) bool {
	if _, seen := m.terminated[id]; seen {
		return false
	}
	if len(m.terminatedRing) < recentTerminalCap {
		m.terminatedRing = append(m.terminatedRing, id)
	} else {
		delete(m.terminated, m.terminatedRing[m.terminatedNext])
		m.terminatedRing[m.terminatedNext] = id
		m.terminatedNext = (m.terminatedNext + 1) % recentTerminalCap
	}
	m.terminated[id] = struct{}{}
	return true
}

func (m *Metrics) seePolicy(policy string) {
	m.mu.Lock()
	m.seenPolicies[policy] = struct{}{}
	m.mu.Unlock()
}

func isInflightStage(s run.Stage) bool {
	for _, v := range inflightStages {
		if v == s {
			return true
		}
	}
	return false
}

// skipReason keeps the reason label bounded: reasons outside the documented
// set count as not_supported.
func skipReason(reason string) string {
	for _, r := range skipReasons {
		if r == reason {
			return r
		}
	}
	return run.ReasonNotSupported
}

// unixSeconds is t as fractional Unix seconds, the Prometheus convention for
// timestamps.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

// StatusCode formats an HTTP status for ObserveAtlasRequest's code: the
// number as a string, or "error" for 0 (a transport error).
func StatusCode(status int) string {
	if status == 0 {
		return "error"
	}
	return strconv.Itoa(status)
}
