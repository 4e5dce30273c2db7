package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/pollplan"
	"github.com/backupd/backupd/internal/run"
)

// step carries t's run forward until it has to wait for something (it
// then parks: the dispatcher wakes it when that is due) or reaches a
// terminal stage. It stops early, leaving the persisted state for the next
// start, when ctx ends. A transition the journal refused is written again
// first, exactly as it was: nothing acts on a state that is not durable.
func (e *Engine) step(ctx context.Context, t *task) {
	var r run.Run
	if w := t.unsaved; w != nil {
		if err := e.commit(w.pendingWrite, true); err != nil {
			e.writeFailed(t, w, err)
			return
		}
		e.log.Info("journal write succeeded again; the run goes on", append(runFields(w.r), zap.Int("failedAttempts", w.attempts))...)
		t.unsaved = nil
		r = w.r
	} else {
		e.mu.Lock()
		r = t.r.get()
		e.mu.Unlock()
	}

	var err error
	for !r.Stage.Terminal() {
		switch r.Stage {
		case run.StagePending:
			r, err = e.to(r, run.StageWaiting, "")
		case run.StageWaiting:
			r, err = e.wait(ctx, t, r)
		case run.StageSnapshotting:
			r, err = e.lockThen(ctx, t, r, e.snapshot)
		case run.StageExporting:
			r, err = e.lockThen(ctx, t, r, e.export)
		case run.StageRestoring:
			if r.Action == run.ActionRestoreDrill {
				r, err = e.lockThen(ctx, t, r, e.drillRestore)
			} else {
				r, err = e.lockThen(ctx, t, r, e.restore)
			}
		case run.StageVerifying:
			r, err = e.lockThen(ctx, t, r, e.drillVerify)
		default:
			r, err = e.fail(r, run.ReasonAtlasError, "unknown stage "+string(r.Stage))
		}
		if err == nil {
			continue
		}
		var p *parked
		var us *unsavedError
		switch {
		case errors.As(err, &us):
			// The run stays in flight in its last durable state (the
			// in-flight table and status show that one) until the write
			// succeeds.
			w := &unsavedWrite{pendingWrite: us.w}
			t.unsaved = w
			e.writeFailed(t, w, us.err)
		case errors.As(err, &p):
			e.keep(t, r)
			e.disp.park(t, p.until)
		case ctx.Err() != nil:
			e.keep(t, r)
			e.log.Info("run paused by shutdown; it resumes at the next start", runFields(r)...)
		case errors.Is(err, ErrNotActing):
			// The fence refused or cut off a request: this replica cannot
			// vouch for its lease now (a renewal too old, a pause). The
			// run waits in its recorded state; losing the lease ends the
			// engine, and a renewal lets the retry through.
			e.keep(t, r)
			e.log.Warn("run parked: this replica may not send to Atlas now", append(runFields(r), zap.Error(err))...)
			e.disp.park(t, e.clk.Now().Add(e.cfg.PollMin))
		default:
			e.keep(t, r)
			e.log.Error("run cannot go on; retrying", append(runFields(r), zap.Error(err))...)
			e.disp.park(t, e.clk.Now().Add(e.cfg.PollMin))
		}
		return
	}
	e.disp.finish(t)
	e.locks.release(lockKeys(r), r.ID)
	e.attachQueued(ctx, key(r.Policy, r.Target))
}

// Journal write retries back off from journalRetryMin, doubling up to
// journalRetryMax: a full disk is usually freed by an operator within
// minutes, and a retry is one small write.
const (
	journalRetryMin = time.Second
	journalRetryMax = time.Minute
)

// unsavedWrite is a transition step writes again before anything else.
type unsavedWrite struct {
	pendingWrite
	attempts int           // failed writes so far
	delay    time.Duration // the last wait before a retry
}

// writeFailed logs a refused journal write and parks the run until its
// retry.
func (e *Engine) writeFailed(t *task, w *unsavedWrite, err error) {
	w.attempts++
	e.mu.Lock()
	if w.attempts == 1 {
		e.unsavedRuns++
	}
	e.unsavedErr = err
	e.mu.Unlock()
	if w.delay == 0 {
		w.delay = journalRetryMin
	} else {
		w.delay = min(2*w.delay, journalRetryMax)
	}
	e.log.Error("journal write failed; the run waits in its last recorded state and the same write is retried",
		append(runFields(w.r), zap.Int("attempt", w.attempts), zap.Duration("retryIn", w.delay), zap.Error(err))...)
	e.disp.park(t, e.clk.Now().Add(w.delay))
}

// keep stores what a step learnt in memory (a parked run resumes from it).
func (e *Engine) keep(t *task, r run.Run) {
	e.mu.Lock()
	t.r.set(r, nil)
	e.mu.Unlock()
}

// lockKeys are the clusters a run must own while it works.
func lockKeys(r run.Run) []run.Target { return restoreLocks(r.Action, r.Target, &r.Spec) }

// lockKeys is lockKeys of the run kept.
func (k *taskRun) lockKeys() []run.Target {
	if k.spec == nil {
		return restoreLocks(k.Action, k.Target, &run.Spec{})
	}
	return restoreLocks(k.Action, k.Target, k.spec)
}

