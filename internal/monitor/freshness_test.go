package monitor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNextSlot(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		item         PolicyItem
		hour, minute int
		after        time.Time
		want         string
	}{
		{"hourly every 1", PolicyItem{Frequency: FrequencyHourly, Interval: 1}, 0, 15, utc("2026-03-01T10:15:00Z"), "2026-03-01T11:15:00Z"},
		{"hourly every 6 anchored at 2", PolicyItem{Frequency: FrequencyHourly, Interval: 6}, 2, 0, utc("2026-03-01T09:00:00Z"), "2026-03-01T14:00:00Z"},
		{"hourly every 6 over midnight", PolicyItem{Frequency: FrequencyHourly, Interval: 6}, 2, 0, utc("2026-03-01T20:30:00Z"), "2026-03-02T02:00:00Z"},
		{"hourly every 12 anchored at 14", PolicyItem{Frequency: FrequencyHourly, Interval: 12}, 14, 30, utc("2026-03-01T03:00:00Z"), "2026-03-01T14:30:00Z"},
		{"hourly interval 0 is every hour", PolicyItem{Frequency: FrequencyHourly}, 0, 0, utc("2026-03-01T03:00:00Z"), "2026-03-01T04:00:00Z"},
		{"daily later today", PolicyItem{Frequency: FrequencyDaily, Interval: 1}, 18, 0, utc("2026-03-01T10:00:00Z"), "2026-03-01T18:00:00Z"},
		{"daily exactly at the slot is the next day", PolicyItem{Frequency: FrequencyDaily, Interval: 1}, 18, 0, utc("2026-03-01T18:00:00Z"), "2026-03-02T18:00:00Z"},
		{"weekly Monday", PolicyItem{Frequency: FrequencyWeekly, Interval: 1}, 3, 0, utc("2026-03-04T00:00:00Z"), "2026-03-09T03:00:00Z"}, // Wed -> Mon
		{"weekly Sunday is 7", PolicyItem{Frequency: FrequencyWeekly, Interval: 7}, 3, 0, utc("2026-03-04T00:00:00Z"), "2026-03-08T03:00:00Z"},
		{"monthly day 15", PolicyItem{Frequency: FrequencyMonthly, Interval: 15}, 1, 0, utc("2026-03-20T00:00:00Z"), "2026-04-15T01:00:00Z"},
		{"monthly last day of February", PolicyItem{Frequency: FrequencyMonthly, Interval: LastDayOfMonth}, 1, 0, utc("2026-02-01T00:00:00Z"), "2026-02-28T01:00:00Z"},
		{"monthly last day, leap February", PolicyItem{Frequency: FrequencyMonthly, Interval: LastDayOfMonth}, 1, 0, utc("2028-02-01T00:00:00Z"), "2028-02-29T01:00:00Z"},
		{"monthly last day after January's", PolicyItem{Frequency: FrequencyMonthly, Interval: LastDayOfMonth}, 1, 0, utc("2026-01-31T01:00:00Z"), "2026-02-28T01:00:00Z"},
		{"monthly last day across the year", PolicyItem{Frequency: FrequencyMonthly, Interval: LastDayOfMonth}, 23, 59, utc("2026-12-31T23:59:00Z"), "2027-01-31T23:59:00Z"},
		{"monthly day 28 in February", PolicyItem{Frequency: FrequencyMonthly, Interval: 28}, 0, 0, utc("2026-02-27T00:00:00Z"), "2026-02-28T00:00:00Z"},
		{"yearly allows 366 days", PolicyItem{Frequency: FrequencyYearly, Interval: 1}, 0, 0, utc("2026-01-01T00:00:00Z"), "2027-01-02T00:00:00Z"},
		// Atlas schedules are UTC: an input in a zone that changes clocks
		// that night gives the same slots.
		{"DST night, input in Paris", PolicyItem{Frequency: FrequencyHourly, Interval: 1}, 0, 0, utc("2026-03-29T00:30:00Z").In(paris), "2026-03-29T01:00:00Z"},
		{"DST night daily, input in Paris", PolicyItem{Frequency: FrequencyDaily, Interval: 1}, 2, 30, utc("2026-03-28T03:00:00Z").In(paris), "2026-03-29T02:30:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nextSlot(tc.item, tc.hour, tc.minute, tc.after)
			if !got.Equal(utc(tc.want)) || got.Location() != time.UTC {
				t.Errorf("nextSlot(%+v, %02d:%02d, %s) = %s, want %s", tc.item, tc.hour, tc.minute, tc.after, got, tc.want)
			}
		})
	}
}

