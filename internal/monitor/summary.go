package monitor

import (
	"slices"
	"time"
)

// summary is what the monitor keeps of a cluster's last Assessment: the
// numbers its series and status need, compactly. An Assessment with its
// maps and slices takes about 1.8 KB; at 10,000 clusters that alone would
// be 17 MiB of the daemon's 64 MiB (docs/benchmarks.md), so the Collector
// and the Runner share one immutable summary per cluster instead, about
// 400 B. Times are Unix nanoseconds, 0 for none.
type summary struct {
	flex, enabled bool
	newest        int64 // newest completed snapshot of any kind
	newestSize    int64
	next          int64 // the schedule's nextSnapshot
	flexDue       int64
	kinds         []kindSummary    // the kinds with snapshots, in kindOrder
	promises      []promiseSummary // in rank order
	// required is the project's compliance policy in numbers, nil when
	// there is none (hasCompliance false); clusters of one project share
	// its backing array (Collector.observe interns it).
	hasCompliance bool
	required      []Requirement
	shortfalls    uint16   // bit 2*i (frequency) and 2*i+1 (retention) for required[i]
	shortDetails  []string // the shortfalls in words; nil when none
	problems      []string
}

type kindSummary struct {
	kind             string
	retained, failed int32
	newest, failedAt int64
}

type promiseSummary struct {
	frequency              string
	due, maxGap, retention int64
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// summarize is a's summary.
func summarize(a Assessment) *summary {
	s := &summary{flex: a.Flex, enabled: a.BackupEnabled, newest: nanos(a.Newest), newestSize: a.NewestSize,
		next: nanos(a.NextSnapshot), flexDue: nanos(a.FlexDue)}
	if len(a.Problems) > 0 {
		s.problems = slices.Clip(slices.Clone(a.Problems))
	}
	for _, kind := range kindOrder {
		if k, ok := a.Kinds[kind]; ok {
			s.kinds = append(s.kinds, kindSummary{kind: kind, retained: int32(k.Retained), failed: int32(k.Failed),
				newest: nanos(k.Newest), failedAt: nanos(k.NewestFailed)})
		}
	}
	s.kinds = slices.Clip(s.kinds)
	for _, p := range a.Promises {
		s.promises = append(s.promises, promiseSummary{frequency: p.Frequency, due: nanos(p.Due),
			maxGap: int64(p.MaxGap), retention: int64(p.Retention)})
	}
	s.promises = slices.Clip(s.promises)
	if c := a.Compliance; c != nil {
		s.hasCompliance = true
		s.required = slices.Clip(slices.Clone(c.Required))
		for _, sf := range c.Shortfalls {
			s.shortDetails = append(s.shortDetails, sf.Detail)
		}
		s.shortDetails = slices.Clip(s.shortDetails)
		for i, r := range c.Required {
			for j, aspect := range []string{AspectFrequency, AspectRetention} {
				if i < 8 && slices.ContainsFunc(c.Shortfalls, func(sf Shortfall) bool {
					return sf.Frequency == r.Frequency && sf.Aspect == aspect
				}) {
					s.shortfalls |= 1 << (2*i + j)
				}
			}
		}
	}
	return s
}

// short reports whether required[i] falls short in aspect (0 frequency,
// 1 retention).
func (s *summary) short(i, aspect int) bool {
	return i < 8 && s.shortfalls&(1<<(2*i+aspect)) != 0
}

// unixN is Unix nanoseconds n in seconds; 0 stays 0 ("never").
func unixN(n int64) float64 { return float64(n) / 1e9 }
