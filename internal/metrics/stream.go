package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
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
		// The exposition writes names as they are (appendSourceChunk).
		valid := model.LegacyValidation.IsValidMetricName(f.Name)
		for _, l := range f.Labels {
			valid = valid && model.LegacyValidation.IsValidLabelName(l)
		}
		if !valid {
			return nil, fmt.Errorf("metrics: streamed family %s: its name and label names %v must be legacy Prometheus names", f.Name, f.Labels)
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

// appendSourceChunk appends the exposition of samples, one chunk of family
// f, to b, in the text format or (om) OpenMetrics, with the family's HELP
// and TYPE lines first if header is set. It writes what expfmt writes for
// the same family (TestSourceStreamsLikeRegistry compares them byte for
// byte) but directly: no dto per chunk, no allocation per series. At 10,000
// watched clusters the monitor's 300,000 series are most of a scrape's
// CPU. Names and label names are legacy Prometheus names (AddSource
// checks), so they need no quoting.
func appendSourceChunk(b []byte, f *SourceFamily, om, header bool, samples []SourceSample) []byte {
	name, suffix := f.Name, ""
	if om && f.Counter {
		// OpenMetrics names a counter family without _total and its
		// samples with it.
		name, suffix = strings.TrimSuffix(f.Name, "_total"), "_total"
	}
	if header {
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.Help, om)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		switch {
		case !f.Counter:
			b = append(b, " gauge\n"...)
		case om && !strings.HasSuffix(f.Name, "_total"):
			b = append(b, " unknown\n"...)
		default:
			b = append(b, " counter\n"...)
		}
	}
	for i := range samples {
		smp := &samples[i]
		b = append(b, name...)
		b = append(b, suffix...)
		for j, l := range f.Labels {
			if j == 0 {
				b = append(b, '{')
			} else {
				b = append(b, ',')
			}
			b = append(b, l...)
			b = append(b, '=', '"')
			b = appendEscaped(b, smp.Values[j], true)
			b = append(b, '"')
		}
		if len(f.Labels) > 0 {
			b = append(b, '}')
		}
		b = append(b, ' ')
		b = appendFloat(b, smp.Value, om)
		b = append(b, '\n')
	}
	return b
}

// appendEscaped appends s with backslashes and newlines escaped, and
// double quotes too if quote is set, as expfmt escapes label values
// (quote) and HELP text (quote in OpenMetrics only).
func appendEscaped(b []byte, s string, quote bool) []byte {
	// Most values need no escaping: copy up to the first byte that does
	// in one go (byte by byte, this was a sixth of the encoding in a profile).
	i := 0
	for i < len(s) && s[i] != '\\' && s[i] != '\n' && (s[i] != '"' || !quote) {
		i++
	}
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat appends v as expfmt writes a sample value: the shortest
// representation, with OpenMetrics's ".0" on integral values.
func appendFloat(b []byte, v float64, om bool) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	n := len(b)
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	if om && !bytes.ContainsAny(b[n:], "e.") {
		b = append(b, '.', '0')
	}
	return b
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