// restoreLocks are the clusters a run of action on t with spec must own: t,
// and a restore's target cluster.
func restoreLocks(action run.Action, t run.Target, spec *run.Spec) []run.Target {
	keys := []run.Target{t}
	if (action == run.ActionFlexRestore || action == run.ActionRestoreDrill) && spec.TargetCluster != "" {
		keys = append(keys, run.Target{ProjectID: spec.TargetProjectID, Cluster: spec.TargetCluster})
	}
	return keys
}

// lockThen re-takes the cluster lock of a re-attached run (which already owns
// the cluster in Atlas) and then runs the stage; while another run holds the
// cluster it parks until that run releases it.
func (e *Engine) lockThen(ctx context.Context, t *task, r run.Run, stage func(context.Context, *task, run.Run) (run.Run, error)) (run.Run, error) {
	if !e.locks.tryAcquire(lockKeys(r), r.ID, t) {
		return r, &parked{}
	}
	return stage(ctx, t, r)
}

// firstPollAfterCreate waits one poll interval before the first read of a
// job whose state Atlas has just told us (the create or the adoption
// returned it): reading it again at once would be a wasted request.
// Terminal jobs, and jobs whose state is unknown, are read at once, and so is
// a job whose poller has already waited (the run resumed from that wait).
func firstPollAfterCreate(p *poller, r run.Run, state string, terminal bool) error {
	if state == "" || terminal || !p.fresh() {
		return nil
	}
	return p.sleep(r)
}

// progress records what a poll saw (a job's status, an export's progress,
// what a waiting run waits for) for status and observers, without a journal
// write: only stages, intents and Atlas ids must be durable, and after a
// restart the run reads the rest from Atlas again. At fleet size this halves
// the journal's fsyncs per chain.
func (e *Engine) progress(r run.Run, note string) run.Run {
	r.UpdatedAt = e.clk.Now()
	e.mu.Lock()
	if t, ok := e.inflight[key(r.Policy, r.Target)]; ok && t.r.ID == r.ID {
		t.r.set(r, nil)
	}
	e.mu.Unlock()
	e.emit(r, r.Stage, 0, note)
	return r
}

// to moves r to stage and persists it.
func (e *Engine) to(r run.Run, stage run.Stage, note string) (run.Run, error) {
	from := r.Stage
	r.Stage = stage
	return e.save(r, from, note)
}

func (e *Engine) fail(r run.Run, reason, detail string) (run.Run, error) {
	from := r.Stage
	r.Stage, r.Reason, r.Detail = run.StageFailed, reason, detail
	e.log.Warn("run failed", append(runFields(r), zap.String("reason", reason), zap.String("detail", detail))...)
	return e.save(r, from, "")
}

func (e *Engine) skip(r run.Run, reason, detail string) (run.Run, error) {
	from := r.Stage
	r.Stage, r.Reason, r.Detail = run.StageSkipped, reason, detail
	return e.save(r, from, "")
}

func (e *Engine) timeout(r run.Run, what string) (run.Run, error) {
	return e.fail(r, run.ReasonTimeout, fmt.Sprintf("%s did not finish within %s (timeouts.%s); nothing was deleted in Atlas",
		what, r.Spec.Timeouts.For(r.Stage), timeoutKey(r.Stage)))
}

func timeoutKey(s run.Stage) string {
	switch s {
	case run.StageSnapshotting:
		return "snapshot"
	case run.StageExporting:
		return "export"
	case run.StageRestoring:
		return "restore"
	case run.StageVerifying:
		return "verify"
	}
	return "wait"
}

// deadline is when r's current stage times out (zero: never).
func deadline(r run.Run) time.Time {
	d := r.Spec.Timeouts.For(r.Stage)
	if d <= 0 {
		return time.Time{}
	}
	return r.StageStartedAt.Add(d)
}

// poller hands out the polling backoff of one phase of a run (waiting for
// the cluster, creating a job, polling a job): PollMin doubling up to
// PollMax, and never past the stage deadline so a timeout is noticed on time.
type poller struct {
	e     *Engine
	phase string
	cur   time.Duration
	// est plans the reads of a job from the cluster's history (learned
	// polling); while it has no plan for the job's elapsed time, the
	// backoff applies. Read once per job, when its polling starts.
	// estimated says it was read.
	est pollplan.Estimate
	// waited reports that the phase has parked the run at least once.
	// (The two flags are side by side: apart, their padding made a poller
	// 120 bytes, a 128-byte allocation per run in flight; together 112.)
	waited    bool
	estimated bool
	// seenRunning is when the last read that found the job unfinished was
	// sent: the job ran at least until then.
	seenRunning time.Time
	// since is when the polled job started (jobStart); zero for a phase
	// that polls no job. Plans and durations count from it.
	since time.Time
}

// fresh reports that the phase has not waited yet.
func (p *poller) fresh() bool { return !p.waited }

// sleep parks the run until its next poll (a *parked error). It returns
// errDeadline instead once the stage's deadline has passed.
func (p *poller) sleep(r run.Run) error { return p.backoff(r, nil, p.e.cfg.PollMax) }

// sleepAfter is sleep after Atlas answered err: the wait is at least the
// answer's Retry-After (still never past the stage deadline).
func (p *poller) sleepAfter(r run.Run, err error) error { return p.backoff(r, err, p.e.cfg.PollMax) }

