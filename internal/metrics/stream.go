package metrics

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	dto "github.com/prometheus/client_model/go"
)

// Streamed families: a package with as many series as the per-target
// families (the monitor has about 30 per watched cluster, 300,000 at
// 10,000 clusters) registers a Source instead of a prometheus.Collector.
// Handler then encodes its families a chunk at a time between the
// registry's, as it does the per-target ones, so a scrape never holds them
// all as dto: a Collector would be gathered whole at every scrape.

// MaxSourceLabels is the most labels a streamed family may have.
const MaxSourceLabels = 4

// SourceFamily is one streamed family.
type SourceFamily struct {
	Name, Help string
	Counter    bool // a counter; else a gauge
	// Labels are the label names, in byte order (the order a registry
	// exposes them in), at most MaxSourceLabels.
	Labels []string
	// Walk calls emit with the family's series, in any fixed order, a
	// chunk at a time: each chunk is appended to buf[:0] and holds at most
	// cap(buf) series (cap(buf) is at least 64). The series are copied out
	// under the source's own lock and emit runs without it, so a slow
	// scraper never holds up the source. emit's error ends the walk and
	// is returned.
	Walk func(buf []SourceSample, emit func([]SourceSample) error) error
}

// SourceSample is one series of a streamed family: its label values in the
// order of SourceFamily.Labels, and its value.
type SourceSample struct {
	Values [MaxSourceLabels]string
	Value  float64
}

// Source provides streamed families.
type Source interface {
	// Families lists the source's families; their names must not collide
	// with any other family.
	Families() []SourceFamily
}

// sources are the registered Sources.
type sources struct {
	mu   sync.Mutex
	next int
	all  map[int]Source
}

// AddSource makes Handler (and Gatherer) serve s's families from now on;
// remove undoes it. A family with too many or unsorted labels is refused.
func (m *Metrics) AddSource(s Source) (remove func(), err error) {
	for _, f := range s.Families() {
		if len(f.Labels) > MaxSourceLabels || !slices.IsSorted(f.Labels) || f.Walk == nil {
			return nil, fmt.Errorf("metrics: streamed family %s: needs a Walk and at most %d labels in byte order, has %v", f.Name, MaxSourceLabels, f.Labels)
		}
	}
	m.src.mu.Lock()
	defer m.src.mu.Unlock()
	if m.src.all == nil {
		m.src.all = map[int]Source{}
	}
	id := m.src.next
	m.src.next++
	m.src.all[id] = s
	return func() {
		m.src.mu.Lock()
		defer m.src.mu.Unlock()
		delete(m.src.all, id)
	}, nil
}

// sourceFamilies is every streamed family of the registered sources,
// sorted by name.
func (m *Metrics) sourceFamilies() []SourceFamily {
	m.src.mu.Lock()
	ids := make([]int, 0, len(m.src.all))
	for id := range m.src.all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []SourceFamily
	for _, id := range ids {
		out = append(out, m.src.all[id].Families()...)
	}
	m.src.mu.Unlock()
	slices.SortStableFunc(out, func(a, b SourceFamily) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// sourceChunk is the dto of one chunk of a streamed family, reused for
// every chunk of a scrape like dtoChunk.
type sourceChunk struct {
	mf       dto.MetricFamily
	name     string
	help     string
	typ      dto.MetricType
	labels   [MaxSourceLabels]string
	metrics  []*dto.Metric
	ms       []dto.Metric
	lps      []dto.LabelPair
	lpps     []*dto.LabelPair
	gauges   []dto.Gauge
	counters []dto.Counter
}

func newSourceChunk() *sourceChunk {
	return &sourceChunk{
		metrics:  make([]*dto.Metric, chunkSamples),
		ms:       make([]dto.Metric, chunkSamples),
		lps:      make([]dto.LabelPair, MaxSourceLabels*chunkSamples),
		lpps:     make([]*dto.LabelPair, MaxSourceLabels*chunkSamples),
		gauges:   make([]dto.Gauge, chunkSamples),
		counters: make([]dto.Counter, chunkSamples),
	}
}

// fill makes c the dto of samples (at most chunkSamples) of family f. The
// dto points into samples, which must stay unchanged until it is encoded.
func (c *sourceChunk) fill(f *SourceFamily, samples []SourceSample) *dto.MetricFamily {
	c.name, c.help = f.Name, f.Help
	c.typ = dto.MetricType_GAUGE
	if f.Counter {
		c.typ = dto.MetricType_COUNTER
	}
	copy(c.labels[:], f.Labels)
	c.mf.Name, c.mf.Help, c.mf.Type = &c.name, &c.help, &c.typ
	nl := len(f.Labels)
	for i := range samples {
		smp := &samples[i]
		lps := c.lps[MaxSourceLabels*i : MaxSourceLabels*i+nl]
		lpps := c.lpps[MaxSourceLabels*i : MaxSourceLabels*i+nl]
		for j := range lps {
			lps[j].Name, lps[j].Value = &c.labels[j], &smp.Values[j]
			lpps[j] = &lps[j]
		}
		m := &c.ms[i]
		m.Label = lpps
		m.Gauge, m.Counter = nil, nil
		if f.Counter {
			c.counters[i].Value = &smp.Value
			m.Counter = &c.counters[i]
		} else {
			c.gauges[i].Value = &smp.Value
			m.Gauge = &c.gauges[i]
		}
		c.metrics[i] = m
	}
	c.mf.Metric = c.metrics[:len(samples)]
	return &c.mf
}

// errChunkTooLarge is a source's Walk emitting more than cap(buf).
var errChunkTooLarge = errors.New("a chunk larger than its buffer")

// walkSource walks f with buf, refusing chunks larger than chunkSamples.
func walkSource(f *SourceFamily, buf []SourceSample, emit func([]SourceSample) error) error {
	return f.Walk(buf[:0], func(ss []SourceSample) error {
		if len(ss) > chunkSamples {
			return errChunkTooLarge
		}
		if len(ss) == 0 {
			return nil
		}
		return emit(ss)
	})
}

// gatherSources is the streamed families as whole dto families, for
// Gatherer (allocating; Handler never does this).
func (m *Metrics) gatherSources() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	buf := make([]SourceSample, 0, chunkSamples)
	for _, f := range m.sourceFamilies() {
		typ := dto.MetricType_GAUGE
		if f.Counter {
			typ = dto.MetricType_COUNTER
		}
		mf := &dto.MetricFamily{Name: ptr(f.Name), Help: ptr(f.Help), Type: &typ}
		err := walkSource(&f, buf, func(ss []SourceSample) error {
			for _, s := range ss {
				dm := &dto.Metric{}
				for j, n := range f.Labels {
					dm.Label = append(dm.Label, &dto.LabelPair{Name: ptr(n), Value: ptr(s.Values[j])})
				}
				if f.Counter {
					dm.Counter = &dto.Counter{Value: ptr(s.Value)}
				} else {
					dm.Gauge = &dto.Gauge{Value: ptr(s.Value)}
				}
				mf.Metric = append(mf.Metric, dm)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("gathering %s: %w", f.Name, err)
		}
		if len(mf.Metric) > 0 {
			out = append(out, mf)
		}
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
