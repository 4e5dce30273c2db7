// Package report builds backupd's evidence report: for a period, cluster
// by cluster, the snapshots backupd took, the exports it made, the
// restores it proved, every slot that was due and what became of it, and
// (when the monitor is configured) what Atlas's native backups looked like
// at the monitor's last read.
//
// It is pure: Build reads nothing but its Input, which the daemon gathers
// from the journal, the configuration and the monitor. So a report never
// asks Atlas anything (it works while Atlas is unreachable), and tests can
// build one from runs of their own. Rendering (Markdown, JSON, HTML) is in
// render.go; the JSON schema is documented in docs/report.md.
package report

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/scheduler"
)

// Schema names the JSON layout of Report. A change that removes or
// renames a field, or changes a field's meaning, takes a new version;
// adding a field does not.
const Schema = "backupd.report/v1"

// MaxSlots bounds the slots enumerated for one policy on one cluster, so a
// report of an "@every 1m" policy over a year stays a bounded answer. A
// policy that has more due slots in the period is reported on its newest
// MaxSlots and says so.
const MaxSlots = 20000

// Input is everything a report is built from.
type Input struct {
	// Now is when the report is built: slots not yet due by then are not
	// counted.
	Now time.Time
	// Policies are the configured policies and the clusters they schedule
	// now (resolved, or selected but not supported).
	Policies []Policy
	// Runs are the journal's runs created at or after the period's start
	// (more are harmless: Build filters by slot and creation time).
	Runs []run.Run
	// Monitor is the monitor's status, nil when no monitor is configured.
	Monitor *run.MonitorStatus
	// RetainedSince is the oldest creation time the journal is sure to
	// keep every finished run of (now minus state.historyAge, or later if
	// the count limit pruned younger runs). Slots before it are not
	// judged: a pruned run must not read as a missed slot. Zero: every
	// run is kept.
	RetainedSince time.Time
}

// Policy is one configured policy.
type Policy struct {
	Name     string
	Action   run.Action
	Schedule string
	Timezone string
	Targets  []Target
}

// Target is one cluster a policy schedules, with what the scheduler knows
// of it.
type Target struct {
	Target run.Target
	// Entry is the scheduler's entry: the slot maths (schedule, zone,
	// jitter offset).
	Entry scheduler.Entry
	// Mark is the scheduler's bookkeeping for the entry; nil when it was
	// never scheduled (then no slot is due yet). Slots after Mark.Since
	// are due; a mark of another schedule makes none due.
	Mark *scheduler.Mark
}

// Query selects what the report covers.
type Query struct {
	From, To time.Time // the period, [From, To)
	// Policies and Clusters keep only matching policies and clusters
	// (path.Match globs; any of them may match; empty keeps all). A
	// cluster pattern with a "/" matches "projectID/cluster", else the
	// cluster name alone.
	Policies []string
	Clusters []string
}

// Validate reports what makes q unusable, naming the field.
func (q Query) Validate() error {
	switch {
	case q.From.IsZero() || q.To.IsZero():
		return fmt.Errorf("from and to: both must be set")
	case !q.From.Before(q.To):
		return fmt.Errorf("from (%s) must be before to (%s)", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	for _, p := range q.Policies {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("policy pattern %q: %w", p, err)
		}
	}
	for _, p := range q.Clusters {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("cluster pattern %q: %w", p, err)
		}
	}
	return nil
}

// Keeps reports whether the filters keep run r (its period is Build's to
// judge): for reading only the runs a report needs.
func (q Query) Keeps(r run.Run) bool { return q.Selects(r.Policy, r.Target) }

// Selects reports whether the filters keep the runs of policy on t.
func (q Query) Selects(policy string, t run.Target) bool {
	return q.keepPolicy(policy) && q.keepCluster(t)
}

func (q Query) keepPolicy(name string) bool { return matchAny(q.Policies, name) }

