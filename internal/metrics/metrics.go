// Package metrics turns backupd's run events, Atlas requests and schedule
// state into the Prometheus series of DESIGN.md. Dashboards and alert rules
// depend on the names, types and labels here, so they are fixed; label
// values are kept to closed sets (never snapshot or run ids) so cardinality
// stays bounded by the number of policies and targets.
package metrics

import (
	"hash/maphash"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/backupd/backupd/internal/atlas"
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

// inflightStages is the closed set of stage label values of
// backupd_inflight_runs: the non-terminal run stages.
var inflightStages = []run.Stage{run.StagePending, run.StageWaiting, run.StageSnapshotting, run.StageExporting, run.StageRestoring, run.StageVerifying}

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

// atlasBudgetWaitBuckets span a call served at once to one that waited out
// a Retry-After hold (the client waits at most 5 minutes).
var atlasBudgetWaitBuckets = []float64{0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// recentTerminalCap bounds how many finished run ids are remembered to keep
// repeated terminal events from being counted twice.
const recentTerminalCap = 4096

// Metrics owns backupd's Prometheus metrics. It is safe for concurrent
// use: the engine calls Observe from many run goroutines at once, and
// scrapes run concurrently with them.
//
// The metrics with few series (build, policy, stage durations, in-flight
// runs, Atlas requests, reloads, Go runtime, process) live in a
// prometheus.Registry. The per-target families (runs_total,
// runs_skipped_total, last_success_timestamp_seconds, last_run_success,
// next_run_timestamp_seconds, snapshot_size_bytes) hold one series per
// policy on a target, 10,000s of them, so they are kept in compact structs
// (targets.go) and encoded a chunk at a time by Handler (exposition.go).
type Metrics struct {
	reg *prometheus.Registry
	// all is reg plus a collector of the per-target families and the
	// streamed families of the sources: the whole exposition as dto, for
	// Gatherer.
	all prometheus.Gatherers
	// src are the Sources of streamed families (stream.go).
	src sources

	policyInfo       *prometheus.GaugeVec
	stageDuration    *prometheus.HistogramVec
	scheduleInterval *prometheus.GaugeVec
	inflight         *prometheus.GaugeVec
	atlasRequests    *prometheus.CounterVec
	atlasDuration    *prometheus.HistogramVec
	atlasRateLimited *prometheus.CounterVec
	atlasBudgetWait  *prometheus.HistogramVec
	configReloads    *prometheus.CounterVec
	resolveFailures  *prometheus.CounterVec
	journalErrors    prometheus.Counter

	// policyVecs are the registry's vectors with a policy label, cleaned by
	// SetPolicies.
	policyVecs []deletable

	// standby hides the run-outcome series (the per-target families,
	// backupd_inflight_runs, the Gate'd collectors) while this replica does
	// not lead (ha.go).
	standby atomic.Bool

	mu sync.Mutex
	// targets holds the per-target series.
	targets targetStore
	// stageMasks is, per configured policy whose stages are known
	// (PolicyInfo.Stages), the last-success stages it may have (a bit per
	// stageLabels index).
	stageMasks map[string]uint8
	// inflightRuns is the stage each in-flight run is currently counted in,
	// so repeated and re-attached events move a run instead of adding it.
	inflightRuns map[run.ID]run.Stage
	// terminated remembers recently finished runs (a ring of their ids'
	// hashes, with termSeed) so a repeated terminal event does not count a
	// run twice. Hashes, not the ids: 8 bytes each instead of a string
	// header and the id's bytes kept alive, 4,096 times over; two of 4,096
	// ids share a 64-bit hash with odds of about 1 in 10^12.
	terminated     map[uint64]struct{}
	terminatedRing []uint64
	terminatedNext int
	termSeed       maphash.Seed
	// seenPolicies is every policy that may have series in policyVecs, so
	// SetPolicies can delete those of policies no longer configured.
	seenPolicies map[string]struct{}
}

// deletable is the part of a metric vector SetPolicies and DeleteTarget use.
type deletable interface {
	DeletePartialMatch(labels prometheus.Labels) int
}

// New creates the registry with the backupd_ metrics that have few series
// plus the Go runtime and process collectors, the store of the per-target
// series, and sets backupd_build_info{version, goversion} to 1. version is
// the daemon's build version.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_info",
			Help: "Configured policies; always 1. Join on policy to get the action, schedule and time zone.",
		}, []string{"policy", "action", "schedule", "timezone"}),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "stage_duration_seconds",
			Help:    "Time runs spent in a stage (wait, snapshot, export, restore), observed when they leave it.",
			Buckets: stageDurationBuckets,
		}, []string{"policy", "stage"}),
		scheduleInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "schedule_interval_seconds",
			Help: "Nominal time between two slots of a policy's schedule; use it to scale staleness alerts.",
		}, []string{"policy"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "inflight_runs",
			Help: "Runs currently in a non-terminal stage (pending, waiting, snapshotting, exporting, restoring).",
		}, []string{"stage"}),
		atlasRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "atlas_requests_total",
			Help: "Atlas Admin API HTTP attempts, by operation and HTTP status code (\"error\" for transport errors, \"decode_error\" for 2xx answers that could not be read).",
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
		atlasBudgetWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "atlas_budget_wait_seconds",
			Help:    "Time each Atlas Admin API attempt waited for its project's request budget, by priority (urgent, engine, discovery, monitor).",
			Buckets: atlasBudgetWaitBuckets,
		}, []string{"priority"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: success or failure.",
		}, []string{"result"}),
		resolveFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "target_resolution_failures_total",
			Help: "Target resolutions in which a project's clusters could not be listed (error, undecodable answer or no answer in time); its last known targets were kept.",
		}, []string{"project"}),
		journalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "journal_write_errors_total",
			Help: "Journal writes that failed (disk full, I/O error); every retry of a run's write counts.",
		}),
		targets:      newTargetStore(),
		stageMasks:   make(map[string]uint8),
		inflightRuns: make(map[run.ID]run.Stage),
		terminated:   make(map[uint64]struct{}, recentTerminalCap),
		termSeed:     maphash.MakeSeed(),
		seenPolicies: make(map[string]struct{}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Build of the running daemon; always 1.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	m.policyVecs = []deletable{m.policyInfo, m.stageDuration, m.scheduleInterval}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, m.policyInfo, m.stageDuration, m.scheduleInterval, m.Gate(m.inflight),
		m.atlasRequests, m.atlasDuration, m.atlasRateLimited, m.atlasBudgetWait, m.configReloads,
		m.resolveFailures, m.journalErrors,
	)
	targets := prometheus.NewPedanticRegistry()
	targets.MustRegister(newTargetCollector(m))
	m.all = prometheus.Gatherers{m.reg, targets, prometheus.GathererFunc(m.gatherSources)}
	// Series that exist from the start, so rate() and absence alerts work
	// before the first event.
	for _, s := range inflightStages {
		m.inflight.WithLabelValues(string(s)).Set(0)
	}
	m.configReloads.WithLabelValues("success")
	m.configReloads.WithLabelValues("failure")
	for _, p := range atlas.Priorities() {
		m.atlasBudgetWait.WithLabelValues(p.String())
	}
	return m
}

