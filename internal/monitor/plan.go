package monitor

import (
	"slices"
	"time"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// jitterKey is the name the monitor's read offsets are hashed under. A
// policy of that name would share its offsets, which costs nothing.
const jitterKey = "monitor"

// Plan decides which clusters the monitor watches and when it reads each:
// the monitor: section, with the same selectors as policy targets.
type Plan struct {
	cfg policy.Monitor
}

// NewPlan returns the plan of a decoded monitor: section; a zero Interval
// or Margin takes the default.
func NewPlan(cfg policy.Monitor) Plan {
	if cfg.Interval <= 0 {
		cfg.Interval = policy.DefaultMonitorInterval
	}
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultMargin
	}
	return Plan{cfg: cfg}
}

// Interval is how often each cluster is read.
func (p Plan) Interval() time.Duration { return p.cfg.Interval }

// Margin is the slack Assess gives each slot.
func (p Plan) Margin() time.Duration { return p.cfg.Margin }

// Selects reports whether the plan watches t, by name, with the matching
// of policy targets (globs and excludes).
func (p Plan) Selects(t run.Target) bool {
	return policy.Selects(policy.Policy{Targets: p.cfg.Targets}, t)
}

// Offset is t's fixed place inside every interval: a hash of the target
// spread uniformly over [0, interval), so a fleet's reads are evenly spread
// across the interval, the same on every host and after every restart,
// never a burst.
func (p Plan) Offset(t run.Target) time.Duration {
	return policy.JitterOffset(jitterKey, t, p.cfg.Interval)
}

// NextRead is when to read t next after the moment after: the first
// k·interval + Offset(t) (k counted from the Unix epoch) strictly after it.
// Reads of one target are thus exactly one interval apart, whenever the
// daemon started, and a late read (a slow Atlas) does not shift the next.
func (p Plan) NextRead(t run.Target, after time.Time) time.Time {
	iv := p.cfg.Interval
	off := p.Offset(t)
	// Work in durations since the epoch: exact for any date a daemon meets.
	since := after.Sub(time.Unix(0, 0)) - off
	k := since / iv
	if since < 0 && since%iv != 0 {
		k-- // floor, not truncation, before the epoch
	}
	next := time.Unix(0, 0).Add((k+1)*iv + off)
	return next.In(after.Location())
}

// Projects are the projects the plan names, each once, in order.
func (p Plan) Projects() []string {
	var out []string
	for _, s := range p.cfg.Targets {
		if !slices.Contains(out, s.ProjectID) {
			out = append(out, s.ProjectID)
		}
	}
	return out
}
