// Package pollplan decides when backupd reads an Atlas job again, from how
// long the same cluster's jobs of that kind took before.
//
// A fixed backoff (10 s doubling to 1 min) knows nothing of the job: a
// snapshot that always takes 2½ minutes is read five times, an export of
// 5½ minutes eight times, and its completion is seen up to a minute late.
// Atlas's rate limits, not CPU, bound backupd at fleet size (issue 15), so
// a cluster with a consistent history sleeps through its job and reads it
// as few times as still see its end within a cap (DefaultTight): once, at
// the end of the window its history predicts, when that window is narrow.
// Without a usable history, and for a job far past what its history
// predicts, the fixed backoff applies unchanged.
//
// The package is pure: the engine feeds it samples from the journal and
// the job's elapsed time from its clock.
package pollplan

import (
	"math"
	"slices"
	"time"
)

// Defaults of Plan's zero fields.
const (
	// DefaultTight is the detection cap: a job ending inside the window its
	// history predicts is seen at most this late, and reads past the window
	// go at this interval until the backoff takes over.
	DefaultTight = 30 * time.Second
	// DefaultLead is how far before the history's upper bound a probing
	// read goes (see Next): a job that has become a little faster is seen
	// then, and one still running narrows the next job's window.
	DefaultLead = 5 * time.Second
	// DefaultSamples is how many recent jobs the estimate uses.
	DefaultSamples = 10
	// DefaultMinSamples is how many it needs: one long outlier alone would
	// have the next job sleep far past its completion.
	DefaultMinSamples = 2
	// maxTightReads bounds the reads across the window of a history so
	// wide that reads every Tight would be more than the backoff's: they
	// are spaced evenly instead, never beyond Max.
	maxTightReads = 8
)

// Sample is what one job that succeeded showed of its duration, both
// counted from its create request: it was last seen running at Ran (0: no
// read saw it running) and first seen done at Done. Its duration lies in
// (Ran, Done].
type Sample struct {
	Ran, Done time.Duration
}

// Estimate is what a cluster's history says of its next job of one kind:
// the window (Low, High] it is expected to end in. The zero Estimate is no
// estimate.
type Estimate struct {
	// Low is the lower bound, 0 when no recent read saw a job running.
	Low time.Duration
	// High is the upper bound.
	High time.Duration
	// Samples is how many jobs it was made of (0: none).
	Samples int
}

// Known reports whether e can plan polls.
func (e Estimate) Known() bool { return e.Samples > 0 }

// Plan turns an estimate into read times. Its zero value uses the defaults.
type Plan struct {
	Tight, Lead         time.Duration
	Samples, MinSamples int
	// Min is the backoff's first wait (engine PollMin) and Max its ceiling
	// (PollMax): a job expected to end before the first backoff read gains
	// nothing from a plan, and reads are never further apart than Max.
	Min, Max time.Duration
}

func (p Plan) withDefaults() Plan {
	if p.Tight <= 0 {
		p.Tight = DefaultTight
	}
	if p.Lead <= 0 {
		p.Lead = DefaultLead
	}
	if p.Samples <= 0 {
		p.Samples = DefaultSamples
	}
	if p.MinSamples <= 0 {
		p.MinSamples = DefaultMinSamples
	}
	if p.Max > 0 && p.Tight > p.Max {
		p.Tight = p.Max
	}
	return p
}

