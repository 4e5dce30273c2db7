package policy

import (
	"testing"
	"time"
)

func mustSchedule(t *testing.T, spec string, loc *time.Location) Policy {
	t.Helper()
	c, err := parseSchedule(spec, loc)
	if err != nil {
		t.Fatalf("parseSchedule(%q): %v", spec, err)
	}
	return Policy{Name: "p", Schedule: spec, Cron: c, Location: loc}
}

// slots returns the slots of p in (from, to].
func slots(p Policy, from, to time.Time) []time.Time {
	var out []time.Time
	for s := p.Cron.Next(from); !s.IsZero() && !s.After(to); s = p.Cron.Next(s) {
		out = append(out, s)
	}
	return out
}

func fmtTimes(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format("2006-01-02 15:04 MST")
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDSTDaily pins backupd's promise for a fixed-time daily schedule in a
// zone with DST (robfig/cron alone skips the spring day and fires the
// autumn day twice).
func TestDSTDaily(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	p := mustSchedule(t, "30 2 * * *", berlin)
	cases := []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{
			name: "spring forward: 02:30 does not exist, fires once when the clocks jump",
			from: time.Date(2026, 3, 28, 0, 0, 0, 0, berlin), to: time.Date(2026, 3, 30, 23, 0, 0, 0, berlin),
			want: []string{"2026-03-28 02:30 CET", "2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"},
		},
		{
			name: "fall back: 02:30 happens twice, fires once at the first",
			from: time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), to: time.Date(2026, 10, 26, 23, 0, 0, 0, berlin),
			want: []string{"2026-10-24 02:30 CEST", "2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"},
		},
		{
			name: "fall back: asked during the repeated hour, the slot has already fired",
			from: time.Date(2026, 10, 25, 1, 10, 0, 0, time.UTC), // 02:10 CET, after 02:30 CEST
			to:   time.Date(2026, 10, 26, 23, 0, 0, 0, berlin),
			want: []string{"2026-10-26 02:30 CET"},
		},
		{
			name: "spring forward: asked inside the jump's hour after it, nothing is made up twice",
			from: time.Date(2026, 3, 29, 3, 0, 0, 0, berlin), // exactly the 03:00 CEST slot
			to:   time.Date(2026, 3, 30, 23, 0, 0, 0, berlin),
			want: []string{"2026-03-30 02:30 CEST"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fmtTimes(slots(p, tc.from, tc.to))
			if !equalStrings(got, tc.want) {
				t.Fatalf("slots\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// The 2026-10-25 slot is the first 02:30 (00:30 UTC), not the second (01:30 UTC).
	s := p.Cron.Next(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC); !s.Equal(want) {
		t.Fatalf("fall-back slot %v, want %v", s.UTC(), want)
	}
}

// TestDSTEveryHourFollowsElapsedTime: schedules that run every hour keep
// a one-hour rhythm in real time through both changes.
func TestDSTEveryHourFollowsElapsedTime(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	p := mustSchedule(t, "0 * * * *", berlin)
	got := fmtTimes(slots(p, time.Date(2026, 3, 29, 0, 30, 0, 0, berlin), time.Date(2026, 3, 29, 4, 0, 0, 0, berlin)))
	want := []string{"2026-03-29 01:00 CET", "2026-03-29 03:00 CEST", "2026-03-29 04:00 CEST"}
	if !equalStrings(got, want) {
		t.Fatalf("spring: got %q want %q", got, want)
	}
	got = fmtTimes(slots(p, time.Date(2026, 10, 25, 1, 30, 0, 0, berlin), time.Date(2026, 10, 25, 3, 0, 0, 0, berlin)))
	want = []string{"2026-10-25 02:00 CEST", "2026-10-25 02:00 CET", "2026-10-25 03:00 CET"}
	if !equalStrings(got, want) {
		t.Fatalf("autumn: got %q want %q", got, want)
	}
}

// TestDSTSlotsInGapCollapse: several slots inside the skipped hour fire
// once, at the jump.
func TestDSTSlotsInGapCollapse(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	p := mustSchedule(t, "*/20 2 * * *", berlin)
	got := fmtTimes(slots(p, time.Date(2026, 3, 28, 23, 0, 0, 0, berlin), time.Date(2026, 3, 30, 2, 0, 0, 0, berlin)))
	want := []string{"2026-03-29 03:00 CEST", "2026-03-30 02:00 CEST"}
	if !equalStrings(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

// TestDSTHalfHourShift covers a zone whose clocks move by 30 minutes.
func TestDSTHalfHourShift(t *testing.T) {
	lh := mustLoc(t, "Australia/Lord_Howe") // 2026-10-04 02:00 → 02:30
	p := mustSchedule(t, "15 2 * * *", lh)
	got := fmtTimes(slots(p, time.Date(2026, 10, 3, 12, 0, 0, 0, lh), time.Date(2026, 10, 5, 12, 0, 0, 0, lh)))
	want := []string{"2026-10-04 02:30 +11", "2026-10-05 02:15 +11"}
	if !equalStrings(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

// TestDailyFiresOncePerLocalDay checks the promise over whole years in
// zones from both hemispheres: one slot per local date, strictly increasing.
func TestDailyFiresOncePerLocalDay(t *testing.T) {
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago", "UTC"} {
		for _, spec := range []string{"30 2 * * *", "0 0 * * *", "59 1 * * *"} {
			loc := mustLoc(t, zone)
			p := mustSchedule(t, spec, loc)
			from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
			got := slots(p, from, time.Date(2026, 12, 31, 23, 59, 0, 0, loc))
			days := map[string]bool{}
			for i, s := range got {
				day := s.In(loc).Format("2006-01-02")
				if days[day] {
					t.Fatalf("%s %q: two slots on %s", zone, spec, day)
				}
				days[day] = true
				if i > 0 && !s.After(got[i-1]) {
					t.Fatalf("%s %q: slots not increasing at %v", zone, spec, s)
				}
			}
			if len(days) != 365 {
				t.Fatalf("%s %q: %d days with a slot, want 365", zone, spec, len(days))
			}
		}
	}
}

func TestEveryIsEpochAligned(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	p := mustSchedule(t, "@every 6h", berlin)
	for _, from := range []time.Time{
		time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 5, 1, 0, 0, 1, 0, time.UTC),
		time.Date(2026, 5, 1, 5, 59, 59, 999, time.UTC),
	} {
		got := p.Cron.Next(from)
		if want := time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC); !got.Equal(want) {
			t.Fatalf("Next(%v) = %v, want %v", from, got, want)
		}
		if got.Location() != berlin {
			t.Fatalf("slot location %v, want Europe/Berlin", got.Location())
		}
	}
	d := mustSchedule(t, "@every 1d", time.UTC)
	if got, want := d.Cron.Next(time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC)), time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("@every 1d: got %v want %v", got, want)
	}
}

func TestInterval(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	cases := map[string]time.Duration{
		"* * * * *":    time.Minute,
		"*/15 * * * *": 15 * time.Minute,
		"@hourly":      time.Hour,
		"0 2 * * *":    24 * time.Hour,
		"30 5 * * 1-5": 24 * time.Hour,
		"0 4 * * 0":    7 * 24 * time.Hour,
		"0 0 1 * *":    28 * 24 * time.Hour,
		"0 6,18 * * *": 12 * time.Hour,
		"@every 6h":    6 * time.Hour,
		"@every 90m":   90 * time.Minute,
	}
	for spec, want := range cases {
		if got := mustSchedule(t, spec, berlin).Interval(); got != want {
			t.Errorf("Interval(%q) = %v, want %v", spec, got, want)
		}
	}
	if got := (Policy{}).Interval(); got != 0 {
		t.Errorf("Interval of a policy without schedule = %v, want 0", got)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"0": 0, "0s": 0, "90s": 90 * time.Second, "2h30m": 150 * time.Minute, "90d": 90 * day,
		"1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "-1d": -day, "+2h": 2 * time.Hour,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1dd", "1e3d", "Infd", "NaNd", "0x10d", "1d-1h", "30", "h", "200000d", "1d+1h"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
	for d, want := range map[time.Duration]string{90 * day: "90d", 15 * time.Minute: "15m", 150 * time.Minute: "2h30m", 90 * time.Second: "1m30s", 0: "0s", 6 * time.Hour: "6h"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
