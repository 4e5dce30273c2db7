package pollplan

import (
	"testing"
	"time"
)

const s = time.Second

func secs(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * s
	}
	return out
}

var engineDefaults = Plan{Min: 10 * s, Max: time.Minute}

func TestEstimate(t *testing.T) {
	cases := []struct {
		name      string
		durations []time.Duration
		want      Estimate
	}{
		{"no history", nil, Estimate{}},
		{"one run is not enough", secs(150), Estimate{}},
		{"failed or unknown runs (zero) are ignored", secs(0, 150, 0), Estimate{}},
		{"stable", secs(150, 148, 152, 150), Estimate{Low: 148 * s, High: 150 * s, Samples: 4}},
		{"a long outlier is not the upper quartile", secs(150, 150, 900, 150, 151, 149, 150, 150), Estimate{Low: 149 * s, High: 150 * s, Samples: 8}},
		{"a short outlier is not the low end", secs(150, 20, 150, 152, 150), Estimate{Low: 150 * s, High: 150 * s, Samples: 5}},
		{"only the newest Samples count", append(secs(300, 300, 300, 300, 300, 300, 300, 300, 300, 300), secs(60, 60, 60)...),
			Estimate{Low: 300 * s, High: 300 * s, Samples: 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := engineDefaults.Estimate(tc.durations); got != tc.want {
				t.Fatalf("Estimate(%v) = %+v, want %+v", tc.durations, got, tc.want)
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
	stable := engineDefaults.Estimate(secs(150, 148, 152, 150))
	cases := []struct {
		name     string
		est      Estimate
		done     time.Duration // when the job ends
		deadline time.Duration
		want     []time.Duration // read times
	}{
		{"no history: today's backoff exactly", Estimate{}, 150 * s, 4 * time.Hour,
			secs(10, 30, 70, 130, 190)},
		{"stable history: sleep, then read tightly", stable, 151 * s, 4 * time.Hour,
			secs(143, 158)},
		{"a job a little faster than its history", stable, 140 * s, 4 * time.Hour,
			secs(143)},
		{"a job past its estimate reads tightly through the grace", stable, 175 * s, 4 * time.Hour,
			secs(143, 158, 173, 188)},
		{"a job far past its estimate falls back to the backoff", stable, 400 * s, 4 * time.Hour,
			secs(143, 158, 173, 188, 198, 218, 258, 318, 378, 438)},
		{"very short jobs keep the backoff", engineDefaults.Estimate(secs(4, 5, 4)), 5 * s, 4 * time.Hour,
			secs(10)},
		{"the deadline clamps the planned sleep", stable, time.Hour, 100 * s,
			secs(100)},
		{"a wide history spaces the reads, never past Max", engineDefaults.Estimate(secs(600, 3000, 1200, 2400)), 4000 * s, 4 * time.Hour,
			// Low 600, High (p75) 2400: reads from 595 s every (2700-595)/8,
			// capped at 60 s, up to 2400+300 s; then the backoff.
			concat(secs(595), stepSecs(655, 60, 2755), secs(2765, 2785, 2825), stepSecs(2885, 60, 4025))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := reads(engineDefaults, tc.est, tc.done, tc.deadline)
			if len(tc.want) > 0 && (len(got) != len(tc.want) || !equal(got, tc.want)) {
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
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// Near the estimate the detection delay (read time minus the job's end) is
// at most Tight, for any end inside the window; a plan never reads more
// often than every Tight.
func TestNextCapsDetectionDelayNearTheEstimate(t *testing.T) {
	est := engineDefaults.Estimate(secs(150, 148, 152, 150, 149))
	for done := est.Low - DefaultLead; done <= est.High+2*DefaultTight; done += s {
		rs := reads(engineDefaults, est, done, 4*time.Hour)
		if delay := rs[len(rs)-1] - done; delay > DefaultTight {
			t.Fatalf("job ending at %v seen at %v: delay %v > %v", done, rs[len(rs)-1], delay, DefaultTight)
		}
		for i := 1; i < len(rs); i++ {
			if rs[i]-rs[i-1] < min(DefaultTight, engineDefaults.Min) {
				t.Fatalf("reads %v closer than %v", rs, DefaultTight)
			}
		}
	}
}