// resendMax caps the backoff between re-sends of a POST whose outcome was
// unknown. It is longer than PollMax: each re-send is a create Atlas may
// have to refuse, not a cheap read.
const resendMax = 15 * time.Minute

// backoff parks the run for the phase's next wait: PollMin doubling up to
// ceiling, at least err's Retry-After (the doubling goes on from there),
// and never past the stage deadline.
//
// A job whose cluster has a history waits as its plan says instead
// (pollplan.Plan.Next): asleep until shortly before the expected end, then
// short reads; the backoff takes over when the plan gives up on the job.
func (p *poller) backoff(r run.Run, err error, ceiling time.Duration) error {
	now := p.e.clk.Now()
	var left time.Duration
	if dl := deadline(r); !dl.IsZero() {
		if left = dl.Sub(now); left <= 0 {
			return errDeadline
		}
	}
	since := p.since
	if since.IsZero() {
		since = r.StageStartedAt
	}
	d, planned := p.e.hist.plan.Next(p.est, now.Sub(since), left)
	if !planned {
		if p.cur == 0 {
			p.cur = p.e.cfg.PollMin
		} else {
			p.cur = min(p.cur*2, max(ceiling, p.cur))
		}
		if ae, ok := atlas.AsError(err); ok && ae.RetryAfter > p.cur {
			p.cur = ae.RetryAfter
		}
		d = p.cur
	} else if ae, ok := atlas.AsError(err); ok && ae.RetryAfter > d {
		d = ae.RetryAfter
	}
	if left > 0 {
		d = min(d, left)
	}
	p.waited = true
	return &parked{until: now.Add(d)}
}

// wait takes the cluster lock and waits until Atlas can take the action:
// the cluster exists, is IDLE and supports it, and no on-demand snapshot is
// queued or in progress on it — whoever took it.
func (e *Engine) wait(ctx context.Context, t *task, r run.Run) (run.Run, error) {
	if !e.locks.tryAcquire(lockKeys(r), r.ID, t) {
		dl := deadline(r)
		if !dl.IsZero() && !e.clk.Now().Before(dl) {
			holder, _ := e.locks.holder(r.Target)
			return e.timeout(r, "waiting for run "+string(holder)+" on the same cluster")
		}
		return r, &parked{until: dl}
	}
	before := r.Detail
	next, done, err := e.ready(ctx, r)
	if err != nil || done {
		return next, err
	}
	r = next
	if r.Detail != before {
		// Tell status what the run waits for.
		r = e.progress(r, "waiting: "+r.Detail)
	}
	if err := t.poller(e, "wait").sleep(r); err != nil {
		if errors.Is(err, errDeadline) {
			return e.timeout(r, "waiting for the cluster ("+r.Detail+")")
		}
		return r, err
	}
	return r, nil
}

// ready checks once whether r can leave the waiting stage. done reports that
// r moved on (to its action's stage or to a terminal one); otherwise r.Detail
// says what it is waiting for.
func (e *Engine) ready(ctx context.Context, r run.Run) (run.Run, bool, error) {
	t := r.Target
	if r.Action == run.ActionRestoreDrill {
		return e.drillReady(ctx, r)
	}
	if r.Action == run.ActionFlexRestore {
		fc, err := e.atlas.GetFlexCluster(ctx, t.ProjectID, t.Cluster)
		switch classify(ctx, err) {
		case errNone:
		case errStopped:
			return r, false, err
		case errNotFound:
			next, err := e.fail(r, run.ReasonNotFound, "flex cluster "+t.String()+" not found")
			return next, true, err
		case errRejected:
			next, err := e.fail(r, run.ReasonAtlasError, err.Error())
			return next, true, err
		default:
			r.Detail = "Atlas unavailable: " + err.Error()
			return r, false, nil
		}
		if fc.StateName != "" && fc.StateName != atlas.ClusterIdle {
			r.Detail = "flex cluster is " + string(fc.StateName)
			return r, false, nil
		}
		r.Detail = ""
		next, err := e.to(r, run.StageRestoring, "")
		return next, true, err
	}

	c, r, done, err := e.waitingCluster(ctx, r, t, "cluster", false)
	if c == nil {
		return r, done, err
	}
	if why := unsupported(c); why != "" {
		next, err := e.skip(r, run.ReasonNotSupported, why)
		return next, true, err
	}
	if c.StateName != "" && c.StateName != atlas.ClusterIdle {
		r.Detail = "cluster is " + string(c.StateName)
		return r, false, nil
	}
	r.SnapshotKind = string(atlas.KindReplicaSet)
	if c.ClusterType == atlas.ClusterSharded || c.ClusterType == atlas.ClusterGeoSharded {
		r.SnapshotKind = string(atlas.KindShardedCluster)
	}
	if r.Action == run.ActionExport {
		r.Detail = ""
		next, err := e.to(r, run.StageExporting, "")
		return next, true, err
	}
	if !e.mayHaveMarker(r) {
		// Nothing to adopt, and an on-demand snapshot someone else
		// queued is answered by the request itself
		// (UNFINISHED_ON_DEMAND_SNAPSHOT: the run waits and asks again):
		// the listing would tell nothing the request does not.
		r.Detail = ""
		next, err := e.to(r, run.StageSnapshotting, "")
		return next, true, err
	}
	snaps, err := e.atlas.ListSnapshots(ctx, t.ProjectID, t.Cluster, atlas.SnapshotKind(r.SnapshotKind))
	if k := classify(ctx, err); k == errStopped {
		return r, false, err
	} else if k != errNone {
		r.Detail = "listing snapshots: " + err.Error()
		return r, false, nil
	}
	if s := findSnapshot(snaps, r.ID); s != nil {
		// An older journal: this run's snapshot was requested already.
		r = adoptSnapshot(r, s)
		r.SnapshotRequested = true
		next, err := e.to(r, run.StageSnapshotting, "adopted snapshot "+s.ID+" "+string(s.Status)+", found by its marker")
		return next, true, err
	}
	for _, s := range snaps {
		if s.SnapshotType == atlas.SnapshotOnDemand && (s.Status == atlas.SnapshotQueued || s.Status == atlas.SnapshotInProgress) {
			r.Detail = "on-demand snapshot " + s.ID + " is " + string(s.Status)
			return r, false, nil
		}
	}
	r.Detail = ""
	next, err := e.to(r, run.StageSnapshotting, "")
	return next, true, err
}

