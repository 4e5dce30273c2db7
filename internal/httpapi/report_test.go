package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/report"
)

// fakeReporter records the queries it is asked.
type fakeReporter struct {
	mu      sync.Mutex
	queries []report.Query
	err     error
}

func (f *fakeReporter) Report(_ context.Context, q report.Query) (*report.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.err != nil {
		return nil, f.err
	}
	return report.Build(report.Input{Now: t0}, q), nil
}

func reportServer(t *testing.T, rep Reporter) *Server {
	t.Helper()
	return New(Config{Listen: "127.0.0.1:0", Reporter: rep, Clock: clock.NewFake(t0)})
}

func TestReportQuery(t *testing.T) {
	fr := &fakeReporter{}
	h := &harness{srv: reportServer(t, fr)}
	for _, tc := range []struct {
		query string
		want  report.Query
	}{
		{"", report.Query{From: t0.Add(-30 * 24 * time.Hour), To: t0}},
		{"since=7d", report.Query{From: t0.Add(-7 * 24 * time.Hour), To: t0}},
		{"since=2026-02-01T00:00:00Z", report.Query{From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), To: t0}},
		{"from=2026-02-01T00:00:00Z&to=2026-02-02T00:00:00Z", report.Query{From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)}},
		{"to=2026-02-02T00:00:00Z&since=1d", report.Query{From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)}},
		{"policy=nightly&policy=week*,hourly&cluster=" + projectID + "/prod-*&cluster=a", report.Query{From: t0.Add(-30 * 24 * time.Hour), To: t0,
			Policies: []string{"nightly", "week*", "hourly"}, Clusters: []string{projectID + "/prod-*", "a"}}},
	} {
		fr.queries = nil
		r := h.do(t, http.MethodGet, "/api/v1/report?"+tc.query, nil, nil)
		if r.code != http.StatusOK || len(fr.queries) != 1 {
			t.Fatalf("?%s = %d %s", tc.query, r.code, r.body)
		}
		got := fr.queries[0]
		if !got.From.Equal(tc.want.From) || !got.To.Equal(tc.want.To) || !reflect.DeepEqual(got.Policies, tc.want.Policies) || !reflect.DeepEqual(got.Clusters, tc.want.Clusters) {
			t.Errorf("?%s asked %+v, want %+v", tc.query, got, tc.want)
		}
	}
	for format, ctype := range map[string]string{"": "application/json", "json": "application/json", "markdown": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"} {
		r := h.do(t, http.MethodGet, "/api/v1/report?format="+format, nil, nil)
		if format == "" {
			r = h.do(t, http.MethodGet, "/api/v1/report", nil, nil)
		}
		if r.code != http.StatusOK || r.header.Get("Content-Type") != ctype {
			t.Errorf("format %q = %d %s", format, r.code, r.header.Get("Content-Type"))
		}
		if csp := r.header.Get("Content-Security-Policy"); (format == "html") != (csp != "") || format == "html" && !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("format %q: CSP %q", format, csp)
		}
	}
}

// TestReportBadQuery: every bad parameter is a 400 naming it and the
// rule, and never reaches the reporter.
func TestReportBadQuery(t *testing.T) {
	fr := &fakeReporter{}
	h := &harness{srv: reportServer(t, fr)}
	for _, tc := range []struct{ query, field, contains string }{
		{"period=30d", "period", "unknown query parameter"},
		{"since=soon", "since", "RFC 3339"},
		{"since=-1h", "since", "positive duration"},
		{"since=1d&since=2d", "since", "once"},
		{"from=yesterday", "from", "RFC 3339"},
		{"to=tomorrow", "to", "RFC 3339"},
		{"since=1d&from=2026-02-01T00:00:00Z", "from", "not both"},
		{"from=2026-03-02T00:00:00Z", "from", "must start before it ends"},
		{"from=2026-02-01T00:00:00Z&to=2026-02-01T00:00:00Z", "from", "must start before it ends"},
		{"policy=", "policy", "glob"},
		{"policy=a,,b", "policy", "glob"},
		{"policy=bad%20name", "policy", "glob"},
		{"cluster=%3Cscript%3E", "cluster", "glob"},
		{"cluster=[", "cluster", "syntax error"},
		{"cluster=" + strings.Repeat("a", 201), "cluster", "at most 200"},
		{"cluster=" + manyPatterns(65), "cluster", "at most 64"},
		{"format=pdf", "format", "markdown, json, html"},
		{"format=json&format=html", "format", "once"},
	} {
		r := h.do(t, http.MethodGet, "/api/v1/report?"+tc.query, nil, nil)
		e := r.apiError(t)
		if r.code != http.StatusBadRequest || e.Field != tc.field || !strings.Contains(e.Error, tc.contains) {
			t.Errorf("?%s = %d %+v, want 400 field %s mentioning %q", tc.query, r.code, e, tc.field, tc.contains)
		}
	}
	if len(fr.queries) != 0 {
		t.Errorf("reporter called for invalid queries: %v", fr.queries)
	}
	if r := h.do(t, http.MethodPost, "/api/v1/report", nil, nil); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d", r.code)
	}
	fr.err = errors.New("journal closed")
	if r := h.do(t, http.MethodGet, "/api/v1/report", nil, nil); r.code != http.StatusInternalServerError || !strings.Contains(r.apiError(t).Error, "journal closed") {
		t.Errorf("reporter failure = %d %s", r.code, r.body)
	}
	h = &harness{srv: reportServer(t, nil)}
	if r := h.do(t, http.MethodGet, "/api/v1/report", nil, nil); r.code != http.StatusServiceUnavailable {
		t.Errorf("without a reporter = %d", r.code)
	}
}

func manyPatterns(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("c%d", i)
	}
	return strings.Join(ps, ",")
}

// streamReporter writes part, then fails with err (nil: succeeds).
type streamReporter struct {
	fakeReporter
	part string
	err  error
}

func (s *streamReporter) WriteReport(_ context.Context, w io.Writer, _ report.Query, _ string) error {
	if s.part != "" {
		if _, err := io.WriteString(w, s.part); err != nil {
			return err
		}
	}
	return s.err
}

// TestStreamedReport: a reporter that writes its report as it builds it
// is answered with what it writes and the format's headers; its error
// before the first byte is a 500, after it the answer ends short (the
// status was sent).
func TestStreamedReport(t *testing.T) {
	for _, tc := range []struct {
		part string
		err  error
		code int
		body string
	}{
		{part: `{"schema":"x"}`, code: 200, body: `{"schema":"x"}`},
		{err: errors.New("the journal: a damaged record"), code: 500, body: "the journal: a damaged record"},
		{part: `{"schema":`, err: errors.New("the journal: a damaged record"), code: 200, body: `{"schema":`},
		{code: 200},
	} {
		h := &harness{srv: reportServer(t, &streamReporter{part: tc.part, err: tc.err})}
		r := h.do(t, http.MethodGet, "/api/v1/report?format=html", nil, nil)
		wantType := "text/html; charset=utf-8"
		if tc.code == 500 {
			wantType = "application/json"
		}
		if r.code != tc.code || !strings.Contains(r.body, tc.body) || r.header.Get("Content-Type") != wantType ||
			(tc.code == 200) != (r.header.Get("Content-Security-Policy") != "") {
			t.Errorf("%+v: %d %q %s, CSP %q", tc, r.code, r.body, r.header.Get("Content-Type"), r.header.Get("Content-Security-Policy"))
		}
	}
}
