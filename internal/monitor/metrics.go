package monitor

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/backupd/backupd/internal/metrics"
	"github.com/backupd/backupd/internal/run"
)

// metric is one family of the monitor: its name, help and labels (in byte
// order), and how its series are derived, per watched cluster or per
// project. The names are a contract (docs/metrics.md, the alert rules);
// label values are closed sets or configured names, never a snapshot id.
type metric struct {
	name, help string
	labels     []string
	counter    bool
	// cluster adds the family's series of one watched cluster (label
	// values in labels' order); project those of one project.
	cluster func(o *observed, add emitFunc)
	project func(p string, s *summary, add emitFunc)
}

var (
	lc   = []string{"cluster", "project"}
	lck  = []string{"cluster", "kind", "project"}
	lcf  = []string{"cluster", "frequency", "project"}
	lfp  = []string{"frequency", "project"}
	lacf = []string{"aspect", "cluster", "frequency", "project"}
)

// kindOrder is every kind in byte order, the order of a cluster's series.
var kindOrder = func() []string { ks := sortedKeys(knownKinds); return ks }()

// read is f applied to a cluster read at least once: a watched cluster
// never read has nothing known but its watch start and failures.
func read(f func(o *observed, s *summary, add emitFunc, cl, p string)) func(*observed, emitFunc) {
	return func(o *observed, add emitFunc) {
		if o.s != nil {
			f(o, o.s, add, o.t.Cluster, o.t.ProjectID)
		}
	}
}

// dedicated is read for dedicated clusters only.
func dedicated(f func(o *observed, s *summary, add emitFunc, cl, p string)) func(*observed, emitFunc) {
	return read(func(o *observed, s *summary, add emitFunc, cl, p string) {
		if !s.flex() {
			f(o, s, add, cl, p)
		}
	})
}

// perKind adds one series per kind the cluster has snapshots of (where v
// says there is one).
func perKind(v func(k kindSummary) (float64, bool)) func(*observed, emitFunc) {
	return read(func(o *observed, s *summary, add emitFunc, cl, p string) {
		s.eachKind(func(kind string, k kindSummary) {
			if x, ok := v(k); ok {
				add(x, lv(cl, kind, p))
			}
		})
	})
}

// perPromise adds one series per scheduled frequency of the schedule.
func perPromise(v func(p promiseSummary) float64) func(*observed, emitFunc) {
	return dedicated(func(o *observed, s *summary, add emitFunc, cl, p string) {
		s.eachPromise(func(pr promiseSummary) { add(v(pr), lv(cl, pr.frequency, p)) })
	})
}

