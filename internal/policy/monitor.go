package policy

import "time"

// Defaults of the monitor: section (docs/metrics.md, "Monitor"; change
// both together).
const (
	// DefaultMonitorInterval is how often each watched cluster is read. A
	// read of a dedicated cluster costs two Atlas calls (its snapshots and
	// its schedule) plus its share of the project's compliance policy (once
	// per project per interval) and of its two listings (as often, at the
	// defaults; docs/metrics.md, "Monitor"): a project of 10 clusters costs
	// 23 calls an hour, spread over it, against its budget of 100 a minute
	// (atlas.requestsPerMinute), which leaves the policies' own runs all
	// the room; native schedules are hourly at the finest, so reading more
	// often would notice nothing sooner.
	DefaultMonitorInterval = time.Hour
	// DefaultMonitorMargin is how long after a schedule's slot its snapshot
	// may still be missing before the frequency counts as overdue: Atlas
	// starts late by minutes and only completed snapshots count.
	DefaultMonitorMargin = 2 * time.Hour
	// Bounds of monitor.interval: a minute at least (a read of a large
	// fleet must fit in it), a day at most (a broken schedule must not go
	// unnoticed for longer).
	MinMonitorInterval = time.Minute
	MaxMonitorInterval = 24 * time.Hour
)

// Monitor is the monitor: section: which clusters to watch read-only and
// how often. Targets use the same selectors (globs, excludes) as policy
// targets.
type Monitor struct {
	Targets  []TargetSelector
	Interval time.Duration
	Margin   time.Duration
	Pos      Position // where the section starts, for messages
}

// monitorSection decodes the monitor: section of top, or returns nil when
// it is absent. Every problem is reported at its line and column.
func (d *decoder) monitorSection(top fields) *Monitor {
	f, ok := top.get("monitor")
	if !ok {
		return nil
	}
	m, ok := d.mapping(f.val, f.path, "targets", "interval", "margin")
	if !ok {
		return nil
	}
	mon := &Monitor{Interval: DefaultMonitorInterval, Margin: DefaultMonitorMargin,
		Pos: Position{File: d.file, Line: f.key.Line, Column: f.key.Column}}
	// Parse fails on any issue, so a section with one need not be whole.
	if tf, ok := m.get("targets"); ok {
		mon.Targets, _ = d.targets(tf)
	} else {
		d.errorAt(m.node, join(f.path, "targets"), "required: list the projects (and clusters) to watch, as in a policy's targets")
	}
	if vf, ok := m.get("interval"); ok {
		if v, ok := d.duration(vf, true); ok && (v < MinMonitorInterval || v > MaxMonitorInterval) {
			d.errorAt(vf.val, vf.path, "must be from %s to %s", MinMonitorInterval, MaxMonitorInterval)
		} else if ok {
			mon.Interval = v
		}
	}
	if vf, ok := m.get("margin"); ok {
		if v, ok := d.duration(vf, true); ok {
			mon.Margin = v
		}
	}
	return mon
}
