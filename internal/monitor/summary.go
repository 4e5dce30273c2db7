package monitor

import (
	"fmt"
	"math/bits"
	"slices"
	"time"
	"unique"
)

// summary is what the monitor keeps of a cluster's last Assessment: the
// numbers its series and status need, compactly, shared by the Collector
// and the Runner. At 10,000 clusters every byte here is 10 KB of the
// daemon's 64 MiB (docs/benchmarks.md, "The monitor's own cost"), so:
// times are Unix nanoseconds (0 for none); the schedule's and the
// compliance policy's numbers, which most clusters of a fleet share, are
// interned (unique.Handle) rather than copied per cluster; per-frequency
// values are fixed arrays indexed by rank, not slices of structs with a
// frequency string; and the problems are not kept in words but rendered
// when status asks (problems), from the numbers.
type summary struct {
	at         int64 // when assessed: the moment the problems hold for
	newest     int64 // newest completed snapshot of any kind
	newestSize int64
	next       int64 // the schedule's nextSnapshot
	flexDue    int64
	// due is each scheduled frequency's Promise.Due, by rank-1, for the
	// frequencies sched has.
	due [nFrequencies]int64
	// kinds are the kinds with snapshots, in kindOrder: kinds[i] is the
	// i-th kind whose bit is set in kindSet.
	kinds   []kindSummary
	kindSet uint8
	flags   uint8
	// sched is what the schedule promises; required the project's
	// compliance policy in numbers (with flagCompliance). Zero handles
	// for none.
	sched, required unique.Handle[frequencies]
	// shortfalls has bit 2*(rank-1) (frequency) and 2*(rank-1)+1
	// (retention) per required frequency that falls short.
	shortfalls uint16
	// shortDetails are the shortfalls in words (interned: the clusters of
	// a project with one schedule share them); nil when none.
	shortDetails []string
}

const (
	flagFlex = 1 << iota
	flagEnabled
	flagCompliance
)

// nFrequencies is the number of scheduled frequencies (scheduledKinds).
const nFrequencies = 5

// frequencies is a schedule's or a compliance policy's numbers per
// scheduled frequency: comparable, so that unique interns it.
type frequencies struct {
	has               uint8 // bit rank-1 per frequency present
	maxGap, retention [nFrequencies]int64
}

type kindSummary struct {
	newest, failedAt int64
	retained, failed int32
}

// promiseSummary is one scheduled frequency's numbers, as the metrics and
// status walk them.
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
	s := &summary{at: nanos(a.At), newest: nanos(a.Newest), newestSize: a.NewestSize,
		next: nanos(a.NextSnapshot), flexDue: nanos(a.FlexDue)}
	if a.Flex {
		s.flags |= flagFlex
	}
	if a.BackupEnabled {
		s.flags |= flagEnabled
	}
	for i, kind := range kindOrder {
		if k, ok := a.Kinds[kind]; ok {
			s.kindSet |= 1 << i
			s.kinds = append(s.kinds, kindSummary{retained: int32(k.Retained), failed: int32(k.Failed),
				newest: nanos(k.Newest), failedAt: nanos(k.NewestFailed)})
		}
	}
	s.kinds = slices.Clip(s.kinds)
	var sched frequencies
	for _, p := range a.Promises {
		r := frequencyRank[p.Frequency] - 1
		sched.has |= 1 << r
		sched.maxGap[r], sched.retention[r] = int64(p.MaxGap), int64(p.Retention)
		s.due[r] = nanos(p.Due)
	}
	if sched.has != 0 {
		s.sched = unique.Make(sched)
	}
	if c := a.Compliance; c != nil {
		s.flags |= flagCompliance
		var req frequencies
		for _, r := range c.Required {
			i := frequencyRank[r.Frequency] - 1
			req.has |= 1 << i
			req.maxGap[i], req.retention[i] = int64(r.MaxGap), int64(r.Retention)
		}
		if req.has != 0 {
			s.required = unique.Make(req)
		}
		for _, sf := range c.Shortfalls {
			s.shortDetails = append(s.shortDetails, unique.Make(sf.Detail).Value())
			bit := 2 * (frequencyRank[sf.Frequency] - 1)
			if sf.Aspect == AspectRetention {
				bit++
			}
			s.shortfalls |= 1 << bit
		}
		s.shortDetails = slices.Clip(s.shortDetails)
	}
	return s
}