// markerSkew widens "before this process started" for slots: a process
// on another host, whose clock ran ahead, may have fired a slot this one
// sees as just after its start.
const markerSkew = time.Minute

// mayHaveMarker reports whether Atlas may hold a snapshot or export carrying
// r's marker that this process did not create: r was recorded before this
// process started (re-attached from a journal, which may be older than
// Atlas), or its slot came before the start, so an earlier process may
// have fired it (a run's id is derived from policy, target and slot; the
// journal that recorded it may be lost or older). Only then do the
// pre-checks list snapshots and exports to adopt by marker. A run this
// process fired for a later slot, or a manual one, is the first to carry
// its id. After a request whose outcome is unknown the stage lists anyway
// (createOnce), whatever this says.
func (e *Engine) mayHaveMarker(r run.Run) bool {
	return r.CreatedAt.Before(e.startedAt) || (!r.Manual && r.Slot.Before(e.startedAt.Add(markerSkew)))
}

// waitingCluster reads cluster t for the waiting stage. It returns the
// cluster, or nil when the run ended (done: failed not_found, skipped
// not_supported, failed atlas_error) or must wait (r.Detail says why:
// Atlas unavailable, or, with waitIfMissing, the cluster not there yet).
// what names t in messages.
func (e *Engine) waitingCluster(ctx context.Context, r run.Run, t run.Target, what string, waitIfMissing bool) (_ *atlas.Cluster, _ run.Run, done bool, _ error) {
	c, err := e.atlas.GetCluster(ctx, t.ProjectID, t.Cluster)
	switch classify(ctx, err) {
	case errNone:
		return c, r, false, nil
	case errStopped:
		return nil, r, false, err
	case errNotFound:
		if waitIfMissing {
			r.Detail = what + " " + t.String() + " does not exist (yet)"
			return nil, r, false, nil
		}
		next, err := e.fail(r, run.ReasonNotFound, what+" "+t.String()+" not found")
		return nil, next, true, err
	case errRejected:
		if atlas.IsCode(err, notSupportedCodes...) {
			next, err := e.skip(r, run.ReasonNotSupported, err.Error())
			return nil, next, true, err
		}
		next, err := e.fail(r, run.ReasonAtlasError, err.Error())
		return nil, next, true, err
	}
	r.Detail = "Atlas unavailable: " + err.Error()
	return nil, r, false, nil
}

// unsupported says why Atlas cannot take cloud backups of c, or "".
func unsupported(c *atlas.Cluster) string {
	switch {
	case c.Paused:
		return "cluster is paused"
	case !c.BackupEnabled:
		return "cloud backup is not enabled on the cluster"
	}
	size := c.InstanceSize()
	for _, small := range []string{"M0", "M2", "M5", "FLEX"} {
		if size == small {
			return "tier " + size + " is below M10"
		}
	}
	for _, rs := range c.ReplicationSpecs {
		for _, rc := range rs.RegionConfigs {
			if rc.ProviderName == "TENANT" || rc.ProviderName == "FLEX" {
				return "shared-tier (" + rc.ProviderName + ") clusters cannot take cloud backup snapshots"
			}
		}
	}
	return ""
}

// snapshotDescription is the description sent with the snapshot: the user's
// text plus the run marker, policy and slot, so a restart without a journal
// can find and finish the run.
func snapshotDescription(r run.Run) string {
	marker := fmt.Sprintf("%s policy=%s slot=%s", r.ID.Marker(), r.Policy, r.Slot.UTC().Format(time.RFC3339))
	if r.Manual {
		marker += " manual"
	}
	return strings.TrimSpace(r.Spec.Description + " [" + marker + "]")
}