// Estimate summarises samples, newest first, of jobs of one kind on one
// cluster that succeeded (failed runs say nothing about how long a job
// takes and are not passed). Only the newest Samples with a Done count, so
// the estimate follows a cluster whose data grows; fewer than MinSamples
// give no estimate.
//
// A cluster whose jobs take the same time run after run (its data changes
// slowly) has samples whose windows overlap: the duration lies in all of
// them, so the estimate is their intersection, which narrows with every
// job read near its end. A mean or a median of the bounds would not
// narrow: each bound is off by up to the interval between two reads.
// Samples that do not overlap (the durations vary) give a quantile window
// instead: from the 20th percentile of the lower bounds (one fast job in
// five does not make every later one poll early) to the 80th percentile of
// the upper bounds (nearest rank: from five samples on, a one-off slow job
// falls back to the backoff rather than widening every window).
func (p Plan) Estimate(samples []Sample) Estimate {
	p = p.withDefaults()
	var los, his []time.Duration
	for _, s := range samples {
		if len(his) == p.Samples {
			break
		}
		if s.Done <= 0 {
			continue
		}
		his = append(his, s.Done)
		if s.Ran > 0 && s.Ran < s.Done {
			los = append(los, s.Ran)
		}
	}
	if len(his) < p.MinSamples {
		return Estimate{}
	}
	slices.Sort(his)
	slices.Sort(los)
	var low time.Duration
	if len(los) > 0 {
		low = los[len(los)-1]
	}
	if low < his[0] {
		return Estimate{Low: low, High: his[0], Samples: len(his)}
	}
	low = 0
	if len(los) > 0 {
		low = rank(los, 0.2)
	}
	high := rank(his, 0.8)
	if low >= high {
		low = 0
	}
	return Estimate{Low: low, High: high, Samples: len(his)}
}

// rank is the nearest-rank q-quantile of sorted ds.
func rank(ds []time.Duration, q float64) time.Duration {
	return ds[max(int(math.Ceil(q*float64(len(ds))))-1, 0)]
}

// Next is how long to wait before the next read of a job running for
// elapsed, given its estimate and the time left before its stage's
// deadline (left <= 0: no deadline). planned is false when the backoff
// applies instead: no estimate, a job expected to end before the backoff's
// first read, or a job far past its estimate. A planned wait never passes
// the deadline, so a timeout is noticed on time.
//
// The reads inside the window (Low, High] are as few as still see a job
// ending in it at most Tight late: n = ⌈(High−Low)/Tight⌉ reads spaced
// evenly, the last at High (at most maxTightReads, never more than Max
// apart). A window of one read, or one without a lower bound, is probed
// Lead before High first: a job seen done then narrows the next window
// from above, one seen running from below, so a stable cluster's window
// shrinks until one read at High sees its job end within Lead. Past High
// one read goes Lead later, for a job a little slower than its history,
// then reads every Tight until High plus a grace of max(2·Tight, High/8);
// then the backoff takes over.
func (p Plan) Next(e Estimate, elapsed, left time.Duration) (wait time.Duration, planned bool) {
	p = p.withDefaults()
	if !e.Known() || e.High <= p.Min {
		return 0, false
	}
	end := e.High + max(2*p.Tight, e.High/8)
	if elapsed >= end {
		return 0, false
	}
	wait = p.nextRead(e, elapsed) - elapsed
	if left > 0 {
		wait = min(wait, left)
	}
	return wait, true
}

// nextRead is the first planned read after elapsed (Next).
func (p Plan) nextRead(e Estimate, elapsed time.Duration) time.Duration {
	if elapsed < e.High {
		width := e.High - e.Low
		switch n := (width + p.Tight - 1) / p.Tight; {
		case e.Low > 0 && width <= p.Lead:
			// Narrow enough: one read at High.
		case e.Low == 0 || n == 1:
			if probe := e.High - p.Lead; elapsed < probe {
				return probe
			}
		default:
			n = min(n, maxTightReads)
			if p.Max > 0 {
				n = max(n, (width+p.Max-1)/p.Max)
			}
			step := width / n
			k := time.Duration(1)
			if elapsed >= e.Low {
				k = (elapsed-e.Low)/step + 1
			}
			if k < n {
				return e.Low + k*step
			}
		}
		return e.High
	}
	// Just past High first: a job a little slower than its history
	// (durations jitter by seconds) is seen within Lead.
	if after := e.High + p.Lead; elapsed < after {
		return after
	}
	return e.High + p.Lead + ((elapsed-e.High-p.Lead)/p.Tight+1)*p.Tight
}
