package scheduler

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// MarkStore persists one Mark per entry Key, so slots are neither repeated
// nor lost across restarts. The journal implements it.
type MarkStore interface {
	// Mark returns the stored mark of key; ok is false when there is none.
	Mark(key string) (m Mark, ok bool, err error)
	// SetMark stores m for key, replacing any earlier mark.
	SetMark(key string, m Mark) error
	// DeleteMark forgets key; deleting a missing key is not an error.
	DeleteMark(key string) error
}

// MarkBatcher is an optional MarkStore extension. When the store implements
// it, the marks written in one loop iteration (10,000 at the first start of a
// large fleet) go out in one call, i.e. one transaction instead of one each.
type MarkBatcher interface {
	SetMarks(marks map[string]Mark) error
}

// FireFunc hands a Firing to the engine. It must return nil only once the
// run for f.Slot is durable (run ids derive from the slot, so a repeated call
// for the same slot after a crash is harmless), and it must not block for
// long: the loop waits for it. With Options.Parallel above 1 it is called
// for several targets at once (never twice at once for one target).
type FireFunc func(ctx context.Context, f Firing) error

// Options tunes the Scheduler; the zero value is usable.
type Options struct {
	// Grace is how late a slot may be found due and still run as a normal,
	// on-time run (default DefaultGrace, 1m). Later than that it was missed.
	Grace time.Duration
	// Logf receives one line per problem (fire or store errors, invalid
	// entries) and per missed slot. Nil discards. It must be safe for
	// concurrent use when Parallel is above 1.
	Logf func(format string, args ...any)
	// Parallel is how many targets' firings of one pass are handed to the
	// engine at once (default 1: one after the other, in order of At). A
	// firing returns once its run is durable, a journal commit of a few
	// milliseconds, or tens when the disk is busy: one at a time, 10,000
	// targets in a 15-minute jitter window need 11 a second, and a loop
	// that fell behind would catch up no faster than it fell behind. At
	// once, the engine's journal commits the runs of a pass together. The
	// firings of one target (of every policy on it) stay in order, one
	// after the other.
	Parallel int
}

const (
	// maxIdle bounds every sleep, so a wall clock that jumps forward (NTP,
	// suspend/resume) is noticed within a minute and Heartbeat stays fresh.
	maxIdle = time.Minute
	// retryFirst is the first backoff after a fire or store error; it
	// doubles per consecutive failure up to maxIdle.
	retryFirst = 5 * time.Second
)

// Scheduler is the loop that acts on Due for a set of entries: it fires what
// is due in order of At and persists each entry's mark after the engine has
// made the firing durable.
type Scheduler struct {
	clock clock.Clock
	store MarkStore
	fire  FireFunc
	grace time.Duration
	logf  func(string, ...any)
	par   int           // Options.Parallel, at least 1
	wake  chan struct{} // capacity 1: "Set was called"

	mu        sync.Mutex
	desired   map[string]Entry // latest Set not yet applied by the loop; nil if none
	next      map[string]time.Time
	heartbeat time.Time

	// Owned by the Run goroutine.
	states  map[string]*state
	wakeQ   wakeHeap
	deletes map[string]struct{} // removed keys whose marks are still stored
}

// state is the loop's view of one entry.
type state struct {
	entry  Entry
	index  int       // position in wakeQ, -1 when not queued
	wakeAt time.Time // when the loop must look at it again

	loaded  bool // mark has been read from the store
	mark    Mark
	hasMark bool
	dirty   bool // mark differs from the stored one

	pending  []Firing  // decided but not yet durably fired, in order of At
	next     time.Time // At of the next slot after pending; zero if none
	failures int       // consecutive errors, for backoff
}

// New returns a Scheduler with no entries. Call Set, then Run.
func New(c clock.Clock, store MarkStore, fire FireFunc, opts Options) *Scheduler {
	grace := opts.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Scheduler{
		clock:   c,
		store:   store,
		fire:    fire,
		grace:   grace,
		logf:    logf,
		par:     max(opts.Parallel, 1),
		wake:    make(chan struct{}, 1),
		next:    map[string]time.Time{},
		states:  map[string]*state{},
		deletes: map[string]struct{}{},
	}
}

// Set replaces the entry set, at start and on every reload. Entries are
// matched by Key: new keys get a fresh mark on first evaluation (no
// catch-up), removed keys' marks are deleted, and a key whose Spec changed
// starts over as new. Invalid entries and repeated keys are logged and left
// out. Safe to call while Run is running; it wakes the loop.
func (s *Scheduler) Set(entries []Entry) {
	desired := make(map[string]Entry, len(entries))
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			s.logf("scheduler: ignoring invalid entry: %v", err)
			continue
		}
		if _, dup := desired[e.Key]; dup {
			s.logf("scheduler: ignoring repeated entry key %q (policy %q); the first one is kept", e.Key, e.Policy)
			continue
		}
		desired[e.Key] = e
	}
	s.mu.Lock()
	s.desired = desired
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next returns, per key, when its next firing is due (At); for a firing
// being retried, the At it was originally due. Keys that will never fire or
// have not been evaluated yet are absent. It feeds status and the
// backupd_next_run_timestamp_seconds gauge.
func (s *Scheduler) Next() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.next))
	for k, t := range s.next {
		out[k] = t
	}
	return out
}