// snapshot requests the snapshot (or adopts the one an earlier attempt
// created) and polls it to completed or failed.
func (e *Engine) snapshot(ctx context.Context, tk *task, r run.Run) (run.Run, error) {
	t := r.Target
	kind := atlas.SnapshotKind(r.SnapshotKind)
	if !r.SnapshotRequested && r.SnapshotID == "" && r.StageStartedAt.Before(e.startedAt) {
		// Re-attached from a journal that may be older than Atlas (a
		// restored copy of the state directory): look for the snapshot
		// carrying the run's marker before the first request, as an
		// unknown outcome does.
		r.SnapshotRequested = true
	}
	r, ended, err := e.createOnce(ctx, tk, r, creation{
		what:        "snapshot",
		requestNote: "requesting on-demand snapshot",
		busy:        "another on-demand snapshot is queued or in progress",
		intent:      func(r *run.Run) *bool { return &r.SnapshotRequested },
		created:     func(r run.Run) bool { return r.SnapshotID != "" },
		describe:    func(r run.Run) string { return "snapshot " + r.SnapshotID + " " + r.SnapshotStatus },
		find: func(ctx context.Context, r run.Run) (run.Run, bool, error) {
			snaps, err := e.atlas.ListSnapshots(ctx, t.ProjectID, t.Cluster, kind)
			if s := findSnapshot(snaps, r.ID); err == nil && s != nil {
				return adoptSnapshot(r, s), true, nil
			}
			return r, false, err
		},
		create: func(ctx context.Context, r run.Run) (run.Run, error) {
			s, err := e.atlas.TakeSnapshot(ctx, t.ProjectID, t.Cluster, atlas.OnDemandSnapshotRequest{
				Description: snapshotDescription(r), RetentionInDays: r.Spec.RetentionInDays,
			})
			if err != nil {
				return r, err
			}
			return adoptSnapshot(r, s), nil
		},
	})
	if err != nil || ended {
		return r, err
	}

	return pollJob(ctx, e, tk, r, jobPoll[*atlas.Snapshot]{
		phase: "poll snapshot", what: "snapshot " + r.SnapshotID,
		known: r.SnapshotStatus, terminal: atlas.SnapshotStatus(r.SnapshotStatus).Terminal(),
		succeeded: func(s *atlas.Snapshot) bool { return s.Status == atlas.SnapshotCompleted },
		get: func(ctx context.Context) (*atlas.Snapshot, error) {
			return e.atlas.GetSnapshot(ctx, t.ProjectID, t.Cluster, r.SnapshotID, atlas.SnapshotKind(r.SnapshotKind))
		},
		seen: func(r run.Run, s *atlas.Snapshot) (run.Run, bool, error) {
			if string(s.Status) != r.SnapshotStatus {
				r.SnapshotStatus = string(s.Status)
				r.SnapshotBytes = s.StorageSizeBytes
				r = e.progress(r, "snapshot "+s.ID+" "+string(s.Status))
			}
			switch s.Status {
			case atlas.SnapshotCompleted:
				r.Detail = ""
				if r.Spec.ExportBucketID != "" {
					return moved(e.to(r, run.StageExporting, ""))
				}
				return moved(e.to(r, run.StageSucceeded, ""))
			case atlas.SnapshotFailed:
				return moved(e.fail(r, run.ReasonSnapshotFailed, "Atlas reports snapshot "+s.ID+" failed"))
			}
			return r, false, nil
		},
	})
}

func adoptSnapshot(r run.Run, s *atlas.Snapshot) run.Run {
	r.SnapshotID = s.ID
	if s.Type != "" {
		r.SnapshotKind = string(s.Type)
	}
	r.SnapshotStatus = string(s.Status)
	r.SnapshotBytes = s.StorageSizeBytes
	r.Detail = ""
	return r
}

func findSnapshot(snaps []atlas.Snapshot, id run.ID) *atlas.Snapshot {
	m := id.Marker()
	for i := range snaps {
		if strings.Contains(snaps[i].Description, m) {
			return &snaps[i]
		}
	}
	return nil
}

// stageErr turns a poll error into the run's outcome: a passed deadline
// fails the run with timeout, anything else (shutdown) is returned.
func (e *Engine) stageErr(r run.Run, err error, what string) (run.Run, error) {
	if errors.Is(err, errDeadline) {
		return e.timeout(r, what)
	}
	return r, err
}

// exportLabels are the customData sent with the export: the user's keys
// plus backupd's markers.
func exportLabels(r run.Run) []atlas.Label {
	out := make([]atlas.Label, 0, len(r.Spec.CustomData)+3)
	for _, l := range r.Spec.CustomData {
		out = append(out, atlas.Label{Key: l.Key, Value: l.Value})
	}
	return append(out,
		atlas.Label{Key: "backupd.policy", Value: r.Policy},
		atlas.Label{Key: "backupd.run", Value: string(r.ID)},
		atlas.Label{Key: "backupd.scheduledAt", Value: r.ScheduledAt.UTC().Format(time.RFC3339)},
	)
}

func findExport(jobs []atlas.ExportJob, id run.ID) *atlas.ExportJob {
	for i := range jobs {
		for _, l := range jobs[i].CustomData {
			if l.Key == "backupd.run" && l.Value == string(id) {
				return &jobs[i]
			}
		}
	}
	return nil
}

// newestExportable is the newest completed snapshot that is not a fallback.
func newestExportable(snaps []atlas.Snapshot) *atlas.Snapshot {
	var best *atlas.Snapshot
	for i := range snaps {
		s := &snaps[i]
		if s.Status != atlas.SnapshotCompleted || s.SnapshotType == atlas.SnapshotFallback {
			continue
		}
		if best == nil || s.CreatedAt.After(best.CreatedAt) {
			best = s
		}
	}
	return best
}

