package atlas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/mongodb-forks/digest"
	"golang.org/x/oauth2"

	"github.com/backupd/backupd/internal/clock"
)

// Limits on what the client waits for.
const (
	maxErrorBody = 64 << 10 // error bodies are cut here; decodeError keeps 1 KiB of them
	backoffBase  = time.Second
	backoffCap   = 30 * time.Second
	// maxRetryWait: when Atlas asks for a longer Retry-After, the call gives
	// up and returns the 429/503 (with RetryAfter set) so the caller can
	// reschedule instead of holding a goroutine for that long.
	maxRetryWait = 5 * time.Minute
)

// request is one logical API call.
type request struct {
	op        string
	method    string
	path      string // escaped, starting with APIPrefix (or TokenPath)
	query     url.Values
	media     string // versioned media type for Accept (and Content-Type on POST)
	body      any    // JSON request body, POST only
	projectID string
	// bound is what a 2xx answer may hold; zero means the bound of one
	// object (pages set their own).
	bound answerBound
}

// attemptResult is the outcome of one HTTP attempt.
type attemptResult struct {
	err       *Error
	retriable bool
	authRetry bool      // a bearer token was rejected: drop it and try once more
	read      answerUse // what the 2xx answer took of its bound
}

// do runs r with rate limiting, retries and error decoding, decoding a 2xx
// body into out (when out is non-nil).
func (c *Client) do(ctx context.Context, r *request, out any) error {
	_, err := c.doRead(ctx, r, out)
	return err
}

// doRead is do that also reports what the decoded answer used of its bound,
// so that a listing can charge its pages to the listing's own bound.
func (c *Client) doRead(ctx context.Context, r *request, out any) (_ answerUse, err error) {
	defer func() { err = c.scrubError(err) }() // no held secret leaves in an error
	if r.bound.bytes == 0 {
		r.bound = c.caps.object(r.op)
	}
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return answerUse{}, c.requestError(r, fmt.Errorf("encoding request body: %w", err), false)
		}
	}
	target := c.baseURL + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var last *Error
	authRetried := false
	prio := priorityOf(ctx, r.op)
	for attempt := 1; ; attempt++ {
		queued := c.clock.Now()
		if err := c.budgets.wait(ctx, r.projectID, prio); err != nil {
			e := c.gaveUp(r, last, attempt-1, fmt.Errorf("waiting for the request budget: %w", err))
			var he *holdError
			if errors.As(err, &he) {
				e.RetryAfter = he.until.Sub(c.clock.Now())
			}
			return answerUse{}, e
		}
		got := turn{prio: prio, waited: c.clock.Now().Sub(queued)}
		res := c.attempt(ctx, r, target, payload, out, attempt, got)
		if res.err == nil {
			return res.read, nil
		}
		last = res.err
		last.Attempts = attempt
		if ctx.Err() != nil {
			return answerUse{}, last
		}
		if res.authRetry && !authRetried {
			authRetried = true
			continue
		}
		if !res.retriable || attempt >= c.maxAttempts {
			return answerUse{}, last
		}
		delay := c.backoff(attempt)
		if last.RetryAfter > 0 {
			if last.RetryAfter > maxRetryWait {
				return answerUse{}, last
			}
			delay = max(delay, last.RetryAfter)
		}
		if err := clock.Sleep(ctx, c.clock, delay); err != nil {
			return answerUse{}, c.gaveUp(r, last, attempt, fmt.Errorf("waiting to retry: %w", err))
		}
	}
}

// ErrProjectHeld is the cause of a call that was not sent because Atlas
// holds its project (a 429's Retry-After) for longer than maxRetryWait. The
// *Error's RetryAfter says how long the hold has left; the caller
// reschedules the work rather than holding a goroutine until then.
var ErrProjectHeld = errors.New("project held by Atlas (Retry-After)")

// holdError is a hold the client would not wait out.
type holdError struct {
	project string
	until   time.Time
}

func (e *holdError) Error() string {
	return "Atlas holds requests to project " + e.project + " until " + e.until.UTC().Format(time.RFC3339) + " (Retry-After); not sent"
}

func (e *holdError) Unwrap() error { return ErrProjectHeld }

// gaveUp reports a call abandoned while waiting (cancellation): the last
// attempt's error if there was one, with the cause attached.
func (c *Client) gaveUp(r *request, last *Error, attempts int, cause error) *Error {
	if last == nil {
		e := c.requestError(r, cause, false)
		e.Attempts = attempts
		return e
	}
	cp := *last
	cp.Attempts = attempts
	if cp.Err == nil {
		cp.Err = cause
	} else {
		cp.Err = errors.Join(cp.Err, cause)
	}
	return &cp
}

// backoff is exponential (1s, 2s, 4s, ... capped at 30s) with jitter: a
// uniformly random delay in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt <= 6 {
		d = min(backoffBase<<(attempt-1), backoffCap)
	}
	j := c.rand()
	if j < 0 || j > 1 {
		j = 1
	}
	return d/2 + time.Duration(float64(d/2)*j)
}

// requestError builds an *Error for a failure without a usable response.
func (c *Client) requestError(r *request, cause error, outcomeUnknown bool) *Error {
	e := &Error{Operation: r.op, Method: r.method, Path: r.path, Err: cause, OutcomeUnknown: outcomeUnknown}
	var te *tokenError
	if errors.As(cause, &te) {
		var re *oauth2.RetrieveError
		if errors.As(te.err, &re) && re.Response != nil {
			d := decodeError(re.Response.StatusCode, re.Response.Header, re.Body, c.clock.Now())
			d.Operation, d.Method, d.Path = r.op, r.method, r.path
			if d.ErrorCode == "" && re.ErrorCode != "" {
				d.ErrorCode = sanitize(re.ErrorCode, maxSnippet)
			}
			d.Detail = joinDetail("obtaining service account token from "+TokenPath+" failed", d.Detail)
			return d
		}
		e.Detail = "obtaining service account token"
		e.Err = te.err
	}
	return e
}

