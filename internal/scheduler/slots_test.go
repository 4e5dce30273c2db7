package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/backupd/backupd/internal/run"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading zone %s: %v", name, err)
	}
	return loc
}

func mustParse(t testing.TB, spec string) cron.Schedule {
	t.Helper()
	s, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatalf("parsing %q: %v", spec, err)
	}
	return s
}

func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parsing time %q: %v", s, err)
	}
	return v
}

func mkEntry(t testing.TB, spec string, loc *time.Location, off time.Duration, missed string) Entry {
	t.Helper()
	return Entry{
		Key:      "p|32b6e34b3d91647abb20e7b8|c",
		Policy:   "p",
		Target:   run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "c"},
		Spec:     spec,
		Schedule: mustParse(t, spec),
		Location: loc,
		Offset:   off,
		Missed:   missed,
	}
}

func TestNextSlot(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	every6h := mkEntry(t, "@every 6h", nil, 0, "")
	ptrEvery := every6h
	ptrEvery.Schedule = &cron.ConstantDelaySchedule{Delay: 6 * time.Hour}
	zeroDelay := every6h
	zeroDelay.Schedule = cron.ConstantDelaySchedule{}
	tests := []struct {
		name  string
		e     Entry
		after string
		want  []string // successive slots
	}{
		{"nil location is UTC", mkEntry(t, "0 2 * * *", nil, 0, ""), "2026-05-31T23:00:00Z",
			[]string{"2026-06-01T02:00:00Z", "2026-06-02T02:00:00Z"}},
		{"fields are matched in the zone", mkEntry(t, "0 2 * * *", berlin, 0, ""), "2026-05-31T23:00:00Z",
			[]string{"2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"}},
		{"strictly after a slot", mkEntry(t, "0 * * * *", nil, 0, ""), "2026-01-01T10:00:00Z",
			[]string{"2026-01-01T11:00:00Z"}},
		{"sub-second after a slot", mkEntry(t, "0 * * * *", nil, 0, ""), "2026-01-01T09:59:59.999Z",
			[]string{"2026-01-01T10:00:00Z"}},
		// 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist, no slot that day.
		{"spring forward skips the missing wall time", mkEntry(t, "30 2 * * *", berlin, 0, ""), "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}},
		// 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 exists twice, both fire.
		{"fall back fires the repeated wall time twice", mkEntry(t, "30 2 * * *", berlin, 0, ""), "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"}},
		{"hourly keeps real hours across spring forward", mkEntry(t, "0 * * * *", berlin, 0, ""), "2026-03-28T23:30:00Z",
			[]string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		{"@every is epoch anchored", every6h, "2026-01-01T13:07:00Z",
			[]string{"2026-01-01T18:00:00Z", "2026-01-02T00:00:00Z"}},
		{"@every pointer schedule", ptrEvery, "2026-01-01T12:00:00Z",
			[]string{"2026-01-01T18:00:00Z"}},
		{"@every with a zero delay ticks every second", zeroDelay, "2026-01-01T12:00:00.5Z",
			[]string{"2026-01-01T12:00:01Z", "2026-01-01T12:00:02Z"}},
		{"@every before 1970", every6h, "1969-12-31T23:00:00Z",
			[]string{"1970-01-01T00:00:00Z"}},
		{"impossible date never fires", mkEntry(t, "0 0 30 2 *", nil, 0, ""), "2026-01-01T00:00:00Z",
			[]string{"0001-01-01T00:00:00Z"}},
		{"nil schedule never fires", Entry{Key: "k"}, "2026-01-01T00:00:00Z",
			[]string{"0001-01-01T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := ts(t, tt.after)
			for i, w := range tt.want {
				got := NextSlot(tt.e, cur)
				if !got.Equal(ts(t, w)) {
					t.Fatalf("slot %d after %s = %s, want %s", i, cur.UTC(), got.UTC(), w)
				}
				cur = got
			}
		})
	}
}

func TestNextSlotEveryNotDividingADay(t *testing.T) {
	e := mkEntry(t, "@every 7h", nil, 0, "")
	after := ts(t, "2026-01-01T13:07:00Z")
	got := NextSlot(e, after)
	if got.Unix()%(7*3600) != 0 || !got.After(after) || got.Sub(after) > 7*time.Hour {
		t.Fatalf("NextSlot(@every 7h, %s) = %s: want the first multiple of 7h since the epoch after it", after, got)
	}
	// The same slot whichever time inside the period asks: stable across restarts.
	for _, probe := range []time.Duration{time.Minute, time.Hour, 3 * time.Hour} {
		if p := after.Add(probe); p.Before(got) {
			if again := NextSlot(e, p); !again.Equal(got) {
				t.Fatalf("NextSlot(%s) = %s, want %s", p, again, got)
			}
		}
	}
	// Unlike robfig's ConstantDelaySchedule, which is relative to its input.
	if raw := e.Schedule.Next(after); raw.Equal(got) {
		t.Fatalf("robfig's raw @every result %s unexpectedly matches the anchored slot", raw)
	}
}

type dueCase struct {
	name    string
	e       Entry
	m       Mark
	hasMark bool
	now     string
	want    []Firing // only Slot, At, CatchUp, Skip are compared
	next    string   // "" means zero
}

func runDue(t *testing.T, tests []dueCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := Due(tt.e, tt.m, tt.hasMark, ts(t, tt.now))
			if len(got) != len(tt.want) {
				t.Fatalf("Due returned %d firings %s, want %d %s", len(got), fmtFirings(got), len(tt.want), fmtFirings(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if !g.Slot.Equal(w.Slot) || !g.At.Equal(w.At) || g.CatchUp != w.CatchUp || g.Skip != w.Skip {
					t.Fatalf("firing %d = %s, want %s", i, fmtFirings(got[i:i+1]), fmtFirings(tt.want[i:i+1]))
				}
				if g.Entry.Key != tt.e.Key {
					t.Fatalf("firing %d carries entry %q, want %q", i, g.Entry.Key, tt.e.Key)
				}
			}
			var wantNext time.Time
			if tt.next != "" {
				wantNext = ts(t, tt.next)
			}
			if !next.Equal(wantNext) {
				t.Fatalf("next = %s, want %s", next.UTC(), wantNext.UTC())
			}
		})
	}
}

