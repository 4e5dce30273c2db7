package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/verify"
)

// A restore drill restores a dedicated cluster's snapshot into a scratch
// cluster (the run's Target is the source; Spec.TargetProjectID and
// Spec.TargetCluster the scratch), waits until Atlas reports the job done
// and the target IDLE again, and then, when the policy has one, runs the
// user's verify command. It holds both clusters' locks throughout, and
// like every other run never cancels or deletes anything on a timeout.

// drillTarget is the scratch cluster a drill restores into.
func drillTarget(r run.Run) run.Target {
	return run.Target{ProjectID: r.Spec.TargetProjectID, Cluster: r.Spec.TargetCluster}
}

// restoresInto reports whether j restores into t.
func restoresInto(j *atlas.RestoreJob, t run.Target) bool {
	return j.TargetClusterName == t.Cluster && (j.TargetGroupID == "" || j.TargetGroupID == t.ProjectID)
}

// drillReady is the waiting stage of a drill: the source exists and can
// take cloud backups; the target exists, is not paused, is IDLE, and no
// restore of the source's into it is still running (a restore from
// elsewhere shows as the target not IDLE, or as Atlas's 409 on the POST).
func (e *Engine) drillReady(ctx context.Context, r run.Run) (run.Run, bool, error) {
	src, tgt := r.Target, drillTarget(r)
	c, r, done, err := e.waitingCluster(ctx, r, src, "drill source cluster", false)
	if c == nil {
		return r, done, err
	}
	if why := unsupported(c); why != "" {
		next, err := e.skip(r, run.ReasonNotSupported, "drill source: "+why)
		return next, true, err
	}
	r.SnapshotKind = string(atlas.KindReplicaSet)
	if c.ClusterType == atlas.ClusterSharded || c.ClusterType == atlas.ClusterGeoSharded {
		r.SnapshotKind = string(atlas.KindShardedCluster)
	}

	tc, r, done, err := e.waitingCluster(ctx, r, tgt, "drill target", true)
	if tc == nil {
		return r, done, err
	}
	if tc.Paused {
		next, err := e.skip(r, run.ReasonNotSupported, "drill target "+tgt.String()+" is paused")
		return next, true, err
	}
	if tc.StateName != "" && tc.StateName != atlas.ClusterIdle {
		r.Detail = "drill target is " + string(tc.StateName)
		return r, false, nil
	}
	jobs, err := e.atlas.ListRestores(ctx, src.ProjectID, src.Cluster)
	if k := classify(ctx, err); k == errStopped {
		return r, false, err
	} else if k != errNone {
		r.Detail = "listing restore jobs: " + err.Error()
		return r, false, nil
	}
	for i := range jobs {
		if j := &jobs[i]; restoresInto(j, tgt) && j.State() == atlas.RestoreRunning && j.ID != r.RestoreJobID {
			r.Detail = "restore job " + j.ID + " into the drill target is still running"
			return r, false, nil
		}
	}
	r.Detail = ""
	next, err := e.to(r, run.StageRestoring, "")
	return next, true, err
}

// drillSnapshot picks the snapshot to restore: the newest completed
// non-fallback one, or (snapshot: exported) the newest of those with a
// successful export carrying backupd's run marker. It returns nil when
// there is none, and the export chosen by.
func (e *Engine) drillSnapshot(ctx context.Context, r run.Run) (*atlas.Snapshot, string, error) {
	src := r.Target
	snaps, err := e.atlas.ListSnapshots(ctx, src.ProjectID, src.Cluster, atlas.SnapshotKind(r.SnapshotKind))
	if err != nil {
		return nil, "", err
	}
	if r.Spec.DrillSnapshot != "exported" {
		return newestExportable(snaps), "", nil
	}
	jobs, err := e.atlas.ListExports(ctx, src.ProjectID, src.Cluster)
	if err != nil {
		return nil, "", err
	}
	var best *atlas.Snapshot
	exportID := ""
	for i := range jobs {
		j := &jobs[i]
		if j.State != atlas.ExportSuccessful || label(*j, "backupd.run") == "" {
			continue
		}
		for k := range snaps {
			s := &snaps[k]
			if s.ID == j.SnapshotID && s.Status == atlas.SnapshotCompleted && s.SnapshotType != atlas.SnapshotFallback &&
				(best == nil || s.CreatedAt.After(best.CreatedAt)) {
				best, exportID = s, j.ID
			}
		}
	}
	return best, exportID, nil
}

