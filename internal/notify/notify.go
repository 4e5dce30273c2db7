// Package notify tells people about runs without Prometheus: webhooks on
// run events (a generic JSON payload or a Slack-compatible one) and pings
// to a dead-man's switch per policy (healthchecks.io and the like).
//
// It is a run.Observer: the engine hands it each event, as it does to the
// metrics, and Observe only queues the deliveries the event calls for, in
// memory, and returns. A single worker (Run) persists the queue in its own
// store and sends, with retries and exponential backoff on the injected
// clock, so a receiver that is down, slow or wrong never delays or fails
// a backup. Everything is bounded: the queue (the oldest is dropped when
// it is full), the attempts per delivery, each request's time and the
// requests in flight.
//
// URLs carry tokens. They live only in the configuration (read from
// files); the store keeps a sink's name, never its URL, and every error
// that could quote one is scrubbed before it is logged.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// Sink kinds: label values of the notify metrics.
const (
	KindWebhook = "webhook"
	KindPing    = "ping"
)

// DefaultConcurrency bounds the requests in flight: a slow receiver holds
// at most one of them per delivery, and the others go on.
const DefaultConcurrency = 4

// Config wires a Notifier.
type Config struct {
	Clock      clock.Clock
	Store      Store // default: in memory
	Logger     *zap.Logger
	Registerer prometheus.Registerer // where the notify series go; nil: nowhere
	// Transport sends the requests (default: a clone of http.DefaultTransport).
	Transport   http.RoundTripper
	Concurrency int
	// OnFinish, when set, is told the outcome of each attempt after it is
	// booked (tests synchronise on it instead of sleeping).
	OnFinish func(d Delivery, outcome string)
}

type sinkKey struct{ kind, name string }

// sink is a configured receiver: where a delivery of its name goes.
type sink struct {
	url    string // revealed secret: only ever passed to the HTTP request
	method string
	ping   *policy.Ping
}

// item is a queued delivery and its bookkeeping.
type item struct {
	d        Delivery
	stored   bool // the store has this version
	inflight bool
	gone     bool // removed from the queue while an attempt was in flight
}

// Notifier queues and delivers notifications. Create it with New, wire it
// as an observer, call Run once.
type Notifier struct {
	clk      clock.Clock
	store    Store
	log      *zap.Logger
	client   *http.Client
	met      *metrics
	workers  int
	onFinish func(Delivery, string)

	mu    sync.Mutex
	cfg   *policy.Notify // nil: nothing is queued
	sinks map[sinkKey]sink
	queue []*item // oldest first
	gone  []uint64
	seq   uint64
	wake  chan struct{}
}

// New returns a notifier holding what the store kept from an earlier run.
// cfg may be nil (no notify: section); SetConfig changes it.
func New(c Config, cfg *policy.Notify) *Notifier {
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	n := &Notifier{
		clk: c.Clock, store: c.Store, log: c.Logger, met: newMetrics(c.Registerer), workers: c.Concurrency, onFinish: c.OnFinish,
		// Redirects are not followed: a receiver that moved is a
		// configuration to fix, and a payload must not follow a redirect
		// to another host.
		client: &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		sinks:  map[sinkKey]sink{},
		wake:   make(chan struct{}, 1),
	}
	ds, err := n.store.Load()
	if err != nil {
		n.log.Error("notify: reading the deliveries kept from before the restart", zap.Error(err))
	}
	for _, d := range ds {
		n.queue = append(n.queue, &item{d: d, stored: true})
		n.seq = max(n.seq, d.Seq)
	}
	if len(ds) > 0 {
		n.log.Info("notify: deliveries kept from before the restart", zap.Int("pending", len(ds)))
	}
	n.SetConfig(cfg)
	return n
}

// SetConfig applies a (re)loaded notify: section. Queued deliveries whose
// sink is gone are dropped at their next attempt; those whose sink stays
// go to its new URL.
func (n *Notifier) SetConfig(cfg *policy.Notify) {
	sinks := map[sinkKey]sink{}
	if cfg != nil {
		for _, w := range cfg.Webhooks {
			if !w.URL.IsZero() {
				sinks[sinkKey{KindWebhook, w.Name}] = sink{url: w.URL.Reveal(), method: http.MethodPost}
			}
		}
		for i := range cfg.Pings {
			p := &cfg.Pings[i]
			if !p.URL.IsZero() {
				sinks[sinkKey{KindPing, p.Policy}] = sink{url: p.URL.Reveal(), method: p.Method, ping: p}
			}
		}
	}
	n.mu.Lock()
	before := map[sinkKey]bool{}
	for k := range n.sinks {
		before[k] = true
	}
	now := map[sinkKey]bool{}
	for k := range sinks {
		now[k] = true
	}
	n.cfg, n.sinks = cfg, sinks
	n.met.sinks(now, before)
	if cfg != nil {
		n.trim(cfg.QueueSize)
	}
	n.met.depth.Set(float64(len(n.queue)))
	n.mu.Unlock()
	n.signal()
}