func adoptExport(r run.Run, j *atlas.ExportJob) run.Run {
	r.SnapshotID, r.ExportJobID, r.ExportState, r.ExportRequested = j.SnapshotID, j.ID, string(j.State), true
	if j.ExportBucketID != "" {
		r.ExportBucketID = j.ExportBucketID
	}
	return r
}

// activeOrDoneExport is an export of snapshot to bucket that is queued, in
// progress or successful, whoever started it.
func activeOrDoneExport(jobs []atlas.ExportJob, snapshotID, bucketID string) *atlas.ExportJob {
	for i := range jobs {
		j := &jobs[i]
		if j.SnapshotID == snapshotID && j.ExportBucketID == bucketID &&
			(j.State == atlas.ExportQueued || j.State == atlas.ExportInProgress || j.State == atlas.ExportSuccessful) {
			return j
		}
	}
	return nil
}

// exportPrecheck runs before the first export request, when the journal
// holds no export intent. The journal may be older than Atlas (a restored
// backup of the state directory, a volume snapshot): an export carrying the
// run's marker is adopted instead of created again. And an export policy
// (source: latest) whose newest snapshot already has an export to the
// bucket, queued, in progress or successful, ends skipped{no_new_snapshot}
// rather than exporting the same snapshot again. ended reports that r
// reached a terminal stage.
func (e *Engine) exportPrecheck(ctx context.Context, tk *task, r run.Run) (_ run.Run, ended bool, _ error) {
	t := r.Target
	jobs, err := e.atlas.ListExports(ctx, t.ProjectID, t.Cluster)
	if err != nil {
		r, err = e.readFailed(ctx, tk, r, err, "list exports", "the export jobs of "+t.String())
		return r, r.Stage.Terminal(), err
	}
	if j := findExport(jobs, r.ID); j != nil {
		r = adoptExport(r, j)
		r, err = e.to(r, r.Stage, "adopted export "+j.ID+" "+string(j.State)+", found by its marker")
		return r, false, err
	}
	if r.Action == run.ActionExport {
		if j := activeOrDoneExport(jobs, r.SnapshotID, r.Spec.ExportBucketID); j != nil {
			r, err = e.skip(r, run.ReasonNoNewSnapshot, fmt.Sprintf("the newest completed snapshot %s already has export %s (%s) to bucket %s; no new snapshot to export",
				r.SnapshotID, j.ID, j.State, r.Spec.ExportBucketID))
			return r, true, err
		}
	}
	return r, false, nil
}

// export creates the export job (or adopts the one an earlier attempt
// created) and polls it to a terminal state.
func (e *Engine) export(ctx context.Context, tk *task, r run.Run) (run.Run, error) {
	t := r.Target
	if r.SnapshotID == "" { // source: latest
		for r.SnapshotID == "" {
			snaps, err := e.atlas.ListSnapshots(ctx, t.ProjectID, t.Cluster, atlas.SnapshotKind(r.SnapshotKind))
			if err != nil {
				return e.readFailed(ctx, tk, r, err, "find snapshot", "the snapshots of "+t.String())
			}
			s := newestExportable(snaps)
			if s == nil {
				return e.fail(r, run.ReasonNoSnapshot, "no completed, non-fallback snapshot of "+t.String()+" to export")
			}
			r = adoptSnapshot(r, s)
			if r, err = e.to(r, r.Stage, "exporting newest completed snapshot "+s.ID); err != nil {
				return r, err
			}
		}
	}
	if r.ExportJobID == "" && !r.ExportRequested && (r.Action == run.ActionExport || e.mayHaveMarker(r)) {
		next, ended, err := e.exportPrecheck(ctx, tk, r)
		if err != nil || ended {
			return next, err
		}
		r = next
	}
	r.ExportBucketID = r.Spec.ExportBucketID
	r, ended, err := e.createOnce(ctx, tk, r, creation{
		what:        "export",
		requestNote: "requesting export of snapshot " + r.SnapshotID,
		busy:        "another export of snapshot " + r.SnapshotID + " is active",
		intent:      func(r *run.Run) *bool { return &r.ExportRequested },
		created:     func(r run.Run) bool { return r.ExportJobID != "" },
		describe:    func(r run.Run) string { return "export " + r.ExportJobID + " " + r.ExportState },
		find: func(ctx context.Context, r run.Run) (run.Run, bool, error) {
			jobs, err := e.atlas.ListExports(ctx, t.ProjectID, t.Cluster)
			if j := findExport(jobs, r.ID); err == nil && j != nil {
				return adoptExport(r, j), true, nil
			}
			return r, false, err
		},
		create: func(ctx context.Context, r run.Run) (run.Run, error) {
			j, err := e.atlas.CreateExport(ctx, t.ProjectID, t.Cluster, atlas.ExportJobRequest{
				ExportBucketID: r.Spec.ExportBucketID, SnapshotID: r.SnapshotID, CustomData: exportLabels(r),
			})
			if err != nil {
				return r, err
			}
			r.ExportJobID, r.ExportState = j.ID, string(j.State)
			return r, nil
		},
	})
	if err != nil || ended {
		return r, err
	}

	return pollJob(ctx, e, tk, r, jobPoll[*atlas.ExportJob]{
		phase: "poll export", what: "export " + r.ExportJobID,
		known: r.ExportState, terminal: atlas.ExportState(r.ExportState).Terminal(),
		succeeded: func(j *atlas.ExportJob) bool { return j.State == atlas.ExportSuccessful },
		get: func(ctx context.Context) (*atlas.ExportJob, error) {
			return e.atlas.GetExport(ctx, t.ProjectID, t.Cluster, r.ExportJobID)
		},
		seen: func(r run.Run, j *atlas.ExportJob) (run.Run, bool, error) {
			progress := ""
			if j.ExportStatus != nil {
				progress = fmt.Sprintf("%d/%d", j.ExportStatus.ExportedCollections, j.ExportStatus.TotalCollections)
			}
			if string(j.State) != r.ExportState || progress != r.ExportProgress {
				r.ExportState, r.ExportProgress = string(j.State), progress
				note := "export " + j.ID + " " + string(j.State)
				if progress != "" {
					note += " " + progress + " collections"
				}
				// Progress does not reset the backoff: an export moves on
				// nearly every poll, and polling it every PollMin instead
				// of backing off to PollMax tripled the GETs per export at
				// fleet size (docs/benchmarks.md).
				r = e.progress(r, note)
			}
			switch j.State {
			case atlas.ExportSuccessful:
				r.Detail = ""
				return moved(e.to(r, run.StageSucceeded, ""))
			case atlas.ExportFailed:
				detail := "Atlas reports export " + j.ID + " Failed"
				if j.StateReason != nil {
					detail += ": " + strings.TrimSpace(j.StateReason.ErrorCode+" "+j.StateReason.Message)
				}
				return moved(e.fail(r, run.ReasonExportFailed, detail))
			case atlas.ExportCancelled:
				return moved(e.fail(r, run.ReasonExportCancelled, "Atlas reports export "+j.ID+" Cancelled"))
			}
			return r, false, nil
		},
	})
}

