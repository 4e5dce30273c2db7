package engine

import (
	"context"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

// creation describes one Atlas object a stage needs created exactly once:
// the snapshot, the export job or the flex restore job.
type creation struct {
	// what names the object in notes and errors ("snapshot", "export", "restore").
	what string
	// requestNote is persisted, with the intent, before the request is sent.
	requestNote string
	// busy explains a "wait" answer (UNFINISHED_ON_DEMAND_SNAPSHOT, 409).
	busy string
	// intent is the run's persisted "request may have been sent" flag.
	intent func(*run.Run) *bool
	// created reports whether the run knows the object's id.
	created func(run.Run) bool
	// describe is the note for an object just created or adopted.
	describe func(run.Run) string
	// find lists Atlas and adopts the object an earlier request created.
	find func(ctx context.Context, r run.Run) (run.Run, bool, error)
	// create sends the request and adopts what Atlas returned.
	create func(ctx context.Context, r run.Run) (run.Run, error)
}

// createOnce makes sure the object exists, created by this run exactly
// once. A request whose outcome is unknown is never repeated blindly: the
// intent is persisted before sending, and while it is set the engine lists
// Atlas and adopts the object carrying the run's marker before it sends the
// request again. ended reports that r reached a terminal stage instead.
func (e *Engine) createOnce(ctx context.Context, tk *task, r run.Run, c creation) (_ run.Run, ended bool, _ error) {
	giveUp := func(r run.Run, err error) (run.Run, bool, error) {
		r, err = e.stageErr(r, err, "creating the "+c.what)
		return r, r.Stage.Terminal(), err
	}
	for !c.created(r) {
		if *c.intent(&r) {
			next, found, err := c.find(ctx, r)
			if err != nil {
				r, err = e.readFailed(ctx, tk, r, err, "create "+c.what, "the "+c.what+"s of "+r.Target.String()+" (looking for this run's)")
				return r, r.Stage.Terminal(), err
			}
			if found {
				r, err = e.to(next, next.Stage, "adopted "+c.describe(next)+", found by its marker")
				return r, false, err
			}
		}

		*c.intent(&r) = true
		var err error
		if r, err = e.to(r, r.Stage, c.requestNote); err != nil {
			return r, false, err
		}
		sent := e.clk.Now()
		next, err := c.create(ctx, r)
		switch classify(ctx, err) {
		case errNone:
			tk.jobCreated = sent
			r, err = e.to(next, next.Stage, c.describe(next))
			return r, false, err
		case errStopped:
			return r, false, err
		case errUnknown:
			// Park before listing and, if nothing is found, sending again:
			// re-sending at once turned a 503 into thousands of POSTs an
			// hour, each holding a worker, and the run never timed out.
			e.log.Warn(c.what+" request outcome unknown; reconciling by listing after a backoff", append(runFields(r), zap.Error(err))...)
			if err := tk.poller(e, "create "+c.what).backoff(r, err, max(resendMax, e.cfg.PollMax)); err != nil {
				return giveUp(r, err)
			}
		case errBusy:
			// Atlas says "not now": wait, and look for our own object first
			// next time in case it is ours.
			r.Detail = c.busy
			if r, err = e.to(r, r.Stage, c.busy); err != nil {
				return r, false, err
			}
			if err := tk.poller(e, "create "+c.what).sleep(r); err != nil {
				return giveUp(r, err)
			}
		case errNotFound:
			r, err = e.fail(r, run.ReasonNotFound, err.Error())
			return r, true, err
		case errRejected:
			if atlas.IsCode(err, notSupportedCodes...) {
				r, err = e.skip(r, run.ReasonNotSupported, err.Error())
			} else {
				r, err = e.fail(r, run.ReasonAtlasError, err.Error())
			}
			return r, true, err
		default: // transient: the request certainly did not take effect
			*c.intent(&r) = false
			if err := tk.poller(e, "create "+c.what).sleepAfter(r, err); err != nil {
				return giveUp(r, err)
			}
		}
	}
	return r, false, nil
}
