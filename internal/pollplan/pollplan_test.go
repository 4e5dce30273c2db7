package pollplan

import (
	"testing"
	"time"
)

const s = time.Second

// win is a sample from seconds: last seen running at ran, first seen done at done.
func win(ran, done int) Sample {
	return Sample{Ran: time.Duration(ran) * s, Done: time.Duration(done) * s}
}

func secs(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * s
	}
	return out
}

var engineDefaults = Plan{Min: 10 * s, Max: time.Minute}

func est(low, high, n int) Estimate {
	return Estimate{Low: time.Duration(low) * s, High: time.Duration(high) * s, Samples: n}
}

func TestEstimate(t *testing.T) {
	tenStable := []Sample{}
	for range 10 {
		tenStable = append(tenStable, win(140, 150))
	}
	cases := []struct {
		name    string
		samples []Sample
		want    Estimate
	}{
		{"no history", nil, Estimate{}},
		{"one run is not enough", []Sample{win(130, 190)}, Estimate{}},
		{"runs never seen done (older journals) are left out", []Sample{win(130, 0), win(130, 190), win(140, 0)}, Estimate{}},
		{"two runs polled with the backoff: their common window", []Sample{win(130, 190), win(130, 190)}, est(130, 190, 2)},
		{"a job read once narrows the window from above", []Sample{win(0, 160), win(130, 190), win(130, 190)}, est(130, 160, 3)},
		{"a probe seen running narrows it from below", []Sample{win(145, 150), win(0, 155), win(130, 160)}, est(145, 150, 3)},
		{"no read saw a job running: no lower bound", []Sample{win(0, 150), win(0, 155)}, est(0, 150, 2)},
		{"durations that vary: the 20th percentile of the lower bounds to the 80th of the upper",
			[]Sample{win(100, 110), win(200, 210), win(150, 160), win(120, 130), win(170, 180)}, est(100, 180, 5)},
		{"a one-off slow job does not widen the window", append([]Sample{win(890, 900)}, tenStable[:7]...), est(140, 150, 8)},
		{"only the newest Samples count", append(append([]Sample{}, tenStable...), win(290, 300), win(290, 300)), est(140, 150, 10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := engineDefaults.Estimate(tc.samples); got != tc.want {
				t.Fatalf("Estimate(%v) = %+v, want %+v", tc.samples, got, tc.want)
			}
		})
	}
}

// reads simulates polling a job that ends at done: the read times (as
// elapsed times), the backoff taking over where the plan says so.
func reads(p Plan, e Estimate, done, deadline time.Duration) []time.Duration {
	var out []time.Duration
	var elapsed, cur time.Duration
	for len(out) < 1000 {
		w, planned := p.Next(e, elapsed, deadline-elapsed)
		if !planned {
			if cur == 0 {
				cur = p.Min
			} else {
				cur = min(2*cur, p.Max)
			}
			w = min(cur, deadline-elapsed)
		}
		elapsed += w
		out = append(out, elapsed)
		if elapsed >= done || elapsed >= deadline {
			return out
		}
	}
	return out
}

func TestNext(t *testing.T) {
	cases := []struct {
		name     string
		est      Estimate
		done     time.Duration // when the job ends
		deadline time.Duration
		want     []time.Duration // read times
	}{
		{"no history: today's backoff exactly", Estimate{}, 150 * s, 4 * time.Hour,
			secs(10, 30, 70, 130, 190)},
		{"a window two reads wide: its middle, then its end", est(130, 190, 2), 150 * s, 4 * time.Hour,
			secs(160)},
		{"a window two reads wide, a job ending late in it", est(130, 190, 2), 185 * s, 4 * time.Hour,
			secs(160, 190)},
		{"a window one read wide is probed Lead before its end", est(130, 150, 3), 140 * s, 4 * time.Hour,
			secs(145)},
		{"the probe saw it running: the end of the window", est(130, 150, 3), 148 * s, 4 * time.Hour,
			secs(145, 150)},
		{"a window within Lead: one read at its end", est(145, 150, 4), 150 * s, 4 * time.Hour,
			secs(150)},
		{"no lower bound: probe, then the end", est(0, 150, 2), 150 * s, 4 * time.Hour,
			secs(145, 150)},
		{"a job a little slower than its history is seen within Lead", est(145, 150, 4), 152 * s, 4 * time.Hour,
			secs(150, 155)},
		{"past the window, reads every Tight through the grace", est(145, 150, 4), 200 * s, 4 * time.Hour,
			secs(150, 155, 185, 215)},
		{"a job far past its estimate falls back to the backoff", est(145, 150, 4), 400 * s, 4 * time.Hour,
			// end of the grace: 150 + 60 s
			secs(150, 155, 185, 215, 225, 245, 285, 345, 405)},
		{"very short jobs keep the backoff", est(4, 5, 3), 5 * s, 4 * time.Hour,
			secs(10)},
		{"the deadline clamps the planned sleep", est(145, 150, 4), time.Hour, 100 * s,
			secs(100)},
		{"a wide window spaces its reads evenly, never more than Max apart", est(600, 2400, 4), 2450 * s, 4 * time.Hour,
			// 1800 s wide: 30 reads 60 s apart, then Lead past its end and every Tight.
			concat(stepSecs(660, 60, 2400), secs(2405, 2435, 2465))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := reads(engineDefaults, tc.est, tc.done, tc.deadline)
			if !equal(got, tc.want) {
				t.Fatalf("reads = %v, want %v", got, tc.want)
			}
		})
	}
}

func stepSecs(from, step, through int) []time.Duration {
	var out []time.Duration
	for v := from; v <= through; v += step {
		out = append(out, time.Duration(v)*s)
	}
	return out
}

func concat(parts ...[]time.Duration) []time.Duration {
	var out []time.Duration
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func equal(a, b []time.Duration) bool {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// For any window and any end inside it or within twice Tight after it, the
// detection delay (read time minus the job's end) is at most Tight (Max in
// a window too wide for maxTightReads reads every Tight), and a
// job ending inside the window is read at most ⌈width/Tight⌉ times, plus
// the probe of a window one read wide.
func TestNextCapsDetectionDelayAndReads(t *testing.T) {
	for _, e := range []Estimate{est(130, 190, 2), est(130, 160, 3), est(130, 150, 3), est(145, 150, 4), est(0, 150, 2), est(100, 180, 5), est(600, 2400, 4)} {
		width := e.High - e.Low
		if e.Low == 0 {
			width = DefaultTight
		}
		n := int((width + DefaultTight - 1) / DefaultTight)
		if n == 1 && width > DefaultLead {
			n = 2
		}
		// A window wider than maxTightReads reads every Tight is read
		// at most every Max instead, in it.
		capped := DefaultTight
		if n > maxTightReads {
			n = max(maxTightReads, int((width+engineDefaults.Max-1)/engineDefaults.Max))
			capped = engineDefaults.Max
		}
		from := e.Low
		if e.Low == 0 {
			// Without a lower bound the promise holds for a job no
			// faster than Tight under the upper one.
			from = e.High - DefaultTight
		}
		for done := from + 1; done <= e.High+2*DefaultTight; done += s / 2 {
			rs := reads(engineDefaults, e, done, 4*time.Hour)
			if delay := rs[len(rs)-1] - done; delay > capped {
				t.Fatalf("%+v: job ending at %v seen at %v: delay %v > %v", e, done, rs[len(rs)-1], delay, capped)
			}
			if done <= e.High && len(rs) > n {
				t.Fatalf("%+v: job ending at %v read %d times (%v), want at most %d", e, done, len(rs), rs, n)
			}
		}
	}
}
