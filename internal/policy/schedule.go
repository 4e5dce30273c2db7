package policy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser is the standard 5-field parser with @descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Bounds of @every: cron's own granularity, and a year (robfig gives up
// looking for a slot after five years; a longer interval is a typo).
const (
	minEvery = time.Minute
	maxEvery = 366 * day
)

// parseSchedule parses a policy schedule for the given zone. It returns a
// cron.Schedule with backupd's DST behaviour (see zonedSchedule) and
// epoch-aligned @every slots (see everySchedule).
func parseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	if strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=") {
		return nil, errors.New("must not contain CRON_TZ= or TZ=: set the policy's timezone key instead")
	}
	if rest, ok := strings.CutPrefix(s, "@every"); ok {
		d, err := ParseDuration(strings.TrimSpace(rest))
		if err != nil || strings.TrimSpace(rest) == "" {
			return nil, fmt.Errorf("invalid @every interval %q: use a duration such as @every 6h or @every 1d", strings.TrimSpace(rest))
		}
		if d < minEvery || d > maxEvery || d%time.Second != 0 {
			return nil, fmt.Errorf("@every interval must be whole seconds from %s to %s", minEvery, FormatDuration(maxEvery))
		}
		return everySchedule{every: d, loc: loc}, nil
	}
	parsed, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid cron schedule: %w (use 5 fields \"minute hour day-of-month month day-of-week\" or @hourly, @daily, @weekly, @monthly, @yearly, @every 6h)", err)
	}
	spec5, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("unsupported schedule %q", s)
	}
	wall := *spec5
	wall.Location = time.UTC
	if probe := wall.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)); probe.IsZero() {
		return nil, errors.New("never fires (no matching date, e.g. 30 February)")
	}
	return zonedSchedule{wall: &wall, loc: loc, everyHour: wall.Hour&allHours == allHours}, nil
}

const allHours = 1<<24 - 1

// zonedSchedule evaluates a cron spec in a time zone with explicit DST rules.
//
// robfig/cron evaluates in absolute time, which skips a daily "30 2 * * *"
// entirely on spring-forward days and fires it twice on fall-back days.
// backupd promises instead, for schedules with a fixed hour set:
//   - a slot whose wall-clock time does not exist (spring forward) fires
//     once, at the instant the clocks jump (02:30 → 03:00 local);
//   - a slot whose wall-clock time happens twice (fall back) fires once, at
//     its first occurrence.
//
// Schedules that run every hour ("0 * * * *", "*/15 * * * *", @hourly)
// follow elapsed time instead, so they keep their rhythm through both
// changes: the repeated hour fires twice and the skipped hour is not made up.
type zonedSchedule struct {
	wall      *cron.SpecSchedule // the spec evaluated on wall-clock time (as UTC)
	loc       *time.Location
	everyHour bool
}

// Next returns the first slot strictly after t, in the schedule's zone, or
// the zero time if there is none within five years.
func (z zonedSchedule) Next(t time.Time) time.Time {
	if z.everyHour {
		native := *z.wall
		native.Location = z.loc
		return native.Next(t).In(z.loc)
	}
	w := wallClock(t.In(z.loc))
	// Only fall-back repeats of walls already passed can need more than one
	// step; the bound only guards against a zone database gone wrong.
	for range 10000 {
		w = z.wall.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		if at := fromWallClock(w, z.loc); at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// wallClock re-labels a local time as UTC, giving a time line without DST.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// fromWallClock maps a wall-clock time (labelled UTC) to an instant in loc:
// the earliest instant showing that wall time, or, if none does (a
// spring-forward gap), the instant the gap ends.
func fromWallClock(w time.Time, loc *time.Location) time.Time {
	// UTC offsets lie within ±15h, so the instant is in [w-16h, w+16h]:
	// walk the zone periods of that window in order.
	hi := w.Add(16 * time.Hour)
	for p := w.Add(-16 * time.Hour); p.Before(hi); {
		lp := p.In(loc)
		_, off := lp.Zone()
		offset := time.Duration(off) * time.Second
		if at := w.Add(-offset); wallClock(at.In(loc)).Equal(w) {
			return at.In(loc)
		}
		_, end := lp.ZoneBounds()
		if end.IsZero() || !end.After(p) {
			break
		}
		_, offAfter := end.In(loc).Zone()
		gapStart := end.UTC().Add(offset)
		gapEnd := end.UTC().Add(time.Duration(offAfter) * time.Second)
		if !w.Before(gapStart) && w.Before(gapEnd) {
			return end.In(loc)
		}
		p = end
	}
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
}

// everySchedule is "@every D": slots at whole multiples of D since the Unix
// epoch, so they are the same across restarts and reloads (robfig's
// ConstantDelaySchedule counts from whenever it is asked).
type everySchedule struct {
	every time.Duration
	loc   *time.Location
}

// Next returns the first multiple of the interval strictly after t.
func (e everySchedule) Next(t time.Time) time.Time {
	n := t.UnixNano()
	d := int64(e.every)
	k := n / d
	if n < 0 && n%d != 0 {
		k--
	}
	if k+1 > math.MaxInt64/d {
		return time.Time{} // beyond what time.Unix(0, ns) can represent
	}
	return time.Unix(0, (k+1)*d).In(e.loc)
}

// intervalReference is a fixed instant from which Interval samples slots,
// so the value (a metric) does not change between loads.
var intervalReference = time.Date(2001, time.January, 1, 0, 0, 0, 0, time.UTC)

// Interval is the nominal time between two consecutive slots: the interval
// of @every, or the smallest gap among the first slots after a fixed
// reference date, measured on wall-clock time so daylight-saving changes do
// not distort it ("30 5 * * 1-5" is 24h, "0 4 * * 0" is 168h). It feeds
// backupd_schedule_interval_seconds and the overlap warning.
func (p Policy) Interval() time.Duration {
	var sched cron.Schedule
	switch s := p.Cron.(type) {
	case nil:
		return 0
	case everySchedule:
		return s.every
	case zonedSchedule:
		sched = s.wall
	default:
		sched = s
	}
	var gap time.Duration
	prev := sched.Next(intervalReference)
	for range 24 {
		if prev.IsZero() {
			break
		}
		next := sched.Next(prev)
		if next.IsZero() {
			break
		}
		if g := next.Sub(prev); gap == 0 || g < gap {
			gap = g
		}
		prev = next
	}
	return gap
}

func locOrUTC(l *time.Location) *time.Location {
	if l == nil {
		return time.UTC
	}
	return l
}