// maxBaselineJobs bounds the job ids a drill's baseline keeps, and so the
// run's record: a snapshot restored into the same target more often than
// that (snapshot: exported, the same export for months) keeps the newest
// creation time and the ids of its second instead.
const maxBaselineJobs = 64

// drillBaseline is what the source's job list shows before the run's first
// restore request: the ids of the jobs restoring the same snapshot into
// the same target, and the newest creation time among them on Atlas's
// clock (read from the ids). Past maxBaselineJobs it keeps only the ids
// created in that newest second.
func drillBaseline(jobs []atlas.RestoreJob, r run.Run) run.RestoreBaseline {
	b := run.RestoreBaseline{Taken: true, AllJobs: true}
	tgt := drillTarget(r)
	var newest []string // the ids of NewestJob's second
	for i := range jobs {
		j := &jobs[i]
		if j.SnapshotID != r.SnapshotID || !restoresInto(j, tgt) {
			continue
		}
		b.JobIDs = append(b.JobIDs, j.ID)
		at, ok := j.CreatedAt()
		switch {
		case !ok:
		case at.After(b.NewestJob):
			b.NewestJob, newest = at, []string{j.ID}
		case at.Equal(b.NewestJob):
			newest = append(newest, j.ID)
		}
	}
	if len(b.JobIDs) > maxBaselineJobs {
		b.JobIDs, b.AllJobs = newest, false
	}
	return b
}

// findDrillRestore adopts the restore job this run created after an
// unknown outcome. The job carries no marker, so it is a job of the run's
// snapshot into its target that the baseline did not hold: with every id
// in the baseline, that is all it takes, on the fields the spec documents
// (ids, snapshotId, targetClusterName, targetGroupId); a baseline that kept
// only its newest second (past maxBaselineJobs, or journaled before) also
// requires a job Atlas created at or after it. Of several, the oldest is
// the run's: its request went first. Creation times are read from the ids
// (inferred: docs/atlas-client.md); a job whose id gives none is adopted
// only when no other is new.
func findDrillRestore(jobs []atlas.RestoreJob, r run.Run) *atlas.RestoreJob {
	var found *atlas.RestoreJob
	var foundAt time.Time
	foundTimed := false
	tgt := drillTarget(r)
	b := r.RestoreBaseline
	for i := range jobs {
		j := &jobs[i]
		if j.SnapshotID != r.SnapshotID || !restoresInto(j, tgt) || slices.Contains(b.JobIDs, j.ID) {
			continue
		}
		at, ok := j.CreatedAt()
		if !b.AllJobs && (!ok || (b.Taken && !b.NewestJob.IsZero() && at.Before(b.NewestJob))) {
			continue
		}
		switch {
		case found == nil, ok && !foundTimed, ok && at.Before(foundAt):
			found, foundAt, foundTimed = j, at, ok
		}
	}
	return found
}

func adoptDrillJob(r run.Run, j *atlas.RestoreJob) run.Run {
	r.RestoreJobID, r.RestoreStatus = j.ID, string(j.State())
	if at, ok := j.CreatedAt(); ok {
		r.Drill.JobCreatedAt = at
	}
	r.Detail = ""
	return r
}

