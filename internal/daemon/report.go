package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

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
	var err error
	if in.Runs, in.RetainedSince, err = reportRuns(d.journal, q); err != nil {
		return nil, fmt.Errorf("building the report: %w", err)
	}
	return report.Build(in, q), nil
}

// reportRuns reads the runs of q's period that its filters keep, and
// where the evidence the journal holds begins (report.Input's
// RetainedSince). The ended runs come from the journal's rollup (their
// report views), which the count limit of the full runs never shortens:
// a 30-day report of a fleet whose count limit keeps 4 days of runs is
// complete. The runs in flight come from the active index, read first: a
// run that ends between the two reads is taken from the rollup, once. A
// journal that got its rollup on an upgrade holds the runs created before
// it in full only: those are read from History while it keeps them.
func reportRuns(j journal.Journal, q report.Query) ([]run.Run, time.Time, error) {
	h, err := j.Horizon()
	if err != nil {
		return nil, time.Time{}, err
	}
	pruned, err := j.PrunedThrough()
	if err != nil {
		return nil, time.Time{}, err
	}
	retained := h.PrunedBefore
	if q.From.Before(h.Since) && !pruned.IsZero() {
		// The older part of the period is read from the full runs.
		held := pruned.Add(1)
		if held.After(h.Since) {
			held = h.Since // from there on, the rollup holds it
		}
		if held.After(retained) {
			retained = held
		}
	}
	active, err := j.Active()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the runs in flight: %w", err)
	}
	var runs []run.Run
	if q.From.Before(h.Since) {
		jq := journal.Query{Since: q.From, Before: h.Since, Keep: func(r run.Run) bool { return q.Keeps(r) }}
		if len(q.Policies) == 1 && !strings.ContainsAny(q.Policies[0], `*?[\`) {
			// One policy by name: its index holds its runs alone, so the walk
			// reads no other policy's.
			jq.Policy = q.Policies[0]
		}
		if runs, err = j.History(jq); err != nil {
			return nil, time.Time{}, fmt.Errorf("reading the journal's runs from %s to %s: %w", q.From, h.Since, err)
		}
	}
	ended := map[run.ID]bool{}
	oq := journal.OutcomeQuery{From: q.From, To: q.To, Keep: q.Selects}
	err = j.Outcomes(oq, func(r run.Run) error {
		ended[r.ID] = true
		runs = append(runs, r)
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the outcomes from %s to %s: %w", q.From, q.To, err)
	}
	for _, r := range active {
		if !ended[r.ID] && !r.CreatedAt.Before(h.Since) && q.Keeps(r) {
			runs = append(runs, r)
		}
	}
	return runs, retained, nil
}