func (s *summary) flex() bool          { return s.flags&flagFlex != 0 }
func (s *summary) enabled() bool       { return s.flags&flagEnabled != 0 }
func (s *summary) hasCompliance() bool { return s.flags&flagCompliance != 0 }

// eachKind calls f with each kind that has snapshots, in kindOrder.
func (s *summary) eachKind(f func(kind string, k kindSummary)) {
	set, i := s.kindSet, 0
	for set != 0 {
		b := bits.TrailingZeros8(set)
		f(kindOrder[b], s.kinds[i])
		set &^= 1 << b
		i++
	}
}

// eachPromise calls f with each scheduled frequency of the schedule, in
// rank order.
func (s *summary) eachPromise(f func(p promiseSummary)) {
	if s.sched == (unique.Handle[frequencies]{}) {
		return
	}
	sched := s.sched.Value()
	for r, freq := range scheduledKinds {
		if sched.has&(1<<r) != 0 {
			f(promiseSummary{frequency: freq, due: s.due[r], maxGap: sched.maxGap[r], retention: sched.retention[r]})
		}
	}
}

// hasFrequency reports whether the schedule has the scheduled frequency.
func (s *summary) hasFrequency(freq string) bool {
	r, ok := frequencyRank[freq]
	return ok && s.sched != (unique.Handle[frequencies]{}) && s.sched.Value().has&(1<<(r-1)) != 0
}

// eachRequired calls f with each frequency the compliance policy
// requires, in rank order, and whether the schedule falls short of it in
// frequency and in retention.
func (s *summary) eachRequired(f func(r Requirement, shortFrequency, shortRetention bool)) {
	if s.required == (unique.Handle[frequencies]{}) {
		return
	}
	req := s.required.Value()
	for r, freq := range scheduledKinds {
		if req.has&(1<<r) != 0 {
			f(Requirement{Frequency: freq, MaxGap: time.Duration(req.maxGap[r]), Retention: time.Duration(req.retention[r])},
				s.shortfalls&(1<<(2*r)) != 0, s.shortfalls&(1<<(2*r+1)) != 0)
		}
	}
}

// problems is Assessment.Problems of the assessment s summarizes, the same
// words in the same order (TestSummaryProblems), rendered from the
// numbers: status asks for them rarely, and kept as text they would be a
// few hundred bytes of every unhealthy cluster.
func (s *summary) problems() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if s.flex() {
		if s.at >= s.flexDue {
			add("flex cluster: no completed snapshot in %s", FlexMaxAge)
		}
	} else {
		if !s.enabled() {
			add("backup is disabled")
		}
		s.eachPromise(func(p promiseSummary) {
			if s.at >= p.due {
				add("%s snapshot overdue since %s", p.frequency, stamp(p.due).Format(time.RFC3339))
			}
		})
	}
	s.eachKind(func(kind string, k kindSummary) {
		if k.failed > 0 {
			add("%d failed %s snapshot(s), the newest at %s", k.failed, kind, stamp(k.failedAt).Format(time.RFC3339))
		}
	})
	for _, d := range s.shortDetails {
		add("weaker than the compliance policy: %s", d)
	}
	return out
}

// stamp is Unix nanoseconds n as a UTC time; 0 is the zero time.
func stamp(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// unixN is Unix nanoseconds n in seconds; 0 stays 0 ("never").
func unixN(n int64) float64 { return float64(n) / 1e9 }