// drillRestore is a drill's restoring stage: choose the snapshot, request
// the restore exactly once (the intent journaled first), poll the job to
// its end, then wait for the target to be IDLE again.
func (e *Engine) drillRestore(ctx context.Context, tk *task, r run.Run) (run.Run, error) {
	src, tgt := r.Target, drillTarget(r)
	if r.Drill.RestoreDone {
		return e.drillSettle(ctx, tk, r)
	}
	for r.SnapshotID == "" {
		s, exportID, err := e.drillSnapshot(ctx, r)
		if err != nil {
			return e.readFailed(ctx, tk, r, err, "find snapshot", "the snapshots of "+src.String())
		}
		if s == nil {
			what := "completed, non-fallback snapshot"
			if r.Spec.DrillSnapshot == "exported" {
				what = "completed snapshot exported by backupd"
			}
			return e.fail(r, run.ReasonNoSnapshot, "no "+what+" of "+src.String()+" to restore")
		}
		r = adoptSnapshot(r, s)
		r.SnapshotBytes = 0 // not a snapshot this run took: no size series for it
		r.Drill.SnapshotAt, r.Drill.SourceExportID = s.CreatedAt, exportID
		if r, err = e.to(r, r.Stage, "restoring snapshot "+s.ID+" taken "+s.CreatedAt.UTC().Format(time.RFC3339)); err != nil {
			return r, err
		}
	}
	r, stop, err := takeRestoreBaseline(ctx, e, tk, r, "the source cluster's restore jobs", drillBaseline,
		func(ctx context.Context) ([]atlas.RestoreJob, error) {
			return e.atlas.ListRestores(ctx, src.ProjectID, src.Cluster)
		})
	if stop {
		return r, err
	}
	r, ended, err := e.createOnce(ctx, tk, r, creation{
		what:        "restore",
		requestNote: fmt.Sprintf("requesting automated restore of snapshot %s into %s (it deletes all data on the target)", r.SnapshotID, tgt),
		busy:        "a restore into " + tgt.String() + " is already in progress",
		intent:      func(r *run.Run) *bool { return &r.RestoreRequested },
		created:     func(r run.Run) bool { return r.RestoreJobID != "" },
		describe:    func(r run.Run) string { return "restore job " + r.RestoreJobID + " " + r.RestoreStatus },
		find: func(ctx context.Context, r run.Run) (run.Run, bool, error) {
			jobs, err := e.atlas.ListRestores(ctx, src.ProjectID, src.Cluster)
			if j := findDrillRestore(jobs, r); err == nil && j != nil {
				return adoptDrillJob(r, j), true, nil
			}
			return r, false, err
		},
		create: func(ctx context.Context, r run.Run) (run.Run, error) {
			j, err := e.atlas.CreateRestore(ctx, src.ProjectID, src.Cluster, atlas.RestoreJobRequest{
				DeliveryType: atlas.DeliveryAutomated, SnapshotID: r.SnapshotID, TargetClusterName: tgt.Cluster, TargetGroupID: tgt.ProjectID,
			})
			if err != nil {
				return r, err
			}
			return adoptDrillJob(r, j), nil
		},
	})
	if err != nil || ended {
		return r, err
	}

	r, err = pollJob(ctx, e, tk, r, jobPoll[*atlas.RestoreJob]{
		phase: "poll restore", what: "restore job " + r.RestoreJobID,
		known: r.RestoreStatus, terminal: atlas.RestoreState(r.RestoreStatus).Terminal(),
		succeeded: func(j *atlas.RestoreJob) bool { return j.State() == atlas.RestoreSucceeded },
		get: func(ctx context.Context) (*atlas.RestoreJob, error) {
			return e.atlas.GetRestore(ctx, src.ProjectID, src.Cluster, r.RestoreJobID)
		},
		seen: func(r run.Run, j *atlas.RestoreJob) (run.Run, bool, error) {
			st := j.State()
			if string(st) != r.RestoreStatus {
				r.RestoreStatus = string(st)
				r = e.progress(r, "restore job "+j.ID+" "+string(st))
			}
			switch st {
			case atlas.RestoreSucceeded:
				r.Drill.RestoreDone, r.Drill.JobFinishedAt, r.Detail = true, j.FinishedAt, ""
				return moved(e.to(r, r.Stage, "restore job "+j.ID+" finished; waiting for "+tgt.String()+" to be IDLE again"))
			case atlas.RestoreFailed:
				return moved(e.fail(r, run.ReasonRestoreFailed, "Atlas reports restore job "+j.ID+" failed"))
			case atlas.RestoreCancelled:
				return moved(e.fail(r, run.ReasonRestoreCancelled, "Atlas reports restore job "+j.ID+" cancelled"))
			case atlas.RestoreExpired:
				return moved(e.fail(r, run.ReasonRestoreExpired, "Atlas reports restore job "+j.ID+" expired"))
			}
			return r, false, nil
		},
	})
	if err != nil || r.Stage != run.StageRestoring || !r.Drill.RestoreDone {
		return r, err
	}
	return e.drillSettle(ctx, tk, r)
}

