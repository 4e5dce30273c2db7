package monitor

import (
	"fmt"
	"time"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// DefaultMargin is how long after a slot the monitor waits for its
// snapshot before calling the frequency overdue. Atlas starts a scheduled
// snapshot at the slot, give or take minutes, and only completed snapshots
// count, so the margin covers a late start plus the time a snapshot takes;
// raise it (monitor.margin) for clusters whose snapshots take longer.
const DefaultMargin = policy.DefaultMonitorMargin

// FlexMaxAge is the age beyond which a flex cluster's newest snapshot is
// stale: Atlas takes one a day (ATLAS_API_NOTES.md 9d), so 36 h is one
// missed day plus half a day of slack.
const FlexMaxAge = 36 * time.Hour

// Nominal lengths used to turn a retention into seconds for the metrics.
// Comparisons against a compliance policy do not use them (see weaker).
const (
	day   = 24 * time.Hour
	week  = 7 * day
	month = 30 * day
	year  = 365 * day
)

// frequencyRank orders scheduled frequencies from most to least frequent.
// A snapshot of a coarser frequency also keeps a finer frequency's promise:
// when an hourly and a daily slot coincide Atlas takes one snapshot and
// tags it daily.
var frequencyRank = map[string]int{
	FrequencyHourly: 1, FrequencyDaily: 2, FrequencyWeekly: 3, FrequencyMonthly: 4, FrequencyYearly: 5,
}

// scheduledKinds are the kinds of scheduled snapshots, which are also the
// scheduled frequencies, in rank order.
var scheduledKinds = []string{KindHourly, KindDaily, KindWeekly, KindMonthly, KindYearly}

// knownKinds is the closed set of kinds; a snapshot of any other kind is
// ignored, so the kind label stays bounded whatever an adapter passes.
var knownKinds = map[string]bool{
	KindHourly: true, KindDaily: true, KindWeekly: true, KindMonthly: true, KindYearly: true,
	KindOnDemand: true, KindFallback: true, KindFlex: true,
}

// Assessment is what one Reading says about a cluster's native backups at
// a moment: the numbers the metrics expose and the problems status shows.
type Assessment struct {
	Target run.Target
	// At is the moment assessed: what Problems and the overdue promises
	// hold for.
	At            time.Time
	Flex          bool
	BackupEnabled bool
	// Kinds holds, per kind that has snapshots, the newest completed and
	// newest failed snapshot and the counts.
	Kinds map[string]KindState
	// Newest is the newest completed snapshot of any kind; NewestSize its
	// size (0 when none or unknown).
	Newest     time.Time
	NewestSize int64
	Failed     int // failed snapshots in the listing
	// Promises are what the schedule promises, one per scheduled
	// frequency it has, in rank order (empty for flex clusters).
	Promises     []Promise
	NextSnapshot time.Time
	// FlexDue is when a flex cluster's next snapshot is overdue: FlexMaxAge
	// after its newest completed one (or after Since). Zero when overdue
	// already for lack of any anchor, and for dedicated clusters.
	FlexDue time.Time
	// Compliance is nil when the project has no compliance policy.
	Compliance *ComplianceState
	// Problems are what is wrong, in words, for status; empty when nothing is.
	Problems []string
}

// KindState is the snapshots of one kind.
type KindState struct {
	Newest       time.Time // newest completed; zero if none
	NewestFailed time.Time // newest failed; zero if none
	Retained     int       // completed snapshots listed
	Failed       int       // failed snapshots listed
}

// Promise is what one scheduled frequency of the schedule promises.
type Promise struct {
	Frequency string
	// MaxGap is the longest time the schedule lets pass between two
	// snapshots of this frequency: N hours for hourly every N, a day, a
	// week, 31 days for monthly (any day, and the last day: Jan 31 to Feb
	// 28 is 28 days, Feb 28 to Mar 31 is 31), 366 days for yearly.
	MaxGap    time.Duration
	Retention time.Duration // nominal (months of 30 days, years of 365)
	// Due is when the frequency's next snapshot is overdue: the first
	// slot after its newest snapshot (or after Reading.Since), plus the
	// margin. Zero when there is neither (overdue from the start).
	Due time.Time
	// Satisfied is the newest completed scheduled snapshot that keeps this
	// promise (this frequency or a coarser one); zero if none.
	Satisfied time.Time
}

// Overdue reports whether the promise is broken at now.
func (p Promise) Overdue(now time.Time) bool { return !now.Before(p.Due) }

// ComplianceState is the project's compliance policy and how the cluster's
// schedule measures up to it.
type ComplianceState struct {
	Required   []Requirement
	Shortfalls []Shortfall
}

// Requirement is one scheduled item of a compliance policy, in numbers.
type Requirement struct {
	Frequency string
	MaxGap    time.Duration // as Promise.MaxGap
	Retention time.Duration // nominal, as Promise.Retention
}

// Aspects of a Shortfall.
const (
	AspectFrequency = "frequency" // the schedule lacks the frequency or takes it less often
	AspectRetention = "retention" // the schedule keeps its snapshots for less long
)

// Shortfall is one way the schedule is weaker than the compliance policy.
type Shortfall struct {
	Frequency string
	Aspect    string
	Detail    string
}

// Assess computes the Assessment of r at now. margin is added to every
// slot (DefaultMargin when <= 0). It is pure: the same Reading, now and
// margin always give the same result, and all slot maths is in UTC, as
// Atlas schedules are.
func Assess(r Reading, now time.Time, margin time.Duration) Assessment {
	if margin <= 0 {
		margin = DefaultMargin
	}
	a := Assessment{Target: r.Target, At: now, Flex: r.Flex, BackupEnabled: r.BackupEnabled || r.Flex, Kinds: map[string]KindState{}}
	var newestSize int64
	for _, s := range r.Snapshots {
		if !knownKinds[s.Kind] {
			continue
		}
		k := a.Kinds[s.Kind]
		switch s.Status {
		case StatusCompleted:
			k.Retained++
			if s.CreatedAt.After(k.Newest) {
				k.Newest = s.CreatedAt
			}
			if s.CreatedAt.After(a.Newest) {
				a.Newest, newestSize = s.CreatedAt, s.SizeBytes
			}
		case StatusFailed:
			k.Failed++
			a.Failed++
			if s.CreatedAt.After(k.NewestFailed) {
				k.NewestFailed = s.CreatedAt
			}
		default:
			// queued or in progress: not a backup yet, not a failure.
			if k == (KindState{}) {
				continue
			}
		}
		a.Kinds[s.Kind] = k
	}
	a.NewestSize = newestSize

	if r.Flex {
		anchor := a.Kinds[KindFlex].Newest
		if anchor.IsZero() {
			anchor = r.Since
		}
		if !anchor.IsZero() {
			a.FlexDue = anchor.Add(FlexMaxAge)
		}
		if !now.Before(a.FlexDue) {
			a.problem("flex cluster: no completed snapshot in %s", FlexMaxAge)
		}
	} else {
		if !r.BackupEnabled {
			a.problem("backup is disabled")
		}
		if r.Schedule != nil {
			a.NextSnapshot = r.Schedule.NextSnapshot
			a.Promises = promises(r, a.Kinds, margin)
			for _, p := range a.Promises {
				if p.Overdue(now) {
					a.problem("%s snapshot overdue since %s", p.Frequency, p.Due.UTC().Format(time.RFC3339))
				}
			}
		}
	}
	for _, kind := range sortedKeys(a.Kinds) {
		if k := a.Kinds[kind]; k.Failed > 0 {
			a.problem("%d failed %s snapshot(s), the newest at %s", k.Failed, kind, k.NewestFailed.UTC().Format(time.RFC3339))
		}
	}
	if r.Compliance != nil {
		a.Compliance = compare(r.Schedule, r.Compliance, r.Flex)
		for _, s := range a.Compliance.Shortfalls {
			a.problem("weaker than the compliance policy: %s", s.Detail)
		}
	}
	return a
}

func (a *Assessment) problem(format string, args ...any) {
	a.Problems = append(a.Problems, fmt.Sprintf(format, args...))
}

// promises turns the schedule's items into one Promise per scheduled
// frequency. Two items of one frequency (Atlas allows it for hourly and
// weekly, e.g. two weekdays) merge into the stricter promise: the earlier
// due time and the shorter gap, with the longer retention.
func promises(r Reading, kinds map[string]KindState, margin time.Duration) []Promise {
	byFreq := map[string]Promise{}
	for _, it := range r.Schedule.Items {
		rank, ok := frequencyRank[it.Frequency]
		if !ok {
			continue // ondemand items promise no timing
		}
		var satisfied time.Time
		for _, kind := range scheduledKinds[rank-1:] {
			if t := kinds[kind].Newest; t.After(satisfied) {
				satisfied = t
			}
		}
		anchor := satisfied
		if anchor.IsZero() {
			anchor = r.Since
		}
		p := Promise{Frequency: it.Frequency, MaxGap: maxGap(it), Retention: retention(it), Satisfied: satisfied}
		if !anchor.IsZero() {
			p.Due = nextSlot(it, r.Schedule.ReferenceHour, r.Schedule.ReferenceMinute, anchor).Add(margin)
		}
		if q, ok := byFreq[it.Frequency]; ok {
			if q.Due.Before(p.Due) {
				p.Due = q.Due
			}
			p.MaxGap = min(p.MaxGap, q.MaxGap)
			p.Retention = max(p.Retention, q.Retention)
		}
		byFreq[it.Frequency] = p
	}
	out := make([]Promise, 0, len(byFreq))
	for _, f := range scheduledKinds {
		if p, ok := byFreq[f]; ok {
			out = append(out, p)
		}
	}
	return out
}

// maxGap is Promise.MaxGap of one item. An hourly interval outside Atlas's
// set still means "every N hours"; anything below 1 counts as 1.
func maxGap(it PolicyItem) time.Duration {
	switch it.Frequency {
	case FrequencyHourly:
		return time.Duration(max(it.Interval, 1)) * time.Hour
	case FrequencyDaily:
		return day
	case FrequencyWeekly:
		return week
	case FrequencyMonthly:
		return 31 * day
	case FrequencyYearly:
		return 366 * day
	}
	return 0
}

// retention is an item's retention in nominal seconds.
func retention(it PolicyItem) time.Duration {
	n := time.Duration(it.RetentionValue)
	switch it.RetentionUnit {
	case RetentionDays:
		return n * day
	case RetentionWeeks:
		return n * week
	case RetentionMonths:
		return n * month
	case RetentionYears:
		return n * year
	}
	return 0
}

// nextSlot is the first slot of item strictly after t, in UTC, with the
// schedule's reference hour and minute:
//   - hourly every N: the hours h with h ≡ refHour (mod N), at refMinute
//     (N need not divide 24: the count restarts each UTC day at refHour mod N);
//   - daily: refHour:refMinute each day;
//   - weekly: that time on weekday Interval (1 = Monday … 7 = Sunday);
//   - monthly: that time on day Interval of each month, or its last day
//     for LastDayOfMonth;
//   - yearly: the spec does not say which day of month Interval Atlas
//     picks, so the monitor only promises that a year (366 days) does not
//     pass without one: t + 366 days.
func nextSlot(it PolicyItem, refHour, refMinute int, t time.Time) time.Time {
	t = t.UTC()
	refHour, refMinute = ((refHour%24)+24)%24, ((refMinute%60)+60)%60
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	at := func(d time.Time) time.Time {
		return d.Add(time.Duration(refHour)*time.Hour + time.Duration(refMinute)*time.Minute)
	}
	switch it.Frequency {
	case FrequencyHourly:
		n := max(it.Interval, 1)
		for d := midnight; ; d = d.AddDate(0, 0, 1) {
			for h := refHour % n; h < 24; h += n {
				if s := d.Add(time.Duration(h)*time.Hour + time.Duration(refMinute)*time.Minute); s.After(t) {
					return s
				}
			}
		}
	case FrequencyDaily:
		for d := midnight; ; d = d.AddDate(0, 0, 1) {
			if s := at(d); s.After(t) {
				return s
			}
		}
	case FrequencyWeekly:
		want := time.Weekday(it.Interval % 7) // 7 = Sunday = 0
		for d := midnight; ; d = d.AddDate(0, 0, 1) {
			if s := at(d); d.Weekday() == want && s.After(t) {
				return s
			}
		}
	case FrequencyMonthly:
		for m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC); ; m = m.AddDate(0, 1, 0) {
			if s := at(m.AddDate(0, 0, monthDay(it.Interval, m)-1)); s.After(t) {
				return s
			}
		}
	}
	return t.Add(366 * day)
}

