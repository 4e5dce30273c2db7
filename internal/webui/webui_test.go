package webui

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/run"
)

const adminToken = "tok-SECRET-do-not-show-4711"

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                     { return c.t }
func (c fixedClock) NewTimer(time.Duration) clock.Timer { panic("the page sets no timer") }

// server mounts the page on the real API server, as the daemon does, with
// an admin token configured (the page must never need nor show it).
func server(t *testing.T, src Source) http.Handler {
	t.Helper()
	page, err := New(src, Options{Clock: fixedClock{fixtureNow}})
	if err != nil {
		t.Fatal(err)
	}
	s := httpapi.New(httpapi.Config{Listen: "127.0.0.1:0", AdminToken: func() string { return adminToken }, Backend: nil, Page: page})
	return s.Handler()
}

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestFleetPage(t *testing.T) {
	h := server(t, newFixture())
	res, body := get(t, h, http.MethodGet, "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d\n%s", res.StatusCode, body)
	}
	checkPageHeaders(t, res)
	for _, want := range []string{
		`<html lang="en">`,
		// recent failures, newest first: the timeout (finished 1h ago) before the export (9h ago)
		`<a href="/ui/runs/` + idTimeout + `">`,
		`failed: export_failed`, escapeHTML(detailFailed),
		// the in-flight run with its stage and Atlas ids
		`<span class="badge run">exporting</span> for 20m`, `export job: <code>65f1a0000000000000000022</code>`,
		// age of last success against the schedule
		`fresh-ok">within its interval</span> <time datetime="2026-03-01T11:46:00Z">14m ago</time> <span class="ago">(every 1h)</span>`,
		`fresh-overdue">5 intervals without success`,
		`fresh-late">older than its interval`,
		// next run
		`<time datetime="2026-03-01T13:00:00Z">2026-03-01 13:00:00Z</time> <span class="ago">(in 1h)</span>`,
		// not acted on
		`not_supported: cluster is paused`, `403 Forbidden: the API key has no access`,
		// native freshness
		`overdue: daily`, `daily snapshot overdue since 2026-02-28T14:00:00Z`, `hourly: <time datetime="2026-03-01T11:00:00Z">1h ago</time>`,
		`<link rel="stylesheet" href="/ui/assets/style.css">`, `data-refresh="30"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the fleet page lacks %q", want)
		}
	}
	if i, k := strings.Index(body, idTimeout), strings.Index(body, `/ui/runs/`+idFailed); i < 0 || k < 0 || i > k {
		t.Errorf("recent failures are not newest first (timeout at %d, export failure at %d)", i, k)
	}
	checkReadOnly(t, body)
}

func TestRunPage(t *testing.T) {
	h := server(t, newFixture())
	res, body := get(t, h, http.MethodGet, "/ui/runs/"+idFailed)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET run = %d\n%s", res.StatusCode, body)
	}
	checkPageHeaders(t, res)
	for _, want := range []string{
		`<span class="badge bad" id="run-result">failed: export_failed</span>`,
		`<code id="run-reason">export_failed</code>`, escapeHTML(detailFailed),
		`<th scope="row" data-label="Object">snapshot</th><td data-label="Value"><code>65f1a0000000000000000002</code>`,
		`<code>65f1a0000000000000000009</code>`, `<code>Failed</code>`, `<code>7.0 GiB</code>`,
		`<th scope="row" data-label="Stage">exporting</th><td data-label="Entered"><time datetime="2026-03-01T02:19:00Z">2026-03-01 02:19:00Z</time></td><td data-label="Time in stage">41m</td>`,
		`(took 50m)`, `<dt>export</dt><dd>6h</dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the run page lacks %q", want)
		}
	}
	if strings.Contains(body, "data-refresh") {
		t.Error("a finished run's page refreshes itself")
	}
	checkReadOnly(t, body)

	_, body = get(t, h, http.MethodGet, "/ui/runs/"+idFlight)
	for _, want := range []string{`id="run-result">exporting</span>`, `20m so far`, `data-refresh="30"`, "triggered manually"} {
		if !strings.Contains(body, want) {
			t.Errorf("the in-flight run's page lacks %q", want)
		}
	}
}