func fmtFirings(fs []Firing) string {
	var b strings.Builder
	b.WriteString("[")
	for _, f := range fs {
		b.WriteString("{slot " + f.Slot.UTC().Format(time.RFC3339) + " at " + f.At.UTC().Format(time.RFC3339))
		if f.CatchUp {
			b.WriteString(" catchUp")
		}
		if f.Skip != "" {
			b.WriteString(" skip=" + f.Skip)
		}
		b.WriteString("}")
	}
	return b.String() + "]"
}

func fire(t testing.TB, slot string, off time.Duration) Firing {
	s := ts(t, slot)
	return Firing{Slot: s, At: s.Add(off)}
}

func catchUp(f Firing) Firing { f.CatchUp = true; return f }
func skipped(f Firing) Firing { f.Skip = run.ReasonMissed; return f }

func TestDue(t *testing.T) {
	const hourly = "0 * * * *"
	once := mkEntry(t, hourly, nil, 0, MissedOnce)
	dflt := mkEntry(t, hourly, nil, 0, "")
	skip := mkEntry(t, hourly, nil, 0, MissedSkip)
	jit := mkEntry(t, hourly, nil, 15*time.Minute, MissedOnce)
	negJit := mkEntry(t, hourly, nil, -15*time.Minute, MissedOnce)
	since := ts(t, "2026-01-01T00:00:00Z")
	mark := func(last string) Mark { return Mark{LastSlot: ts(t, last), Since: since, Spec: hourly} }
	m10 := mark("2026-01-10T10:00:00Z")

	runDue(t, []dueCase{
		{name: "first start fires nothing", e: once, now: "2026-01-10T10:30:00Z",
			next: "2026-01-10T11:00:00Z"},
		{name: "first start on a slot fires nothing", e: once, now: "2026-01-10T11:00:00Z",
			next: "2026-01-10T12:00:00Z"},
		{name: "first start with jitter", e: jit, now: "2026-01-10T11:05:00Z",
			next: "2026-01-10T12:15:00Z"},
		{name: "spec changed is a new schedule", e: once, hasMark: true,
			m: Mark{LastSlot: ts(t, "2026-01-10T02:00:00Z"), Since: since, Spec: "0 2 * * *"}, now: "2026-01-10T10:30:00Z",
			next: "2026-01-10T11:00:00Z"},
		{name: "not yet due", e: once, m: m10, hasMark: true, now: "2026-01-10T10:59:59Z",
			next: "2026-01-10T11:00:00Z"},
		{name: "normal slot on time", e: once, m: m10, hasMark: true, now: "2026-01-10T11:00:00Z",
			want: []Firing{fire(t, "2026-01-10T11:00:00Z", 0)}, next: "2026-01-10T12:00:00Z"},
		{name: "normal slot at the edge of grace", e: once, m: m10, hasMark: true, now: "2026-01-10T11:01:00Z",
			want: []Firing{fire(t, "2026-01-10T11:00:00Z", 0)}, next: "2026-01-10T12:00:00Z"},
		{name: "single slot past grace, once", e: once, m: m10, hasMark: true, now: "2026-01-10T11:01:01Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T11:00:00Z", 0))}, next: "2026-01-10T12:00:00Z"},
		{name: "single slot past grace, default is once", e: dflt, m: m10, hasMark: true, now: "2026-01-10T11:30:00Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T11:00:00Z", 0))}, next: "2026-01-10T12:00:00Z"},
		{name: "single slot past grace, skip", e: skip, m: m10, hasMark: true, now: "2026-01-10T11:30:00Z",
			want: []Firing{skipped(fire(t, "2026-01-10T11:00:00Z", 0))}, next: "2026-01-10T12:00:00Z"},
		{name: "jitter: slot passed but not its offset", e: jit, m: m10, hasMark: true, now: "2026-01-10T11:14:59Z",
			next: "2026-01-10T11:15:00Z"},
		{name: "jitter: due at slot+offset", e: jit, m: m10, hasMark: true, now: "2026-01-10T11:15:10Z",
			want: []Firing{fire(t, "2026-01-10T11:00:00Z", 15*time.Minute)}, next: "2026-01-10T12:15:00Z"},
		{name: "negative offset counts as zero", e: negJit, m: m10, hasMark: true, now: "2026-01-10T11:00:10Z",
			want: []Firing{fire(t, "2026-01-10T11:00:00Z", 0)}, next: "2026-01-10T12:00:00Z"},
		{name: "down for 3 slots, once: one catch-up for the newest", e: once, m: m10, hasMark: true, now: "2026-01-10T13:20:00Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T13:00:00Z", 0))}, next: "2026-01-10T14:00:00Z"},
		{name: "down for 3 slots, skip: newest recorded as skipped", e: skip, m: m10, hasMark: true, now: "2026-01-10T13:20:00Z",
			want: []Firing{skipped(fire(t, "2026-01-10T13:00:00Z", 0))}, next: "2026-01-10T14:00:00Z"},
		{name: "down for 3 slots, back on time for the newest, once", e: once, m: m10, hasMark: true, now: "2026-01-10T13:00:20Z",
			want: []Firing{fire(t, "2026-01-10T13:00:00Z", 0)}, next: "2026-01-10T14:00:00Z"},
		{name: "down for 3 slots, back on time for the newest, skip", e: skip, m: m10, hasMark: true, now: "2026-01-10T13:00:20Z",
			want: []Firing{skipped(fire(t, "2026-01-10T12:00:00Z", 0)), fire(t, "2026-01-10T13:00:00Z", 0)}, next: "2026-01-10T14:00:00Z"},
		{name: "down for 3 slots with jitter", e: jit, m: m10, hasMark: true, now: "2026-01-10T13:20:00Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T13:00:00Z", 15*time.Minute))}, next: "2026-01-10T14:15:00Z"},
		{name: "clock moved back: nothing again", e: once, m: m10, hasMark: true, now: "2026-01-10T08:30:00Z",
			next: "2026-01-10T11:00:00Z"},
		{name: "clock moved back onto the last slot", e: once, m: m10, hasMark: true, now: "2026-01-10T10:00:00Z",
			next: "2026-01-10T11:00:00Z"},
		{name: "slots before Since never fire", e: once, hasMark: true,
			m: Mark{Since: ts(t, "2026-01-10T10:30:00Z"), Spec: hourly}, now: "2026-01-10T11:30:00Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T11:00:00Z", 0))}, next: "2026-01-10T12:00:00Z"},
		{name: "a slot equal to Since fires", e: once, hasMark: true,
			m: Mark{Since: ts(t, "2026-01-10T11:00:00Z"), Spec: hourly}, now: "2026-01-10T11:00:10Z",
			want: []Firing{fire(t, "2026-01-10T11:00:00Z", 0)}, next: "2026-01-10T12:00:00Z"},
		{name: "nothing due before Since", e: once, hasMark: true,
			m: Mark{Since: ts(t, "2026-01-10T11:30:00Z"), Spec: hourly}, now: "2026-01-10T11:45:00Z",
			next: "2026-01-10T12:00:00Z"},
		{name: "schedule that never fires", e: mkEntry(t, "0 0 30 2 *", nil, 0, ""), hasMark: true,
			m: Mark{LastSlot: since, Since: since, Spec: "0 0 30 2 *"}, now: "2026-01-10T11:45:00Z"},
		{name: "a year down on a per-minute schedule", e: mkEntry(t, "* * * * *", nil, 0, MissedOnce), hasMark: true,
			m: Mark{LastSlot: ts(t, "2025-01-01T00:00:00Z"), Since: ts(t, "2025-01-01T00:00:00Z"), Spec: "* * * * *"}, now: "2026-01-10T11:45:30Z",
			want: []Firing{fire(t, "2026-01-10T11:45:00Z", 0)}, next: "2026-01-10T11:46:00Z"},
		{name: "a year down on a per-minute schedule, skip", e: mkEntry(t, "* * * * *", nil, 0, MissedSkip), hasMark: true,
			m: Mark{LastSlot: ts(t, "2025-01-01T00:00:00Z"), Since: ts(t, "2025-01-01T00:00:00Z"), Spec: "* * * * *"}, now: "2026-01-10T11:45:30Z",
			want: []Firing{skipped(fire(t, "2026-01-10T11:44:00Z", 0)), fire(t, "2026-01-10T11:45:00Z", 0)}, next: "2026-01-10T11:46:00Z"},
		{name: "a year down on a 2-minute schedule, newest late", e: mkEntry(t, "*/2 * * * *", nil, 0, MissedOnce), hasMark: true,
			m: Mark{LastSlot: ts(t, "2025-01-01T00:00:00Z"), Since: ts(t, "2025-01-01T00:00:00Z"), Spec: "*/2 * * * *"}, now: "2026-01-10T11:47:30Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T11:46:00Z", 0))}, next: "2026-01-10T11:48:00Z"},
		{name: "zero mark (no history) catches up once", e: once, hasMark: true,
			m: Mark{Spec: hourly}, now: "2026-01-10T11:45:00Z",
			want: []Firing{catchUp(fire(t, "2026-01-10T11:00:00Z", 0))}, next: "2026-01-10T12:00:00Z"},
	})
}