// monthDay is the day of month first's month a monthly item with interval
// n falls on: n itself (1–28), or the month's last day for LastDayOfMonth
// and for anything past it.
func monthDay(n int, first time.Time) int {
	last := first.AddDate(0, 1, -1).Day()
	if n < 1 {
		return 1
	}
	return min(n, last)
}

// compare measures a schedule against a compliance policy. For each
// required scheduled item the schedule needs an item of the same
// frequency, as often (for hourly, every N hours or more often; the other
// frequencies only choose a day, which changes nothing of how often) and
// kept at least as long. Flex clusters have no schedule to compare.
func compare(s *Schedule, c *Compliance, flex bool) *ComplianceState {
	st := &ComplianceState{}
	for _, req := range strictest(c.ScheduledItems) {
		st.Required = append(st.Required, Requirement{Frequency: req.Frequency, MaxGap: maxGap(req), Retention: retention(req)})
		if flex {
			continue
		}
		var have []PolicyItem
		if s != nil {
			for _, it := range s.Items {
				if it.Frequency == req.Frequency {
					have = append(have, it)
				}
			}
		}
		if len(have) == 0 {
			st.Shortfalls = append(st.Shortfalls, Shortfall{req.Frequency, AspectFrequency,
				fmt.Sprintf("the schedule has no %s snapshots, the policy requires them", req.Frequency)})
			continue
		}
		best := have[0]
		for _, it := range have[1:] {
			if maxGap(it) < maxGap(best) {
				best = it
			}
		}
		if maxGap(best) > maxGap(req) {
			st.Shortfalls = append(st.Shortfalls, Shortfall{req.Frequency, AspectFrequency,
				fmt.Sprintf("%s snapshots every %d hours, the policy requires every %d", req.Frequency, best.Interval, req.Interval)})
		}
		longest := have[0]
		for _, it := range have[1:] {
			if !shorter(it, longest) {
				longest = it
			}
		}
		if shorter(longest, req) {
			st.Shortfalls = append(st.Shortfalls, Shortfall{req.Frequency, AspectRetention,
				fmt.Sprintf("%s snapshots kept %d %s, the policy requires %d %s", req.Frequency,
					longest.RetentionValue, longest.RetentionUnit, req.RetentionValue, req.RetentionUnit)})
		}
	}
	return st
}