// Observe implements run.Observer. It queues what e calls for and returns
// at once: it never waits for the store or a receiver.
func (n *Notifier) Observe(e run.Event) {
	r := e.Run
	if e.From == r.Stage { // progress notes and re-attachments
		return
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	if cfg == nil {
		return
	}
	var ds []Delivery
	if r.Stage.Terminal() {
		for _, w := range cfg.Webhooks {
			if !w.Wants(string(r.Stage), r.Policy) {
				continue
			}
			b, err := body(w.Format, r, e.At)
			if err != nil {
				n.log.Error("notify: dropping a notification", zap.String("sink", w.Name), zap.Error(err))
				n.met.dropped.WithLabelValues(ReasonEncode).Inc()
				continue
			}
			ds = append(ds, Delivery{Kind: KindWebhook, Sink: w.Name, Signal: string(r.Stage), Run: string(r.ID), Body: b})
		}
	}
	if signal := pingSignal(e); signal != "" {
		for _, p := range cfg.Pings {
			if _, send := p.Path(signal); send && p.Policy == r.Policy {
				ds = append(ds, Delivery{Kind: KindPing, Sink: p.Policy, Signal: signal, Run: string(r.ID), Body: []byte(Summary(r))})
			}
		}
	}
	if len(ds) == 0 {
		return
	}
	now := n.clk.Now()
	n.mu.Lock()
	for _, d := range ds {
		n.seq++
		d.Seq, d.CreatedAt, d.NextAt = n.seq, now, now
		n.queue = append(n.queue, &item{d: d})
	}
	n.trim(cfg.QueueSize)
	n.met.depth.Set(float64(len(n.queue)))
	n.mu.Unlock()
	n.signal()
}

// pingSignal is the ping a run event sends: start when a run is created
// to run, success and fail when it ends. Skipped runs send none: the
// check's grace period decides whether no backup is news.
func pingSignal(e run.Event) string {
	switch {
	case e.From == "" && e.Run.Stage == run.StagePending:
		return policy.PingStart
	case e.Run.Stage == run.StageSucceeded:
		return policy.PingSuccess
	case e.Run.Stage == run.StageFailed:
		return policy.PingFail
	}
	return ""
}

// trim drops the oldest deliveries beyond size, those not being sent
// first (an attempt in flight may yet succeed). Called with n.mu held.
func (n *Notifier) trim(size int) {
	for size > 0 && len(n.queue) > size {
		i := 0
		for i < len(n.queue) && n.queue[i].inflight {
			i++
		}
		if i == len(n.queue) {
			i = 0
		}
		it := n.queue[i]
		n.queue = append(n.queue[:i], n.queue[i+1:]...)
		n.drop(it, ReasonQueueFull)
		n.log.Warn("notify: the queue is full; dropped the oldest notification",
			zap.String("kind", it.d.Kind), zap.String("sink", it.d.Sink), zap.String("signal", it.d.Signal),
			zap.String("run", it.d.Run), zap.Int("queueSize", size))
	}
}

// drop forgets a delivery that left the queue undelivered.
func (n *Notifier) drop(it *item, reason string) {
	it.gone = true
	if it.stored {
		n.gone = append(n.gone, it.d.Seq)
	}
	n.met.dropped.WithLabelValues(reason).Inc()
}

func (n *Notifier) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Pending returns the deliveries waiting, oldest first (for tests and
// status; it holds no URL).
func (n *Notifier) Pending() []Delivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Delivery, 0, len(n.queue))
	for _, it := range n.queue {
		out = append(out, it.d)
	}
	return out
}

// fired is a timer channel that has fired.
var fired = func() <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Time{}
	close(c)
	return c
}()

// result is the outcome of one attempt.
type result struct {
	it        *item
	delivered bool
	permanent bool // the receiver refused: do not retry
	cancelled bool // the notifier is stopping: the attempt does not count
	unknown   bool // no sink of that name is configured any more
	err       error
	// retryAfter is the receiver's Retry-After (429, 503): the next
	// attempt waits at least that long, and at most maxBackoff.
	retryAfter time.Duration
}