var (
	mNewest = metric{name: "backupd_native_snapshot_newest_timestamp_seconds", help: "Unix time of the newest completed native snapshot of the cluster, per kind (hourly…yearly, onDemand, fallback, flex).", labels: lck,
		cluster: perKind(func(k kindSummary) (float64, bool) { return unixN(k.newest), k.newest != 0 })}
	mNewestFailed = metric{name: "backupd_native_snapshot_newest_failed_timestamp_seconds", help: "Unix time of the newest failed native snapshot Atlas lists for the cluster, per kind.", labels: lck,
		cluster: perKind(func(k kindSummary) (float64, bool) { return unixN(k.failedAt), k.failedAt != 0 })}
	mRetained = metric{name: "backupd_native_snapshots_retained", help: "Completed native snapshots Atlas lists (retains) for the cluster, per kind.", labels: lck,
		cluster: perKind(func(k kindSummary) (float64, bool) { return float64(k.retained), true })}
	mFailed = metric{name: "backupd_native_snapshots_failed", help: "Failed native snapshots Atlas lists for the cluster, per kind (absent: none).", labels: lck,
		cluster: perKind(func(k kindSummary) (float64, bool) { return float64(k.failed), k.failed > 0 })}
	mSize = metric{name: "backupd_native_snapshot_newest_size_bytes", help: "Size Atlas reports for the cluster's newest completed native snapshot (0 when it does not say).", labels: lc,
		cluster: read(func(o *observed, s *summary, add emitFunc, cl, p string) {
			if s.newest != 0 {
				add(float64(s.newestSize), lv(cl, p))
			}
		})}
	mDue = metric{name: "backupd_native_snapshot_due_timestamp_seconds", help: "Unix time after which the cluster's next snapshot of this kind is overdue: the first schedule slot after the newest snapshot keeping it, plus the margin (flex: 36 h after the newest). 0: overdue since ever.", labels: lck,
		cluster: read(func(o *observed, s *summary, add emitFunc, cl, p string) {
			if s.flex() {
				add(unixN(s.flexDue), lv(cl, KindFlex, p))
				return
			}
			s.eachPromise(func(pr promiseSummary) { add(unixN(pr.due), lv(cl, pr.frequency, p)) })
		})}
	mInterval = metric{name: "backupd_native_schedule_interval_seconds", help: "Longest time the cluster's backup schedule lets pass between two snapshots of the frequency.", labels: lcf,
		cluster: perPromise(func(p promiseSummary) float64 { return time.Duration(p.maxGap).Seconds() })}
	mRetention = metric{name: "backupd_native_schedule_retention_seconds", help: "How long the cluster's backup schedule keeps snapshots of the frequency (months of 30 days, years of 365).", labels: lcf,
		cluster: perPromise(func(p promiseSummary) float64 { return time.Duration(p.retention).Seconds() })}
	mNext = metric{name: "backupd_native_schedule_next_snapshot_timestamp_seconds", help: "Unix time of the cluster's next scheduled snapshot, as Atlas says.", labels: lc,
		cluster: dedicated(func(o *observed, s *summary, add emitFunc, cl, p string) {
			if s.next != 0 {
				add(unixN(s.next), lv(cl, p))
			}
		})}
	mEnabled = metric{name: "backupd_native_backup_enabled", help: "1 if the dedicated cluster has Cloud Backup enabled, 0 if not.", labels: lc,
		cluster: dedicated(func(o *observed, s *summary, add emitFunc, cl, p string) { add(bool01(s.enabled()), lv(cl, p)) })}
	mInForce = metric{name: "backupd_native_compliance_policy_in_force", help: "1 if the project has a Backup Compliance Policy, 0 if not.", labels: []string{"project"},
		project: func(p string, s *summary, add emitFunc) { add(bool01(s.hasCompliance()), lv(p)) }}
	mReqInterval = metric{name: "backupd_native_compliance_required_interval_seconds", help: "Longest gap between two snapshots of the frequency the project's compliance policy allows.", labels: lfp,
		project: func(p string, s *summary, add emitFunc) {
			s.eachRequired(func(r Requirement, _, _ bool) { add(r.MaxGap.Seconds(), lv(r.Frequency, p)) })
		}}
	mReqRetention = metric{name: "backupd_native_compliance_required_retention_seconds", help: "Shortest retention of the frequency the project's compliance policy allows (months of 30 days, years of 365).", labels: lfp,
		project: func(p string, s *summary, add emitFunc) {
			s.eachRequired(func(r Requirement, _, _ bool) { add(r.Retention.Seconds(), lv(r.Frequency, p)) })
		}}
	mShortfall = metric{name: "backupd_native_schedule_compliance_shortfall", help: "1 if the cluster's schedule is weaker than the project's compliance policy in this frequency and aspect (frequency, retention), 0 if it meets it.", labels: lacf,
		cluster: dedicated(func(o *observed, s *summary, add emitFunc, cl, p string) {
			s.eachRequired(func(r Requirement, shortFreq, shortRet bool) {
				add(bool01(shortFreq), lv(AspectFrequency, cl, r.Frequency, p))
				// A frequency the schedule lacks falls short in frequency;
				// its retention says nothing more.
				if !shortFreq || s.hasFrequency(r.Frequency) {
					add(bool01(shortRet), lv(AspectRetention, cl, r.Frequency, p))
				}
			})
		})}
	mLastSuccess = metric{name: "backupd_monitor_last_success_timestamp_seconds", help: "Unix time the monitor last read the cluster completely.", labels: lc,
		cluster: read(func(o *observed, s *summary, add emitFunc, cl, p string) { add(unixN(o.at), lv(cl, p)) })}
	mWatchStart = metric{name: "backupd_monitor_watch_start_timestamp_seconds", help: "Unix time the monitor started watching the cluster (the daemon's start, or when the cluster became selected): with no successful read since, the age of its blindness.", labels: lc,
		cluster: func(o *observed, add emitFunc) { add(unixN(o.since), lv(o.t.Cluster, o.t.ProjectID)) }}
	mReadFailures = metric{name: "backupd_monitor_read_failures_total", help: "Reads of the cluster that failed since the monitor started watching it (its last success time stays).", labels: lc, counter: true,
		cluster: func(o *observed, add emitFunc) { add(float64(o.failures), lv(o.t.Cluster, o.t.ProjectID)) }}
	mMonitorInterval = metric{name: "backupd_monitor_interval_seconds", help: "How often the monitor reads each watched cluster."}
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
// as Prometheus gauges, through metrics.Source: about 30 series per
// cluster, 300,000 at 10,000 clusters, so the daemon's /metrics streams
// them a chunk of clusters at a time instead of gathering them whole at
// every scrape (which would allocate tens of MB per scrape). It is safe for
// concurrent use: reads report to it while scrapes walk it.
//
// Every series is derived from the assessments at each scrape, so a
// cluster that stops being watched (Forget) loses all its series at once.
type Collector struct {
	mu       sync.Mutex
	interval time.Duration
	clusters map[run.Target]*observed
	// order is the watched clusters sorted, rebuilt after a change; a
	// walk in progress keeps the slice it started with.
	order []*observed
	dirty bool
}

// observed is a watched cluster, the Collector's and the Runner's: 96
// bytes beside its summary. Times are Unix nanoseconds, 0 for none.
type observed struct {
	t     run.Target
	s     *summary // of the last successful read; nil before the first
	at    int64    // when the read succeeded; 0 before the first
	since int64    // when watching started
	// next is when the Runner reads it next, lastAttempt when it last
	// tried, lastErr why that failed ("" if it did not).
	next, lastAttempt int64
	lastErr           string
	failures          int32 // reads that failed
	gone              bool  // forgotten: a walk holding an old order skips it
	inflight          bool  // the Runner is reading it
}

// NewCollector returns a Collector for a monitor reading every interval.
func NewCollector(interval time.Duration) *Collector {
	return &Collector{interval: interval, clusters: map[run.Target]*observed{}}
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
		c.clusters[t] = &observed{t: t, since: nanos(since)}
		c.dirty = true
	}
}