// Heartbeat returns when the loop last completed an iteration (zero before
// the first). The loop iterates at least once a minute, so a heartbeat older
// than that means the loop is stuck or gone.
func (s *Scheduler) Heartbeat() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeat
}

// Run evaluates and fires due entries, then sleeps on the clock until the
// earliest next fire time, a Set, or at most a minute. It returns nil when
// ctx ends. Run must not be called concurrently with itself.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		select { // this iteration applies any Set made so far
		case <-s.wake:
		default:
		}
		s.iterate(ctx)
		now := s.clock.Now()
		s.mu.Lock()
		s.heartbeat = now
		s.mu.Unlock()
		wait := maxIdle
		if len(s.wakeQ) > 0 {
			wait = min(wait, s.wakeQ[0].wakeAt.Sub(now))
		}
		if wait <= 0 {
			continue
		}
		t := s.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		case <-s.wake:
			t.Stop()
		}
	}
}

// queued is one firing with the state it belongs to.
type queued struct {
	Firing
	st *state
}

// iterate runs one pass: apply Set, delete removed marks, evaluate what is
// due, fire it in order of At and persist the resulting marks.
func (s *Scheduler) iterate(ctx context.Context) {
	now := s.clock.Now()
	s.apply(now)
	s.deleteMarks()

	due := s.wakeQ.popDue(now)
	var todo []queued
	for _, st := range due {
		for _, f := range s.evaluate(st, now) {
			todo = append(todo, queued{Firing: f, st: st})
		}
	}
	slices.SortStableFunc(todo, func(a, b queued) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(a.Entry.Key, b.Entry.Key)
	})

	s.fireAll(ctx, todo)

	s.saveMarks(due)
	for _, st := range due {
		s.wakeQ.schedule(st, s.wakeFor(st, now))
	}
	s.publish(due)
}

// fireAll hands todo (in order of At) to the engine. Each entry's firings
// go one after the other, stopping at its first failure (the rest stay
// pending for the retry). With s.par above 1, up to s.par targets' firings
// go at once, started in order of their first firing; the firings of one
// target (its entries of several policies too) still go one after the
// other in order of At, so which of two policies due at the same moment
// takes a cluster first does not depend on goroutine timing.
func (s *Scheduler) fireAll(ctx context.Context, todo []queued) {
	fireInOrder := func(qs []queued) {
		failed := map[*state]bool{}
		for _, q := range qs {
			if !failed[q.st] && !s.fireOne(ctx, q) {
				failed[q.st] = true
			}
		}
	}
	if s.par == 1 {
		fireInOrder(todo)
		return
	}
	var order []run.Target
	byTarget := map[run.Target][]queued{}
	for _, q := range todo {
		t := q.st.entry.Target
		if _, ok := byTarget[t]; !ok {
			order = append(order, t)
		}
		byTarget[t] = append(byTarget[t], q)
	}
	sem := make(chan struct{}, s.par)
	var wg sync.WaitGroup
	for _, t := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fireInOrder(byTarget[t])
		})
	}
	wg.Wait()
}

// fireOne fires q and, once it is durable, advances its state past it. It
// reports whether it did. Only one goroutine at a time touches q.st (the
// one firing its target).
func (s *Scheduler) fireOne(ctx context.Context, q queued) bool {
	if ctx.Err() != nil {
		return false
	}
	if err := s.fire(ctx, q.Firing); err != nil {
		q.st.failures++
		if ctx.Err() == nil {
			s.logf("scheduler: %s: firing slot %s failed, will retry: %v", q.Entry.Key, q.Slot.Format(time.RFC3339), err)
		}
		return false
	}
	if q.CatchUp || q.Skip != "" {
		s.logf("scheduler: %s: slot %s (due %s) was missed; %s", q.Entry.Key, q.Slot.Format(time.RFC3339), q.At.Format(time.RFC3339), missedAction(q.Firing))
	}
	// The last firing leaves nil, not pending[1:]: an empty slice sliced
	// off the end keeps pointing at its array, and 10,000 targets' fired
	// Firings (each with its Entry) stayed live until the next slot, 3 MiB.
	if q.st.pending = q.st.pending[1:]; len(q.st.pending) == 0 {
		q.st.pending = nil
	}
	q.st.mark.LastSlot = q.Slot
	q.st.dirty = true
	return true
}

// missedAction says in a log line what happens to a missed slot.
func missedAction(f Firing) string {
	if f.Skip != "" {
		return "recorded it as skipped (" + f.Skip + ")"
	}
	return "handed it to the engine as one catch-up run"
}

