package monitor

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupd/backupd/internal/run"
)

// metric is one family of the monitor: its name, help and labels. The
// names are a contract (docs/metrics.md, the alert rules); label values are
// closed sets or configured names, never a snapshot id.
type metric struct {
	name, help string
	labels     []string
}

var (
	pc  = []string{"project", "cluster"}
	pck = []string{"project", "cluster", "kind"}
	pcf = []string{"project", "cluster", "frequency"}
	pf  = []string{"project", "frequency"}
)

var (
	mNewest          = metric{"backupd_native_snapshot_newest_timestamp_seconds", "Unix time of the newest completed native snapshot of the cluster, per kind (hourly…yearly, onDemand, fallback, flex).", pck}
	mNewestFailed    = metric{"backupd_native_snapshot_newest_failed_timestamp_seconds", "Unix time of the newest failed native snapshot Atlas lists for the cluster, per kind.", pck}
	mRetained        = metric{"backupd_native_snapshots_retained", "Completed native snapshots Atlas lists (retains) for the cluster, per kind.", pck}
	mFailed          = metric{"backupd_native_snapshots_failed", "Failed native snapshots Atlas lists for the cluster, per kind.", pck}
	mSize            = metric{"backupd_native_snapshot_newest_size_bytes", "Size Atlas reports for the cluster's newest completed native snapshot (0 when it does not say).", pc}
	mDue             = metric{"backupd_native_snapshot_due_timestamp_seconds", "Unix time after which the cluster's next snapshot of this kind is overdue: the first schedule slot after the newest snapshot keeping it, plus the margin (flex: 36 h after the newest). 0: overdue since ever.", pck}
	mInterval        = metric{"backupd_native_schedule_interval_seconds", "Longest time the cluster's backup schedule lets pass between two snapshots of the frequency.", pcf}
	mRetention       = metric{"backupd_native_schedule_retention_seconds", "How long the cluster's backup schedule keeps snapshots of the frequency (months of 30 days, years of 365).", pcf}
	mNext            = metric{"backupd_native_schedule_next_snapshot_timestamp_seconds", "Unix time of the cluster's next scheduled snapshot, as Atlas says.", pc}
	mEnabled         = metric{"backupd_native_backup_enabled", "1 if the dedicated cluster has Cloud Backup enabled, 0 if not.", pc}
	mInForce         = metric{"backupd_native_compliance_policy_in_force", "1 if the project has a Backup Compliance Policy, 0 if not.", []string{"project"}}
	mReqInterval     = metric{"backupd_native_compliance_required_interval_seconds", "Longest gap between two snapshots of the frequency the project's compliance policy allows.", pf}
	mReqRetention    = metric{"backupd_native_compliance_required_retention_seconds", "Shortest retention of the frequency the project's compliance policy allows (months of 30 days, years of 365).", pf}
	mShortfall       = metric{"backupd_native_schedule_compliance_shortfall", "1 if the cluster's schedule is weaker than the project's compliance policy in this frequency and aspect (frequency, retention), 0 if it meets it.", []string{"project", "cluster", "frequency", "aspect"}}
	mLastSuccess     = metric{"backupd_monitor_last_success_timestamp_seconds", "Unix time the monitor last read the cluster completely.", pc}
	mWatchStart      = metric{"backupd_monitor_watch_start_timestamp_seconds", "Unix time the monitor started watching the cluster (the daemon's start, or when the cluster became selected): with no successful read since, the age of its blindness.", pc}
	mReadFailures    = metric{"backupd_monitor_read_failures_total", "Reads of the cluster that failed since the monitor started watching it (its last success time stays).", pc}
	mMonitorInterval = metric{"backupd_monitor_interval_seconds", "How often the monitor reads each watched cluster.", nil}
)

// Metrics lists every family the Collector exposes, for docs and rule checks.
func Metrics() []string {
	var out []string
	for _, m := range allMetrics {
		out = append(out, m.name)
	}
	return out
}

var allMetrics = []metric{mNewest, mNewestFailed, mRetained, mFailed, mSize, mDue, mInterval, mRetention, mNext,
	mEnabled, mInForce, mReqInterval, mReqRetention, mShortfall, mLastSuccess, mWatchStart, mReadFailures, mMonitorInterval}

// Collector exposes the monitor's latest assessment of each watched cluster
// as Prometheus gauges. It is safe for concurrent use: reads report to it
// while scrapes collect.
//
// Every series is rebuilt from the assessments at each scrape, so a
// cluster that stops being watched (Forget) loses all its series at once.
type Collector struct {
	descs map[string]*prometheus.Desc

	mu       sync.Mutex
	interval time.Duration
	clusters map[run.Target]observed
}

type observed struct {
	a        Assessment
	at       time.Time // when the read succeeded; zero before the first
	since    time.Time // when watching started
	failures int       // reads that failed
}

// NewCollector returns a Collector for a monitor reading every interval.
func NewCollector(interval time.Duration) *Collector {
	c := &Collector{descs: map[string]*prometheus.Desc{}, interval: interval, clusters: map[run.Target]observed{}}
	for _, m := range allMetrics {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, m.labels, nil)
	}
	return c
}

