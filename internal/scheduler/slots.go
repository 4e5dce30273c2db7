// Package scheduler decides which cron slots of which (policy, target) fire
// when: time zones, deterministic jitter offsets, slots missed while the
// daemon was down or while the wall clock jumped, and slots that must never
// fire twice.
//
// The maths (NextSlot, Due) is pure and tested on fixed times; the Scheduler
// loop only acts on it: it asks Due what is due, hands each Firing to the
// engine and persists a Mark once the engine has made the firing durable.
// Overlap and per-cluster locking are the engine's job, not this package's.
package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/backupd/backupd/internal/run"
)

// Missed-slot policies (the policy's `missed:` key).
const (
	// MissedOnce collapses every slot missed while down into one catch-up run
	// for the newest of them. It is the default.
	MissedOnce = "once"
	// MissedSkip runs none of the missed slots; the newest is recorded as
	// skipped{missed} so the gap is visible in history and metrics.
	MissedSkip = "skip"
)

// DefaultGrace is how late a single slot may be evaluated and still count as
// on time. It absorbs GC pauses, slow iterations and scheduler wake-up
// latency so that they never turn a normal run into a "missed" one.
const DefaultGrace = time.Minute

// Entry is one schedule for one (policy, target). The engine builds entries
// from the loaded policies; the scheduler only reads them.
type Entry struct {
	// Key is the stable identity of (policy, target), e.g.
	// "nightly-prod|32b6e34b3d91647abb20e7b8|prod-1". Marks are stored under it.
	Key    string
	Policy string
	Target run.Target
	// Spec is the schedule string as written. A change of Spec for the same
	// Key counts as a new schedule: no catch-up for the old one.
	Spec string
	// Schedule is Spec parsed by robfig/cron/v3.
	Schedule cron.Schedule
	// Location is the zone cron fields are interpreted in (nil means UTC).
	// A CRON_TZ=/TZ= prefix inside Spec, if the parser accepted one, wins.
	Location *time.Location
	// Offset is the deterministic jitter of this target: a slot S is due at
	// S+Offset (absolute time, not wall-clock time). Negative values count as 0.
	Offset time.Duration
	// Missed is MissedOnce or MissedSkip; "" means MissedOnce.
	Missed string
}

// Validate reports what makes e unusable, so bad input from a caller is a
// located error instead of a silent no-op.
func (e Entry) Validate() error {
	var errs []error
	if e.Key == "" {
		errs = append(errs, errors.New("empty key"))
	}
	if e.Schedule == nil {
		errs = append(errs, fmt.Errorf("schedule %q is not parsed", e.Spec))
	}
	if e.Offset < 0 {
		errs = append(errs, fmt.Errorf("negative jitter offset %s", e.Offset))
	}
	switch e.Missed {
	case "", MissedOnce, MissedSkip:
	default:
		errs = append(errs, fmt.Errorf("missed %q is neither %q nor %q", e.Missed, MissedOnce, MissedSkip))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scheduler entry %q (policy %q, target %s): %w", e.Key, e.Policy, e.Target, err)
	}
	return nil
}

// Firing is one decision of Due: run (or record as skipped) slot Slot.
type Firing struct {
	Entry Entry
	// Slot is the cron slot; the run id is derived from it.
	Slot time.Time
	// At is Slot+Offset: when the slot was due to start.
	At time.Time
	// CatchUp is set when the slot is fired late because it was missed
	// (daemon down, clock jumped) and the policy says missed: once.
	CatchUp bool
	// Skip is "" to run the slot, or run.ReasonMissed to record it as
	// skipped{missed} without running it (missed: skip).
	Skip string
}

// Mark is what the scheduler remembers per Key across restarts.
type Mark struct {
	// LastSlot is the newest slot handled (fired, skipped or deliberately
	// passed over). No slot at or before it fires again.
	LastSlot time.Time
	// Since is when this (Key, Spec) was first scheduled; earlier slots never fire.
	Since time.Time
	// Spec is the schedule string the mark belongs to.
	Spec string
}

// NewMark is the mark of a schedule first seen at now: nothing at or before
// now will fire, so adding a policy never causes a surprise catch-up.
func NewMark(e Entry, now time.Time) Mark {
	return Mark{LastSlot: now, Since: now, Spec: e.Spec}
}

// NextSlot returns the first slot of e strictly after `after`, or the zero
// time if the schedule has none (robfig gives up after five years).
//
// Cron fields are matched in e.Location, exactly as robfig/cron/v3 does it:
// on a spring-forward day a wall time that does not exist (02:30 in
// Europe/Berlin on 2026-03-29) has no slot that day; on a fall-back day a
// wall time that exists twice (02:30 on 2026-10-25) has two slots, an hour
// apart. `@every d` schedules are anchored to the Unix epoch: their slots are
// the multiples of d since 1970-01-01T00:00:00Z, independent of the zone and
// of when the daemon started, so they are stable across restarts.
func NextSlot(e Entry, after time.Time) time.Time {
	switch s := e.Schedule.(type) {
	case nil:
		return time.Time{}
	case cron.ConstantDelaySchedule:
		return nextEvery(s.Delay, after)
	case *cron.ConstantDelaySchedule:
		if s == nil {
			return time.Time{}
		}
		return nextEvery(s.Delay, after)
	}
	loc := e.Location
	if loc == nil {
		loc = time.UTC
	}
	return e.Schedule.Next(after.In(loc))
}