// drillSettle waits, after the restore job succeeded, until the target is
// IDLE again, then moves the run to verifying, or to succeeded verified at
// the Atlas level only when the policy has no verify command.
func (e *Engine) drillSettle(ctx context.Context, tk *task, r run.Run) (run.Run, error) {
	tgt := drillTarget(r)
	p := tk.poller(e, "settle")
	for {
		c, err := e.atlas.GetCluster(ctx, tgt.ProjectID, tgt.Cluster)
		switch classify(ctx, err) {
		case errNone:
			if c.StateName == "" || c.StateName == atlas.ClusterIdle {
				return e.drillRestored(r)
			}
			if d := "restored; drill target is " + string(c.StateName); d != r.Detail {
				r.Detail = d
				r = e.progress(r, d)
			}
		case errStopped:
			return r, err
		case errNotFound:
			return e.fail(r, run.ReasonNotFound, "drill target "+tgt.String()+" disappeared after the restore")
		default:
			r = e.pollFailed(r, "drill target "+tgt.String(), err)
		}
		if err := p.sleepAfter(r, err); err != nil {
			return e.stageErr(r, err, "the drill target returning to IDLE after the restore")
		}
	}
}

func (e *Engine) drillRestored(r run.Run) (run.Run, error) {
	r.Drill.TargetIdleAt, r.Detail = e.clk.Now(), ""
	if len(r.Spec.VerifyCommand) > 0 {
		return e.to(r, run.StageVerifying, "")
	}
	r.Drill.Verification = run.VerifiedAtlasOnly
	r.Detail = "verified at the Atlas level only (no verify command): Atlas reports the restore succeeded and the target IDLE"
	return e.to(r, run.StageSucceeded, "")
}

// Verifier runs a drill's verify command; verify.Runner is the real one.
type Verifier interface {
	Run(ctx context.Context, req verify.Request) verify.Result
}

// maxVerifyAttempts bounds how often a drill starts its verify command:
// a command that a restart cut off runs again, but one that keeps taking
// the daemon down with it (memory, say) must not do so forever.
const maxVerifyAttempts = 3

// verifyJob is a drill's verify command running beside the workers; done
// is closed once res holds its result.
type verifyJob struct {
	done chan struct{}
	res  verify.Result
}

// drillVerify runs the policy's verify command against the restored target
// (its project, name and SRV connection string, the snapshot's id and time
// in the environment). The exit code decides; the output's tail is kept.
//
// The command does not run in the worker: it may take many minutes, and
// drills verifying in every worker would stall every other chain. The
// attempt is journaled first, then the command starts in a goroutine of
// its own (at most VerifyWorkers at once) and the run parks without a
// worker until it ends. A shutdown kills it; the next start finds the
// attempt in the journal and runs the command again, saying so, at most
// maxVerifyAttempts times within timeouts.verify.
func (e *Engine) drillVerify(ctx context.Context, tk *task, r run.Run) (run.Run, error) {
	if vj := tk.verify; vj != nil {
		select {
		case <-vj.done:
		default:
			return r, &parked{} // woken when the command ends
		}
		tk.verify = nil
		if ctx.Err() != nil {
			return r, ctx.Err() // shutdown: verifying resumes at the next start
		}
		return e.drillVerified(r, vj.res)
	}
	if dl := deadline(r); !dl.IsZero() && !e.clk.Now().Before(dl) {
		r.Drill.Verification = run.VerifyFailed
		return e.fail(r, run.ReasonVerifyFailed, fmt.Sprintf("the verify command did not end within timeouts.verify (%s)", r.Spec.Timeouts.Verify))
	}
	if tk.verifyIntent == 0 || tk.verifyIntent != r.Drill.VerifyAttempts {
		// Not this process's attempt (or none yet): journal a new one.
		if r.Drill.VerifyAttempts >= maxVerifyAttempts {
			r.Drill.Verification = run.VerifyFailed
			return e.fail(r, run.ReasonVerifyFailed, fmt.Sprintf("the verify command was started %d times, each cut off by a restart of backupd (the last at %s); not starting it again",
				r.Drill.VerifyAttempts, r.Drill.VerifyStartedAt.UTC().Format(time.RFC3339)))
		}
		note := "running verify command " + r.Spec.VerifyCommand[0]
		if r.Drill.VerifyAttempts > 0 {
			r.Detail = fmt.Sprintf("verify command %s started again (attempt %d): a restart cut off the one started at %s",
				r.Spec.VerifyCommand[0], r.Drill.VerifyAttempts+1, r.Drill.VerifyStartedAt.UTC().Format(time.RFC3339))
			note = r.Detail
		}
		r.Drill.VerifyAttempts++
		r.Drill.VerifyStartedAt = e.clk.Now()
		tk.verifyIntent = r.Drill.VerifyAttempts
		var err error
		if r, err = e.to(r, r.Stage, note); err != nil {
			return r, err
		}
	}
	tgt := drillTarget(r)
	c, err := e.atlas.GetCluster(ctx, tgt.ProjectID, tgt.Cluster)
	if err != nil {
		return e.readFailed(ctx, tk, r, err, "verify", "drill target "+tgt.String())
	}
	srv := ""
	if c.ConnectionStrings != nil {
		srv = c.ConnectionStrings.StandardSrv
	}
	req := verify.Request{Command: r.Spec.VerifyCommand, Timeout: r.Spec.Timeouts.Verify, Env: []string{
		"BACKUPD_DRILL_PROJECT_ID=" + tgt.ProjectID,
		"BACKUPD_DRILL_CLUSTER=" + tgt.Cluster,
		"BACKUPD_DRILL_SRV=" + srv,
		"BACKUPD_DRILL_SNAPSHOT_ID=" + r.SnapshotID,
		"BACKUPD_DRILL_SNAPSHOT_TIME=" + r.Drill.SnapshotAt.UTC().Format(time.RFC3339),
		"BACKUPD_DRILL_SOURCE_PROJECT_ID=" + r.Target.ProjectID,
		"BACKUPD_DRILL_SOURCE_CLUSTER=" + r.Target.Cluster,
		"BACKUPD_POLICY=" + r.Policy,
		"BACKUPD_RUN_ID=" + string(r.ID),
	}}
	vj := &verifyJob{done: make(chan struct{})}
	tk.verify = vj
	e.wg.Add(1)
	go e.runVerify(ctx, tk, vj, req, deadline(r))
	return r, &parked{}
}

