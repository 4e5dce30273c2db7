package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The per-target families are encoded without ever holding all their
// series as dto at once: the handler copies chunkTargets targets' values
// out under the lock, encodes them with expfmt, and moves on. A family's
// HELP and TYPE lines are written once, with its first chunk.

// chunkSamples is how many series one chunk holds at most: large enough
// that the per-chunk costs (lock, encoder call) vanish, small enough that a
// chunk's dto is about 100 KB.
const chunkSamples = 256

// maxSamplesPerTarget is the most series one target has in one family
// (backupd_runs_skipped_total: one per reason). A chunk takes another
// target only while it has room for that many.
const maxSamplesPerTarget = len(reasonLabels)

// targetFamily is one per-target metric family.
type targetFamily struct {
	name, help string
	typ        dto.MetricType
	// label is the fourth label after cluster, policy and project (the
	// label names in the byte order a registry sorts them in), "" if none.
	label string
	// samples appends the family's series of one target, in label order.
	samples func(s *targetSeries, out []sample) []sample
}

// sample is one series of a per-target family, copied out under the lock.
// Its target's key is immutable, so it is read through s without the lock.
type sample struct {
	s     *targetSeries
	label string // the fourth label's value, if the family has one
	value float64
}

// targetFamilies are the per-target families in name order, the order a
// registry exposes families in.
var targetFamilies = []*targetFamily{
	{
		name: "backupd_last_run_success", typ: dto.MetricType_GAUGE,
		help: "1 if the last finished run on a target succeeded, 0 if it failed or timed out. Skips leave it unchanged.",
		samples: func(s *targetSeries, out []sample) []sample {
			if s.has&hasLastRun != 0 && !s.withheld() {
				out = append(out, sample{s: s, value: s.lastRun()})
			}
			return out
		},
	},
	{
		name: "backupd_last_success_timestamp_seconds", typ: dto.MetricType_GAUGE, label: "stage",
		help: "Unix time a stage (snapshot, export, restore) last completed successfully on a target.",
		samples: func(s *targetSeries, out []sample) []sample {
			for i, l := range stageLabels {
				if s.has&(hasLastSuccess<<i) != 0 {
					out = append(out, sample{s: s, label: l, value: s.lastSuccess[i]})
				}
			}
			return out
		},
	},
	{
		name: "backupd_next_run_timestamp_seconds", typ: dto.MetricType_GAUGE,
		help: "Unix time the next run of a policy on a target is due (slot plus jitter).",
		samples: func(s *targetSeries, out []sample) []sample {
			if s.has&hasNextRun != 0 {
				out = append(out, sample{s: s, value: s.nextRun})
			}
			return out
		},
	},
	{
		name: "backupd_runs_skipped_total", typ: dto.MetricType_COUNTER, label: "reason",
		help: "Runs that were skipped, by reason: overlap, missed, not_supported, shutdown or no_new_snapshot.",
		samples: func(s *targetSeries, out []sample) []sample {
			for i, n := range s.skipped {
				if n > 0 {
					out = append(out, sample{s: s, label: reasonLabels[i], value: float64(n)})
				}
			}
			return out
		},
	},
	{
		name: "backupd_runs_total", typ: dto.MetricType_COUNTER, label: "result",
		help: "Runs that ended, by result: success, failure or timeout.",
		samples: func(s *targetSeries, out []sample) []sample {
			for i, n := range s.runs {
				if n > 0 {
					out = append(out, sample{s: s, label: resultLabels[i], value: float64(n)})
				}
			}
			return out
		},
	},
	{
		name: "backupd_snapshot_size_bytes", typ: dto.MetricType_GAUGE,
		help: "Size Atlas reported for the latest snapshot a run took or used on a target.",
		samples: func(s *targetSeries, out []sample) []sample {
			if s.has&hasSnapshotSize != 0 {
				out = append(out, sample{s: s, value: s.snapshotSize})
			}
			return out
		},
	},
}