// Upcoming returns the next n fire times (slot plus offset) of e strictly
// after `after`, in e.Location, for `backupd validate` and status pages.
// It ignores marks: for a schedule added right now, a slot that has passed
// but whose jittered time has not is listed, yet Due will not fire it.
func Upcoming(e Entry, after time.Time, n int) []time.Time {
	loc := e.Location
	if loc == nil {
		loc = time.UTC
	}
	off := max(e.Offset, 0)
	var out []time.Time
	for slot := NextSlot(e, after.Add(-off)); len(out) < n && !slot.IsZero(); slot = NextSlot(e, slot) {
		out = append(out, slot.Add(off).In(loc))
	}
	return out
}

// nextEvery returns the first multiple of d (whole seconds, at least one)
// since the Unix epoch that is strictly after t.
func nextEvery(d time.Duration, t time.Time) time.Time {
	secs := int64(d / time.Second)
	if secs < 1 {
		secs = 1
	}
	k := t.Unix() / secs
	if t.Unix()%secs < 0 { // floor division for times before 1970
		k--
	}
	return time.Unix((k+1)*secs, 0).In(t.Location())
}

// Due decides what fires for e at now given its mark, with DefaultGrace. See
// DueWithGrace.
func Due(e Entry, m Mark, hasMark bool, now time.Time) (firings []Firing, next time.Time) {
	return DueWithGrace(e, m, hasMark, now, DefaultGrace)
}

// DueWithGrace decides which slots of e fire at now and when the next one is
// due (zero if never). Rules:
//
//   - No mark, or a mark for another Spec: the schedule is new; nothing fires
//     for slots at or before now. The caller stores NewMark(e, now).
//   - A slot S is due when S > m.LastSlot, S >= m.Since and S+Offset <= now.
//     Let N be the newest due slot.
//   - N at most grace late (now-(N+Offset) <= grace) fires normally. Older
//     due slots were missed: with missed: once they collapse into N's run;
//     with missed: skip the newest of them is also returned, first, as
//     skipped{missed}.
//   - N more than grace late was itself missed (daemon down, clock jumped
//     forward): missed: once fires N alone with CatchUp; missed: skip
//     returns N alone with Skip=run.ReasonMissed. Older slots are collapsed.
//   - Clock moved back (now < m.LastSlot): nothing is due until a slot after
//     m.LastSlot is, so a slot fires once, ever.
//
// Firings are in order of At; the caller advances m.LastSlot to each Slot
// once that firing is durable.
func DueWithGrace(e Entry, m Mark, hasMark bool, now time.Time, grace time.Duration) (firings []Firing, next time.Time) {
	off := max(e.Offset, 0)
	grace = max(grace, 0)
	at := func(slot time.Time) time.Time {
		if slot.IsZero() {
			return slot
		}
		return slot.Add(off)
	}
	if !hasMark || m.Spec != e.Spec {
		return nil, at(NextSlot(e, now))
	}
	lo := m.LastSlot // exclusive lower bound for due slots
	if s := m.Since.Add(-time.Nanosecond); s.After(lo) {
		lo = s // slots are whole seconds, so this admits a slot equal to Since
	}
	hi := now.Add(-off) // inclusive upper bound: S+Offset <= now
	newest, after, ok := latestSlot(e, lo, hi)
	next = at(after)
	if !ok {
		return nil, next
	}
	fire := Firing{Entry: e, Slot: newest, At: newest.Add(off)}
	late := now.Sub(fire.At) > grace
	skip := e.Missed == MissedSkip
	switch {
	case late && skip:
		fire.Skip = run.ReasonMissed
	case late:
		fire.CatchUp = true
	case skip:
		if older, _, ok := latestSlot(e, lo, newest.Add(-time.Nanosecond)); ok {
			firings = append(firings, Firing{Entry: e, Slot: older, At: older.Add(off), Skip: run.ReasonMissed})
		}
	}
	return append(firings, fire), next
}

// latestSlot returns the newest slot S of e with lo < S <= hi (ok false if
// there is none) and, as after, the first slot strictly after both lo and hi
// (zero if none). The common cases cost one NextSlot call (nothing due) or
// two (one slot due); after a long outage it gallops backwards from hi
// instead of walking every missed slot, so a year of a per-minute schedule
// costs a few dozen calls, not 500,000.
func latestSlot(e Entry, lo, hi time.Time) (newest, after time.Time, ok bool) {
	first := NextSlot(e, lo)
	if first.IsZero() || first.After(hi) {
		return time.Time{}, first, false
	}
	second := NextSlot(e, first)
	if second.IsZero() || second.After(hi) {
		return first, second, true
	}
	// At least two due slots. Find a probe p in [second, hi] with a slot in
	// (p, hi], doubling the distance from hi; at worst p = second.
	from := second
	for w := time.Second; ; w *= 2 {
		p := hi.Add(-w)
		if !p.After(second) || w > maxLookback {
			break
		}
		if s := NextSlot(e, p); !s.IsZero() && !s.After(hi) {
			from = s
			break
		}
	}
	for {
		n := NextSlot(e, from)
		if n.IsZero() || n.After(hi) {
			return from, n, true
		}
		from = n
	}
}

// maxLookback bounds the backwards gallop below robfig's five-year search
// horizon, beyond which a zero from Next no longer proves "no slot".
const maxLookback = 4 * 365 * 24 * time.Hour