func TestMaxGapAndRetention(t *testing.T) {
	tests := []struct {
		item      PolicyItem
		gap, kept time.Duration
	}{
		{PolicyItem{FrequencyHourly, 6, RetentionDays, 2}, 6 * time.Hour, 48 * time.Hour},
		{PolicyItem{FrequencyDaily, 1, RetentionWeeks, 1}, 24 * time.Hour, 7 * 24 * time.Hour},
		{PolicyItem{FrequencyWeekly, 3, RetentionMonths, 1}, 7 * 24 * time.Hour, 30 * 24 * time.Hour},
		{PolicyItem{FrequencyMonthly, LastDayOfMonth, RetentionYears, 1}, 31 * 24 * time.Hour, 365 * 24 * time.Hour},
		{PolicyItem{FrequencyYearly, 1, RetentionYears, 7}, 366 * 24 * time.Hour, 7 * 365 * 24 * time.Hour},
		{PolicyItem{FrequencyOnDemand, 0, "fortnights", 1}, 0, 0},
	}
	for _, tc := range tests {
		if g, k := maxGap(tc.item), retention(tc.item); g != tc.gap || k != tc.kept {
			t.Errorf("%+v: gap %s retention %s, want %s %s", tc.item, g, k, tc.gap, tc.kept)
		}
	}
}

var tgt = run.Target{ProjectID: "6650c0f9a2b3c4d5e6f70811", Cluster: "prod-a"}

// daily1h is a schedule of hourly snapshots every 6 h (from 00:00) and a
// daily one at 00:00, kept 2 and 7 days.
func hourlyDaily() *Schedule {
	return &Schedule{Items: []PolicyItem{
		{FrequencyHourly, 6, RetentionDays, 2},
		{FrequencyDaily, 1, RetentionDays, 7},
	}, NextSnapshot: utc("2026-03-02T12:00:00Z")}
}

func snap(kind, status, at string, size int64) Snapshot {
	return Snapshot{Kind: kind, Status: status, CreatedAt: utc(at), SizeBytes: size}
}