// newestFlex is the newest COMPLETED flex snapshot.
func newestFlex(snaps []atlas.FlexSnapshot) *atlas.FlexSnapshot {
	var best *atlas.FlexSnapshot
	for i := range snaps {
		s := &snaps[i]
		if s.Status != atlas.FlexCompleted {
			continue
		}
		if best == nil || flexTime(*s).After(flexTime(*best)) {
			best = s
		}
	}
	return best
}

func flexTime(s atlas.FlexSnapshot) time.Time {
	if !s.FinishTime.IsZero() {
		return s.FinishTime
	}
	return s.ScheduledTime
}

// restoreOf reports whether j restores r's flex snapshot into r's target.
func restoreOf(j *atlas.FlexRestoreJob, r run.Run) bool {
	return j.SnapshotID == r.FlexSnapshotID && j.TargetDeploymentItemName == r.Spec.TargetCluster &&
		(j.TargetProjectID == "" || j.TargetProjectID == r.Spec.TargetProjectID)
}

// restoreBaseline is what jobs show before r's first restore request.
func restoreBaseline(jobs []atlas.FlexRestoreJob, r run.Run) run.RestoreBaseline {
	b := run.RestoreBaseline{Taken: true}
	for i := range jobs {
		if j := &jobs[i]; restoreOf(j, r) && j.RestoreScheduledDate.After(b.NewestJob) {
			b.NewestJob = j.RestoreScheduledDate
		}
	}
	return b
}

// findRestore adopts the restore job this run created. Flex restore jobs
// carry no free-text field for a marker, so it matches snapshot and target
// among the jobs Atlas dated after the run's baseline, on Atlas's own clock
// (comparing them with the local clock adopted an earlier job, or missed
// this one, when the clocks disagreed). Of several, the oldest is the
// run's: its request went first. A run journaled before baselines were
// kept falls back to its stage start, give or take a minute.
func findRestore(jobs []atlas.FlexRestoreJob, r run.Run) *atlas.FlexRestoreJob {
	var found *atlas.FlexRestoreJob
	for i := range jobs {
		j := &jobs[i]
		if !restoreOf(j, r) {
			continue
		}
		b := r.RestoreBaseline
		switch {
		case b.Taken && !b.NewestJob.IsZero() && !j.RestoreScheduledDate.After(b.NewestJob):
			continue
		case !b.Taken && !j.RestoreScheduledDate.IsZero() && j.RestoreScheduledDate.Before(r.StageStartedAt.Add(-time.Minute)):
			continue
		}
		if found == nil || j.RestoreScheduledDate.Before(found.RestoreScheduledDate) {
			found = j
		}
	}
	return found
}

// takeRestoreBaseline records, before a run's first restore request, what
// the source's restore jobs show (baseline sums up list's answer); it is
// persisted with the request's intent. Restore jobs carry no marker, and
// after an unknown outcome only this tells the run's job from earlier ones.
// stop reports that the stage must return r and err now: parked until the
// list can be read again, failed (the source is gone), or stopped.
func takeRestoreBaseline[J any](ctx context.Context, e *Engine, tk *task, r run.Run, what string,
	baseline func([]J, run.Run) run.RestoreBaseline, list func(context.Context) ([]J, error)) (_ run.Run, stop bool, _ error) {
	if r.RestoreJobID != "" || r.RestoreRequested || r.RestoreBaseline.Taken {
		return r, false, nil
	}
	jobs, err := list(ctx)
	switch classify(ctx, err) {
	case errNone:
		r.RestoreBaseline = baseline(jobs, r)
		return r, false, nil
	case errStopped:
		return r, true, err
	case errNotFound:
		r, err = e.fail(r, run.ReasonNotFound, err.Error())
		return r, true, err
	}
	err = tk.poller(e, "list restores").sleepAfter(r, err)
	r, err = e.stageErr(r, err, "listing "+what)
	return r, true, err
}

