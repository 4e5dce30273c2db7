package atlas

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/backupd/backupd/internal/clock"
)

// The request budget
//
// Atlas counts requests per project (the groups/{id} in the path), so the
// client keeps one budget per project, shared by every caller of the client:
// the engine's runs, target discovery and the monitor of native backups. A
// budget is a token bucket (golang.org/x/time/rate) of Config.RequestsPerMinute
// with a burst of min(rpm, 10), plus a queue of the calls waiting for it.
//
// Waiting calls are served by priority, not by arrival: a POST or a job read
// (what fire lag and detection delay are made of) goes before a run's other
// reads, which go before discovery, which goes before the monitor. So that
// low-priority work is never starved, a waiting call rises one level for
// every ageStep it has waited: a monitor read is served like a POST after
// 3 × ageStep (90 s), and then before every call that arrived after it. At
// one level, calls are served in arrival order.
//
// A 429 with Retry-After pauses the project's budget for every caller until
// the Retry-After has passed (the hold); other projects go on. When the
// hold ends, the waiting calls are served by priority, as always.
//
// Only the waiter first in line sleeps on a timer (until the next token or
// the end of the hold); the others sleep until they are first in line,
// served, or their context ends.

// Priority ranks a call in its project's budget: when several calls wait
// for it, the highest is served first. Set it with WithPriority; without
// one, a call's operation decides (OperationPriority).
type Priority int

// The priorities, lowest first.
const (
	// PriorityMonitor is for the monitor of native backups: a late reading
	// only makes its freshness gauges a little older.
	PriorityMonitor Priority = iota + 1
	// PriorityDiscovery is for target discovery's cluster lists: a late
	// one only delays noticing a new or deleted cluster.
	PriorityDiscovery
	// PriorityEngine is for a run's other calls: the cluster pre-check and
	// the listings that adopt or reconcile.
	PriorityEngine
	// PriorityUrgent is for POSTs and job reads: a late POST is fire lag,
	// a late read of a job that has ended is detection delay.
	PriorityUrgent
)

// ageStep is how long a waiting call waits before it rises one priority
// level, which bounds how long low-priority work can be passed over.
const ageStep = 30 * time.Second

// Priorities lists every priority, lowest first, so metrics can initialise
// their series.
func Priorities() []Priority {
	return []Priority{PriorityMonitor, PriorityDiscovery, PriorityEngine, PriorityUrgent}
}

// String is the priority's metric label value.
func (p Priority) String() string {
	switch p {
	case PriorityMonitor:
		return "monitor"
	case PriorityDiscovery:
		return "discovery"
	case PriorityEngine:
		return "engine"
	case PriorityUrgent:
		return "urgent"
	}
	return "unknown"
}

type priorityKey struct{}

// WithPriority returns a context whose calls wait for their project's
// budget at priority p, whatever their operation.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// OperationPriority is the priority of a call of operation op made without
// WithPriority: urgent for the POSTs and the reads of one job (snapshot,
// export, restore job), engine for every other call.
func OperationPriority(op string) Priority {
	switch op {
	case OpTakeSnapshot, OpCreateExport, OpCreateFlexRestore, OpCreateRestore,
		OpGetSnapshot, OpGetShardedSnapshot, OpGetExport, OpGetFlexRestore, OpGetRestore:
		return PriorityUrgent
	}
	return PriorityEngine
}

func priorityOf(ctx context.Context, op string) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok && p >= PriorityMonitor && p <= PriorityUrgent {
		return p
	}
	return OperationPriority(op)
}

// RateInfo is what the client last learned about one project's Atlas
// rate-limit bucket. Atlas may omit the headers; then Limit and Remaining
// stay -1.
type RateInfo struct {
	Limit     int       // RateLimit-Limit (bucket capacity); -1 if never seen
	Remaining int       // RateLimit-Remaining; -1 if never seen
	Observed  time.Time // when the headers were last seen; zero if never
	// HoldUntil is the end of a Retry-After received with a 429 for this
	// project: every request to the project waits until then. Zero when no
	// hold was ever set; it may lie in the past.
	HoldUntil time.Time
}

// budgets holds every project's budget. One mutex guards them all: a
// budget's bookkeeping takes microseconds, far less than a request.
type budgets struct {
	clock clock.Clock
	limit rate.Limit // tokens per second
	burst int
	log   *zap.Logger // carries the host

	mu       sync.Mutex
	seq      uint64 // arrival order of waiters
	projects map[string]*projectBudget
}

// projectBudget is one project's budget and what the client saw of
// Atlas's.
type projectBudget struct {
	info RateInfo
	lim  *rate.Limiter
	// next is the token reserved for the next waiter to be served, nil if
	// none: it passes to whoever is first in line when it is due.
	next    *rate.Reservation
	waiters []*waiter
}

// waiter is one call waiting for its project's budget.
type waiter struct {
	prio   Priority
	since  time.Time
	seq    uint64
	wake   chan struct{} // capacity 1: look at the budget again
	served bool
}

func newBudgets(c clock.Clock, rpm int, log *zap.Logger) *budgets {
	return &budgets{
		clock: c, limit: rate.Limit(float64(rpm) / 60), burst: min(rpm, 10), log: log,
		projects: map[string]*projectBudget{},
	}
}

func (b *budgets) projectLocked(project string) *projectBudget {
	p, ok := b.projects[project]
	if !ok {
		p = &projectBudget{info: RateInfo{Limit: -1, Remaining: -1}, lim: rate.NewLimiter(b.limit, b.burst)} // starts full
		b.projects[project] = p
	}
	return p
}