// strictest merges the scheduled items of each frequency into one that
// asks the most of both (the shorter hourly interval, the longer
// retention), in rank order, so each frequency is required once.
func strictest(items []PolicyItem) []PolicyItem {
	byFreq := map[string]PolicyItem{}
	for _, it := range items {
		if _, ok := frequencyRank[it.Frequency]; !ok {
			continue
		}
		if q, ok := byFreq[it.Frequency]; ok {
			if maxGap(q) < maxGap(it) {
				it.Interval = q.Interval
			}
			if shorter(it, q) {
				it.RetentionUnit, it.RetentionValue = q.RetentionUnit, q.RetentionValue
			}
		}
		byFreq[it.Frequency] = it
	}
	var out []PolicyItem
	for _, f := range scheduledKinds {
		if it, ok := byFreq[f]; ok {
			out = append(out, it)
		}
	}
	return out
}

// shorter reports whether retention a is shorter than retention b, without
// rounding in a's favour: days and weeks compare exactly in days, months
// and years exactly in months; across the two, a month counts 28 days on
// a's side and 31 on b's (and a year 365 and 366), so a schedule is only
// called compliant when it is in every month.
func shorter(a, b PolicyItem) bool {
	inMonths := func(it PolicyItem) (int, bool) {
		switch it.RetentionUnit {
		case RetentionMonths:
			return it.RetentionValue, true
		case RetentionYears:
			return 12 * it.RetentionValue, true
		}
		return 0, false
	}
	inDays := func(it PolicyItem, monthDays, yearDays int) int {
		switch it.RetentionUnit {
		case RetentionDays:
			return it.RetentionValue
		case RetentionWeeks:
			return 7 * it.RetentionValue
		case RetentionMonths:
			return monthDays * it.RetentionValue
		case RetentionYears:
			return yearDays * it.RetentionValue
		}
		return 0
	}
	am, aok := inMonths(a)
	bm, bok := inMonths(b)
	if aok && bok {
		return am < bm
	}
	return inDays(a, 28, 365) < inDays(b, 31, 366)
}