func TestAssessFreshness(t *testing.T) {
	type promise struct {
		freq    string
		due     string // "" for zero
		overdue bool
	}
	tests := []struct {
		name     string
		r        Reading
		now      string
		promises []promise
		problems []string // substrings, in order
	}{
		{
			name: "fresh: the 06:00 hourly and the 00:00 daily are there",
			r: Reading{BackupEnabled: true, Schedule: hourlyDaily(), Snapshots: []Snapshot{
				snap(KindDaily, StatusCompleted, "2026-03-02T00:03:00Z", 100),
				snap(KindHourly, StatusCompleted, "2026-03-02T06:02:00Z", 120),
				snap(KindHourly, StatusCompleted, "2026-03-01T18:01:00Z", 90),
			}},
			now: "2026-03-02T10:00:00Z",
			promises: []promise{
				{FrequencyHourly, "2026-03-02T14:00:00Z", false}, // 12:00 + 2h margin
				{FrequencyDaily, "2026-03-03T02:00:00Z", false},
			},
		},
		{
			name: "a daily snapshot keeps the hourly promise of its slot",
			r: Reading{BackupEnabled: true, Schedule: hourlyDaily(), Snapshots: []Snapshot{
				snap(KindHourly, StatusCompleted, "2026-03-01T18:00:00Z", 1),
				snap(KindDaily, StatusCompleted, "2026-03-02T00:01:00Z", 1),
			}},
			now: "2026-03-02T07:59:00Z",
			promises: []promise{
				{FrequencyHourly, "2026-03-02T08:00:00Z", false},
				{FrequencyDaily, "2026-03-03T02:00:00Z", false},
			},
		},
		{
			name: "hourly stale, daily fresh",
			r: Reading{BackupEnabled: true, Schedule: hourlyDaily(), Snapshots: []Snapshot{
				snap(KindDaily, StatusCompleted, "2026-03-02T00:01:00Z", 1),
			}},
			now: "2026-03-02T08:00:00Z",
			promises: []promise{
				{FrequencyHourly, "2026-03-02T08:00:00Z", true},
				{FrequencyDaily, "2026-03-03T02:00:00Z", false},
			},
			problems: []string{"hourly snapshot overdue since 2026-03-02T08:00:00Z"},
		},
		{
			name: "an hourly snapshot does not keep the daily promise; in-progress ones do not count",
			r: Reading{BackupEnabled: true, Schedule: hourlyDaily(), Snapshots: []Snapshot{
				snap(KindHourly, StatusCompleted, "2026-03-02T18:00:00Z", 1),
				snap(KindDaily, StatusCompleted, "2026-03-01T00:00:00Z", 1),
				snap(KindDaily, StatusInProgress, "2026-03-03T00:00:00Z", 1),
			}},
			now: "2026-03-03T02:00:00Z",
			promises: []promise{
				{FrequencyHourly, "2026-03-03T02:00:00Z", true},
				{FrequencyDaily, "2026-03-02T02:00:00Z", true},
			},
			problems: []string{"hourly snapshot overdue", "daily snapshot overdue"},
		},
		{
			name: "monthly on the last day: January 31 is due again on February 28",
			r: Reading{BackupEnabled: true, Schedule: &Schedule{Items: []PolicyItem{{FrequencyMonthly, LastDayOfMonth, RetentionMonths, 12}}, ReferenceHour: 5}, Snapshots: []Snapshot{
				snap(KindMonthly, StatusCompleted, "2026-01-31T05:10:00Z", 1),
			}},
			now:      "2026-02-28T06:59:00Z",
			promises: []promise{{FrequencyMonthly, "2026-02-28T07:00:00Z", false}},
		},
		{
			name: "no snapshot yet: due one slot after Since",
			r:    Reading{BackupEnabled: true, Since: utc("2026-03-02T01:00:00Z"), Schedule: hourlyDaily()},
			now:  "2026-03-02T07:00:00Z",
			promises: []promise{
				{FrequencyHourly, "2026-03-02T08:00:00Z", false},
				{FrequencyDaily, "2026-03-03T02:00:00Z", false},
			},
		},
		{
			name: "no snapshot and no Since: overdue from the start",
			r:    Reading{BackupEnabled: true, Schedule: hourlyDaily()},
			now:  "2026-03-02T07:00:00Z",
			promises: []promise{
				{FrequencyHourly, "", true},
				{FrequencyDaily, "", true},
			},
			problems: []string{"hourly snapshot overdue", "daily snapshot overdue"},
		},
		{
			name:     "backup disabled, no schedule",
			r:        Reading{BackupEnabled: false},
			now:      "2026-03-02T07:00:00Z",
			problems: []string{"backup is disabled"},
		},
		{
			name: "failed snapshots are reported per kind",
			r: Reading{BackupEnabled: true, Schedule: &Schedule{Items: []PolicyItem{{FrequencyDaily, 1, RetentionDays, 7}}}, Snapshots: []Snapshot{
				snap(KindDaily, StatusFailed, "2026-03-02T00:00:00Z", 0),
				snap(KindDaily, StatusFailed, "2026-03-01T00:00:00Z", 0),
				snap(KindDaily, StatusCompleted, "2026-03-02T00:20:00Z", 1),
				snap(KindOnDemand, StatusFailed, "2026-03-01T12:00:00Z", 0),
			}},
			now:      "2026-03-02T07:00:00Z",
			promises: []promise{{FrequencyDaily, "2026-03-03T02:00:00Z", false}},
			problems: []string{"2 failed daily snapshot(s), the newest at 2026-03-02T00:00:00Z", "1 failed onDemand snapshot(s)"},
		},
		{
			name: "flex: fresh within 36 h",
			r: Reading{Flex: true, Snapshots: []Snapshot{
				snap(KindFlex, StatusCompleted, "2026-03-01T00:00:00Z", 1),
			}},
			now: "2026-03-02T11:59:59Z",
		},
		{
			name: "flex: none for 36 h",
			r: Reading{Flex: true, Snapshots: []Snapshot{
				snap(KindFlex, StatusCompleted, "2026-03-01T00:00:00Z", 1),
				snap(KindFlex, StatusFailed, "2026-03-02T00:00:00Z", 0),
			}},
			now:      "2026-03-02T12:00:00Z",
			problems: []string{"flex cluster: no completed snapshot in 36h0m0s", "1 failed flex snapshot(s)"},
		},
		{
			name:     "flex: none at all and no Since",
			r:        Reading{Flex: true},
			now:      "2026-03-02T12:00:00Z",
			problems: []string{"flex cluster: no completed snapshot"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Target = tgt
			now := utc(tc.now)
			a := Assess(tc.r, now, 0)
			var got []promise
			for _, p := range a.Promises {
				due := ""
				if !p.Due.IsZero() {
					due = p.Due.UTC().Format(time.RFC3339)
				}
				got = append(got, promise{p.Frequency, due, p.Overdue(now)})
			}
			if !slices.Equal(got, tc.promises) {
				t.Errorf("promises\n got %v\nwant %v", got, tc.promises)
			}
			if len(a.Problems) != len(tc.problems) {
				t.Fatalf("problems %q, want %d matching %q", a.Problems, len(tc.problems), tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.Contains(a.Problems[i], p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, a.Problems[i], p)
				}
			}
		})
	}
}