// Registry returns the registry of the metrics with few series (and the
// Go runtime and process collectors), for wiring extra collectors: Handler
// serves whatever is registered there. The per-target families are not in
// it; Gatherer returns everything.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Gatherer returns every series Handler serves, the per-target families
// included, as a prometheus.Gatherer: for tests and tools that want dto.
// At fleet size it allocates the whole exposition at once (tens of MB at
// 10,000 targets); Handler does not.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.all }

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

// ObserveAtlasBudgetWait records how long one Atlas attempt of priority
// waited for its project's request budget.
func (m *Metrics) ObserveAtlasBudgetWait(priority atlas.Priority, d time.Duration) {
	m.atlasBudgetWait.WithLabelValues(priority.String()).Observe(d.Seconds())
}

// ConfigReload counts one configuration reload attempt.
func (m *Metrics) ConfigReload(ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.configReloads.WithLabelValues(result).Inc()
}

// ResolutionFailed counts one resolution in which project's cluster lists
// could not be read.
func (m *Metrics) ResolutionFailed(project string) {
	m.resolveFailures.WithLabelValues(project).Inc()
}

// JournalWriteError counts one failed journal write.
func (m *Metrics) JournalWriteError() { m.journalErrors.Inc() }

// PolicyInfo is what the metrics need to know about one configured policy.
type PolicyInfo struct {
	Name     string
	Action   string // run.Action as a string
	Schedule string // the schedule as configured
	Timezone string
	// Interval is the nominal time between slots; zero leaves
	// backupd_schedule_interval_seconds unset for the policy.
	Interval time.Duration
	// Stages are the backupd_last_success_timestamp_seconds stages the
	// policy's runs produce (SuccessStage* values; see SuccessStages).
	// SetPolicies deletes the policy's series of other stages, so a reload
	// that removes a policy's export: does not leave a stale export
	// timestamp behind to trip a lag alert. nil means unknown: no stage is
	// dropped.
	Stages []string
}