// checkPageHeaders asserts the security headers of an HTML answer.
func checkPageHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// checkReadOnly asserts what the page must never contain: a way to act,
// inline script or style, an external resource, the admin token.
func checkReadOnly(t *testing.T, body string) {
	t.Helper()
	for _, bad := range []string{"<form", "<button", "<input", "<textarea", "<select", "<iframe", " style=", "<style", " onclick", " onload", "http://", "https://", adminToken} {
		if strings.Contains(body, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if m != `<script src="/ui/assets/refresh.js" defer>` {
			t.Errorf("the page has a script other than its own: %s", m)
		}
	}
	tables, captions := strings.Count(body, "<table"), strings.Count(body, "<caption>")
	if tables == 0 || tables != captions {
		t.Errorf("%d tables, %d captions: every table needs one", tables, captions)
	}
	if n := regexp.MustCompile(`<th>|<th [^s]`).FindAllString(body, -1); len(n) > 0 {
		t.Errorf("header cells without scope: %q", n)
	}
}

func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestPageEscapesWhatAtlasSays(t *testing.T) {
	f := newFixture()
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	f.runs[1].Detail = evil
	f.st.Policies[1].Targets[1].LastRun = &f.runs[1]
	h := server(t, f)
	for _, p := range []string{"/", "/ui/runs/" + idFailed} {
		_, body := get(t, h, http.MethodGet, p)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") {
			t.Errorf("%s renders Atlas's words as markup", p)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s does not show the detail escaped", p)
		}
	}
}

func TestMethodsAndPaths(t *testing.T) {
	h := server(t, newFixture())
	for _, c := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/ui/runs/" + idFailed, 200, "text/html; charset=utf-8"},
		{"POST", "/", 405, "text/html; charset=utf-8"},
		{"DELETE", "/ui/runs/" + idFailed, 405, "text/html; charset=utf-8"},
		{"PUT", "/ui/assets/style.css", 405, "text/html; charset=utf-8"},
		{"GET", "/ui/", 404, "text/html; charset=utf-8"},
		{"GET", "/ui/runs/", 404, "text/html; charset=utf-8"},
		{"GET", "/ui/runs/NOT-AN-ID", 404, "text/html; charset=utf-8"},
		{"GET", "/ui/runs/ffffffffffffffffffff", 404, "text/html; charset=utf-8"},
		{"GET", "/ui/runs/" + idFailed + "/x", 404, "text/html; charset=utf-8"},
		{"GET", "/ui/assets/nope.css", 404, "text/html; charset=utf-8"},
		{"GET", "/ui/assets/", 404, "text/html; charset=utf-8"},
		{"GET", "/index.html", 404, "application/json"}, // outside the page: the API's JSON 404
		{"GET", "/ui/assets/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/ui/assets/refresh.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/ui/assets/icon.svg", 200, "image/svg+xml"},
	} {
		res, body := get(t, h, c.method, c.path)
		if res.StatusCode != c.status || res.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s %s = %d %q, want %d %q", c.method, c.path, res.StatusCode, res.Header.Get("Content-Type"), c.status, c.ctype)
		}
		if c.method == "HEAD" && body != "" {
			t.Errorf("HEAD %s has a body", c.path)
		}
		if c.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow = %q", c.method, c.path, res.Header.Get("Allow"))
		}
		if c.ctype != "application/json" && res.Header.Get("Content-Security-Policy") != CSP {
			t.Errorf("%s %s has no CSP", c.method, c.path)
		}
	}
}

func TestAssetsRevalidate(t *testing.T) {
	h := server(t, newFixture())
	res, _ := get(t, h, http.MethodGet, "/ui/assets/style.css")
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("style.css: ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	req := httptest.NewRequest(http.MethodGet, "/ui/assets/style.css", nil)
	req.Header.Set("If-None-Match", etag)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("revalidation = %d, want 304", rec.Code)
	}
}

func TestPageWithoutData(t *testing.T) {
	h := server(t, &fixture{st: run.Status{Version: "dev", Now: fixtureNow}})
	res, body := get(t, h, http.MethodGet, "/")
	if res.StatusCode != 200 || !strings.Contains(body, "No failed run in the journal.") || !strings.Contains(body, "No policy has a target yet.") ||
		!strings.Contains(body, `<span class="badge bad">not ready</span>`) || strings.Contains(body, "Native backups") {
		t.Errorf("empty fleet page = %d\n%s", res.StatusCode, body)
	}

	f := newFixture()
	f.err = errors.New("journal: database is closed")
	h = server(t, f)
	res, body = get(t, h, http.MethodGet, "/")
	if res.StatusCode != 200 || !strings.Contains(body, "The recent failures could not be read from the journal: journal: database is closed") {
		t.Errorf("fleet page with a failing journal = %d", res.StatusCode)
	}
	res, body = get(t, h, http.MethodGet, "/ui/runs/"+idFailed)
	if res.StatusCode != 500 || !strings.Contains(body, "database is closed") {
		t.Errorf("run page with a failing journal = %d\n%s", res.StatusCode, body)
	}
}

