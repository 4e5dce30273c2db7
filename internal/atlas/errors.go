package atlas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error is everything backupd learns from a failed Atlas call: which
// operation, the HTTP status, Atlas's errorCode and message, and whether the
// request may have taken effect. Callers branch on it with IsCode, IsNotFound,
// IsRateLimited and OutcomeUnknown rather than by parsing strings.
type Error struct {
	Operation  string // hook label of the call, e.g. "take_snapshot"
	Method     string // HTTP method
	Path       string // escaped URL path, without query
	StatusCode int    // HTTP status of the last attempt; 0 when no response was received
	ErrorCode  string // Atlas errorCode, e.g. UNFINISHED_ON_DEMAND_SNAPSHOT
	Detail     string // Atlas detail, or a bounded snippet of a non-JSON body
	Reason     string // Atlas reason (usually the HTTP reason phrase)
	Parameters []any  // Atlas parameters, as sent
	Fields     []FieldViolation
	// RetryAfter is the server's Retry-After (0 when absent).
	RetryAfter time.Duration
	// Attempts is how many HTTP attempts were made for this call.
	Attempts int
	// OutcomeUnknown is true for a POST that may have taken effect although
	// no usable answer arrived (timeout, reset, 5xx, unreadable 200): the
	// caller must reconcile by listing before creating again.
	OutcomeUnknown bool
	// Err is the underlying cause for transport failures, token failures and
	// cancellations; nil for plain Atlas error responses.
	Err error
}

// Error renders "atlas OP METHOD PATH: STATUS CODE: detail".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("atlas ")
	b.WriteString(e.Operation)
	b.WriteByte(' ')
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	if e.StatusCode != 0 {
		b.WriteString(strconv.Itoa(e.StatusCode))
		if e.ErrorCode != "" {
			b.WriteByte(' ')
			b.WriteString(e.ErrorCode)
		}
		msg := e.Detail
		if msg == "" {
			msg = e.Reason
		}
		if msg == "" {
			msg = http.StatusText(e.StatusCode)
		}
		if msg != "" {
			b.WriteString(": ")
			b.WriteString(msg)
		}
		for _, f := range e.Fields {
			fmt.Fprintf(&b, "; %s: %s", f.Field, f.Description)
		}
		if e.Err != nil {
			b.WriteString(" (")
			b.WriteString(e.Err.Error())
			b.WriteByte(')')
		}
	} else {
		if e.Detail != "" {
			b.WriteString(e.Detail)
			if e.Err != nil {
				b.WriteString(": ")
			}
		}
		if e.Err != nil {
			b.WriteString(e.Err.Error())
		}
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " [after %d attempts]", e.Attempts)
	}
	if e.OutcomeUnknown {
		b.WriteString(" [outcome unknown: list before creating again]")
	}
	return b.String()
}

// Unwrap exposes the cause (transport error, context error, token error).
func (e *Error) Unwrap() error { return e.Err }

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// IsCode reports whether err is an Atlas error carrying one of codes.
func IsCode(err error, codes ...string) bool {
	e, ok := AsError(err)
	if !ok || e.ErrorCode == "" {
		return false
	}
	for _, c := range codes {
		if e.ErrorCode == c {
			return true
		}
	}
	return false
}

// IsNotFound reports whether Atlas answered 404 (unknown project, cluster,
// snapshot, job or bucket), whatever the errorCode.
func IsNotFound(err error) bool {
	e, ok := AsError(err)
	return ok && e.StatusCode == http.StatusNotFound
}

// IsRateLimited reports whether Atlas answered 429 (RATE_LIMITED or
// RATE_LIMITED_TOKEN_BUCKET) and the client's retries did not get through.
func IsRateLimited(err error) bool {
	e, ok := AsError(err)
	return ok && (e.StatusCode == http.StatusTooManyRequests ||
		e.ErrorCode == CodeRateLimited || e.ErrorCode == CodeRateLimitedTokenBucket)
}

// OutcomeUnknown reports whether err comes from a POST that may have taken
// effect in Atlas. The caller must list and adopt its object (by marker)
// instead of repeating the POST.
func OutcomeUnknown(err error) bool {
	e, ok := AsError(err)
	return ok && e.OutcomeUnknown
}

// maxSnippet bounds how much of an unparseable error body is kept.
const maxSnippet = 256

// decodeError builds an *Error from an HTTP error response. It never fails:
// empty, non-JSON or truncated bodies yield the status and a bounded,
// printable snippet of the body.
func decodeError(status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status}
	e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	var wire ErrorBody
	if len(body) > 0 && json.Unmarshal(body, &wire) == nil && (wire.ErrorCode != "" || wire.Detail != "" || wire.Error != 0) {
		e.ErrorCode = sanitize(wire.ErrorCode, maxSnippet)
		e.Detail = sanitize(wire.Detail, 4*maxSnippet)
		e.Reason = sanitize(wire.Reason, maxSnippet)
		e.Parameters = wire.Parameters
		if wire.BadRequestDetail != nil {
			e.Fields = wire.BadRequestDetail.Fields
		}
		return e
	}
	e.Reason = http.StatusText(status)
	if s := sanitize(string(body), maxSnippet); s != "" {
		e.Detail = "unparsed body: " + s
	}
	return e
}

// sanitize trims s, makes it valid single-line UTF-8, replaces anything
// shaped like a credential (scrub.go) and bounds its length, so that
// arbitrary server bytes are safe in logs.
func sanitize(s string, limit int) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = scrubPatterns(s) // after Map: a control byte cannot split a credential from its scheme
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// maxRetryAfter caps the Retry-After the client honours (the call's
// RetryAfter and the project's HoldUntil). Atlas's limits are counted per
// minute: the token endpoint allows 50 requests a minute, and the token
// buckets refill every few tens of seconds (docs/atlas-client.md, "Rate
// limits"), so a genuine Retry-After is seconds to minutes. An hour is well
// beyond any of that, yet short enough that a value Atlas (or a proxy in front
// of it) sent by mistake, ten years or a date in 2037, costs a project an hour
// of backups instead of a day or for ever; if Atlas really is still limiting,
// the request an hour later earns a new Retry-After for one request's cost.
// Values above the cap are logged (warnRetryAfterCapped).
const maxRetryAfter = time.Hour

// parseRetryAfter decodes Retry-After as delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3) relative to now, capped at maxRetryAfter. Absent or
// invalid values yield 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	return min(requestedRetryAfter(v, now), maxRetryAfter)
}

// requestedRetryAfter is what Retry-After asks for, uncapped (saturating
// instead of overflowing); absent or invalid values yield 0.
func requestedRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs <= 0 {
			return 0
		}
		if secs > int64(math.MaxInt64/time.Second) {
			return math.MaxInt64
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0) // Sub saturates
	}
	return 0
}