// adoptFlexJob records what Atlas says of the run's flex restore job: its
// id and status, and in the run's restore record the times on Atlas's
// clock — scheduled (the restore's start), finished, and the snapshot's
// finish when the run did not read it from the snapshot itself (a run
// recovered from Atlas) — so a flex restore reports its snapshot's age and
// restore time as a drill does.
func adoptFlexJob(r run.Run, j *atlas.FlexRestoreJob) run.Run {
	r.RestoreJobID, r.RestoreStatus, r.Detail = j.ID, string(j.Status), ""
	if !j.RestoreScheduledDate.IsZero() {
		r.Drill.JobCreatedAt = j.RestoreScheduledDate
	}
	if !j.RestoreFinishedDate.IsZero() {
		r.Drill.JobFinishedAt = j.RestoreFinishedDate
	}
	if r.Drill.SnapshotAt.IsZero() && !j.SnapshotFinishedDate.IsZero() {
		r.Drill.SnapshotAt = j.SnapshotFinishedDate
	}
	return r
}

// restore restores the newest completed flex snapshot into the target and
// polls the job to COMPLETED or FAILED.
func (e *Engine) restore(ctx context.Context, tk *task, r run.Run) (run.Run, error) {
	t := r.Target
	for r.FlexSnapshotID == "" {
		snaps, err := e.atlas.ListFlexSnapshots(ctx, t.ProjectID, t.Cluster)
		if err != nil {
			return e.readFailed(ctx, tk, r, err, "find flex snapshot", "the snapshots of flex cluster "+t.String())
		}
		s := newestFlex(snaps)
		if s == nil {
			return e.fail(r, run.ReasonNoSnapshot, "flex cluster "+t.String()+" has no COMPLETED snapshot")
		}
		r.FlexSnapshotID, r.Detail = s.ID, ""
		r.Drill.SnapshotAt = flexTime(*s)
		if r, err = e.to(r, r.Stage, "restoring flex snapshot "+s.ID); err != nil {
			return r, err
		}
	}
	r, stop, err := takeRestoreBaseline(ctx, e, tk, r, "the flex cluster's restore jobs", restoreBaseline,
		func(ctx context.Context) ([]atlas.FlexRestoreJob, error) {
			return e.atlas.ListFlexRestores(ctx, t.ProjectID, t.Cluster)
		})
	if stop {
		return r, err
	}
	target := r.Spec.TargetProjectID + "/" + r.Spec.TargetCluster
	r, ended, err := e.createOnce(ctx, tk, r, creation{
		what:        "restore",
		requestNote: "requesting restore into " + target,
		busy:        "a restore into " + target + " is already in progress",
		intent:      func(r *run.Run) *bool { return &r.RestoreRequested },
		created:     func(r run.Run) bool { return r.RestoreJobID != "" },
		describe:    func(r run.Run) string { return "restore job " + r.RestoreJobID + " " + r.RestoreStatus },
		find: func(ctx context.Context, r run.Run) (run.Run, bool, error) {
			jobs, err := e.atlas.ListFlexRestores(ctx, t.ProjectID, t.Cluster)
			if j := findRestore(jobs, r); err == nil && j != nil {
				return adoptFlexJob(r, j), true, nil
			}
			return r, false, err
		},
		create: func(ctx context.Context, r run.Run) (run.Run, error) {
			j, err := e.atlas.CreateFlexRestore(ctx, t.ProjectID, t.Cluster, atlas.FlexRestoreJobRequest{
				SnapshotID: r.FlexSnapshotID, TargetDeploymentItemName: r.Spec.TargetCluster, TargetProjectID: r.Spec.TargetProjectID,
			})
			if err != nil {
				return r, err
			}
			return adoptFlexJob(r, j), nil
		},
	})
	if err != nil || ended {
		return r, err
	}

	return pollJob(ctx, e, tk, r, jobPoll[*atlas.FlexRestoreJob]{
		phase: "poll restore", what: "restore job " + r.RestoreJobID,
		known: r.RestoreStatus, terminal: atlas.FlexStatus(r.RestoreStatus).Terminal(),
		succeeded: func(j *atlas.FlexRestoreJob) bool { return j.Status == atlas.FlexCompleted },
		get: func(ctx context.Context) (*atlas.FlexRestoreJob, error) {
			return e.atlas.GetFlexRestore(ctx, t.ProjectID, t.Cluster, r.RestoreJobID)
		},
		seen: func(r run.Run, j *atlas.FlexRestoreJob) (run.Run, bool, error) {
			if string(j.Status) != r.RestoreStatus {
				r = adoptFlexJob(r, j)
				r = e.progress(r, "restore job "+j.ID+" "+string(j.Status))
			}
			switch j.Status {
			case atlas.FlexCompleted:
				r = adoptFlexJob(r, j)
				return moved(e.to(r, run.StageSucceeded, ""))
			case atlas.FlexFailed:
				return moved(e.fail(r, run.ReasonRestoreFailed, "Atlas reports restore job "+j.ID+" FAILED"))
			}
			return r, false, nil
		},
	})
}