func TestDueDST(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	at230 := mkEntry(t, "30 2 * * *", berlin, 0, MissedOnce)
	at1j := mkEntry(t, "0 1 * * *", berlin, 90*time.Minute, MissedOnce)
	at2j := mkEntry(t, "0 2 * * *", berlin, 45*time.Minute, MissedOnce)
	since := ts(t, "2026-01-01T00:00:00Z")
	mk := func(e Entry, last string) Mark { return Mark{LastSlot: ts(t, last), Since: since, Spec: e.Spec} }

	runDue(t, []dueCase{
		// Spring forward, 2026-03-29 in Europe/Berlin: 02:30 does not exist.
		{name: "spring forward: no 02:30 slot, nothing missed", e: at230, m: mk(at230, "2026-03-28T01:30:00Z"), hasMark: true,
			now: "2026-03-29T01:00:00Z", next: "2026-03-30T00:30:00Z"},
		{name: "spring forward: next day's slot runs on time, not as a catch-up", e: at230, m: mk(at230, "2026-03-28T01:30:00Z"), hasMark: true,
			now: "2026-03-30T00:30:05Z", want: []Firing{fire(t, "2026-03-30T00:30:00Z", 0)}, next: "2026-03-31T00:30:00Z"},
		// Fall back, 2026-10-25: 02:30 CEST (00:30Z) and 02:30 CET (01:30Z).
		{name: "fall back: first 02:30 (CEST)", e: at230, m: mk(at230, "2026-10-24T00:30:00Z"), hasMark: true,
			now: "2026-10-25T00:30:05Z", want: []Firing{fire(t, "2026-10-25T00:30:00Z", 0)}, next: "2026-10-25T01:30:00Z"},
		{name: "fall back: second 02:30 (CET)", e: at230, m: mk(at230, "2026-10-25T00:30:00Z"), hasMark: true,
			now: "2026-10-25T01:30:05Z", want: []Firing{fire(t, "2026-10-25T01:30:00Z", 0)}, next: "2026-10-26T01:30:00Z"},
		// Jitter is absolute time: 01:00 CET + 90m lands at 03:30 CEST.
		{name: "jitter across spring forward: not yet", e: at1j, m: mk(at1j, "2026-03-28T00:00:00Z"), hasMark: true,
			now: "2026-03-29T01:29:59Z", next: "2026-03-29T01:30:00Z"},
		{name: "jitter across spring forward: due at 03:30 CEST", e: at1j, m: mk(at1j, "2026-03-28T00:00:00Z"), hasMark: true,
			now: "2026-03-29T01:30:00Z", want: []Firing{fire(t, "2026-03-29T00:00:00Z", 90*time.Minute)}, next: "2026-03-30T00:30:00Z"},
		{name: "jitter across fall back: first 02:00 + 45m", e: at2j, m: mk(at2j, "2026-10-24T00:00:00Z"), hasMark: true,
			now: "2026-10-25T00:45:00Z", want: []Firing{fire(t, "2026-10-25T00:00:00Z", 45*time.Minute)}, next: "2026-10-25T01:45:00Z"},
		{name: "jitter across fall back: second 02:00 + 45m", e: at2j, m: mk(at2j, "2026-10-25T00:00:00Z"), hasMark: true,
			now: "2026-10-25T01:45:00Z", want: []Firing{fire(t, "2026-10-25T01:00:00Z", 45*time.Minute)}, next: "2026-10-26T01:45:00Z"},
	})

	// The At of the spring-forward firing reads 03:30 on Berlin wall clocks.
	if got := ts(t, "2026-03-29T01:30:00Z").In(berlin).Format("15:04 MST"); got != "03:30 CEST" {
		t.Fatalf("01:00 CET + 90m on 2026-03-29 reads %s in Berlin, want 03:30 CEST", got)
	}
}