func TestAssessCounts(t *testing.T) {
	r := Reading{Target: tgt, BackupEnabled: true, Schedule: hourlyDaily(), Snapshots: []Snapshot{
		snap(KindHourly, StatusCompleted, "2026-03-02T06:00:00Z", 300),
		snap(KindHourly, StatusCompleted, "2026-03-02T12:00:00Z", 0), // size unknown
		snap(KindDaily, StatusCompleted, "2026-03-02T00:00:00Z", 200),
		snap(KindDaily, StatusQueued, "2026-03-03T00:00:00Z", 0),
		snap(KindOnDemand, StatusCompleted, "2026-03-02T09:00:00Z", 250),
		snap(KindFallback, StatusFailed, "2026-03-02T13:00:00Z", 0),
		snap("6650c0f9a2b3c4d5e6f7081a", StatusCompleted, "2026-03-02T12:30:00Z", 999), // not a kind: ignored
	}}
	a := Assess(r, utc("2026-03-02T13:00:00Z"), time.Hour)
	if !a.Newest.Equal(utc("2026-03-02T12:00:00Z")) || a.NewestSize != 0 {
		t.Errorf("newest %s size %d, want 12:00 size 0 (the newest's own size, not an older one's)", a.Newest, a.NewestSize)
	}
	want := map[string]KindState{
		KindHourly:   {Newest: utc("2026-03-02T12:00:00Z"), Retained: 2},
		KindDaily:    {Newest: utc("2026-03-02T00:00:00Z"), Retained: 1},
		KindOnDemand: {Newest: utc("2026-03-02T09:00:00Z"), Retained: 1},
		KindFallback: {NewestFailed: utc("2026-03-02T13:00:00Z"), Failed: 1},
	}
	if len(a.Kinds) != len(want) {
		t.Errorf("kinds %v, want %v", a.Kinds, want)
	}
	for k, w := range want {
		if a.Kinds[k] != w {
			t.Errorf("kind %s = %+v, want %+v", k, a.Kinds[k], w)
		}
	}
	if a.Failed != 1 || !a.NextSnapshot.Equal(utc("2026-03-02T12:00:00Z")) {
		t.Errorf("failed %d next %s", a.Failed, a.NextSnapshot)
	}
	if p := a.Promises[0]; p.Frequency != FrequencyHourly || !p.Due.Equal(utc("2026-03-02T19:00:00Z")) {
		t.Errorf("hourly promise %+v, want due 18:00 + the 1h margin given", p)
	}
}