// Watch starts watching t at since, before its first read: from then on
// backupd_monitor_watch_start_timestamp_seconds tells how long the monitor
// has been blind to t if no read succeeds, so a monitor that never manages
// a read is noticed (there is no last success to grow old). Watching a
// target already watched changes nothing.
func (c *Collector) Watch(t run.Target, since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.clusters[t]; !ok {
		c.clusters[t] = observed{a: Assessment{Target: t}, since: since}
	}
}

// Observe records a successful read of a.Target, finished at `at`. A
// target not watched yet is watched from at.
func (c *Collector) Observe(a Assessment, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.clusters[a.Target]
	if !ok {
		o.since = at
	}
	o.a, o.at = a, at
	c.clusters[a.Target] = o
}

// ReadFailed counts a failed read of t; everything the last successful
// read said stays. A target not watched is ignored.
func (c *Collector) ReadFailed(t run.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.clusters[t]; ok {
		o.failures++
		c.clusters[t] = o
	}
}

// Forget drops every series of t: it is no longer watched.
func (c *Collector) Forget(t run.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.clusters, t)
}

// SetInterval changes backupd_monitor_interval_seconds (on reload).
func (c *Collector) SetInterval(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.interval = d
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	interval := c.interval
	list := make([]observed, 0, len(c.clusters))
	for _, o := range c.clusters {
		list = append(list, o)
	}
	c.mu.Unlock()
	slices.SortFunc(list, func(a, b observed) int {
		return strings.Compare(a.a.Target.String(), b.a.Target.String())
	})

	emitType := func(typ prometheus.ValueType, m metric, v float64, labels ...string) {
		for i, l := range labels {
			labels[i] = validUTF8(l)
		}
		ch <- prometheus.MustNewConstMetric(c.descs[m.name], typ, v, labels...)
	}
	emit := func(m metric, v float64, labels ...string) { emitType(prometheus.GaugeValue, m, v, labels...) }
	emit(mMonitorInterval, interval.Seconds())

	// The project's compliance policy comes from its most recently read
	// cluster: every cluster of a project reads the same policy.
	projects := map[string]observed{}
	for _, o := range list {
		p := o.a.Target.ProjectID
		if q, ok := projects[p]; o.at.IsZero() || (ok && !o.at.After(q.at)) {
			continue
		}
		projects[p] = o
	}
	for _, p := range sortedKeys(projects) {
		cs := projects[p].a.Compliance
		if cs == nil {
			emit(mInForce, 0, p)
			continue
		}
		emit(mInForce, 1, p)
		for _, r := range cs.Required {
			emit(mReqInterval, r.MaxGap.Seconds(), p, r.Frequency)
			emit(mReqRetention, r.Retention.Seconds(), p, r.Frequency)
		}
	}

	for _, o := range list {
		a := o.a
		p, cl := a.Target.ProjectID, a.Target.Cluster
		emit(mWatchStart, unix(o.since), p, cl)
		emitType(prometheus.CounterValue, mReadFailures, float64(o.failures), p, cl)
		if o.at.IsZero() {
			continue // watched, never read: nothing is known yet
		}
		emit(mLastSuccess, unix(o.at), p, cl)
		for _, kind := range sortedKeys(a.Kinds) {
			k := a.Kinds[kind]
			emit(mRetained, float64(k.Retained), p, cl, kind)
			emit(mFailed, float64(k.Failed), p, cl, kind)
			if !k.Newest.IsZero() {
				emit(mNewest, unix(k.Newest), p, cl, kind)
			}
			if !k.NewestFailed.IsZero() {
				emit(mNewestFailed, unix(k.NewestFailed), p, cl, kind)
			}
		}
		if !a.Newest.IsZero() {
			emit(mSize, float64(a.NewestSize), p, cl)
		}
		if a.Flex {
			emit(mDue, unix(a.FlexDue), p, cl, KindFlex)
			continue
		}
		emit(mEnabled, bool01(a.BackupEnabled), p, cl)
		if !a.NextSnapshot.IsZero() {
			emit(mNext, unix(a.NextSnapshot), p, cl)
		}
		for _, pr := range a.Promises {
			emit(mDue, unix(pr.Due), p, cl, pr.Frequency)
			emit(mInterval, pr.MaxGap.Seconds(), p, cl, pr.Frequency)
			emit(mRetention, pr.Retention.Seconds(), p, cl, pr.Frequency)
		}
		if a.Compliance != nil {
			for _, r := range a.Compliance.Required {
				for _, aspect := range []string{AspectFrequency, AspectRetention} {
					short := slices.ContainsFunc(a.Compliance.Shortfalls, func(s Shortfall) bool {
						return s.Frequency == r.Frequency && s.Aspect == aspect
					})
					emit(mShortfall, bool01(short), p, cl, r.Frequency, aspect)
				}
			}
		}
	}
}

// unix is t in Unix seconds; the zero time is 0, "never".
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// validUTF8 keeps a label value acceptable to the client (which refuses
// invalid UTF-8): invalid bytes become U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