func TestFreshness(t *testing.T) {
	now := fixtureNow
	for _, c := range []struct {
		age, interval time.Duration
		never         bool
		want          string
	}{
		{never: true, interval: time.Hour, want: FreshNever},
		{age: time.Hour, interval: 0, want: FreshUnknown},
		{age: time.Hour, interval: time.Hour, want: FreshOK},
		{age: time.Hour + time.Second, interval: time.Hour, want: FreshLate},
		{age: 2 * time.Hour, interval: time.Hour, want: FreshLate},
		{age: 2*time.Hour + time.Second, interval: time.Hour, want: FreshOverdue},
	} {
		last := now.Add(-c.age)
		if c.never {
			last = time.Time{}
		}
		if got, _ := freshness(now, last, c.interval); got != c.want {
			t.Errorf("age %v, interval %v: %s, want %s", c.age, c.interval, got, c.want)
		}
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 1500 * time.Millisecond: "2s", 61 * time.Second: "1m 1s", 3*time.Hour + 5*time.Minute + 9*time.Second: "3h 5m", time.Hour: "1h", 48 * time.Hour: "2d",
		50*time.Hour + 10*time.Minute: "2d 2h", -90 * time.Second: "-1m 30s",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestFleetPageShowsDrills: a restore drill policy's last drill, and a
// flex restore policy's last restore, are on the page with the result
// (linked to the run), restore time, snapshot age and verification.
func TestFleetPageShowsDrills(t *testing.T) {
	f := newFixture()
	src := run.Target{ProjectID: projProd, Cluster: "prod-a"}
	start := ago(3 * time.Hour)
	d := run.Run{ID: "drill-prod-a-1", Policy: "drill-prod", Action: run.ActionRestoreDrill, Target: src, Slot: start, ScheduledAt: start,
		Spec:  run.Spec{TargetProjectID: projProd, TargetCluster: "scratch", DrillSnapshot: "latest"},
		Stage: run.StageFailed, Reason: run.ReasonVerifyFailed, CreatedAt: start, FinishedAt: ago(2 * time.Hour), UpdatedAt: ago(2 * time.Hour),
		Drill: run.Drill{SnapshotAt: ago(9 * time.Hour), JobCreatedAt: start, JobFinishedAt: start.Add(42 * time.Minute),
			Verification: run.VerifyFailed, VerifyExitCode: 3}}
	f.runs = append(f.runs, d)
	f.st.Policies = append(f.st.Policies, run.PolicyStatus{Name: "drill-prod", Action: run.ActionRestoreDrill, Schedule: "0 6 * * 1", Timezone: "UTC",
		Targets: []run.TargetStatus{{Target: src, LastRun: &d, LastSuccess: ago(8 * 24 * time.Hour)}}})
	// A flex restore policy's last restore is there too, with its
	// snapshot's age and restore time on Atlas's clock.
	flexSrc := run.Target{ProjectID: projProd, Cluster: "flex-a"}
	fr := run.Run{ID: "refresh-flex-a-1", Policy: "refresh", Action: run.ActionFlexRestore, Target: flexSrc, Slot: start, ScheduledAt: start,
		Spec:  run.Spec{TargetProjectID: projProd, TargetCluster: "staging", FlexSnapshot: "latest"},
		Stage: run.StageSucceeded, CreatedAt: start, FinishedAt: ago(2 * time.Hour), UpdatedAt: ago(2 * time.Hour),
		Drill: run.Drill{SnapshotAt: ago(5 * time.Hour), JobCreatedAt: start, JobFinishedAt: start.Add(3 * time.Minute)}}
	f.runs = append(f.runs, fr)
	f.st.Policies = append(f.st.Policies, run.PolicyStatus{Name: "refresh", Action: run.ActionFlexRestore, Schedule: "0 5 * * *", Timezone: "UTC",
		Targets: []run.TargetStatus{{Target: flexSrc, LastRun: &fr, LastSuccess: ago(2 * time.Hour)}}})
	_, body := get(t, server(t, f), http.MethodGet, "/")
	i := strings.Index(body, `<h2 id="drills">Restore drills</h2>`)
	if i < 0 {
		t.Fatalf("no drills section:\n%s", body)
	}
	section := body[i:]
	section = section[:strings.Index(section, "</section>")]
	for _, want := range []string{
		`<th scope="row" data-label="Policy">drill-prod</th>`,
		`prod-a <span class="proj">project ` + projProd + `</span> → scratch`,
		`<a href="/ui/runs/drill-prod-a-1"><span class="badge bad">failed: verify_failed</span></a>`,
		`<td data-label="Restore time">42m</td>`,
		`<td data-label="Snapshot age">6h</td>`,
		`<td data-label="Verification">failed (exit 3)</td>`,
		`8d ago`,
		`<th scope="row" data-label="Policy">refresh <span class="proj">flex restore</span></th>`,
		`flex-a <span class="proj">project ` + projProd + `</span> → staging`,
		`<td data-label="Restore time">3m</td>`,
		`<td data-label="Snapshot age">2h</td>`,
		`<td data-label="Verification">atlas_only</td>`,
	} {
		if !strings.Contains(section, want) {
			t.Errorf("drills section lacks %q:\n%s", want, section)
		}
	}
	// A page without drill policies has no such section.
	if _, plain := get(t, server(t, newFixture()), http.MethodGet, "/"); strings.Contains(plain, `id="drills"`) {
		t.Error("a drills section without drill policies")
	}
}
