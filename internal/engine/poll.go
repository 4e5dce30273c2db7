package engine

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/run"
)

// jobPoll describes polling one Atlas job (a snapshot, an export job, a flex
// restore job) until it ends.
type jobPoll[J any] struct {
	phase string // the poller's phase, e.g. "poll snapshot"
	what  string // the job in messages, e.g. "snapshot <id>"
	// known is the job's state as the run last saw it ("" when unknown),
	// and terminal whether that state is final: a known, unfinished state
	// is not read again at once.
	known    string
	terminal bool
	// succeeded reports that a read shows the job ended well: how long it
	// ran is then recorded for learned polling.
	succeeded func(J) bool
	// get reads the job once.
	get func(ctx context.Context) (J, error)
	// seen records what a read showed and, when the job has ended, moves
	// the run on; ended reports that it did.
	seen func(r run.Run, job J) (_ run.Run, ended bool, _ error)
}

// pollJob reads a job with the polling backoff until seen reports that it
// ended, it disappears (failed{not_found}), the stage times out, or the run
// parks until its next read. Any other failed read (an answer backupd cannot
// read, a redirect, a 401, a 5xx) is read again after the backoff, at least
// its Retry-After; it is logged and shown in the run's detail until a read
// succeeds, so a run never sits silent until its timeout.
func pollJob[J any](ctx context.Context, e *Engine, tk *task, r run.Run, jp jobPoll[J]) (run.Run, error) {
	p := tk.poller(e, jp.phase)
	if !p.estimated && !e.cfg.FixedPolling {
		p.est, p.estimated = e.estimate(r.Target, r.Stage), true
	}
	p.since = jobStart(tk, r)
	if err := firstPollAfterCreate(p, r, jp.known, jp.terminal); err != nil {
		return e.stageErr(r, err, jp.what)
	}
	for {
		sent := e.clk.Now()
		job, err := jp.get(ctx)
		switch classify(ctx, err) {
		case errNone:
			if strings.HasPrefix(r.Detail, pollFailedDetail) {
				r.Detail = ""
				r = e.progress(r, "read "+jp.what+" again")
			}
			if ran, done := bounds(&r, r.Stage); jp.succeeded(job) && ran != nil && createdHere(tk, p) {
				if d := ranUntil(p); d > 0 {
					*ran = d
				}
				// Answered after the job ended: an upper bound of its
				// duration, the lower one being the last read that
				// saw it running.
				*done = e.clk.Now().Sub(p.since)
			}
			next, ended, err := jp.seen(r, job)
			if ended || err != nil {
				return next, err
			}
			r = next
			p.seenRunning = sent
		case errStopped:
			return r, err
		case errNotFound:
			return e.fail(r, run.ReasonNotFound, jp.what+" disappeared: "+err.Error())
		default:
			r = e.pollFailed(r, jp.what, err)
		}
		if err := p.sleepAfter(r, err); err != nil {
			return e.stageErr(r, err, jp.what)
		}
	}
}

// jobStart is when r's job started, as far as this process knows: when it
// sent the create request Atlas accepted, or, for a job it did not create
// (re-attached from the journal, adopted by its marker), when the stage
// began. Durations are measured from the request, not the stage: what came
// before it (the pre-checks, a wait behind UNFINISHED_ON_DEMAND_SNAPSHOT or
// an active export, the journal's fsync of the intent) is not the job's, and
// counted in it made the next job of the cluster sleep past its end (issue
// 15). For a job not created here the stage start is earlier than the
// request, so its elapsed time is overstated: it is read sooner, not later.
func jobStart(tk *task, r run.Run) time.Time {
	if !tk.jobCreated.IsZero() && !tk.jobCreated.Before(r.StageStartedAt) {
		return tk.jobCreated
	}
	return r.StageStartedAt
}

// createdHere reports that the polled job counts from the create request
// this process sent. Only such a job's bounds are recorded: for one it
// did not create, the stage's start is earlier than the request by the
// pre-checks or a wait behind another snapshot, and its "last seen
// running", overstated by as much, would be no lower bound at all; the
// next job, planned from it, would sleep past its end.
func createdHere(tk *task, p *poller) bool {
	return !tk.jobCreated.IsZero() && p.since.Equal(tk.jobCreated)
}

// ranUntil is how long after its start (jobStart) the job was last seen
// running (zero: no read in this process saw it unfinished).
func ranUntil(p *poller) time.Duration {
	if p.seenRunning.IsZero() || p.seenRunning.Before(p.since) {
		return 0
	}
	return p.seenRunning.Sub(p.since)
}

// pollFailedDetail starts the detail of a run whose last poll failed.
const pollFailedDetail = "could not read "

// pollFailed shows a failed read in the run's detail and logs it; a failure
// repeating the same error is logged once, not at every poll.
func (e *Engine) pollFailed(r run.Run, what string, err error) run.Run {
	detail := pollFailedDetail + what + " (retrying with backoff): " + err.Error()
	if detail == r.Detail {
		return r
	}
	e.log.Warn("reading "+what+" failed; retrying with backoff", append(runFields(r), zap.Error(err))...)
	r.Detail = detail
	return e.progress(r, detail)
}

// moved is how seen reports the run's move to its next stage.
func moved(r run.Run, err error) (run.Run, bool, error) { return r, true, err }

// readFailed is what a stage does when a read of Atlas it needs (a list to
// adopt from, the snapshot to export) failed: stop when ctx ended, fail the
// run not_found on a 404, and otherwise show and log the failure and park
// the run for the phase's backoff, at least the answer's Retry-After (or
// time it out past its deadline). The run resumes by reading again.
func (e *Engine) readFailed(ctx context.Context, tk *task, r run.Run, err error, phase, what string) (run.Run, error) {
	switch classify(ctx, err) {
	case errStopped:
		return r, err
	case errNotFound:
		return e.fail(r, run.ReasonNotFound, err.Error())
	}
	r = e.pollFailed(r, what, err)
	return e.stageErr(r, tk.poller(e, phase).sleepAfter(r, err), "reading "+what)
}