// retryAfter parses a Retry-After value, seconds or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Run persists and delivers until ctx ends, then stops the attempts in
// flight (they stay pending, not counted as failures) and saves the queue.
// Stop the observed engine first: what is queued after Run returned is
// not persisted.
func (n *Notifier) Run(ctx context.Context) {
	done := make(chan result)
	running := 0
	for {
		n.persist()
		now := n.clk.Now()
		due, next := n.pick(now, n.workers-running)
		for _, it := range due {
			running++
			go func(it *item) { done <- n.attempt(ctx, it) }(it)
		}
		var timerC <-chan time.Time
		var t clock.Timer
		if !next.IsZero() {
			t = n.clk.NewTimer(next.Sub(now))
			timerC = t.C()
			// The clock may have passed next between Now and NewTimer
			// (a fake clock moved by a test): the timer would then wait
			// a second interval.
			if !n.clk.Now().Before(next) {
				timerC = fired
			}
		}
		var res *result
		select {
		case <-ctx.Done():
		case <-n.wake:
		case <-timerC:
		case r := <-done:
			running--
			res = &r
		}
		if t != nil {
			t.Stop()
		}
		if res != nil {
			n.finish(*res)
		}
		if ctx.Err() != nil {
			for ; running > 0; running-- {
				n.finish(<-done)
			}
			n.persist()
			return
		}
	}
}

// pick marks up to slots due deliveries in flight and returns them, with
// when the next one not picked falls due (zero: none waits, or no slot).
func (n *Notifier) pick(now time.Time, slots int) (due []*item, next time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, it := range n.queue {
		if it.inflight {
			continue
		}
		if !it.d.NextAt.After(now) && len(due) < slots {
			it.inflight = true
			due = append(due, it)
			continue
		}
		if len(due) >= slots && !it.d.NextAt.After(now) {
			return due, time.Time{} // a finishing attempt wakes the loop
		}
		if next.IsZero() || it.d.NextAt.Before(next) {
			next = it.d.NextAt
		}
	}
	return due, next
}

// persist saves what changed since the last call. A store that cannot be
// written is logged; its deliveries are still sent and saving is retried.
func (n *Notifier) persist() {
	n.mu.Lock()
	var save []Delivery
	var saved []*item
	for _, it := range n.queue {
		if !it.stored {
			save = append(save, it.d)
			saved = append(saved, it)
		}
	}
	gone := n.gone
	n.gone = nil
	n.mu.Unlock()
	if len(save) == 0 && len(gone) == 0 {
		return
	}
	if err := n.store.Save(save, gone); err != nil {
		n.log.Error("notify: cannot save the pending notifications; they are sent but a restart would lose them", zap.Error(err))
		n.mu.Lock()
		n.gone = append(n.gone, gone...)
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	for i, it := range saved {
		// A delivery updated meanwhile keeps stored=false: its newer
		// version is saved next time.
		if it.d.Attempts == save[i].Attempts {
			it.stored = true
		}
		if it.gone {
			n.gone = append(n.gone, it.d.Seq)
		}
	}
	n.mu.Unlock()
}

// attempt sends one delivery once, within the per-request timeout.
func (n *Notifier) attempt(ctx context.Context, it *item) result {
	n.mu.Lock()
	s, ok := n.sinks[sinkKey{it.d.Kind, it.d.Sink}]
	timeout := requestTimeout(n.cfg)
	n.mu.Unlock()
	if !ok {
		return result{it: it, unknown: true}
	}
	target := s.url
	ctype := "application/json"
	if s.ping != nil {
		path, _ := s.ping.Path(it.d.Signal)
		target = withPath(s.url, path)
		ctype = "text/plain; charset=utf-8"
	}
	// The deadline is on the injected clock, so tests move past it.
	rctx, cancel := clock.WithTimeout(ctx, n.clk, timeout)
	defer cancel()
	var bodyR io.Reader
	if s.method != http.MethodGet {
		bodyR = strings.NewReader(string(it.d.Body))
	}
	req, err := http.NewRequestWithContext(rctx, s.method, target, bodyR)
	if err != nil {
		return result{it: it, permanent: true, err: errors.New("cannot build the request: the configured URL is invalid")}
	}
	if bodyR != nil {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "backupd")
	resp, err := n.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{it: it, cancelled: true}
		}
		if errors.Is(context.Cause(rctx), context.DeadlineExceeded) {
			return result{it: it, err: fmt.Errorf("no answer within %s", timeout)}
		}
		return result{it: it, err: scrub(err, s.url, target)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return result{it: it, delivered: true}
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return result{it: it, err: fmt.Errorf("the receiver answered %d", c), retryAfter: retryAfter(resp.Header.Get("Retry-After"), n.clk.Now())}
	default:
		return result{it: it, permanent: true, err: fmt.Errorf("the receiver answered %d", c)}
	}
}

// requestTimeout is cfg's per-request timeout, or the default.
func requestTimeout(cfg *policy.Notify) time.Duration {
	if cfg == nil || cfg.Timeout <= 0 {
		return policy.DefaultNotifyTimeout
	}
	return cfg.Timeout
}

