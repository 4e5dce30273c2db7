package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/report"
)

// Reporter builds evidence reports (the daemon, from its journal).
type Reporter interface {
	Report(ctx context.Context, q report.Query) (*report.Report, error)
}

// StreamReporter is a Reporter that writes a report as it builds it, so
// a report of any size is never held whole (the daemon's). The server
// uses it when its Reporter has it.
type StreamReporter interface {
	WriteReport(ctx context.Context, w io.Writer, q report.Query, format string) error
}

// Rules of the report's parameters.
const (
	// DefaultReportPeriod is the period of a report asked without since
	// or from.
	DefaultReportPeriod = 30 * 24 * time.Hour
	maxReportPatterns   = 64
	maxPatternLen       = 200
)

// A filter pattern: the characters of names and projectID/cluster, plus
// path.Match's * ? [ ] and the - of ranges.
var patternRE = regexp.MustCompile(`^[a-zA-Z0-9*?\[\]^/-]+$`)

// parseReportQuery validates the parameters of GET /api/v1/report (and of
// backupd report, which sends them): since (a duration back from now or
// an RFC 3339 time) or from, to (RFC 3339; default now), policy and
// cluster (repeatable or comma-separated globs), format. Errors name the
// parameter and the rule.
func parseReportQuery(q map[string][]string, now time.Time) (report.Query, string, *apiError) {
	allowed := []string{"since", "from", "to", "policy", "cluster", "format"}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return report.Query{}, "", &apiError{fmt.Sprintf("unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", ")), k}
		}
		if len(vs) > 1 && k != "policy" && k != "cluster" {
			return report.Query{}, "", &apiError{fmt.Sprintf("query parameter %q given %d times; give it once", k, len(vs)), k}
		}
	}
	get := func(k string) (string, bool) {
		if vs, ok := q[k]; ok {
			return vs[0], true
		}
		return "", false
	}
	rq := report.Query{To: now}
	if v, ok := get("to"); ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return rq, "", &apiError{fmt.Sprintf("to must be an RFC 3339 time (2026-03-31T00:00:00Z), not %q", v), "to"}
		}
		rq.To = t
	}
	since, hasSince := get("since")
	from, hasFrom := get("from")
	switch {
	case hasSince && hasFrom:
		return rq, "", &apiError{"give since or from, not both", "from"}
	case hasFrom:
		t, err := time.Parse(time.RFC3339, from)
		if err != nil {
			return rq, "", &apiError{fmt.Sprintf("from must be an RFC 3339 time (2026-03-01T00:00:00Z), not %q", from), "from"}
		}
		rq.From = t
	case hasSince:
		t, err := parseSince(since, rq.To)
		if err != nil {
			return rq, "", &apiError{err.Error(), "since"}
		}
		rq.From = t
	default:
		rq.From = rq.To.Add(-DefaultReportPeriod)
	}
	if !rq.From.Before(rq.To) {
		field := "from"
		if hasSince {
			field = "since"
		}
		return rq, "", &apiError{fmt.Sprintf("the period must start before it ends: %s is not before %s", rq.From.Format(time.RFC3339), rq.To.Format(time.RFC3339)), field}
	}
	for _, field := range []string{"policy", "cluster"} {
		var pats []string
		for _, v := range q[field] {
			for p := range strings.SplitSeq(v, ",") {
				if p == "" || len(p) > maxPatternLen || !patternRE.MatchString(p) {
					return rq, "", &apiError{fmt.Sprintf("%s pattern %q: must be a name or a glob (* ? [a-z]) of at most %d characters from %s", field, p, maxPatternLen, patternRE.String()), field}
				}
				if !slices.Contains(pats, p) {
					pats = append(pats, p)
				}
			}
		}
		if len(pats) > maxReportPatterns {
			return rq, "", &apiError{fmt.Sprintf("at most %d %s patterns", maxReportPatterns, field), field}
		}
		if field == "policy" {
			rq.Policies = pats
		} else {
			rq.Clusters = pats
		}
	}
	if err := rq.Validate(); err != nil {
		field := "policy"
		if strings.HasPrefix(err.Error(), "cluster") {
			field = "cluster"
		}
		return rq, "", &apiError{err.Error(), field}
	}
	format := report.FormatJSON
	if v, ok := get("format"); ok {
		if !slices.Contains(report.Formats, v) {
			return rq, "", &apiError{fmt.Sprintf("format must be one of %s", strings.Join(report.Formats, ", ")), "format"}
		}
		format = v
	}
	return rq, format, nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	q, format, apiErr := parseReportQuery(r.URL.Query(), s.clk.Now())
	if apiErr != nil {
		writeError(w, http.StatusBadRequest, apiErr.Error, apiErr.Field)
		return
	}
	if s.cfg.Reporter == nil {
		writeError(w, http.StatusServiceUnavailable, "the report is not available yet", "")
		return
	}
	if sr, ok := s.cfg.Reporter.(StreamReporter); ok {
		s.streamReport(w, r, sr, q, format)
		return
	}
	rep, err := s.cfg.Reporter.Report(r.Context(), q)
	if err != nil {
		s.log.Error("build report", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "build report: "+err.Error(), "")
		return
	}
	var body bytes.Buffer
	if err := report.Render(&body, rep, format); err != nil {
		s.log.Error("render report", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "render report: "+err.Error(), "")
		return
	}
	reportHeaders(w, format)
	_, _ = w.Write(body.Bytes())
}

func reportHeaders(w http.ResponseWriter, format string) {
	w.Header().Set("Content-Type", report.ContentType(format))
	w.Header().Set("Cache-Control", "no-store")
	if format == report.FormatHTML {
		// The page is self-contained: it may load nothing, run nothing.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	}
}

// streamReport answers with the report as sr writes it. An error before
// the first byte is a 500 like Report's; after it, the status is sent:
// the error is logged and the answer ends short (a JSON body then fails
// to decode, as backupd report says).
func (s *Server) streamReport(w http.ResponseWriter, r *http.Request, sr StreamReporter, q report.Query, format string) {
	// The server's write timeout bounds a whole answer; a report of a
	// fleet's month takes longer to build than that. Each part written
	// moves the deadline on instead, so a client that stops reading still
	// times out. (Connection deadlines are on the real clock: net compares
	// them with it.)
	rc := http.NewResponseController(w)
	cw := &countingWriter{w: w, start: func() { reportHeaders(w, format) },
		before: func() { _ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }}
	err := sr.WriteReport(r.Context(), cw, q, format)
	switch {
	case err != nil && cw.n == 0:
		s.log.Error("build report", zap.Error(err))
		writeError(w, http.StatusInternalServerError, err.Error(), "")
	case err != nil:
		s.log.Error("build report: the answer was cut short", zap.Error(err), zap.Int64("bytes", cw.n))
	case cw.n == 0:
		reportHeaders(w, format)
		w.WriteHeader(http.StatusOK)
	}
}

// countingWriter counts what is written through it, calls start before
// the first byte and before before every write.
type countingWriter struct {
	w      io.Writer
	start  func()
	before func()
	n      int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && len(p) > 0 {
		c.start()
	}
	c.before()
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