// TestDueEveryStableAcrossRestart: an @every schedule's next fire time does
// not depend on when the daemon (re)started.
func TestDueEveryStableAcrossRestart(t *testing.T) {
	e := mkEntry(t, "@every 6h", nil, 10*time.Minute, MissedOnce)
	firstStart := ts(t, "2026-01-01T13:07:00Z")
	_, next1 := Due(e, Mark{}, false, firstStart)
	m := NewMark(e, firstStart)
	restart := ts(t, "2026-01-01T14:00:00Z")
	got, next2 := Due(e, m, true, restart)
	if len(got) != 0 {
		t.Fatalf("restart fired %s, want nothing", fmtFirings(got))
	}
	want := ts(t, "2026-01-01T18:10:00Z")
	if !next1.Equal(want) || !next2.Equal(want) {
		t.Fatalf("next before restart %s, after restart %s, want both %s", next1, next2, want)
	}
	fs, _ := Due(e, m, true, ts(t, "2026-01-01T18:10:30Z"))
	if len(fs) != 1 || !fs[0].Slot.Equal(ts(t, "2026-01-01T18:00:00Z")) || fs[0].CatchUp {
		t.Fatalf("at 18:10:30 Due = %s, want the 18:00 slot on time", fmtFirings(fs))
	}
}

