package engine

import (
	"context"

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
	// get reads the job once.
	get func(ctx context.Context) (J, error)
	// seen records what a read showed and, when the job has ended, moves
	// the run on; ended reports that it did.
	seen func(r run.Run, job J) (_ run.Run, ended bool, _ error)
}

// pollJob reads a job with the polling backoff until seen reports that it
// ended, it disappears (failed{not_found}), the stage times out, or the run
// parks until its next read. Transient errors are read again later.
func pollJob[J any](ctx context.Context, e *Engine, tk *task, r run.Run, jp jobPoll[J]) (run.Run, error) {
	p := tk.poller(e, jp.phase)
	if err := firstPollAfterCreate(p, r, jp.known, jp.terminal); err != nil {
		return e.stageErr(r, err, jp.what)
	}
	for {
		job, err := jp.get(ctx)
		switch classify(ctx, err) {
		case errNone:
			next, ended, err := jp.seen(r, job)
			if ended || err != nil {
				return next, err
			}
			r = next
		case errStopped:
			return r, err
		case errNotFound:
			return e.fail(r, run.ReasonNotFound, jp.what+" disappeared: "+err.Error())
		}
		if err := p.sleep(r); err != nil {
			return e.stageErr(r, err, jp.what)
		}
	}
}

// moved is how seen reports the run's move to its next stage.
func moved(r run.Run, err error) (run.Run, bool, error) { return r, true, err }
