package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// history is n runs, newest first, alternating policies, clusters and
// results; runs 4 and 5 share a CreatedAt so a page can end inside a tie.
func history(n int) []run.Run {
	var rs []run.Run
	for i := n - 1; i >= 0; i-- {
		created := t0.Add(time.Duration(i) * time.Hour)
		if i == 5 {
			created = t0.Add(4 * time.Hour)
		}
		r := run.Run{
			ID:        run.NewID("p", projectID, "c", created, i%2 == 0),
			Policy:    []string{"nightly", "hourly"}[i%2],
			Target:    run.Target{ProjectID: projectID, Cluster: []string{"prod-a", "prod-b", "prod-c"}[i%3]},
			Stage:     run.StageSucceeded,
			CreatedAt: created,
		}
		if i%4 == 1 {
			r.Stage, r.Reason = run.StageFailed, run.ReasonTimeout
		}
		rs = append(rs, r)
	}
	// Ties sort by descending ID, as History does.
	slices.SortStableFunc(rs, func(a, b run.Run) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(string(b.ID), string(a.ID))
	})
	return rs
}

// pageAll follows next from query until the last page.
func pageAll(t *testing.T, h *harness, query string) (ids []run.ID, pages int) {
	t.Helper()
	next := ""
	for pages = 1; pages < 100; pages++ {
		q := query
		if next != "" {
			q += "&cursor=" + url.QueryEscape(next)
		}
		r := h.do(t, http.MethodGet, "/api/v1/runs?"+q, nil, nil)
		var got runsResponse
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != http.StatusOK {
			t.Fatalf("GET ?%s = %d %q (%v)", q, r.code, r.body, err)
		}
		for _, run := range got.Runs {
			ids = append(ids, run.ID)
		}
		if got.Next == "" {
			return ids, pages
		}
		next = got.Next
	}
	t.Fatal("paging does not end")
	return nil, 0
}

// TestRunsCursorPagesThroughEverything: paging with limit=3 through 11
// runs returns each run once, in order, on ceil(11/3) pages, even where
// a page ends between runs created at the same instant.
func TestRunsCursorPagesThroughEverything(t *testing.T) {
	h := newHarness(t)
	h.backend.runs = history(11)
	var want []run.ID
	for _, r := range h.backend.runs {
		want = append(want, r.ID)
	}
	got, pages := pageAll(t, h, "limit=3")
	if !slices.Equal(got, want) || pages != 4 {
		t.Fatalf("paged ids = %v on %d pages; want %v on 4", got, pages, want)
	}
	// Exactly limit runs left: the last full page has no next.
	got, pages = pageAll(t, h, "limit=11")
	if len(got) != 11 || pages != 1 {
		t.Fatalf("limit=11: %d runs on %d pages, want 11 on 1", len(got), pages)
	}
	// Filters hold across pages.
	got, _ = pageAll(t, h, "limit=2&policy=hourly&result=timeout")
	for _, id := range got {
		r := find(h.backend.runs, id)
		if r.Policy != "hourly" || r.Result() != "timeout" {
			t.Errorf("filtered paging returned %+v", r)
		}
	}
	if len(got) != 3 { // i = 1, 5, 9
		t.Errorf("hourly timeouts = %d, want 3", len(got))
	}
}

func find(rs []run.Run, id run.ID) run.Run {
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	return run.Run{}
}

// TestRunsFilters: each parameter reaches the backend parsed, and the
// answer holds only matching runs.
func TestRunsFilters(t *testing.T) {
	h := newHarness(t)
	h.backend.runs = history(12)
	for _, tc := range []struct {
		query string
		want  func(r run.Run) bool
		n     int
	}{
		{"cluster=prod-b", func(r run.Run) bool { return r.Target.Cluster == "prod-b" }, 4},
		{"projectID=" + projectID + "&cluster=prod-a&policy=nightly", func(r run.Run) bool { return r.Target.Cluster == "prod-a" && r.Policy == "nightly" }, 2},
		{"stage=failed", func(r run.Run) bool { return r.Stage == run.StageFailed }, 3},
		{"stage=failed,succeeded", func(r run.Run) bool { return true }, 12},
		{"result=success", func(r run.Run) bool { return r.Stage == run.StageSucceeded }, 9},
		{"since=2026-03-01T10:00:00Z", func(r run.Run) bool { return !r.CreatedAt.Before(t0.Add(8 * time.Hour)) }, 4},
		// The harness clock stands at t0+0: a duration counts back from it.
		{"since=1d", func(r run.Run) bool { return true }, 12},
		{"since=1h", func(r run.Run) bool { return true }, 12},
	} {
		r := h.do(t, http.MethodGet, "/api/v1/runs?"+tc.query, nil, nil)
		var got runsResponse
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != http.StatusOK {
			t.Fatalf("?%s = %d %q", tc.query, r.code, r.body)
		}
		for _, run := range got.Runs {
			if !tc.want(run) {
				t.Errorf("?%s returned %+v", tc.query, run)
			}
		}
		if len(got.Runs) != tc.n || got.Next != "" {
			t.Errorf("?%s returned %d runs (next %q), want %d", tc.query, len(got.Runs), got.Next, tc.n)
		}
	}
	h.backend.mu.Lock()
	defer h.backend.mu.Unlock()
	if q := h.backend.queries[len(h.backend.queries)-1]; !q.Since.Equal(t0.Add(-time.Hour)) {
		t.Errorf("since=1h reached the backend as %v, want %v", q.Since, t0.Add(-time.Hour))
	}
}

func rawCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestRunByID: one run in full; 404 for an id the journal lacks, 400 for
// one that cannot be a run id, 400 for a query.
func TestRunByID(t *testing.T) {
	h := newHarness(t)
	h.backend.runs = history(3)
	want := h.backend.runs[1]
	want.SnapshotID, want.Detail = "65f1a0000000000000000002", "Atlas said: EXPORT_FAILED"
	h.backend.runs[1] = want

	r := h.do(t, http.MethodGet, "/api/v1/runs/"+string(want.ID), nil, nil)
	var got run.Run
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != http.StatusOK {
		t.Fatalf("GET run = %d %q (%v)", r.code, r.body, err)
	}
	if got.ID != want.ID || got.SnapshotID != want.SnapshotID || got.Detail != want.Detail {
		t.Errorf("run = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		path  string
		code  int
		field string
	}{
		{"/api/v1/runs/0123456789abcdef0123", 404, "id"},
		{"/api/v1/runs/xyz", 400, "id"},
		{"/api/v1/runs/0123456789ABCDEF0123", 400, "id"},
		{"/api/v1/runs/" + string(want.ID) + "?verbose=1", 400, "verbose"},
	} {
		r := h.do(t, http.MethodGet, tc.path, nil, nil)
		if e := r.apiError(t); r.code != tc.code || e.Field != tc.field {
			t.Errorf("GET %s = %d %+v, want %d field %s", tc.path, r.code, e, tc.code, tc.field)
		}
	}
	r = h.do(t, http.MethodDelete, "/api/v1/runs/"+string(want.ID), nil, nil)
	if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE a run = %d Allow %q", r.code, r.header.Get("Allow"))
	}
	h.backend.runsErr = fmt.Errorf("journal closed")
	r = h.do(t, http.MethodGet, "/api/v1/runs/"+string(want.ID), nil, nil)
	if e := r.apiError(t); r.code != http.StatusInternalServerError || !strings.Contains(e.Error, "journal closed") {
		t.Errorf("backend failure = %d %+v", r.code, e)
	}
}