func TestDueWithGrace(t *testing.T) {
	e := mkEntry(t, "0 * * * *", nil, 0, MissedOnce)
	m := Mark{LastSlot: ts(t, "2026-01-10T10:00:00Z"), Since: ts(t, "2026-01-01T00:00:00Z"), Spec: e.Spec}
	now := ts(t, "2026-01-10T11:04:00Z")
	if fs, _ := DueWithGrace(e, m, true, now, 5*time.Minute); len(fs) != 1 || fs[0].CatchUp {
		t.Fatalf("4m late with 5m grace = %s, want one on-time firing", fmtFirings(fs))
	}
	if fs, _ := DueWithGrace(e, m, true, now, 3*time.Minute); len(fs) != 1 || !fs[0].CatchUp {
		t.Fatalf("4m late with 3m grace = %s, want one catch-up", fmtFirings(fs))
	}
	if fs, _ := DueWithGrace(e, m, true, ts(t, "2026-01-10T11:00:00Z"), -time.Minute); len(fs) != 1 || fs[0].CatchUp {
		t.Fatalf("exactly on time with negative grace = %s, want one on-time firing", fmtFirings(fs))
	}
}

func TestNewMark(t *testing.T) {
	e := mkEntry(t, "0 * * * *", nil, 0, "")
	now := ts(t, "2026-01-10T11:00:00Z")
	m := NewMark(e, now)
	if !m.LastSlot.Equal(now) || !m.Since.Equal(now) || m.Spec != e.Spec {
		t.Fatalf("NewMark = %+v", m)
	}
	// The slot at exactly now is not fired by a schedule added at now.
	if fs, _ := Due(e, m, true, now.Add(30*time.Second)); len(fs) != 0 {
		t.Fatalf("slot at creation time fired: %s", fmtFirings(fs))
	}
}

