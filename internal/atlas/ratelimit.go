package atlas

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
)

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

// projectLimits keeps per-project rate information and holds. Atlas's token
// bucket is per project, so one 429 must hold back every caller of that project.
type projectLimits struct {
	mu  sync.Mutex
	m   map[string]*RateInfo
	log *zap.Logger // carries the host
}

func newProjectLimits(log *zap.Logger) *projectLimits {
	return &projectLimits{m: map[string]*RateInfo{}, log: log}
}

func (p *projectLimits) entry(project string) *RateInfo {
	e, ok := p.m[project]
	if !ok {
		e = &RateInfo{Limit: -1, Remaining: -1}
		p.m[project] = e
	}
	return e
}

func (p *projectLimits) get(project string) RateInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[project]; ok {
		return *e
	}
	return RateInfo{Limit: -1, Remaining: -1}
}

func (p *projectLimits) holdUntil(project string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[project]; ok {
		return e.HoldUntil
	}
	return time.Time{}
}

// observe records RateLimit-* headers and, for a 429 carrying Retry-After,
// extends the project's hold.
func (p *projectLimits) observe(project string, status int, h http.Header, retryAfter time.Duration, now time.Time) {
	warnRetryAfterCapped(p.log, project, h, now)
	limit, okL := headerInt(h, "RateLimit-Limit")
	remaining, okR := headerInt(h, "RateLimit-Remaining")
	hold := status == http.StatusTooManyRequests && retryAfter > 0
	if !okL && !okR && !hold {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entry(project)
	if okL || okR {
		e.Observed = now
	}
	if okL {
		e.Limit = limit
	}
	if okR {
		e.Remaining = remaining
	}
	if hold {
		if until := now.Add(retryAfter); until.After(e.HoldUntil) {
			e.HoldUntil = until
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

// waitTurn blocks until project has no Retry-After hold and the client-side
// budget grants a token. All waiting is on the injected clock and ends early
// with ctx's error.
func (c *Client) waitTurn(ctx context.Context, project string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.waitHold(ctx, project); err != nil {
		return err
	}
	now := c.clock.Now()
	r := c.limiter.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		if err := clock.Sleep(ctx, c.clock, d); err != nil {
			r.CancelAt(c.clock.Now())
			return err
		}
	}
	// A 429 may have put the project on hold while this request waited
	// for its budget token: honour it before sending.
	return c.waitHold(ctx, project)
}

// waitHold blocks until project's Retry-After hold (if any) has passed. A
// hold longer than maxRetryWait is not waited out: it returns a *holdError
// at once, so the caller parks its work instead of a goroutine.
func (c *Client) waitHold(ctx context.Context, project string) error {
	for {
		now := c.clock.Now()
		hold := c.limits.holdUntil(project)
		if !now.Before(hold) {
			return nil
		}
		if hold.Sub(now) > maxRetryWait {
			return &holdError{project: project, until: hold}
		}
		if err := clock.Sleep(ctx, c.clock, hold.Sub(now)); err != nil {
			return err
		}
	}
}