// SuccessStages returns the last-success stages a policy's runs produce,
// for PolicyInfo.Stages: a snapshot policy's "snapshot" (plus "export" when
// it chains an export), an export policy's "export", a flex restore
// policy's or restore drill's "restore". An unknown action returns nil (unknown).
func SuccessStages(action run.Action, exports bool) []string {
	switch action {
	case run.ActionSnapshot:
		if exports {
			return []string{SuccessStageSnapshot, SuccessStageExport}
		}
		return []string{SuccessStageSnapshot}
	case run.ActionExport:
		return []string{SuccessStageExport}
	case run.ActionFlexRestore, run.ActionRestoreDrill:
		return []string{SuccessStageRestore}
	}
	return nil
}

// stageMask turns PolicyInfo.Stages into a bit per stageLabels index;
// unknown stage names are ignored.
func stageMask(stages []string) uint8 {
	var mask uint8
	for _, st := range stages {
		if i := stageIndex(st); i >= 0 {
			mask |= 1 << i
		}
	}
	return mask
}

// stageIndex is the index of a last-success stage in stageLabels, or -1.
func stageIndex(stage string) int {
	for i, l := range stageLabels {
		if l == stage {
			return i
		}
	}
	return -1
}

// SetPolicies publishes the configured policies, deletes every series of
// policies that are no longer configured, and deletes the last-success
// series of stages a policy no longer has (PolicyInfo.Stages). Call it at
// start (after Rebuild) and after every successful reload.
func (m *Metrics) SetPolicies(ps []PolicyInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := make(map[string]struct{}, len(ps))
	clear(m.stageMasks)
	for _, p := range ps {
		keep[p.Name] = struct{}{}
		if p.Stages != nil {
			m.stageMasks[p.Name] = stageMask(p.Stages)
		}
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
	for _, s := range m.targets.byKey {
		if _, ok := keep[s.key.policy()]; !ok {
			m.targets.remove(s)
			continue
		}
		if mask, ok := m.stageMasks[s.key.policy()]; ok {
			s.keepStages(mask)
			m.targets.removeIfEmpty(s)
		}
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
// removes the series. The target's run counters are not created here: a
// (target, result) or (target, reason) series appears when it first
// counts, which keeps a fleet's idle series few.
func (m *Metrics) SetNextRun(policy string, t run.Target, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if at.IsZero() {
		if s := m.targets.get(policy, t.ProjectID, t.Cluster); s != nil {
			s.has &^= hasNextRun
			m.targets.removeIfEmpty(s)
		}
		return
	}
	s := m.targets.getOrCreate(policy, t.ProjectID, t.Cluster)
	s.nextRun = unixSeconds(at)
	s.has |= hasNextRun
}

// DeleteTarget removes every series of a policy on a target that is no
// longer resolved (cluster deleted, excluded, or no longer matching).
func (m *Metrics) DeleteTarget(policy string, t run.Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.targets.get(policy, t.ProjectID, t.Cluster); s != nil {
		m.targets.remove(s)
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
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rs {
		var s *targetSeries
		series := func() *targetSeries {
			if s == nil {
				s = m.targets.getOrCreate(r.Policy, r.Target.ProjectID, r.Target.Cluster)
			}
			return s
		}
		if r.Last != nil {
			switch r.Last.Stage {
			case run.StageSucceeded:
				series().setLastRun(true, r.Last.Slot)
			case run.StageFailed:
				series().setLastRun(false, r.Last.Slot)
			}
		}
		mask := m.stageMaskLocked(r.Policy)
		for i, stage := range stageLabels {
			if at, ok := r.LastSuccess[stage]; ok && !at.IsZero() && mask&(1<<i) != 0 {
				series().setLastSuccess(i, unixSeconds(at))
			}
		}
		if r.SnapshotBytes > 0 {
			series().setSnapshotSize(float64(r.SnapshotBytes))
		}
	}
}

// stageMaskLocked is the last-success stages policy may have: its
// configured stages if known, else all.
func (m *Metrics) stageMaskLocked(policy string) uint8 {
	if mask, ok := m.stageMasks[policy]; ok {
		return mask
	}
	return allStages
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
	r := &e.Run
	at := e.At
	if at.IsZero() {
		at = r.UpdatedAt
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// A repeated event (same run, same stage) must not be counted again.
	moved := m.trackLocked(r.ID, r.Stage)
	if r.Stage.Terminal() {
		moved = m.rememberTerminalLocked(r.ID)
	}
	if !moved {
		return
	}

	if label, ok := durationStage[e.From]; ok && e.From != r.Stage && e.StageDuration >= 0 {
		m.seenPolicies[r.Policy] = struct{}{}
		m.stageDuration.WithLabelValues(r.Policy, label).Observe(e.StageDuration.Seconds())
	}
	var s *targetSeries
	series := func() *targetSeries {
		if s == nil {
			s = m.targets.getOrCreate(r.Policy, r.Target.ProjectID, r.Target.Cluster)
		}
		return s
	}
	mask := m.stageMaskLocked(r.Policy)
	setLastSuccess := func(stage int) {
		if mask&(1<<stage) != 0 {
			series().setLastSuccess(stage, unixSeconds(at))
		}
	}
	if r.SnapshotBytes > 0 {
		series().setSnapshotSize(float64(r.SnapshotBytes))
	}
	if e.From == run.StageSnapshotting && (r.Stage == run.StageExporting || r.Stage == run.StageSucceeded) &&
		r.SnapshotStatus == "completed" {
		setLastSuccess(stageSnapshot)
	}
	switch r.Stage {
	case run.StageSucceeded:
		series().runs[resultSuccess]++
		if !s.olderThanLastRun(r.Slot) {
			s.setLastRun(true, r.Slot)
		}
		if r.ExportJobID != "" || e.From == run.StageExporting {
			setLastSuccess(stageExport)
		}
		if r.Action == run.ActionFlexRestore || r.RestoreJobID != "" || e.From == run.StageRestoring {
			setLastSuccess(stageRestore)
		}
	case run.StageFailed:
		result := resultFailure
		if r.Result() == "timeout" {
			result = resultTimeout
		}
		series().runs[result]++
		if !s.olderThanLastRun(r.Slot) {
			s.setLastRun(false, r.Slot)
		}
	case run.StageSkipped:
		series().skipped[skipReason(r.Reason)]++
	}
}

// Indexes into targetSeries.runs, lastSuccess and the label arrays.
const (
	resultFailure = 0 // resultLabels[0]
	resultSuccess = 1
	resultTimeout = 2

	stageExport   = 0 // stageLabels[0]
	stageRestore  = 1
	stageSnapshot = 2
)

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
	h := maphash.String(m.termSeed, string(id))
	if _, seen := m.terminated[h]; seen {
		return false
	}
	if len(m.terminatedRing) < recentTerminalCap {
		if m.terminatedRing == nil {
			m.terminatedRing = make([]uint64, 0, recentTerminalCap)
		}
		m.terminatedRing = append(m.terminatedRing, h)
	} else {
		delete(m.terminated, m.terminatedRing[m.terminatedNext])
		m.terminatedRing[m.terminatedNext] = h
		m.terminatedNext = (m.terminatedNext + 1) % recentTerminalCap
	}
	m.terminated[h] = struct{}{}
	return true
}

func isInflightStage(s run.Stage) bool {
	for _, v := range inflightStages {
		if v == s {
			return true
		}
	}
	return false
}

// skipReason keeps the reason label bounded: it returns the reasonLabels
// index of reason, and that of not_supported for reasons outside the
// documented set.
func skipReason(reason string) int {
	notSupported := 0
	for i, r := range reasonLabels {
		if r == reason {
			return i
		}
		if r == run.ReasonNotSupported {
			notSupported = i
		}
	}
	return notSupported
}

// unixSeconds is t as fractional Unix seconds, the Prometheus convention for
// timestamps.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

// AttemptCode is ObserveAtlasRequest's code for an attempt: "decode_error"
// for a 2xx answer backupd could not read (truncated, mistyped, a malformed
// id), which is a failure whatever its status said; otherwise StatusCode.
func AttemptCode(status int, undecodable bool) string {
	if undecodable {
		return "decode_error"
	}
	return StatusCode(status)
}

// StatusCode formats an HTTP status for ObserveAtlasRequest's code: the
// number as a string, or "error" for 0 (a transport error).
func StatusCode(status int) string {
	if status == 0 {
		return "error"
	}
	return strconv.Itoa(status)
}