func joinDetail(prefix, detail string) string {
	if detail == "" {
		return prefix
	}
	return prefix + ": " + detail
}

// turn is how an attempt got its project's budget, for RequestHook.
type turn struct {
	prio   Priority
	waited time.Duration
}

// attempt makes one HTTP exchange and classifies its outcome.
func (c *Client) attempt(ctx context.Context, r *request, target string, payload []byte, out any, n int, t turn) attemptResult {
	isGet := r.method == http.MethodGet
	st := &attemptState{}
	actx, cancel := context.WithTimeout(context.WithValue(ctx, attemptKey{}, st), c.timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, target, body)
	if err != nil {
		return attemptResult{err: c.requestError(r, fmt.Errorf("building request: %w", err), false)}
	}
	req.Header.Set("Accept", r.media)
	if payload != nil {
		req.Header.Set("Content-Type", r.media)
	}
	req.Header.Set("User-Agent", c.userAgent)

	info := RequestInfo{Operation: r.op, Method: r.method, Attempt: n, ProjectID: r.projectID, Priority: t.prio, BudgetWait: t.waited}
	start := c.clock.Now()
	report := func() {
		info.Duration = c.clock.Now().Sub(start)
		c.hook(info)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		report()
		return c.transportFailure(r, err, isGet, st.maybeSent.Load())
	}
	defer func() { _ = resp.Body.Close() }()
	info.StatusCode = resp.StatusCode
	now := c.clock.Now()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var use answerUse
		var rerr error
		if out == nil {
			// Only the status matters (Authenticate); read a bounded amount
			// so that a small answer's connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, r.bound.bytes))
		} else {
			use, rerr = readAnswer(resp.Body, resp.ContentLength, r.bound, out)
		}
		c.budgets.observe(r.projectID, resp.StatusCode, resp.Header, 0, now)
		c.markAuthenticated()
		if rerr != nil {
			rerr = fmt.Errorf("decoding %d response: %w", resp.StatusCode, rerr)
		} else if ac, ok := out.(answerChecker); ok {
			if cerr := ac.checkAnswer(); cerr != nil {
				rerr = fmt.Errorf("checking %d response: %w", resp.StatusCode, cerr)
			}
		}
		// Reported after decoding: an answer that could not be read is
		// counted as that, not as the 2xx it claimed to be.
		info.Undecodable = rerr != nil
		report()
		if rerr != nil {
			// It happened, but we cannot see what: a POST must be reconciled.
			e := c.requestError(r, rerr, !isGet)
			e.StatusCode = resp.StatusCode
			e.Detail = "the answer could not be read"
			// An answer over its bound comes from a broken or hostile
			// server; asking again at once would only fetch it again.
			return attemptResult{err: e, retriable: isGet && !OverBound(rerr)}
		}
		return attemptResult{read: use}
	}

	// A 429's hold is set from its headers, before the body is read:
	// reading the body to its end hands the connection back to the pool,
	// and the next call to take it must already see the hold.
	c.budgets.observe(r.projectID, resp.StatusCode, resp.Header, parseRetryAfter(resp.Header.Get("Retry-After"), now), now)
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := decodeError(resp.StatusCode, resp.Header, data, now)
	e.Operation, e.Method, e.Path = r.op, r.method, r.path
	info.ErrorCode = e.ErrorCode
	info.RateLimited = resp.StatusCode == http.StatusTooManyRequests
	report()

	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		// Atlas refused before doing anything: safe to repeat, POST included.
		return attemptResult{err: e, retriable: true}
	case code == http.StatusUnauthorized && st.token != nil:
		// A rejected bearer token (revoked or expired early): never executed.
		c.tokens.invalidate(st.token)
		return attemptResult{err: e, authRetry: true}
	case code >= 500:
		if !isGet {
			e.OutcomeUnknown = true
			return attemptResult{err: e}
		}
		return attemptResult{err: e, retriable: code != http.StatusNotImplemented}
	default:
		return attemptResult{err: e}
	}
}

// transportFailure classifies an error from http.Client.Do.
func (c *Client) transportFailure(r *request, err error, isGet, maybeSent bool) attemptResult {
	var te *tokenError
	if errors.As(err, &te) {
		e := c.requestError(r, err, false)
		// The API request was not sent. Retry when the token endpoint itself
		// was busy or unreachable, not when it rejected the credentials.
		retriable := e.StatusCode == 0 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
		return attemptResult{err: e, retriable: retriable}
	}
	if errors.Is(err, digest.ErrBadChallenge) || errors.Is(err, digest.ErrAlgNotImplemented) {
		e := c.requestError(r, err, false)
		e.StatusCode = http.StatusUnauthorized
		e.Detail = "digest authentication failed: the server's challenge is not usable"
		return attemptResult{err: e}
	}
	if isGet {
		return attemptResult{err: c.requestError(r, err, false), retriable: true}
	}
	if maybeSent {
		return attemptResult{err: c.requestError(r, err, true)}
	}
	return attemptResult{err: c.requestError(r, err, false), retriable: true}
}

// decodeJSON decodes one JSON response body into out.
func decodeJSON(data []byte, out any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty body")
	}
	return json.Unmarshal(data, out)
}