// walk calls emit with the family's samples in exposition order, a chunk
// at a time. The values are copied under the lock; emit (encoding, network
// writes) runs without it, so a slow scraper never holds up Observe. buf
// is reused for every chunk.
func (m *Metrics) walk(f *targetFamily, buf []sample, emit func([]sample) error) error {
	if m.standby.Load() {
		return nil
	}
	if cap(buf) < maxSamplesPerTarget {
		buf = make([]sample, 0, chunkSamples)
	}
	m.mu.Lock()
	order := m.targets.order()
	m.mu.Unlock()
	for i := 0; i < len(order); {
		buf = buf[:0]
		m.mu.Lock()
		for ; i < len(order) && len(buf) <= cap(buf)-maxSamplesPerTarget; i++ {
			if s := order[i]; !s.deleted() {
				buf = f.samples(s, buf)
			}
		}
		m.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if err := emit(buf); err != nil {
			return err
		}
	}
	return nil
}

// targetCollector exposes the per-target families as const metrics, for
// Gatherer. Handler does not use it.
type targetCollector struct {
	m     *Metrics
	descs []*prometheus.Desc // one per targetFamilies entry
}

func newTargetCollector(m *Metrics) *targetCollector {
	c := &targetCollector{m: m}
	for _, f := range targetFamilies {
		labels := []string{"policy", "project", "cluster"}
		if f.label != "" {
			labels = append(labels, f.label)
		}
		c.descs = append(c.descs, prometheus.NewDesc(f.name, f.help, labels, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	buf := make([]sample, 0, chunkSamples)
	for i, f := range targetFamilies {
		typ := prometheus.GaugeValue
		if f.typ == dto.MetricType_COUNTER {
			typ = prometheus.CounterValue
		}
		_ = c.m.walk(f, buf, func(ss []sample) error {
			for _, s := range ss {
				labels := []string{s.s.key.policy(), s.s.key.project(), s.s.key.cluster}
				if f.label != "" {
					labels = append(labels, s.label)
				}
				mt, err := prometheus.NewConstMetric(c.descs[i], typ, s.value, labels...)
				if err != nil {
					mt = prometheus.NewInvalidMetric(c.descs[i], fmt.Errorf("exposing %s: %w", f.name, err))
				}
				ch <- mt
			}
			return nil
		})
	}
}

// dtoChunk is the dto of one chunk of a per-target family, reused for every
// chunk of a scrape: encoding a chunk allocates nothing per series.
type dtoChunk struct {
	mf       dto.MetricFamily
	name     string
	help     string
	typ      dto.MetricType
	labels   [4]string // label names: cluster, policy, project, the family's own
	metrics  []*dto.Metric
	ms       []dto.Metric
	lps      []dto.LabelPair
	lpps     []*dto.LabelPair
	gauges   []dto.Gauge
	counters []dto.Counter
}

func newDTOChunk() *dtoChunk {
	return &dtoChunk{
		labels:   [4]string{"cluster", "policy", "project"},
		metrics:  make([]*dto.Metric, chunkSamples),
		ms:       make([]dto.Metric, chunkSamples),
		lps:      make([]dto.LabelPair, 4*chunkSamples),
		lpps:     make([]*dto.LabelPair, 4*chunkSamples),
		gauges:   make([]dto.Gauge, chunkSamples),
		counters: make([]dto.Counter, chunkSamples),
	}
}

// fill makes c the dto of samples of family f. The dto points into
// samples, which must stay unchanged until it is encoded.
func (c *dtoChunk) fill(f *targetFamily, samples []sample) *dto.MetricFamily {
	c.name, c.help, c.typ, c.labels[3] = f.name, f.help, f.typ, f.label
	c.mf.Name, c.mf.Help, c.mf.Type = &c.name, &c.help, &c.typ
	nl := 3
	if f.label != "" {
		nl = 4
	}
	for i := range samples {
		smp := &samples[i]
		lps := c.lps[4*i : 4*i+nl]
		lpps := c.lpps[4*i : 4*i+nl]
		values := [4]*string{&smp.s.key.cluster, &smp.s.key.group.policy, &smp.s.key.group.project, &smp.label}
		for j := range lps {
			lps[j].Name, lps[j].Value = &c.labels[j], values[j]
			lpps[j] = &lps[j]
		}
		m := &c.ms[i]
		m.Label = lpps
		m.Gauge, m.Counter = nil, nil
		if f.typ == dto.MetricType_COUNTER {
			c.counters[i].Value = &smp.value
			m.Counter = &c.counters[i]
		} else {
			c.gauges[i].Value = &smp.value
			m.Gauge = &c.gauges[i]
		}
		c.metrics[i] = m
	}
	c.mf.Metric = c.metrics[:len(samples)]
	return &c.mf
}

// scrapeState is what one scrape needs beyond the response: reused across
// scrapes through a pool so a scrape allocates little.
type scrapeState struct {
	buf     []sample
	chunk   *dtoChunk
	srcBuf  []SourceSample
	srcText []byte // a streamed family's chunk, written directly
	gz      *gzip.Writer
}

// handler serves the exposition: the registry's families, and between them
// (in name order) the per-target families, a chunk at a time.
type handler struct {
	m        *Metrics
	inFlight chan struct{}
	pool     sync.Pool // of *scrapeState
}

// maxScrapesInFlight bounds concurrent scrapes; more wait their turn.
const maxScrapesInFlight = 4

// Scrapes over maxScrapesInFlight queue (first come, first served) instead
// of being refused, so that a client hammering /metrics delays Prometheus
// by a few scrape durations but cannot make its scrape fail. A waiting
// scrape gives up with 503 when its scraper would have given up anyway: at
// 90% of the timeout Prometheus announces in
// X-Prometheus-Scrape-Timeout-Seconds, or after defaultScrapeWait when it
// announces none, and never later than maxScrapeWait.
const (
	defaultScrapeWait = 10 * time.Second
	maxScrapeWait     = 60 * time.Second
)

// scrapeWait is how long a scrape may wait for its turn.
func scrapeWait(h http.Header) time.Duration {
	v, err := strconv.ParseFloat(h.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return defaultScrapeWait
	}
	return min(time.Duration(v*0.9*float64(time.Second)), maxScrapeWait)
}

// gzipLevel trades a somewhat larger body for much less CPU than gzip's
// default level: at 10,000 targets a scrape is about 7 MB of text.
const gzipLevel = gzip.BestSpeed

// Handler serves every metric in the Prometheus text format, or OpenMetrics
// 1.0 when the scraper asks for it, gzip-compressed when the scraper
// accepts gzip. A collector of the registry that fails does not hide the
// others. The query parameter name[] (repeatable) restricts the answer to
// the named families. At most 4 scrapes run at once; more wait their turn
// (see scrapeWait).
func (m *Metrics) Handler() http.Handler {
	h := &handler{m: m, inFlight: make(chan struct{}, maxScrapesInFlight)}
	h.pool.New = func() any {
		return &scrapeState{buf: make([]sample, 0, chunkSamples), chunk: newDTOChunk(),
			srcBuf: make([]SourceSample, 0, chunkSamples), srcText: make([]byte, 0, 64<<10)}
	}
	return h
}

// offeredFormats are the formats Handler negotiates, in order of
// preference. Protobuf is not offered: the per-target families are written
// in chunks, which only the text formats can continue.
var offeredFormats = []expfmt.Format{expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtText}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
	default:
		wait := scrapeWait(req.Header)
		ctx, cancel := context.WithTimeout(req.Context(), wait)
		select {
		case h.inFlight <- struct{}{}:
			cancel()
		case <-ctx.Done():
			cancel()
			http.Error(w, fmt.Sprintf("%d scrapes are in progress and this one waited %s for its turn, try again later.", maxScrapesInFlight, wait),
				http.StatusServiceUnavailable)
			return
		}
	}
	defer func() { <-h.inFlight }()
	mfs, err := h.m.reg.Gather()
	if err != nil && len(mfs) == 0 {
		http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	format := expfmt.NegotiateAccept(req.Header, offeredFormats...)
	hdr := w.Header()
	hdr.Add("Vary", "Accept")
	hdr.Add("Vary", "Accept-Encoding")
	hdr.Set("Content-Type", string(format))

	st := h.pool.Get().(*scrapeState)
	defer h.pool.Put(st)
	var out io.Writer = w
	if acceptsGzip(req.Header.Get("Accept-Encoding")) {
		hdr.Set("Content-Encoding", "gzip")
		if st.gz == nil {
			st.gz, _ = gzip.NewWriterLevel(w, gzipLevel) // the level is valid
		} else {
			st.gz.Reset(w)
		}
		out = st.gz
		defer func() {
			_ = st.gz.Close() // an error means the scraper went away
			st.gz.Reset(io.Discard)
		}()
	}
	var only map[string]bool
	if req.URL != nil {
		if names := req.URL.Query()["name[]"]; len(names) > 0 {
			only = make(map[string]bool, len(names))
			for _, n := range names {
				only[n] = true
			}
		}
	}
	// A write error means the scraper went away: stop.
	_ = h.m.encode(out, format, mfs, only, st)
}

// encode writes the registry's families mfs merged in name order with the
// per-target families and the sources' streamed families, as a registry
// would expose them all, in format. only, if not nil, restricts it to the
// named families.
func (m *Metrics) encode(w io.Writer, format expfmt.Format, mfs []*dto.MetricFamily, only map[string]bool, st *scrapeState) error {
	hs := &headerStripper{w: w}
	enc := expfmt.NewEncoder(hs, format)
	wanted := func(name string) bool { return only == nil || only[name] }
	fams := targetFamilies
	srcs := m.sourceFamilies()
	for len(mfs) > 0 || len(fams) > 0 || len(srcs) > 0 {
		// The next family in name order: the registry's, a per-target
		// one, or a streamed one.
		next, which := "", -1
		if len(mfs) > 0 {
			next, which = mfs[0].GetName(), 0
		}
		if len(fams) > 0 && (which < 0 || fams[0].name < next) {
			next, which = fams[0].name, 1
		}
		if len(srcs) > 0 && (which < 0 || srcs[0].Name < next) {
			which = 2
		}
		switch which {
		case 0:
			mf := mfs[0]
			mfs = mfs[1:]
			if !wanted(mf.GetName()) {
				continue
			}
			hs.strip = false
			if err := enc.Encode(mf); err != nil {
				return fmt.Errorf("encoding %s: %w", mf.GetName(), err)
			}
		case 1:
			f := fams[0]
			fams = fams[1:]
			if !wanted(f.name) {
				continue
			}
			first := true
			err := m.walk(f, st.buf, func(ss []sample) error {
				// Every chunk after the first continues the family: its
				// HELP and TYPE lines are dropped.
				hs.strip, hs.atLineStart = !first, true
				first = false
				return encodeChunk(hs, format, st.chunk.fill(f, ss))
			})
			if err != nil {
				return fmt.Errorf("encoding %s: %w", f.name, err)
			}
		case 2:
			f := srcs[0]
			srcs = srcs[1:]
			if !wanted(f.Name) {
				continue
			}
			first, om := true, format.FormatType() == expfmt.TypeOpenMetrics
			hs.strip = false
			err := walkSource(&f, st.srcBuf, func(ss []SourceSample) error {
				st.srcText = appendSourceChunk(st.srcText[:0], &f, om, first, ss)
				first = false
				_, err := hs.Write(st.srcText)
				return err
			})
			if err != nil {
				return fmt.Errorf("encoding %s: %w", f.Name, err)
			}
		}
	}
	hs.strip = false
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("finishing the exposition: %w", err)
		}
	}
	return nil
}