// runVerify runs one verify command once a verify slot is free, within
// what is left of the stage's deadline dl (zero: none), then wakes the
// run. ctx is the engine's: a shutdown kills the command.
func (e *Engine) runVerify(ctx context.Context, tk *task, vj *verifyJob, req verify.Request, dl time.Time) {
	defer e.wg.Done()
	defer func() {
		close(vj.done)
		e.disp.schedule(tk, e.clk.Now())
	}()
	var due <-chan time.Time
	if !dl.IsZero() {
		timer := e.clk.NewTimer(dl.Sub(e.clk.Now()))
		defer timer.Stop()
		due = timer.C()
	}
	select {
	case e.verifySlots <- struct{}{}:
	case <-ctx.Done():
		vj.res = verify.Result{ExitCode: -1, Err: ctx.Err()}
		return
	case <-due:
		vj.res = verify.Result{ExitCode: -1, TimedOut: true, Err: fmt.Errorf("verify command %s did not start within timeouts.verify (%s): other drills' verify commands kept all %d verify slots busy",
			req.Command[0], req.Timeout, cap(e.verifySlots))}
		return
	}
	defer func() { <-e.verifySlots }()
	if !dl.IsZero() {
		if left := dl.Sub(e.clk.Now()); left <= 0 {
			req.Timeout = time.Nanosecond
		} else if req.Timeout <= 0 || left < req.Timeout {
			req.Timeout = left
		}
	}
	vj.res = e.cfg.Verifier.Run(ctx, req)
}

// drillVerified records the verify command's result and ends the run.
func (e *Engine) drillVerified(r run.Run, res verify.Result) (run.Run, error) {
	out := res.Output
	if len(out) > run.MaxVerifyOutput {
		out = out[len(out)-run.MaxVerifyOutput:]
	}
	r.Drill.VerifyExitCode, r.Drill.VerifyOutput, r.Drill.VerifyDuration = res.ExitCode, out, run.Duration(res.Duration)
	if res.OK() {
		r.Drill.Verification, r.Detail = run.VerifiedByCommand, "verified by "+r.Spec.VerifyCommand[0]+" (exit 0)"
		if n := r.Drill.VerifyAttempts; n > 1 {
			r.Detail += fmt.Sprintf(", on attempt %d: a restart cut off the earlier", n)
		}
		return e.to(r, run.StageSucceeded, "")
	}
	r.Drill.Verification = run.VerifyFailed
	detail := fmt.Sprintf("verify command %s exited %d", r.Spec.VerifyCommand[0], res.ExitCode)
	if res.Err != nil {
		detail = res.Err.Error()
	}
	if last := lastLine(out); last != "" {
		detail += ": " + last
	}
	return e.fail(r, run.ReasonVerifyFailed, detail)
}

// lastLine is the last non-empty line of s, at most 200 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}
