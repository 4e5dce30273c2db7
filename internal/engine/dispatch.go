package engine

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// Runs in flight are data, not goroutines. A run spends nearly all its life
// waiting for Atlas (a snapshot takes minutes, an export can take hours), and
// at fleet size thousands of runs wait at once: one parked goroutine each
// cost ~33 KB of stack per run (209 MiB at 10,000 targets, docs/benchmarks.md).
// Instead a run is a task: its state plus when it next needs attention. One
// dispatcher goroutine sleeps until the earliest task is due and hands it to a
// bounded set of worker goroutines, which step the run until it has to wait
// again (parked) or ends.

// task is one run in flight.
//
// A task is kept small: at fleet size it is most of the engine's memory
// (docs/benchmarks.md), and at 512 bytes or less it takes no allocation
// header and no larger size class (TestTaskStaysSmall). Its key and the
// clusters it locks are derived from the run when needed, not stored.
type task struct {
	// r is the run as the engine last recorded it, kept compact (taskRun).
	// Engine.mu guards it; the worker stepping the task is its only writer.
	r taskRun

	// poll is the backoff of the phase the run is in. Only the worker
	// stepping the task touches it, and one worker steps a task at a time.
	poll *poller

	// jobCreated is when this process last sent a create request that
	// Atlas accepted (snapshot, export, restore): the job ran from then on.
	// Only the worker stepping the task touches it.
	jobCreated time.Time

	// verify is the drill's verify command running beside the workers
	// (drillVerify), and verifyIntent the attempt this process journaled
	// before starting it. Only the worker stepping the task touches them.
	verify       *verifyJob
	verifyIntent int

	// unsaved is a transition the journal refused; the worker stepping
	// the task writes it again before anything else (Engine.step).
	unsaved *unsavedWrite

	// Dispatcher state, guarded by dispatcher.mu. wake is when the parked
	// task is due, and while it runs the earliest wake that arrived
	// meanwhile (zero: none); a task neither parked nor running has none.
	wake    time.Time
	seq     uint64 // FIFO order among tasks due at the same instant
	index   int32  // position in the heap, -1 when not in it
	running bool
	done    bool
}

// newTask is the task of r. spec is r's policy's spec as the engine holds
// it, which the task shares while it is r's (Engine.specs).
func newTask(r run.Run, spec *run.Spec) *task {
	t := &task{index: -1}
	t.r.set(r, spec)
	return t
}

// poller returns the polling backoff of phase, starting a fresh one when the
// run has moved to another phase (another job, another stage).
func (t *task) poller(e *Engine, phase string) *poller {
	if t.poll == nil || t.poll.phase != phase {
		t.poll = &poller{e: e, phase: phase}
	}
	return t.poll
}

// parked is how a stage says "nothing to do until then": the worker stores
// the run and returns the task to the dispatcher instead of sleeping.
type parked struct {
	until time.Time // zero: until woken by a released cluster lock
}

func (p *parked) Error() string { return "run parked until " + p.until.String() }

// dispatcher keeps the parked tasks ordered by when they are due.
type dispatcher struct {
	mu   sync.Mutex
	h    taskHeap
	seq  uint64
	kick chan struct{} // a task became due earlier than the dispatcher's timer
}

func newDispatcher() *dispatcher { return &dispatcher{kick: make(chan struct{}, 1)} }

// schedule makes t due at at (or earlier, if it is already due earlier). A
// task that is running gets the wake when its step parks; a finished task
// ignores it.
func (d *dispatcher) schedule(t *task, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case t.done:
		return
	case t.running:
		if t.wake.IsZero() || at.Before(t.wake) {
			t.wake = at
		}
		return
	}
	d.pushLocked(t, at)
}