// finish books the outcome of an attempt and tells OnFinish.
func (n *Notifier) finish(res result) {
	d, outcome := n.book(res)
	if outcome != "" && n.onFinish != nil {
		n.onFinish(d, outcome)
	}
}

// Outcomes of an attempt, as OnFinish receives them.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeFailed    = "failed"  // given up: rejected, or out of attempts
	OutcomeDropped   = "dropped" // its sink is no longer configured
)

// book applies the outcome of an attempt to the queue and the metrics.
func (n *Notifier) book(res result) (Delivery, string) {
	it := res.it
	n.mu.Lock()
	defer n.mu.Unlock()
	it.inflight = false
	if it.gone || res.cancelled { // dropped while in flight, or stopping
		return it.d, ""
	}
	fields := []zap.Field{zap.String("kind", it.d.Kind), zap.String("sink", it.d.Sink), zap.String("signal", it.d.Signal), zap.String("run", it.d.Run)}
	attempts, backoff, maxBackoff := policy.DefaultNotifyAttempts, policy.DefaultNotifyBackoff, policy.DefaultNotifyMaxBackoff
	if n.cfg != nil {
		attempts, backoff, maxBackoff = n.cfg.Attempts, n.cfg.Backoff, n.cfg.MaxBackoff
	}
	switch {
	case res.unknown:
		n.remove(it)
		n.drop(it, ReasonSinkRemoved)
		n.log.Warn("notify: dropped a notification: its sink is no longer configured", fields...)
		return it.d, OutcomeDropped
	case res.delivered:
		n.remove(it)
		n.met.delivered.WithLabelValues(it.d.Kind, it.d.Sink).Inc()
		n.log.Debug("notify: delivered", append(fields, zap.Int("attempt", it.d.Attempts+1))...)
		return it.d, OutcomeDelivered
	case res.permanent:
		it.d.Attempts++
		n.remove(it)
		n.met.failed.WithLabelValues(it.d.Kind, it.d.Sink, ReasonRejected).Inc()
		n.log.Error("notify: the receiver refused the notification; not retrying", append(fields, zap.String("error", res.err.Error()))...)
		return it.d, OutcomeFailed
	default:
		it.d.Attempts++
		if it.d.Attempts >= attempts {
			n.remove(it)
			n.met.failed.WithLabelValues(it.d.Kind, it.d.Sink, ReasonExhausted).Inc()
			n.log.Error("notify: giving up on the notification", append(fields, zap.Int("attempts", it.d.Attempts), zap.String("error", res.err.Error()))...)
			return it.d, OutcomeFailed
		}
		wait := min(max(Backoff(backoff, maxBackoff, it.d.Attempts), res.retryAfter), maxBackoff)
		it.d.NextAt = n.clk.Now().Add(wait)
		it.stored = false
		n.met.retries.WithLabelValues(it.d.Kind, it.d.Sink).Inc()
		n.log.Warn("notify: delivery failed; will retry", append(fields, zap.Int("attempt", it.d.Attempts),
			zap.Duration("retryIn", wait), zap.String("error", res.err.Error()))...)
		return it.d, OutcomeRetry
	}
}

// remove takes it out of the queue (and, if stored, out of the store).
// Called with n.mu held.
func (n *Notifier) remove(it *item) {
	for i, q := range n.queue {
		if q == it {
			n.queue = append(n.queue[:i], n.queue[i+1:]...)
			break
		}
	}
	it.gone = true
	if it.stored {
		n.gone = append(n.gone, it.d.Seq)
	}
	n.met.depth.Set(float64(len(n.queue)))
}

// Backoff is the wait after the attempts-th failed attempt: base doubled
// each time, at most limit.
func Backoff(base, limit time.Duration, attempts int) time.Duration {
	d := base
	for i := 1; i < attempts && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// withPath appends a ping's path to the URL's path, keeping its query.
func withPath(raw, path string) string {
	if path == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	return u.String()
}

// scrub turns an HTTP client error into a message without the URL: a
// *url.Error quotes the whole URL, token included, so only its operation
// and cause are kept, and any remaining trace of the URL (its path, its
// query, the whole) is replaced.
func scrub(err error, urls ...string) error {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Op + " request: " + ue.Err.Error()
	}
	for _, raw := range urls {
		var parts []string
		parts = append(parts, raw)
		if u, perr := url.Parse(raw); perr == nil {
			if len(u.Path) > 1 {
				parts = append(parts, u.Path, u.EscapedPath())
			}
			if u.RawQuery != "" {
				parts = append(parts, u.RawQuery)
			}
			if u.User != nil {
				parts = append(parts, u.User.String())
			}
		}
		for _, p := range parts {
			msg = strings.ReplaceAll(msg, p, "[redacted]")
		}
	}
	return errors.New(msg)
}
