package clock

import (
	"sync"
	"time"
)

// Scaled returns a clock that starts at the real current time and runs
// factor times faster than the wall clock. `backupd demo` uses it so that
// a day of schedules and Atlas lifecycles plays out in minutes, with every
// component (scheduler, engine, simulator) agreeing on the time.
func Scaled(factor float64) Clock { return ScaledFrom(time.Now(), factor) }

// ScaledFrom returns a clock that read anchor at the real instant anchor and
// runs factor times faster than the wall clock. Two processes given the same
// anchor and factor agree on the time, which is how a dry run of `backupd
// run` against `backupd atlas-sim` (and the end-to-end tests) share fast time.
func ScaledFrom(anchor time.Time, factor float64) Clock {
	if factor <= 0 {
		factor = 1
	}
	return &scaled{realStart: anchor, origin: anchor, factor: factor}
}

type scaled struct {
	realStart time.Time
	origin    time.Time
	factor    float64
}

func (s *scaled) Now() time.Time {
	return s.origin.Add(time.Duration(float64(time.Since(s.realStart)) * s.factor))
}

func (s *scaled) NewTimer(d time.Duration) Timer {
	t := &scaledTimer{c: make(chan time.Time, 1)}
	t.t = time.AfterFunc(time.Duration(float64(d)/s.factor), func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.c <- s.Now()
		}
	})
	return t
}

type scaledTimer struct {
	mu      sync.Mutex
	t       *time.Timer
	c       chan time.Time
	stopped bool
}

func (t *scaledTimer) C() <-chan time.Time { return t.c }

func (t *scaledTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	return t.t.Stop()
}