// Observe records a successful read of a.Target, finished at `at`. A
// target not watched yet is watched from at.
func (c *Collector) Observe(a Assessment, at time.Time) {
	c.observe(a.Target, summarize(a), at)
}

// observe records s, the summary of a successful read of t at `at`.
func (c *Collector) observe(t run.Target, s *summary, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.clusters[t]
	if !ok {
		o = &observed{t: t, since: nanos(at)}
		c.clusters[t] = o
		c.dirty = true
	}
	o.s, o.at = s, nanos(at)
}

// ReadFailed counts a failed read of t; everything the last successful
// read said stays. A target not watched is ignored.
func (c *Collector) ReadFailed(t run.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.clusters[t]; ok {
		o.failures++
	}
}

// Forget drops every series of t: it is no longer watched.
func (c *Collector) Forget(t run.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget(t)
}

// forget is Forget with c.mu held.
func (c *Collector) forget(t run.Target) {
	if o, ok := c.clusters[t]; ok {
		o.gone = true
		delete(c.clusters, t)
		c.dirty = true
	}
}

// SetInterval changes backupd_monitor_interval_seconds (on reload).
func (c *Collector) SetInterval(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.interval = d
}

// sorted is the watched clusters in target order; c.mu must be held.
func (c *Collector) sorted() []*observed {
	if c.dirty || c.order == nil {
		order := make([]*observed, 0, len(c.clusters))
		for _, o := range c.clusters {
			order = append(order, o)
		}
		slices.SortFunc(order, func(a, b *observed) int { return compareTargets(a.t, b.t) })
		c.order, c.dirty = order, false
	}
	return c.order
}