func (b *budgets) info(project string) RateInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.projects[project]; ok {
		return p.info
	}
	return RateInfo{Limit: -1, Remaining: -1}
}

// wait blocks until project's budget serves a call of priority prio. It
// returns ctx's error if ctx ends first, and a *holdError at once if Atlas
// holds the project for longer than maxRetryWait: the caller parks its
// work instead of a goroutine.
func (b *budgets) wait(ctx context.Context, project string, prio Priority) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	p := b.projectLocked(project)
	w := &waiter{prio: prio, since: b.clock.Now(), seq: b.seq, wake: make(chan struct{}, 1)}
	b.seq++
	p.waiters = append(p.waiters, w)
	for {
		now := b.clock.Now()
		if hold := p.info.HoldUntil; hold.Sub(now) > maxRetryWait {
			p.leave(w, now)
			b.mu.Unlock()
			return &holdError{project: project, until: hold}
		}
		due := p.dispatch(now, w)
		if w.served {
			b.mu.Unlock()
			return nil
		}
		var timer clock.Timer
		var fire <-chan time.Time
		if !due.IsZero() && p.first(now) == w {
			timer = b.clock.NewTimer(due.Sub(now))
			fire = timer.C()
		}
		b.mu.Unlock()
		select {
		case <-w.wake:
		case <-fire:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		b.mu.Lock()
		if err := ctx.Err(); err != nil {
			if !w.served { // a token served at the last moment is spent
				p.leave(w, b.clock.Now())
			}
			b.mu.Unlock()
			return err
		}
	}
}

// dispatch serves the waiters first in line for as long as tokens are due
// and the project is not held. It returns when the first remaining waiter
// can next be served (zero if nobody waits) and wakes that waiter unless it
// is self, the caller, so that it sleeps on a timer for it.
func (p *projectBudget) dispatch(now time.Time, self *waiter) time.Time {
	var due time.Time
	for len(p.waiters) > 0 {
		if now.Before(p.info.HoldUntil) {
			due = p.info.HoldUntil
			break
		}
		if p.next == nil {
			p.next = p.lim.ReserveN(now, 1)
		}
		if d := p.next.DelayFrom(now); d > 0 {
			due = now.Add(d)
			break
		}
		w := p.first(now)
		p.next = nil
		p.remove(w)
		w.served = true
		kick(w)
	}
	if len(p.waiters) == 0 {
		if p.next != nil {
			p.next.CancelAt(now) // nobody wants it: give the token back
			p.next = nil
		}
		return time.Time{}
	}
	if f := p.first(now); f != self {
		kick(f)
	}
	return due
}

// leave takes w out of the line (its context ended, or the hold is too
// long) and lets the new first in line take over the timer.
func (p *projectBudget) leave(w *waiter, now time.Time) {
	p.remove(w)
	p.dispatch(now, nil)
}

// first is the waiter to serve next: the highest level, then the earliest.
func (p *projectBudget) first(now time.Time) *waiter {
	var best *waiter
	for _, w := range p.waiters {
		if best == nil || w.level(now) > best.level(now) || (w.level(now) == best.level(now) && w.seq < best.seq) {
			best = w
		}
	}
	return best
}

// level is w's priority raised one step per ageStep waited.
func (w *waiter) level(now time.Time) Priority {
	return min(PriorityUrgent, w.prio+Priority(now.Sub(w.since)/ageStep))
}

func (p *projectBudget) remove(w *waiter) {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
}

func kick(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// observe records RateLimit-* headers and, for a 429 carrying Retry-After,
// extends the project's hold and tells its waiters.
func (b *budgets) observe(project string, status int, h http.Header, retryAfter time.Duration, now time.Time) {
	warnRetryAfterCapped(b.log, project, h, now)
	limit, okL := headerInt(h, "RateLimit-Limit")
	remaining, okR := headerInt(h, "RateLimit-Remaining")
	hold := status == http.StatusTooManyRequests && retryAfter > 0
	if !okL && !okR && !hold {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.projectLocked(project)
	if okL || okR {
		p.info.Observed = now
	}
	if okL {
		p.info.Limit = limit
	}
	if okR {
		p.info.Remaining = remaining
	}
	if hold {
		if until := now.Add(retryAfter); until.After(p.info.HoldUntil) {
			p.info.HoldUntil = until
		}
		// Every waiter looks again: a hold too long to wait out is
		// answered at once, and the first in line re-times its sleep.
		for _, w := range p.waiters {
			kick(w)
		}
	}
}

// warnRetryAfterCapped logs a Retry-After in h that asked for more than
// maxRetryAfter: the hold is cut to the cap (parseRetryAfter), and an
// operator should know that Atlas, or something in front of it, asked for
// more. project is "" for the token endpoint.
func warnRetryAfterCapped(log *zap.Logger, project string, h http.Header, now time.Time) {
	sent := h.Get("Retry-After")
	if sent == "" || requestedRetryAfter(sent, now) <= maxRetryAfter {
		return
	}
	fields := []zap.Field{zap.String("retryAfter", sanitize(sent, 64)), zap.Duration("cap", maxRetryAfter)}
	if project != "" {
		fields = append(fields, zap.String("project", project))
	}
	log.Warn("Atlas asked to wait longer than the Retry-After cap; waiting for the cap instead", fields...)
}

func headerInt(h http.Header, name string) (int, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