func TestCompliance(t *testing.T) {
	item := func(f string, n int, unit string, v int) PolicyItem { return PolicyItem{f, n, unit, v} }
	tests := []struct {
		name     string
		schedule []PolicyItem
		required []PolicyItem
		want     []string // frequency/aspect
	}{
		{"equal", []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7)}, []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7)}, nil},
		{"stronger", []PolicyItem{item(FrequencyHourly, 1, RetentionDays, 3)}, []PolicyItem{item(FrequencyHourly, 6, RetentionDays, 2)}, nil},
		{"hourly less often", []PolicyItem{item(FrequencyHourly, 12, RetentionDays, 3)}, []PolicyItem{item(FrequencyHourly, 6, RetentionDays, 2)}, []string{"hourly/frequency"}},
		{"missing frequency", []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7)}, []PolicyItem{item(FrequencyWeekly, 1, RetentionWeeks, 4)}, []string{"weekly/frequency"}},
		{"shorter retention", []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 5)}, []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7)}, []string{"daily/retention"}},
		{"weeks against days, equal", []PolicyItem{item(FrequencyDaily, 1, RetentionWeeks, 1)}, []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7)}, nil},
		{"12 months is a year", []PolicyItem{item(FrequencyMonthly, 40, RetentionMonths, 12)}, []PolicyItem{item(FrequencyMonthly, 40, RetentionYears, 1)}, nil},
		{"4 weeks is not a month", []PolicyItem{item(FrequencyWeekly, 7, RetentionWeeks, 4)}, []PolicyItem{item(FrequencyWeekly, 7, RetentionMonths, 1)}, []string{"weekly/retention"}},
		{"30 days is not a month (February aside, months are longer)", []PolicyItem{item(FrequencyWeekly, 7, RetentionDays, 30)}, []PolicyItem{item(FrequencyWeekly, 7, RetentionMonths, 1)}, []string{"weekly/retention"}},
		{"31 days is a month", []PolicyItem{item(FrequencyWeekly, 7, RetentionDays, 31)}, []PolicyItem{item(FrequencyWeekly, 7, RetentionMonths, 1)}, nil},
		{"another weekday is still weekly", []PolicyItem{item(FrequencyWeekly, 3, RetentionWeeks, 4)}, []PolicyItem{item(FrequencyWeekly, 7, RetentionWeeks, 4)}, nil},
		{"two items: the best of each aspect", []PolicyItem{item(FrequencyHourly, 1, RetentionDays, 1), item(FrequencyHourly, 12, RetentionDays, 7)},
			[]PolicyItem{item(FrequencyHourly, 4, RetentionDays, 7)}, nil},
		{"no schedule at all", nil, []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7), item(FrequencyOnDemand, 0, RetentionDays, 7)}, []string{"daily/frequency"}},
		{"two required items of one frequency: the strictest of each aspect", []PolicyItem{item(FrequencyHourly, 4, RetentionDays, 3)},
			[]PolicyItem{item(FrequencyHourly, 6, RetentionDays, 7), item(FrequencyHourly, 2, RetentionDays, 1)}, []string{"hourly/frequency", "hourly/retention"}},
		{"frequency and retention", []PolicyItem{item(FrequencyHourly, 12, RetentionDays, 1)}, []PolicyItem{item(FrequencyHourly, 6, RetentionDays, 2)}, []string{"hourly/frequency", "hourly/retention"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s *Schedule
			if tc.schedule != nil {
				s = &Schedule{Items: tc.schedule}
			}
			r := Reading{Target: tgt, BackupEnabled: true, Schedule: s, Compliance: &Compliance{ScheduledItems: tc.required}}
			a := Assess(r, utc("2026-03-02T00:00:00Z"), 0)
			var got []string
			for _, sf := range a.Compliance.Shortfalls {
				got = append(got, sf.Frequency+"/"+sf.Aspect)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("shortfalls %v (%+v), want %v", got, a.Compliance.Shortfalls, tc.want)
			}
		})
	}
	a := Assess(Reading{Target: tgt, Schedule: hourlyDaily(), BackupEnabled: true}, utc("2026-03-02T00:00:00Z"), 0)
	if a.Compliance != nil {
		t.Errorf("no policy: compliance %+v, want nil", a.Compliance)
	}
	flex := Assess(Reading{Target: tgt, Flex: true, Compliance: &Compliance{ScheduledItems: []PolicyItem{item(FrequencyDaily, 1, RetentionDays, 7)}}}, utc("2026-03-02T00:00:00Z"), 0)
	if len(flex.Compliance.Shortfalls) != 0 || len(flex.Compliance.Required) != 1 {
		t.Errorf("flex compliance %+v: want the requirement listed and no shortfall (no schedule to compare)", flex.Compliance)
	}
}