// encodeChunk writes one chunk of a per-target family in format. It calls
// expfmt's family writers directly: the Encoder would first copy the
// family to escape names that are not legacy Prometheus names (a copy per
// chunk, the bulk of a scrape's allocations), and backupd's names and label
// names are all legacy names, so there is nothing to escape.
func encodeChunk(w io.Writer, format expfmt.Format, mf *dto.MetricFamily) error {
	var err error
	if format.FormatType() == expfmt.TypeOpenMetrics {
		_, err = expfmt.MetricFamilyToOpenMetrics(w, mf)
	} else {
		_, err = expfmt.MetricFamilyToText(w, mf)
	}
	return err
}

// headerStripper passes what it is given to w, except that while strip is
// set it drops the comment lines (# HELP, # TYPE, # UNIT) at the start of
// it: the family header expfmt writes for every chunk of a family after the
// first. Sample lines never start with '#'.
type headerStripper struct {
	w           io.Writer
	strip       bool // dropping the leading comment lines
	atLineStart bool // while stripping: at the start of a line
}

func (h *headerStripper) Write(p []byte) (int, error) {
	n := len(p)
	for h.strip && len(p) > 0 {
		if h.atLineStart {
			if p[0] != '#' {
				h.strip = false
				break
			}
			h.atLineStart = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		p = p[i+1:]
		h.atLineStart = true
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := h.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip (by
// name or as *, with a q-value above zero).
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.TrimSpace(coding)
		if !strings.EqualFold(coding, "gzip") && coding != "*" {
			continue
		}
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}