func (q Query) keepCluster(t run.Target) bool {
	if len(q.Clusters) == 0 {
		return true
	}
	for _, p := range q.Clusters {
		s := t.Cluster
		if strings.Contains(p, "/") {
			s = t.String()
		}
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// Report is the evidence report; its JSON form is backupd.report/v1.
type Report struct {
	Header
	Totals   Totals    `json:"totals"`
	Clusters []Cluster `json:"clusters"`
}

// Header is what a report says before its clusters.
type Header struct {
	Schema      string    `json:"schema"`
	GeneratedAt time.Time `json:"generatedAt"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	// RetainedSince: see Input.RetainedSince; omitted when zero.
	RetainedSince time.Time `json:"retainedSince,omitzero"`
	Filters       Filters   `json:"filters"`
	// MonitorConfigured says whether native backups are part of the report.
	MonitorConfigured bool `json:"monitorConfigured"`
}

// Filters echoes the query's filters.
type Filters struct {
	Policies []string `json:"policies"`
	Clusters []string `json:"clusters"`
}

// Totals add up the clusters.
type Totals struct {
	Clusters int    `json:"clusters"`
	Met      int    `json:"met"`
	NotMet   int    `json:"notMet"`
	Counts   Counts `json:"counts"`
}

// Counts are the slots of a policy on a cluster (or their sum), by outcome.
type Counts struct {
	Due       int `json:"due"` // slots judged: every due slot and every scheduled run's slot
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Missed    int `json:"missed"`
	InFlight  int `json:"inFlight"`
	Manual    int `json:"manual"` // manual runs (not slots; they satisfy none)
}

func (c *Counts) add(o Counts) {
	c.Due += o.Due
	c.Succeeded += o.Succeeded
	c.Failed += o.Failed
	c.Skipped += o.Skipped
	c.Missed += o.Missed
	c.InFlight += o.InFlight
	c.Manual += o.Manual
}

// Cluster is everything about one cluster.
type Cluster struct {
	Target run.Target `json:"target"`
	// Met: every policy on it met (see PolicyReport.Met) and, when the
	// monitor watches it, its last read found nothing wrong.
	Met bool `json:"met"`
	// Why lists why not, in words; empty when Met.
	Why      []string       `json:"why,omitempty"`
	Policies []PolicyReport `json:"policies"`
	// Native is the monitor's last read of the cluster; nil when the
	// monitor is not configured or does not watch it.
	Native *Native `json:"native,omitempty"`
}

// Outcomes of a slot.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeSkipped   = "skipped"
	OutcomeMissed    = "missed"   // due, and the journal has no run for it
	OutcomeInFlight  = "inFlight" // its run has not ended yet
)

// PolicyReport is one policy on one cluster over the period.
type PolicyReport struct {
	Policy   string     `json:"policy"`
	Action   run.Action `json:"action"`
	Schedule string     `json:"schedule,omitempty"`
	Timezone string     `json:"timezone,omitempty"`
	// Configured is false for a policy (or a cluster of it) that the
	// configuration no longer schedules: only its runs are judged.
	Configured bool `json:"configured"`
	// ScheduledSince is when the scheduler started owing this schedule's
	// slots on the cluster (its mark); zero when it never did.
	ScheduledSince time.Time `json:"scheduledSince,omitzero"`
	// Met: no slot judged was failed, skipped or missed (skipped
	// {no_new_snapshot} counts as met: the newest snapshot's export is in
	// the bucket already). Slots in flight do not count either way.
	Met bool `json:"met"`
	// Why lists why not, in words; empty when Met.
	Why    []string `json:"why,omitempty"`
	Counts Counts   `json:"counts"`
	// Truncated is set when more than MaxSlots slots were due: the oldest
	// were left out.
	Truncated bool `json:"truncated,omitempty"`
	// Problems are the slots that were not met, oldest first.
	Problems  []Slot     `json:"problems"`
	Snapshots []Snapshot `json:"snapshots"`
	Exports   []Export   `json:"exports"`
	Restores  []Restore  `json:"restores"`
}

// Slot is one judged slot.
type Slot struct {
	Slot    time.Time `json:"slot"`
	DueAt   time.Time `json:"dueAt"` // the slot plus the cluster's jitter offset
	Outcome string    `json:"outcome"`
	RunID   run.ID    `json:"runID,omitempty"`
	Reason  string    `json:"reason,omitempty"` // the run's reason (a closed set), or "missed"
	Detail  string    `json:"detail,omitempty"`
	CatchUp bool      `json:"catchUp,omitempty"`
}

// Snapshot is one snapshot backupd took.
type Snapshot struct {
	RunID      run.ID    `json:"runID"`
	Slot       time.Time `json:"slot"`
	Manual     bool      `json:"manual,omitempty"`
	SnapshotID string    `json:"snapshotID"`
	Status     string    `json:"status"`
	// CompletedAt is when the run saw it completed (its next stage began);
	// zero if it never completed.
	CompletedAt     time.Time `json:"completedAt,omitzero"`
	RetentionInDays int       `json:"retentionInDays"`
	// ExpiresAt is CompletedAt plus the retention: when Atlas deletes it.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	SizeBytes int64     `json:"sizeBytes,omitempty"`
}

// Export is one export job backupd made.
type Export struct {
	RunID      run.ID    `json:"runID"`
	Slot       time.Time `json:"slot"`
	Manual     bool      `json:"manual,omitempty"`
	SnapshotID string    `json:"snapshotID"`
	BucketID   string    `json:"bucketID"`
	JobID      string    `json:"jobID"`
	State      string    `json:"state"`  // Atlas's export state
	Result     string    `json:"result"` // the run's stage: succeeded, failed, ...
	// BucketRunID is the run id backupd stamped in the export's customData
	// (backupd.run), which Atlas writes into the bucket's metadata: find
	// the export's files by it.
	BucketRunID run.ID    `json:"bucketRunID"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
}

// Restore is one restore backupd ran to prove a snapshot restorable.
type Restore struct {
	RunID  run.ID     `json:"runID"`
	Kind   run.Action `json:"kind"` // restoreDrill or flexRestore
	Slot   time.Time  `json:"slot"`
	Manual bool       `json:"manual,omitempty"`
	// SnapshotID is the snapshot restored.
	SnapshotID string     `json:"snapshotID"`
	Target     run.Target `json:"target"` // the cluster restored into
	JobID      string     `json:"jobID"`
	Status     string     `json:"status"` // Atlas's restore status
	Result     string     `json:"result"` // the run's stage
	// RequestedAt is when Atlas created the restore job (a flex job's
	// restoreScheduledDate), or when the restore stage began where the run
	// has no such time; FinishedAt when the run ended. RestoreDuration is
	// the job's creation to its finish on Atlas's clock ("0s" until it
	// ended; for a flex restore recorded before it kept Atlas's times,
	// RequestedAt to FinishedAt).
	RequestedAt     time.Time    `json:"requestedAt,omitzero"`
	FinishedAt      time.Time    `json:"finishedAt,omitzero"`
	RestoreDuration run.Duration `json:"restoreDuration"`
	// SnapshotAge is the snapshot's age when the restore began; nil when
	// the run did not record the snapshot's time.
	SnapshotAge *run.Duration `json:"snapshotAge,omitempty"`
	// Verification is how the restore was verified: for a drill, the
	// verify command's verdict (run.VerifiedByCommand, run.VerifyFailed),
	// run.VerifiedAtlasOnly without one, VerificationPending while it is
	// undecided, VerificationNone when the drill ended without one;
	// VerificationAtlasOnly for flex restores.
	Verification string `json:"verification"`
	// VerifyExitCode and VerifyDuration describe the drill's verify
	// command when it ran (its bounded output is in the run: backupd
	// describe).
	VerifyExitCode *int         `json:"verifyExitCode,omitempty"`
	VerifyDuration run.Duration `json:"verifyDuration,omitempty"`
	// SnapshotAt is when Atlas took the snapshot (a flex snapshot's
	// finishTime); SourceExportID the export whose snapshot a drill chose
	// (snapshot: exported).
	SnapshotAt     time.Time `json:"snapshotAt,omitzero"`
	SourceExportID string    `json:"sourceExportID,omitempty"`
}

// Verifications of a restore besides a drill's verify command.
const (
	// VerificationAtlasOnly: Atlas reported the restore complete; no check
	// of the data ran (run.VerifiedAtlasOnly).
	VerificationAtlasOnly = run.VerifiedAtlasOnly
	// VerificationPending: the drill is in flight and has not decided yet.
	VerificationPending = "pending"
	// VerificationNone: the drill ended before anything was verified (its
	// restore failed or timed out).
	VerificationNone = "none"
)

// Native is the monitor's last read of a cluster.
type Native struct {
	LastRead  time.Time `json:"lastRead,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	Flex      bool      `json:"flex,omitempty"`
	// Schedule is the native backup schedule in force.
	Schedule []run.NativeItem `json:"schedule"`
	// Newest is the newest completed native snapshot per kind.
	Newest map[string]time.Time `json:"newest,omitempty"`
	// NewestAny is the newest of Newest.
	NewestAny  time.Time             `json:"newestAny,omitzero"`
	Overdue    []string              `json:"overdue,omitempty"`
	Compliance *run.NativeCompliance `json:"compliance,omitempty"`
	Problems   []string              `json:"problems,omitempty"`
}

// Build builds the report of in for q. q must be valid (Query.Validate).
// It holds the whole report; Stream writes one of any size.
func Build(in Input, q Query) *Report {
	rep := header(in, q)
	b := newBuilder(in, q)
	_ = b.each(noSource, func(c Cluster) error {
		rep.Clusters = append(rep.Clusters, c)
		rep.Totals.add(c)
		return nil
	})
	return rep
}

// header is the report without clusters.
func header(in Input, q Query) *Report {
	return &Report{Header: Header{
		Schema: Schema, GeneratedAt: in.Now, From: q.From, To: q.To, RetainedSince: in.RetainedSince,
		Filters:           Filters{Policies: nonNil(q.Policies), Clusters: nonNil(q.Clusters)},
		MonitorConfigured: in.Monitor != nil,
	}, Clusters: []Cluster{}}
}

// add counts c in the totals.
func (t *Totals) add(c Cluster) {
	for _, pr := range c.Policies {
		t.Counts.add(pr.Counts)
	}
	t.Clusters++
	if c.Met {
		t.Met++
	} else {
		t.NotMet++
	}
}

// Source yields runs ordered by target (project, then cluster), the order
// of journal.Outcomes; runs the query's filters drop may be among them.
type Source func(fn func(run.Run) error) error

func noSource(func(run.Run) error) error { return nil }

// scheduledOn is one configured policy on one cluster.
type scheduledOn struct {
	policy Policy
	target Target
}

// builder builds the report cluster by cluster, in order, so a report
// holds one cluster's evidence at a time whatever its size: what it
// keeps for the whole report is the configuration's clusters, the
// monitor's, and Input.Runs by cluster.
type builder struct {
	in         Input
	q          Query
	configured map[run.Target][]scheduledOn
	monitor    map[run.Target]run.MonitorCluster
	extra      map[run.Target][]run.Run // Input.Runs of the period, by cluster
	known      []run.Target             // every cluster of the three, sorted
	slots      slotCache
}

func newBuilder(in Input, q Query) *builder {
	b := &builder{in: in, q: q, slots: slotCache{from: q.From, to: q.To, bySchedule: map[string][]time.Time{}}, configured: map[run.Target][]scheduledOn{}, monitor: map[run.Target]run.MonitorCluster{},
		extra: map[run.Target][]run.Run{}}
	set := map[run.Target]bool{}
	for _, p := range in.Policies {
		if !q.keepPolicy(p.Name) {
			continue
		}
		for _, t := range p.Targets {
			if q.keepCluster(t.Target) {
				b.configured[t.Target] = append(b.configured[t.Target], scheduledOn{policy: p, target: t})
				set[t.Target] = true
			}
		}
	}
	if in.Monitor != nil {
		for _, mc := range in.Monitor.Clusters {
			if q.keepCluster(mc.Target) {
				b.monitor[mc.Target] = mc
				set[mc.Target] = true
			}
		}
	}
	for _, r := range in.Runs {
		if b.inPeriod(r) {
			b.extra[r.Target] = append(b.extra[r.Target], r)
			set[r.Target] = true
		}
	}
	for t := range set {
		b.known = append(b.known, t)
	}
	slices.SortFunc(b.known, compareTargets)
	return b
}

func compareTargets(a, b run.Target) int {
	return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), cmp.Compare(a.Cluster, b.Cluster))
}

// inPeriod reports whether r is a run of the report: its slot (a manual
// run's creation) in the period, its policy and cluster kept.
func (b *builder) inPeriod(r run.Run) bool {
	at := r.Slot
	if r.Manual {
		at = r.CreatedAt
	}
	return !at.Before(b.q.From) && at.Before(b.q.To) && b.q.Selects(r.Policy, r.Target)
}

// each calls emit with every cluster of the report, in order: those src
// has runs of (with Input.Runs of theirs) merged with the others known.
// It stops at the first error, from src or emit.
func (b *builder) each(src Source, emit func(Cluster) error) error {
	next := 0 // the first of b.known not emitted yet
	// upTo emits the known clusters before t (all of them when t is nil),
	// and skips t itself.
	upTo := func(t *run.Target) error {
		for ; next < len(b.known) && (t == nil || compareTargets(b.known[next], *t) < 0); next++ {
			if err := b.emitCluster(b.known[next], nil, emit); err != nil {
				return err
			}
		}
		if t != nil && next < len(b.known) && b.known[next] == *t {
			next++
		}
		return nil
	}
	var cur run.Target
	var runs []run.Run
	flush := func() error {
		if len(runs) == 0 {
			return nil
		}
		if err := upTo(&cur); err != nil {
			return err
		}
		err := b.emitCluster(cur, runs, emit)
		runs = nil
		return err
	}
	err := src(func(r run.Run) error {
		if !b.inPeriod(r) {
			return nil
		}
		if len(runs) > 0 && r.Target != cur {
			if compareTargets(r.Target, cur) < 0 {
				return fmt.Errorf("the runs of %s came after those of %s: out of order", r.Target, cur)
			}
			if err := flush(); err != nil {
				return err
			}
		}
		cur = r.Target
		runs = append(runs, r)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = upTo(nil)
	}
	return err
}

// emitCluster builds the cluster t of src's runs and its Input.Runs, and
// emits it unless the report has nothing of it.
func (b *builder) emitCluster(t run.Target, srcRuns []run.Run, emit func(Cluster) error) error {
	byPolicy := map[string][]run.Run{}
	for _, rs := range [][]run.Run{srcRuns, b.extra[t]} {
		for _, r := range rs {
			byPolicy[r.Policy] = append(byPolicy[r.Policy], r)
		}
	}
	c := Cluster{Target: t, Policies: []PolicyReport{}}
	seen := map[string]bool{}
	for _, s := range b.configured[t] {
		seen[s.policy.Name] = true
		c.Policies = append(c.Policies, judge(s.policy, &s.target, byPolicy[s.policy.Name], b.in, b.q, &b.slots))
	}
	// Runs of policies no longer scheduled here: judged on their runs alone.
	for name, rs := range byPolicy {
		if !seen[name] {
			c.Policies = append(c.Policies, judge(Policy{Name: name, Action: rs[0].Action}, nil, rs, b.in, b.q, &b.slots))
		}
	}
	// The monitor's read; with a policy filter, only of those policies' clusters.
	if mc, ok := b.monitor[t]; ok && (len(b.q.Policies) == 0 || len(c.Policies) > 0) {
		c.Native = native(mc)
	}
	if len(c.Policies) == 0 && c.Native == nil {
		return nil
	}
	slices.SortFunc(c.Policies, func(a, b PolicyReport) int { return cmp.Compare(a.Policy, b.Policy) })
	c.Met = true
	for _, pr := range c.Policies {
		if !pr.Met {
			c.Met = false
			for _, w := range pr.Why {
				c.Why = append(c.Why, pr.Policy+": "+w)
			}
		}
	}
	if n := c.Native; n != nil {
		switch {
		case n.LastRead.IsZero():
			c.Met = false
			c.Why = append(c.Why, "monitor: no successful read of the native backups yet"+errSuffix(n.LastError))
		default:
			if len(n.Overdue) > 0 {
				c.Met = false
				c.Why = append(c.Why, "monitor: native snapshots overdue: "+strings.Join(n.Overdue, ", "))
			}
			for _, p := range n.Problems {
				c.Met = false
				c.Why = append(c.Why, "monitor: "+p)
			}
		}
	}
	return emit(c)
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (last error: " + e + ")"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// judge reports one policy on one cluster: t is nil when the
// configuration no longer schedules it.
func judge(p Policy, t *Target, rs []run.Run, in Input, q Query, slots *slotCache) PolicyReport {
	pr := PolicyReport{
		Policy: p.Name, Action: p.Action, Schedule: p.Schedule, Timezone: p.Timezone, Configured: t != nil,
		Problems: []Slot{}, Snapshots: []Snapshot{}, Exports: []Export{}, Restores: []Restore{},
	}
	bySlot := map[int64]run.Run{}
	for _, r := range rs {
		if r.Manual {
			pr.Counts.Manual++
			continue
		}
		bySlot[r.Slot.UnixNano()] = r
	}
	// Due slots: the schedule's slots in the period after the mark's
	// Since and at or after RetainedSince, due (slot + offset + grace)
	// by now.
	var due []time.Time
	offset := time.Duration(0)
	if t != nil && t.Mark != nil && t.Mark.Spec == t.Entry.Spec {
		pr.ScheduledSince = t.Mark.Since
		offset = max(t.Entry.Offset, 0)
		after := t.Mark.Since
		if lo := q.From.Add(-time.Nanosecond); lo.After(after) {
			after = lo
		}
		if lo := in.RetainedSince.Add(-time.Nanosecond); !in.RetainedSince.IsZero() && lo.After(after) {
			after = lo
		}
		until := in.Now.Add(-scheduler.DefaultGrace - offset + time.Nanosecond)
		if q.To.Before(until) {
			until = q.To
		}
		due, pr.Truncated = slots.between(t.Entry, after, until)
	} else if t != nil {
		pr.Why = append(pr.Why, "no schedule record for this cluster yet: no slot was due")
	}
	judged := make(map[int64]time.Time, len(due))
	for _, s := range due {
		judged[s.UnixNano()] = s
	}
	for n, r := range bySlot {
		if _, ok := judged[n]; !ok {
			judged[n] = r.Slot
		}
	}
	ordered := make([]time.Time, 0, len(judged))
	for _, s := range judged {
		ordered = append(ordered, s)
	}
	slices.SortFunc(ordered, time.Time.Compare)
	if pr.Truncated {
		// Keep the newest MaxSlots even when runs added older ones.
		ordered = ordered[max(0, len(ordered)-MaxSlots):]
		pr.Why = append(pr.Why, fmt.Sprintf("more than %d slots were due: only the newest %d are judged", MaxSlots, MaxSlots))
	}
	reasons := map[string]int{}
	for _, s := range ordered {
		pr.Counts.Due++
		r, ok := bySlot[s.UnixNano()]
		sl := Slot{Slot: s, DueAt: s.Add(offset)}
		switch {
		case !ok:
			sl.Outcome, sl.Reason = OutcomeMissed, run.ReasonMissed
			sl.Detail = "no run in the journal: backupd was not running (or not scheduling) when the slot was due"
			pr.Counts.Missed++
		default:
			sl.RunID, sl.Reason, sl.Detail, sl.CatchUp, sl.DueAt = r.ID, r.Reason, r.Detail, r.CatchUp, r.ScheduledAt
			switch r.Stage {
			case run.StageSucceeded:
				sl.Outcome = OutcomeSucceeded
				pr.Counts.Succeeded++
			case run.StageFailed:
				sl.Outcome = OutcomeFailed
				pr.Counts.Failed++
			case run.StageSkipped:
				sl.Outcome = OutcomeSkipped
				pr.Counts.Skipped++
			default:
				sl.Outcome = OutcomeInFlight
				pr.Counts.InFlight++
			}
		}
		if sl.Outcome == OutcomeMissed || sl.Outcome == OutcomeFailed ||
			sl.Outcome == OutcomeSkipped && sl.Reason != run.ReasonNoNewSnapshot {
			pr.Problems = append(pr.Problems, sl)
			reasons[sl.Outcome+"{"+sl.Reason+"}"]++
		}
	}
	// Evidence: every run of the period, scheduled or manual, oldest first.
	slices.SortFunc(rs, func(a, b run.Run) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	for _, r := range rs {
		if s, ok := snapshotOf(r); ok {
			pr.Snapshots = append(pr.Snapshots, s)
		}
		if e, ok := exportOf(r); ok {
			pr.Exports = append(pr.Exports, e)
		}
		if x, ok := restoreOf(r); ok {
			pr.Restores = append(pr.Restores, x)
		}
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		pr.Why = append(pr.Why, fmt.Sprintf("%d %s", reasons[k], strings.NewReplacer("{missed}", "", "{}", "").Replace(k)))
	}
	pr.Met = len(pr.Problems) == 0 && !pr.Truncated && (t == nil || t.Mark != nil && t.Mark.Spec == t.Entry.Spec)
	if pr.Met {
		pr.Why = nil
	}
	return pr
}

// slotCache computes each schedule's slots in the period once, not once a
// cluster: a fleet's clusters share their policies' schedules, and the
// next-slot maths was a fifth of a report's time.
type slotCache struct {
	from, to   time.Time
	bySchedule map[string][]time.Time // by spec and zone; nil: too many to keep
}

// cachedSlots bounds what the cache keeps of one schedule (a minutely
// schedule over a year is computed per cluster instead).
const cachedSlots = 5 * MaxSlots

// between is e's slots after after and before until (both within the
// period), the newest MaxSlots of them, and whether there were more.
func (c *slotCache) between(e scheduler.Entry, after, until time.Time) ([]time.Time, bool) {
	key := e.Spec + "\x00" + e.Location.String()
	all, ok := c.bySchedule[key]
	if !ok {
		all = []time.Time{}
		for s := scheduler.NextSlot(e, c.from.Add(-time.Nanosecond)); !s.IsZero() && s.Before(c.to); s = scheduler.NextSlot(e, s) {
			if all = append(all, s); len(all) > cachedSlots {
				all = nil // too many to keep
				break
			}
		}
		c.bySchedule[key] = all
	}
	if all == nil {
		var due []time.Time
		truncated := false
		for s := scheduler.NextSlot(e, after); !s.IsZero() && s.Before(until); s = scheduler.NextSlot(e, s) {
			due = append(due, s)
			if len(due) > MaxSlots {
				due = due[1:]
				truncated = true
			}
		}
		return due, truncated
	}
	// The first slot after after, and the first not before until.
	lo := sort.Search(len(all), func(i int) bool { return all[i].After(after) })
	hi := sort.Search(len(all), func(i int) bool { return !all[i].Before(until) })
	due := all[lo:max(lo, hi)]
	if len(due) > MaxSlots {
		return due[len(due)-MaxSlots:], true
	}
	return due, false
}

// stageAt is when r entered stage s (zero if it never did).
func stageAt(r run.Run, s run.Stage) time.Time {
	for _, e := range r.Stages {
		if e.Stage == s {
			return e.At
		}
	}
	return time.Time{}
}

// leftAt is when r left stage s: the start of the entry after it.
func leftAt(r run.Run, s run.Stage) time.Time {
	for i, e := range r.Stages {
		if e.Stage == s && i+1 < len(r.Stages) {
			return r.Stages[i+1].At
		}
	}
	return time.Time{}
}

func snapshotOf(r run.Run) (Snapshot, bool) {
	if r.Action != run.ActionSnapshot || r.SnapshotID == "" {
		return Snapshot{}, false
	}
	s := Snapshot{RunID: r.ID, Slot: r.Slot, Manual: r.Manual, SnapshotID: r.SnapshotID, Status: r.SnapshotStatus,
		RetentionInDays: r.Spec.RetentionInDays, SizeBytes: r.SnapshotBytes}
	if r.SnapshotStatus == "completed" {
		s.CompletedAt = leftAt(r, run.StageSnapshotting)
		if s.CompletedAt.IsZero() {
			s.CompletedAt = r.FinishedAt
		}
		if !s.CompletedAt.IsZero() && s.RetentionInDays > 0 {
			s.ExpiresAt = s.CompletedAt.Add(time.Duration(s.RetentionInDays) * 24 * time.Hour)
		}
	}
	return s, true
}

func exportOf(r run.Run) (Export, bool) {
	if r.ExportJobID == "" {
		return Export{}, false
	}
	return Export{RunID: r.ID, Slot: r.Slot, Manual: r.Manual, SnapshotID: r.SnapshotID, BucketID: r.ExportBucketID,
		JobID: r.ExportJobID, State: r.ExportState, Result: string(r.Stage), BucketRunID: r.ID, FinishedAt: r.FinishedAt}, true
}

func restoreOf(r run.Run) (Restore, bool) {
	switch {
	case r.Action != run.ActionFlexRestore && r.Action != run.ActionRestoreDrill,
		r.RestoreJobID == "" && !r.RestoreRequested:
		return Restore{}, false
	}
	x := Restore{RunID: r.ID, Kind: r.Action, Slot: r.Slot, Manual: r.Manual,
		Target: run.Target{ProjectID: r.Spec.TargetProjectID, Cluster: r.Spec.TargetCluster},
		JobID:  r.RestoreJobID, Status: r.RestoreStatus, Result: string(r.Stage),
		RequestedAt: stageAt(r, run.StageRestoring), FinishedAt: r.FinishedAt}
	// A restore records its times on Atlas's clock: the job's creation (a
	// flex job's restoreScheduledDate) and finish, the snapshot's time.
	d := r.Drill
	x.SnapshotAt = d.SnapshotAt
	if !d.JobCreatedAt.IsZero() {
		x.RequestedAt = d.JobCreatedAt
	}
	x.RestoreDuration = run.Duration(d.RestoreDuration())
	if !d.SnapshotAt.IsZero() && !d.JobCreatedAt.IsZero() {
		age := run.Duration(d.SnapshotAge())
		x.SnapshotAge = &age
	}
	if r.Action == run.ActionFlexRestore {
		x.SnapshotID, x.Verification = r.FlexSnapshotID, VerificationAtlasOnly
		if x.RestoreDuration == 0 && d.JobFinishedAt.IsZero() && !x.RequestedAt.IsZero() && !x.FinishedAt.IsZero() {
			// Recorded before flex restores kept Atlas's times: the
			// stage's start to the run's end, on the local clock.
			x.RestoreDuration = run.Duration(x.FinishedAt.Sub(x.RequestedAt))
		}
		return x, true
	}
	x.SnapshotID, x.SourceExportID = r.SnapshotID, d.SourceExportID
	x.Verification = d.Verification
	switch {
	case x.Verification != "":
	case r.Stage.Terminal():
		x.Verification = VerificationNone
	default:
		x.Verification = VerificationPending
	}
	if d.Verification == run.VerifiedByCommand || d.Verification == run.VerifyFailed {
		exit := d.VerifyExitCode
		x.VerifyExitCode, x.VerifyDuration = &exit, d.VerifyDuration
	}
	return x, true
}

func native(mc run.MonitorCluster) *Native {
	n := &Native{LastRead: mc.LastRead, LastError: mc.LastError, Flex: mc.Flex, Schedule: mc.Schedule,
		Newest: mc.Newest, Overdue: mc.Overdue, Compliance: mc.Compliance, Problems: mc.Problems}
	if n.Schedule == nil {
		n.Schedule = []run.NativeItem{}
	}
	for _, t := range mc.Newest {
		if t.After(n.NewestAny) {
			n.NewestAny = t
		}
	}
	return n
}
