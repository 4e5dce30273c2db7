package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// Report builds the evidence report for q from what the daemon holds: the
// configuration's policies and the clusters they schedule now, the
// scheduler's marks and the runs in the journal, and the monitor's last
// reads. It asks Atlas nothing, so it answers while Atlas cannot.
func (d *Daemon) Report(_ context.Context, q report.Query) (*report.Report, error) {
	cfg := d.Config()
	now := d.clk.Now()
	in := report.Input{Now: now, Monitor: d.monitorStatus()}
	pruned, err := d.journal.PrunedThrough()
	if err != nil {
		return nil, fmt.Errorf("building the report: %w", err)
	}
	if !pruned.IsZero() {
		in.RetainedSince = pruned.Add(1)
	}
	marks := markStore{d.journal}
	for _, p := range cfg.Policies {
		rp := report.Policy{Name: p.Name, Action: p.Action(), Schedule: p.Schedule, Timezone: p.Timezone}
		for _, t := range scheduled(d.resolution(p.Name)) {
			e := entryFor(p, t)
			m, ok, err := marks.Mark(e.Key)
			if err != nil {
				return nil, fmt.Errorf("building the report: the schedule mark of policy %s on %s: %w", p.Name, t, err)
			}
			rt := report.Target{Target: t, Entry: e}
			if ok {
				rt.Mark = &m
			}
			rp.Targets = append(rp.Targets, rt)
		}
		in.Policies = append(in.Policies, rp)
	}
	// Every run created since the period began that the filters keep; a
	// run of a slot before it that was caught up late is dropped by Build.
	jq := journal.Query{Since: q.From, Keep: func(r run.Run) bool { return q.Keeps(r) }}
	if len(q.Policies) == 1 && !strings.ContainsAny(q.Policies[0], `*?[\`) {
		// One policy by name: its index holds its runs alone, so the walk
		// reads no other policy's.
		jq.Policy = q.Policies[0]
	}
	in.Runs, err = d.journal.History(jq)
	if err != nil {
		return nil, fmt.Errorf("building the report: reading the journal's runs since %s: %w", q.From, err)
	}
	return report.Build(in, q), nil
}
