package daemon

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// Report builds the evidence report for q from what the daemon holds (see
// WriteReport), whole: for callers that need it in memory.
func (d *Daemon) Report(_ context.Context, q report.Query) (*report.Report, error) {
	in, src, err := d.reportInput(q)
	if err != nil {
		return nil, fmt.Errorf("building the report: %w", err)
	}
	err = src(func(r run.Run) error {
		in.Runs = append(in.Runs, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("building the report: %w", err)
	}
	return report.Build(in, q), nil
}

// WriteReport writes the evidence report for q in format to w as it
// builds it, one cluster at a time (report.Stream), from what the daemon
// holds: the configuration's policies and the clusters they schedule now,
// the scheduler's marks, the journal's rollup and runs in flight, and the
// monitor's last reads. It asks Atlas nothing, so it answers while Atlas
// cannot.
func (d *Daemon) WriteReport(_ context.Context, w io.Writer, q report.Query, format string) error {
	in, src, err := d.reportInput(q)
	if err != nil {
		return fmt.Errorf("building the report: %w", err)
	}
	if _, err := report.Stream(w, format, in, q, src); err != nil {
		return fmt.Errorf("building the report: %w", err)
	}
	return nil
}

// reportInput gathers the report's input: everything but the ended runs
// of the rollup, which src yields (as often as it is called, the same).
func (d *Daemon) reportInput(q report.Query) (report.Input, report.Source, error) {
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
				return in, nil, fmt.Errorf("the schedule mark of policy %s on %s: %w", p.Name, t, err)
			}
			rt := report.Target{Target: t, Entry: e}
			if ok {
				rt.Mark = &m
			}
			rp.Targets = append(rp.Targets, rt)
		}
		in.Policies = append(in.Policies, rp)
	}
	var src report.Source
	var err error
	in.Runs, src, in.RetainedSince, err = reportRuns(d.journal, q, now)
	return in, src, err
}

// reportRuns reads what the report of q, built at now, judges: the runs
// it holds whole (in flight, and those of a journal upgraded from a
// backupd without the rollup, below), a source of the ended runs, and
// where the evidence the journal holds begins (report.Input's
// RetainedSince).
//
// The ended runs come from the journal's rollup (their report views),
// which the count limit of the full runs never shortens: a 30-day report
// of a fleet whose count limit keeps 4 days of runs is complete. The runs
// in flight come from the active index, read once, first: the source
// skips their outcomes and every run created after now, so a run that
// ends meanwhile counts once, and two walks of the source (Markdown's and
// HTML's summary, then their sections) yield the same runs. A journal
// that got its rollup on an upgrade holds the runs created before it in
// full only: those are read from History, once, while it keeps them.
func reportRuns(j journal.Journal, q report.Query, now time.Time) ([]run.Run, report.Source, time.Time, error) {
	h, err := j.Horizon()
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	pruned, err := j.PrunedThrough()
	if err != nil {
		return nil, nil, time.Time{}, err
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
		return nil, nil, time.Time{}, fmt.Errorf("reading the runs in flight: %w", err)
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
			return nil, nil, time.Time{}, fmt.Errorf("reading the journal's runs from %s to %s: %w", q.From, h.Since, err)
		}
	}
	inFlight := map[run.ID]bool{}
	for _, r := range active {
		if !r.CreatedAt.After(now) && !r.CreatedAt.Before(h.Since) && q.Keeps(r) {
			inFlight[r.ID] = true
			runs = append(runs, r)
		}
	}
	oq := journal.OutcomeQuery{From: q.From, To: q.To, Keep: q.Selects}
	src := func(fn func(run.Run) error) error {
		err := j.Outcomes(oq, func(r run.Run) error {
			if inFlight[r.ID] || r.CreatedAt.After(now) {
				return nil
			}
			return fn(r)
		})
		if err != nil {
			return fmt.Errorf("reading the outcomes from %s to %s: %w", q.From, q.To, err)
		}
		return nil
	}
	return runs, src, retained, nil
}