// apply takes the latest Set into the loop's state.
func (s *Scheduler) apply(now time.Time) {
	s.mu.Lock()
	desired := s.desired
	s.desired = nil
	s.mu.Unlock()
	if desired == nil {
		return
	}
	var removed []string
	for key, st := range s.states {
		if _, ok := desired[key]; !ok {
			s.wakeQ.remove(st)
			delete(s.states, key)
			s.deletes[key] = struct{}{}
			removed = append(removed, key)
		}
	}
	for key, e := range desired {
		delete(s.deletes, key)
		st, ok := s.states[key]
		if !ok {
			st = &state{entry: e, index: -1}
			s.states[key] = st
			s.wakeQ.schedule(st, now)
			continue
		}
		changed := !sameEntry(st.entry, e)
		if st.entry.Spec != e.Spec {
			st.pending = nil // the old schedule's slots are void
		}
		for i := range st.pending {
			st.pending[i].Entry = e
		}
		st.entry = e
		if changed {
			s.wakeQ.schedule(st, now)
		}
	}
	if len(removed) > 0 {
		s.mu.Lock()
		for _, key := range removed {
			delete(s.next, key)
		}
		s.mu.Unlock()
	}
}

// sameEntry reports whether a and b schedule identically. The parsed
// Schedule is not compared: a reload re-parses the same Spec.
func sameEntry(a, b Entry) bool {
	return a.Spec == b.Spec && a.Offset == b.Offset && a.Missed == b.Missed &&
		a.Location.String() == b.Location.String()
}

// deleteMarks deletes the marks of removed keys, keeping failures for the
// next iteration.
func (s *Scheduler) deleteMarks() {
	for key := range s.deletes {
		if err := s.store.DeleteMark(key); err != nil {
			s.logf("scheduler: deleting mark of removed entry %s, will retry: %v", key, err)
			continue
		}
		delete(s.deletes, key)
	}
}

// evaluate loads st's mark if needed and returns what it must fire now:
// firings still pending from a failed attempt, or Due's answer.
func (s *Scheduler) evaluate(st *state, now time.Time) []Firing {
	if !st.loaded {
		m, ok, err := s.store.Mark(st.entry.Key)
		if err != nil {
			st.failures++
			s.logf("scheduler: %s: reading mark, will retry: %v", st.entry.Key, err)
			return nil
		}
		st.loaded, st.mark, st.hasMark = true, m, ok
	}
	if len(st.pending) > 0 {
		return st.pending
	}
	firings, next := DueWithGrace(st.entry, st.mark, st.hasMark, now, s.grace)
	st.next = next
	if !st.hasMark || st.mark.Spec != st.entry.Spec {
		st.mark, st.hasMark, st.dirty = NewMark(st.entry, now), true, true
	}
	st.pending = firings
	return firings
}

// saveMarks persists the dirty marks among states, in one batch when the
// store supports it. A failed write stays dirty and is retried.
func (s *Scheduler) saveMarks(states []*state) {
	var dirty []*state
	for _, st := range states {
		if st.dirty {
			dirty = append(dirty, st)
		}
	}
	if len(dirty) == 0 {
		return
	}
	if b, ok := s.store.(MarkBatcher); ok {
		marks := make(map[string]Mark, len(dirty))
		for _, st := range dirty {
			marks[st.entry.Key] = st.mark
		}
		if err := b.SetMarks(marks); err != nil {
			s.logf("scheduler: saving %d marks, will retry: %v", len(marks), err)
			for _, st := range dirty {
				st.failures++
			}
			return
		}
		for _, st := range dirty {
			st.dirty = false
		}
		return
	}
	for _, st := range dirty {
		if err := s.store.SetMark(st.entry.Key, st.mark); err != nil {
			st.failures++
			s.logf("scheduler: %s: saving mark, will retry: %v", st.entry.Key, err)
			continue
		}
		st.dirty = false
	}
}

// wakeFor returns when the loop must look at st again: after a backoff if
// something failed, else at its next fire time (zero: never).
func (s *Scheduler) wakeFor(st *state, now time.Time) time.Time {
	if st.loaded && len(st.pending) == 0 && !st.dirty {
		st.failures = 0
		return st.next
	}
	backoff := retryFirst
	for i := 1; i < st.failures && backoff < maxIdle; i++ {
		backoff *= 2
	}
	retry := now.Add(min(backoff, maxIdle))
	if st.loaded && len(st.pending) == 0 && !st.next.IsZero() && st.next.Before(retry) {
		return st.next // only the mark write failed; it is retried with the next evaluation
	}
	return retry
}

// publish records the next fire times of states for Next.
func (s *Scheduler) publish(states []*state) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range states {
		next := st.next
		if len(st.pending) > 0 {
			next = st.pending[0].At
		}
		if next.IsZero() {
			delete(s.next, st.entry.Key)
		} else {
			s.next[st.entry.Key] = next
		}
	}
}