func TestEntryValidate(t *testing.T) {
	good := mkEntry(t, "0 * * * *", nil, time.Minute, MissedSkip)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid entry: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Entry)
		want string
	}{
		{"empty key", func(e *Entry) { e.Key = "" }, "empty key"},
		{"unparsed", func(e *Entry) { e.Schedule = nil }, `schedule "0 * * * *" is not parsed`},
		{"negative offset", func(e *Entry) { e.Offset = -time.Second }, "negative jitter offset -1s"},
		{"bad missed", func(e *Entry) { e.Missed = "always" }, `missed "always" is neither`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := good
			tt.mod(&e)
			err := e.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `policy "p"`) {
				t.Fatalf("Validate() = %v, want an error naming the policy and containing %q", err, tt.want)
			}
		})
	}
}

func TestUpcoming(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	e := mkEntry(t, "30 2 * * *", berlin, 10*time.Minute, "")
	got := Upcoming(e, ts(t, "2026-03-28T00:00:00Z"), 3)
	want := []string{"2026-03-28T02:40:00+01:00", "2026-03-30T02:40:00+02:00", "2026-03-31T02:40:00+02:00"}
	if len(got) != len(want) {
		t.Fatalf("Upcoming = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Format(time.RFC3339) != want[i] {
			t.Fatalf("Upcoming[%d] = %s, want %s (in Berlin)", i, got[i].Format(time.RFC3339), want[i])
		}
	}
	// A slot whose fire time is still ahead is included even if the slot itself passed.
	if got := Upcoming(e, ts(t, "2026-03-28T01:35:00Z"), 1); len(got) != 1 || !got[0].Equal(ts(t, "2026-03-28T01:40:00Z")) {
		t.Fatalf("Upcoming just after the slot = %v, want the 02:40 CET fire time", got)
	}
	if got := Upcoming(mkEntry(t, "0 0 30 2 *", nil, 0, ""), ts(t, "2026-01-01T00:00:00Z"), 5); len(got) != 0 {
		t.Fatalf("Upcoming of an impossible date = %v, want none", got)
	}
}
