package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

func BenchmarkNextSlot(b *testing.B) {
	berlin := mustLoc(b, "Europe/Berlin")
	for _, spec := range []string{"0 2 * * *", "30 5 * * 1-5", "*/5 * * * *", "@every 6h"} {
		e := mkEntry(b, spec, berlin, 0, "")
		b.Run(spec, func(b *testing.B) {
			t := ts(b, "2026-01-10T10:30:00Z")
			for b.Loop() {
				t = NextSlot(e, t)
			}
		})
	}
}

func BenchmarkDue(b *testing.B) {
	since := ts(b, "2025-01-01T00:00:00Z")
	cases := []struct {
		name, spec, last, now string
	}{
		{"nothing due", "0 2 * * *", "2026-01-10T02:00:00Z", "2026-01-10T10:30:00Z"},
		{"one slot on time", "0 2 * * *", "2026-01-09T02:00:00Z", "2026-01-10T02:00:10Z"},
		{"3 days down", "0 2 * * *", "2026-01-07T02:00:00Z", "2026-01-10T10:30:00Z"},
		{"a year down, every minute", "* * * * *", "2025-01-01T00:00:00Z", "2026-01-10T10:30:30Z"},
	}
	for _, c := range cases {
		e := mkEntry(b, c.spec, nil, 7*time.Minute, MissedSkip)
		m := Mark{LastSlot: ts(b, c.last), Since: since, Spec: c.spec}
		now := ts(b, c.now)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				Due(e, m, true, now)
			}
		})
	}
}

type nopStore struct{}

func (nopStore) Mark(string) (Mark, bool, error) { return Mark{}, false, nil }
func (nopStore) SetMark(string, Mark) error      { return nil }
func (nopStore) DeleteMark(string) error         { return nil }

// BenchmarkIteration10k measures one loop iteration over 10,000 entries:
// "all due" fires every entry's slot; "idle" is a wake-up where the entries
// are spread over the hour by jitter and only a few are due.
func BenchmarkIteration10k(b *testing.B) {
	const n = 10000
	berlin := mustLoc(b, "Europe/Berlin")
	setup := func(b *testing.B, spread bool, loc *time.Location) (*Scheduler, *clock.Fake, *int) {
		fake := clock.NewFake(ts(b, "2026-01-10T10:00:30Z"))
		fired := 0
		s := New(fake, nopStore{}, func(context.Context, Firing) error { fired++; return nil }, Options{})
		entries := make([]Entry, n)
		for i := range entries {
			var off time.Duration
			if spread {
				off = time.Duration(i) * time.Hour / n
			}
			entries[i] = keyed(b, fmt.Sprintf("policy|32b6e34b3d91647abb20e7b8|cluster-%05d", i), "0 * * * *", off, MissedOnce)
			entries[i].Location = loc
		}
		s.Set(entries)
		s.iterate(context.Background()) // first evaluation: marks created
		return s, fake, &fired
	}
	for _, loc := range []*time.Location{time.UTC, berlin} {
		b.Run("all due/"+loc.String(), func(b *testing.B) {
			s, fake, fired := setup(b, false, loc)
			ctx := context.Background()
			for b.Loop() {
				fake.Advance(time.Hour)
				s.iterate(ctx)
			}
			if *fired != n*b.N {
				b.Fatalf("fired %d, want %d", *fired, n*b.N)
			}
		})
		b.Run("idle/"+loc.String(), func(b *testing.B) {
			s, fake, fired := setup(b, true, loc)
			ctx := context.Background()
			for b.Loop() {
				fake.Advance(time.Second)
				s.iterate(ctx)
			}
			if *fired == 0 || *fired > 4*b.N+4 {
				b.Fatalf("fired %d in %d one-second steps, want about %d", *fired, b.N, 3*b.N)
			}
		})
	}
}
