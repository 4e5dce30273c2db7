// Package pollplan decides when backupd reads an Atlas job again, from how
// long the same cluster's jobs of that kind took before.
//
// A fixed backoff (10 s doubling to 1 min) knows nothing of the job: a
// snapshot that always takes 2½ minutes is read five times, an export of
// 5½ minutes eight times, and its completion is seen up to a minute late.
// Atlas's rate limits, not CPU, bound backupd at fleet size (issue 15), so
// a cluster with a consistent history sleeps until shortly before its jobs
// usually end and then reads at a short interval, which both saves reads
// and caps how late completion is seen. Without a usable history, and for a
// job far past what its history predicts, the fixed backoff applies
// unchanged.
//
// The package is pure: the engine feeds it durations from the journal and
// the job's elapsed time from its clock.
package pollplan

import (
	"slices"
	"time"
)

// Defaults of Plan's zero fields.
const (
	// DefaultTight is the read interval near the expected completion: the
	// detection delay there is at most this.
	DefaultTight = 15 * time.Second
	// DefaultLead is how long before the earliest expected completion the
	// first read is sent, for a job a little faster than its history.
	DefaultLead = 5 * time.Second
	// DefaultSamples is how many recent durations the estimate uses.
	DefaultSamples = 10
	// DefaultMinSamples is how many it needs: one long outlier alone would
	// have the next job sleep far past its completion.
	DefaultMinSamples = 2
	// maxTightReads bounds the reads across the window near the estimate:
	// a history so wide that Tight would read more often than the backoff
	// reads at a longer interval instead.
	maxTightReads = 8
)

// Estimate is what a cluster's history says of its next job of one kind.
// The zero Estimate is no estimate.
type Estimate struct {
	// Low is the shortest duration still typical of the history: short
	// outliers (under half the median) are left out, so one fast job does
	// not make every later one poll early.
	Low time.Duration
	// High is the upper quartile: the long tail (a stuck job, a one-off
	// large export) falls back to the backoff instead of widening the
	// window of tight reads for every job.
	High time.Duration
	// Samples is how many durations it was made of (0: none).
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
	// nothing from a plan, and the tight interval never exceeds Max.
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

// Estimate summarises durations, newest first, of jobs of one kind on one
// cluster that succeeded (failed runs say nothing about how long a job
// takes and are not passed). Each duration is a lower bound: how long the
// job was still seen running. Only the newest Samples count, so the
// estimate follows a cluster whose data grows. Fewer than MinSamples
// durations (zero or negative ones are ignored) give no estimate.
func (p Plan) Estimate(durations []time.Duration) Estimate {
	p = p.withDefaults()
	ds := make([]time.Duration, 0, min(len(durations), p.Samples))
	for _, d := range durations {
		if len(ds) == p.Samples {
			break
		}
		if d > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) < p.MinSamples {
		return Estimate{}
	}
	slices.Sort(ds)
	median := ds[(len(ds)-1)/2]
	low := ds[0]
	for _, d := range ds {
		if 2*d >= median {
			low = d
			break
		}
	}
	high := ds[(3*len(ds)+3)/4-1] // the nearest rank of the 75th percentile
	return Estimate{Low: low, High: max(high, low), Samples: len(ds)}
}

// Next is how long to wait before the next read of a job running for
// elapsed, given its estimate and the time left before its stage's
// deadline (left <= 0: no deadline). planned is false when the backoff
// applies instead: no estimate, a job expected to end before the backoff's
// first read, or a job far past its estimate. A planned wait never passes
// the deadline, so a timeout is noticed on time.
//
// Reads go at Low-Lead, then every Tight until High plus a grace of
// max(2·Tight, High/8); a window so wide that this would take more than
// maxTightReads reads spaces them out evenly, never beyond Max.
func (p Plan) Next(e Estimate, elapsed, left time.Duration) (wait time.Duration, planned bool) {
	p = p.withDefaults()
	if !e.Known() {
		return 0, false
	}
	start := e.Low - p.Lead
	if start <= p.Min {
		return 0, false
	}
	end := e.High + max(2*p.Tight, e.High/8)
	if elapsed >= end {
		return 0, false
	}
	every := max(p.Tight, (end-start)/maxTightReads)
	if p.Max > 0 {
		every = min(every, p.Max)
	}
	wait = every
	if elapsed < start {
		wait = start - elapsed
	}
	if left > 0 {
		wait = min(wait, left)
	}
	return wait, true
}
