package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/report"
)

type queryReporter struct {
	mu sync.Mutex
	q  []report.Query
}

func (r *queryReporter) Report(_ context.Context, q report.Query) (*report.Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.q = append(r.q, q)
	return report.Build(report.Input{Now: cliT0}, q), nil
}

// TestReportVerb: backupd report passes its flags to GET /api/v1/report
// and prints the body as the daemon rendered it; a bad value is the API's
// located usage error (exit 2).
func TestReportVerb(t *testing.T) {
	rep := &queryReporter{}
	srv := httpapi.New(httpapi.Config{Listen: "127.0.0.1:0", Reporter: rep, Clock: clock.NewFake(cliT0)})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Report(context.Background(), append([]string{"-addr", hs.URL}, args...), &out, &errOut, OSEnv())
		return code, out.String(), errOut.String()
	}
	code, out, errOut := run()
	if code != 0 || !strings.HasPrefix(out, "# backupd evidence report\n") || errOut != "" {
		t.Fatalf("default = %d %q %q", code, out, errOut)
	}
	if q := rep.q[0]; !q.To.Equal(cliT0) || !q.From.Equal(cliT0.Add(-30*24*time.Hour)) {
		t.Fatalf("default period %v..%v", q.From, q.To)
	}
	code, out, _ = run("-from", "2026-11-01T00:00:00Z", "-to", "2026-11-08T00:00:00Z", "-policy", "nightly", "-policy", "week*", "-cluster", "prod-?", "-o", "json")
	if code != 0 {
		t.Fatalf("json = %d", code)
	}
	got, err := report.Decode(strings.NewReader(out))
	if err != nil || strings.Join(got.Filters.Policies, ",") != "nightly,week*" || strings.Join(got.Filters.Clusters, ",") != "prod-?" ||
		!got.From.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !got.To.Equal(time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("json report %+v, %v", got, err)
	}
	if code, out, _ = run("-since", "7d", "-o", "html"); code != 0 || !strings.HasPrefix(out, "<!DOCTYPE html>") {
		t.Fatalf("html = %d %.80q", code, out)
	}
	code, _, errOut = run("-since", "soon")
	if code != exitUsage || !strings.Contains(errOut, "since: since must be an RFC 3339 time") {
		t.Fatalf("bad since = %d %q", code, errOut)
	}
	code, _, errOut = run("-o", "pdf")
	if code != exitUsage || !strings.Contains(errOut, "format: format must be one of markdown, json, html") {
		t.Fatalf("bad format = %d %q", code, errOut)
	}
	if code, _, errOut = run("stray"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "stray"`) {
		t.Fatalf("stray argument = %d %q", code, errOut)
	}
}

type fixedReporter struct{ rep *report.Report }

func (r fixedReporter) Report(context.Context, report.Query) (*report.Report, error) {
	return r.rep, nil
}

// TestReportExitsNotMet: a report with a cluster that did not meet its
// policies is printed whole, in every format, and exits 6.
func TestReportExitsNotMet(t *testing.T) {
	rep := report.Build(report.Input{Now: cliT0}, report.Query{From: cliT0.Add(-time.Hour), To: cliT0})
	rep.Totals.Clusters, rep.Totals.NotMet = 1, 1
	srv := httpapi.New(httpapi.Config{Listen: "127.0.0.1:0", Reporter: fixedReporter{rep}, Clock: clock.NewFake(cliT0)})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, f := range report.Formats {
		var out, errOut bytes.Buffer
		code := Report(context.Background(), []string{"-addr", hs.URL, "-o", f}, &out, &errOut, OSEnv())
		var want bytes.Buffer
		if err := report.Render(&want, rep, f); err != nil {
			t.Fatal(err)
		}
		if code != exitNotMet || out.String() != want.String() || errOut.String() != "" {
			t.Fatalf("-o %s = %d, stderr %q, printed the report: %v", f, code, errOut.String(), out.String() == want.String())
		}
	}
}