// The summary keeps numbers, not words: what it renders for status and
// walks for the metrics is what the Assessment it summarizes says, for
// every kind of problem (flex stale, backup disabled, overdue since ever
// and since a slot, failed snapshots of several kinds, shortfalls in
// frequency and retention) and for none.
func TestSummaryMatchesAssessment(t *testing.T) {
	now := utc("2026-03-02T12:00:00Z")
	strict := &Compliance{ScheduledItems: []PolicyItem{{FrequencyHourly, 4, RetentionDays, 7}, {FrequencyDaily, 1, RetentionDays, 14}, {FrequencyWeekly, 1, RetentionWeeks, 4}}}
	readings := map[string]Reading{
		"healthy": {BackupEnabled: true, Schedule: hourlyDaily(), Since: now.Add(-time.Hour),
			Snapshots: []Snapshot{snap(KindHourly, StatusCompleted, "2026-03-02T06:00:00Z", 1), snap(KindDaily, StatusCompleted, "2026-03-02T00:00:00Z", 2)}},
		"everything wrong": {Schedule: hourlyDaily(), Compliance: strict,
			Snapshots: []Snapshot{snap(KindHourly, StatusFailed, "2026-03-02T06:00:00Z", 0), snap(KindOnDemand, StatusFailed, "2026-03-01T06:00:00Z", 0),
				snap(KindDaily, StatusCompleted, "2026-02-20T00:00:00Z", 5), snap(KindFallback, StatusInProgress, "2026-03-02T11:00:00Z", 0)}},
		"disabled, no schedule": {Compliance: strict},
		"flex stale":            {Flex: true, Compliance: strict, Snapshots: []Snapshot{snap(KindFlex, StatusCompleted, "2026-02-27T00:00:00Z", 0)}},
		"flex fresh":            {Flex: true, Snapshots: []Snapshot{snap(KindFlex, StatusCompleted, "2026-03-02T00:00:00Z", 0)}},
		"policy without items":  {BackupEnabled: true, Schedule: defaultSchedule(), Since: now, Compliance: &Compliance{}},
	}
	for name, r := range readings {
		t.Run(name, func(t *testing.T) {
			r.Target = tgt
			a := Assess(r, now, 0)
			s := summarize(a)
			if got := s.problems(); !slices.Equal(got, a.Problems) {
				t.Errorf("problems\n got %q\nwant %q", got, a.Problems)
			}
			var promises []Promise
			s.eachPromise(func(p promiseSummary) {
				promises = append(promises, Promise{Frequency: p.frequency, Due: stamp(p.due), MaxGap: time.Duration(p.maxGap), Retention: time.Duration(p.retention)})
			})
			if len(promises) != len(a.Promises) {
				t.Fatalf("promises %+v, want %+v", promises, a.Promises)
			}
			for i, p := range a.Promises {
				if q := promises[i]; q.Frequency != p.Frequency || !q.Due.Equal(p.Due) || q.MaxGap != p.MaxGap || q.Retention != p.Retention {
					t.Errorf("promise %d: %+v, want %+v", i, q, p)
				}
			}
			kinds := map[string]KindState{}
			s.eachKind(func(kind string, k kindSummary) {
				kinds[kind] = KindState{Newest: stamp(k.newest), NewestFailed: stamp(k.failedAt), Retained: int(k.retained), Failed: int(k.failed)}
			})
			if len(kinds) != len(a.Kinds) {
				t.Errorf("kinds %v, want %v", kinds, a.Kinds)
			}
			for kind, k := range a.Kinds {
				if g := kinds[kind]; !g.Newest.Equal(k.Newest) || !g.NewestFailed.Equal(k.NewestFailed) || g.Retained != k.Retained || g.Failed != k.Failed {
					t.Errorf("kind %s: %+v, want %+v", kind, g, k)
				}
			}
			if (a.Compliance != nil) != s.hasCompliance() {
				t.Fatalf("compliance %v, summary says %v", a.Compliance, s.hasCompliance())
			}
			if a.Compliance == nil {
				return
			}
			var req []Requirement
			var short []Shortfall
			s.eachRequired(func(r Requirement, f, ret bool) {
				req = append(req, r)
				if f {
					short = append(short, Shortfall{Frequency: r.Frequency, Aspect: AspectFrequency})
				}
				if ret {
					short = append(short, Shortfall{Frequency: r.Frequency, Aspect: AspectRetention})
				}
			})
			if !slices.Equal(req, a.Compliance.Required) {
				t.Errorf("required %+v, want %+v", req, a.Compliance.Required)
			}
			var want []Shortfall
			for _, sf := range a.Compliance.Shortfalls {
				want = append(want, Shortfall{Frequency: sf.Frequency, Aspect: sf.Aspect})
			}
			if !slices.Equal(short, want) {
				t.Errorf("shortfalls %+v, want %+v", short, want)
			}
		})
	}
}
