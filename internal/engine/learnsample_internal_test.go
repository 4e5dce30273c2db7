package engine

import (
	"math"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/pollplan"
)

// A cached sample keeps a job's bounds to the millisecond and clamps what
// does not fit (negative, past 49 days).
func TestSampleKeepsBoundsToTheMillisecond(t *testing.T) {
	js := pollplan.Sample{Ran: 2*time.Minute + 1500*time.Microsecond, Done: 2*time.Minute + 40*time.Second + 999*time.Millisecond}
	s := newSample(js)
	if got := s.bounds(); got.Ran != 2*time.Minute+time.Millisecond || got.Done != js.Done {
		t.Errorf("bounds %+v, want %+v to the millisecond", got, js)
	}
	if got := newSample(pollplan.Sample{Ran: -time.Second, Done: 60 * 24 * time.Hour}).bounds(); got.Ran != 0 || got.Done != math.MaxUint32*time.Millisecond {
		t.Errorf("out-of-range bounds became %+v, want 0 and the 49-day cap", got)
	}
}

// pushNewest keeps the newest keep samples, newest first.
func TestPushNewestKeepsTheNewest(t *testing.T) {
	const keep = 3
	var ss []sample
	for i := range 5 {
		ss = pushNewest(ss, newSample(pollplan.Sample{Done: time.Duration(i+1) * time.Second}), keep)
	}
	if len(ss) != keep {
		t.Fatalf("%d samples kept, want %d", len(ss), keep)
	}
	for i, want := range []time.Duration{5 * time.Second, 4 * time.Second, 3 * time.Second} {
		if got := ss[i].bounds().Done; got != want {
			t.Errorf("sample %d done %s, want %s (newest first)", i, got, want)
		}
	}
}