// maxPerCluster is the most series one cluster has in one family (the
// shortfall: five frequencies, two aspects); a chunk takes another cluster
// only while it has room for that many.
const maxPerCluster = 16

// maxPerProject is the most series one project has in one family: one
// per scheduled frequency.
const maxPerProject = 5

// emitFunc appends one series: its value and its label values in the
// family's label order (lv builds them). An array, not a variadic slice:
// through a func value a slice would be allocated for each of the 300,000
// series of a 10,000-cluster scrape.
type emitFunc func(v float64, labels [metrics.MaxSourceLabels]string)

// lv is the label values of a series.
func lv(values ...string) (out [metrics.MaxSourceLabels]string) {
	copy(out[:], values)
	return out
}

// Families implements metrics.Source.
func (c *Collector) Families() []metrics.SourceFamily {
	var out []metrics.SourceFamily
	for _, m := range allMetrics {
		f := metrics.SourceFamily{Name: m.name, Help: m.help, Counter: m.counter, Labels: m.labels}
		switch {
		case m.cluster != nil:
			f.Walk = c.walkClusters(m)
		case m.project != nil:
			f.Walk = c.walkProjects(m)
		default:
			f.Walk = func(buf []metrics.SourceSample, emit func([]metrics.SourceSample) error) error {
				c.mu.Lock()
				v := c.interval.Seconds()
				c.mu.Unlock()
				return emit(append(buf, metrics.SourceSample{Value: v}))
			}
		}
		out = append(out, f)
	}
	return out
}

// walkClusters walks a per-cluster family, copying a chunk of clusters'
// values under the lock at a time.
func (c *Collector) walkClusters(m metric) func([]metrics.SourceSample, func([]metrics.SourceSample) error) error {
	return func(buf []metrics.SourceSample, emit func([]metrics.SourceSample) error) error {
		c.mu.Lock()
		order := c.sorted()
		c.mu.Unlock()
		add := func(v float64, labels [metrics.MaxSourceLabels]string) {
			s := metrics.SourceSample{Values: labels, Value: v}
			for i, l := range labels {
				s.Values[i] = validUTF8(l)
			}
			buf = append(buf, s)
		}
		for i := 0; i < len(order); {
			buf = buf[:0]
			c.mu.Lock()
			for ; i < len(order) && len(buf) <= cap(buf)-maxPerCluster; i++ {
				if o := order[i]; !o.gone {
					m.cluster(o, add)
				}
			}
			c.mu.Unlock()
			if len(buf) == 0 {
				continue
			}
			if err := emit(buf); err != nil {
				return err
			}
		}
		return nil
	}
}

// walkProjects walks a per-project family a chunk of projects at a time,
// like walkClusters: the project's compliance policy comes from its most
// recently read cluster (every cluster of a project reads the same
// policy), and the sorted order keeps a project's clusters together.
func (c *Collector) walkProjects(m metric) func([]metrics.SourceSample, func([]metrics.SourceSample) error) error {
	return func(buf []metrics.SourceSample, emit func([]metrics.SourceSample) error) error {
		c.mu.Lock()
		order := c.sorted()
		c.mu.Unlock()
		add := func(v float64, labels [metrics.MaxSourceLabels]string) {
			s := metrics.SourceSample{Values: labels, Value: v}
			for i, l := range labels {
				s.Values[i] = validUTF8(l)
			}
			buf = append(buf, s)
		}
		for i := 0; i < len(order); {
			buf = buf[:0]
			c.mu.Lock()
			for i < len(order) && len(buf) <= cap(buf)-maxPerProject {
				p := order[i].t.ProjectID
				var latest *observed
				for ; i < len(order) && order[i].t.ProjectID == p; i++ {
					if o := order[i]; !o.gone && o.s != nil && (latest == nil || o.at > latest.at) {
						latest = o
					}
				}
				if latest != nil {
					m.project(p, latest.s, add)
				}
			}
			c.mu.Unlock()
			if len(buf) == 0 {
				continue
			}
			if err := emit(buf); err != nil {
				return err
			}
		}
		return nil
	}
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