func (d *dispatcher) pushLocked(t *task, at time.Time) {
	if t.index >= 0 {
		if !at.Before(t.wake) {
			return
		}
		t.wake = at
		heap.Fix(&d.h, int(t.index))
	} else {
		d.seq++
		t.wake, t.seq = at, d.seq
		heap.Push(&d.h, t)
	}
	if t.index == 0 {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// park returns a stepped task to the heap, due at until (zero: only when
// woken), or earlier if a wake arrived while it ran.
func (d *dispatcher) park(t *task, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t.running = false
	if pending := t.wake; !pending.IsZero() && (until.IsZero() || pending.Before(until)) {
		until = pending
	}
	t.wake = time.Time{}
	if !until.IsZero() {
		d.pushLocked(t, until)
	}
}

// finish marks t ended; later wakes are ignored.
func (d *dispatcher) finish(t *task) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t.running, t.done = false, true
	if t.index >= 0 {
		heap.Remove(&d.h, int(t.index))
	}
}

// next pops a task due at now and marks it running, or reports when the
// earliest parked task is due (zero when none is).
func (d *dispatcher) next(now time.Time) (*task, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.h) == 0 {
		return nil, time.Time{}
	}
	t := d.h[0]
	if t.wake.After(now) {
		return nil, t.wake
	}
	heap.Pop(&d.h)
	t.wake, t.running = time.Time{}, true
	return t, time.Time{}
}

// dispatch hands due tasks to at most cap(e.workers) concurrent steps until
// ctx ends. Tasks left parked keep their state in memory and in the journal;
// the next start re-attaches them.
func (e *Engine) dispatch(ctx context.Context) {
	defer e.wg.Done()
	for {
		t, at := e.disp.next(e.clk.Now())
		if t != nil {
			select {
			case e.workers <- struct{}{}:
			case <-ctx.Done():
				return
			}
			e.wg.Add(1)
			go e.runStep(ctx, t)
			continue
		}
		var timer clock.Timer
		var due <-chan time.Time
		if !at.IsZero() {
			timer = e.clk.NewTimer(at.Sub(e.clk.Now()))
			due = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-due:
		case <-e.disp.kick:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (e *Engine) runStep(ctx context.Context, t *task) {
	defer e.wg.Done()
	defer func() { <-e.workers }()
	if e.parkHeld(t) {
		return
	}
	e.step(ctx, t)
}

// heldDetail starts the detail of a run parked by its project's hold.
const heldDetail = "Atlas holds requests to project "

// parkHeld parks t, without stepping it, while Atlas holds its project (a
// 429's Retry-After): each request the step made would wait out the hold in
// the client while holding a worker, and with as many held runs as workers
// every other project stalled behind them. The run is due again when the
// hold ends, or at its stage deadline so a timeout is noticed on time (the
// step then runs, and the client answers a long hold at once).
func (e *Engine) parkHeld(t *task) bool {
	e.mu.Lock()
	r := t.r.get()
	e.mu.Unlock()
	now := e.clk.Now()
	hold := e.atlas.HoldUntil(r.Target.ProjectID)
	dl := deadline(r)
	if !now.Before(hold) || (!dl.IsZero() && !now.Before(dl)) {
		if strings.HasPrefix(r.Detail, heldDetail) {
			r.Detail = ""
			e.progress(r, "Retry-After hold of project "+r.Target.ProjectID+" ended")
		}
		return false
	}
	until := hold
	if !dl.IsZero() && dl.Before(until) {
		until = dl
	}
	detail := heldDetail + r.Target.ProjectID + " until " + hold.UTC().Format(time.RFC3339) + " (Retry-After); the run waits without a worker"
	if r.Detail != detail {
		r.Detail = detail
		e.log.Info("run parked while Atlas rate-limits its project", append(runFields(r), zap.Time("until", hold))...)
		e.progress(r, "parked: "+detail)
	}
	e.disp.park(t, until)
	return true
}

// taskHeap orders parked tasks by wake time, then by when they were parked.
type taskHeap []*task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, k int) bool {
	if !h[i].wake.Equal(h[k].wake) {
		return h[i].wake.Before(h[k].wake)
	}
	return h[i].seq < h[k].seq
}
func (h taskHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].index, h[k].index = int32(i), int32(k)
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.index = int32(len(*h))
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
