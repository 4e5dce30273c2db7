package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

const (
	adminToken = "s3cr3t-admin-token-9f8e7d6c"
	projectID  = "32b6e34b3d91647abb20e7b8"
)

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// fakeBackend records calls and answers from its fields.
type fakeBackend struct {
	mu       sync.Mutex
	status   run.Status
	runs     []run.Run
	runsErr  error
	trigErr  error
	calls    []string
	targets  []*run.Target
	policies []string
	limits   []int
	queries  []RunQuery
}

func (b *fakeBackend) Status(context.Context) run.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "status")
	return b.status
}

// Runs answers from b.runs, taken to be newest first, as a journal would.
func (b *fakeBackend) Runs(_ context.Context, q RunQuery) ([]run.Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "runs")
	b.policies = append(b.policies, q.Policy)
	b.limits = append(b.limits, q.Limit)
	b.queries = append(b.queries, q)
	if b.runsErr != nil {
		return nil, b.runsErr
	}
	var out []run.Run
	for _, r := range b.runs {
		after := q.After.IsZero() || r.CreatedAt.Before(q.After.CreatedAt) || (r.CreatedAt.Equal(q.After.CreatedAt) && r.ID < q.After.ID)
		if after && q.Match(r) && len(out) < q.Limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (b *fakeBackend) Run(_ context.Context, id run.ID) (run.Run, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "run")
	if b.runsErr != nil {
		return run.Run{}, false, b.runsErr
	}
	for _, r := range b.runs {
		if r.ID == id {
			return r, true, nil
		}
	}
	return run.Run{}, false, nil
}

func (b *fakeBackend) Trigger(_ context.Context, policy string, target *run.Target) ([]run.Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "trigger")
	b.policies = append(b.policies, policy)
	b.targets = append(b.targets, target)
	if b.trigErr != nil {
		return nil, b.trigErr
	}
	tg := run.Target{ProjectID: projectID, Cluster: "prod-a"}
	if target != nil {
		tg = *target
	}
	return []run.Run{{ID: run.NewID(policy, tg.ProjectID, tg.Cluster, t0, true), Policy: policy, Target: tg, Stage: run.StagePending, Manual: true}}, nil
}

func (b *fakeBackend) triggerCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		if c == "trigger" {
			n++
		}
	}
	return n
}

type harness struct {
	srv     *Server
	backend *fakeBackend
	logs    *observer.ObservedLogs
	token   string
	healthy error
	ready   error
	mu      sync.Mutex
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &harness{backend: &fakeBackend{}, logs: logs, token: adminToken}
	h.srv = New(Config{
		Listen:     "127.0.0.1:0",
		AdminToken: func() string { h.mu.Lock(); defer h.mu.Unlock(); return h.token },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "# TYPE backupd_up gauge\nbackupd_up 1\n")
		}),
		Backend: h.backend,
		Healthy: func() error { h.mu.Lock(); defer h.mu.Unlock(); return h.healthy },
		Ready:   func() error { h.mu.Lock(); defer h.mu.Unlock(); return h.ready },
		Logger:  zap.New(core),
		Clock:   clock.NewFake(t0),
	})
	return h
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (r response) apiError(t *testing.T) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Error == "" {
		t.Fatalf("error body %q has no error message", r.body)
	}
	return e
}

func (h *harness) do(t *testing.T, method, target string, body io.Reader, header map[string]string) response {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return response{code: res.StatusCode, header: res.Header, body: string(b)}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func jsonBearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
}

func TestProbes(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		r := h.do(t, http.MethodGet, path, nil, nil)
		if r.code != http.StatusOK || r.body != "ok\n" {
			t.Errorf("GET %s = %d %q, want 200 ok", path, r.code, r.body)
		}
	}
	h.mu.Lock()
	h.healthy = errors.New("scheduler loop has not ticked for 2m0s")
	h.ready = errors.New("Atlas authentication failed 5m ago: 401 UNAUTHORIZED")
	h.mu.Unlock()
	r := h.do(t, http.MethodGet, "/healthz", nil, nil)
	if r.code != http.StatusServiceUnavailable || r.body != "unhealthy: scheduler loop has not ticked for 2m0s\n" {
		t.Errorf("GET /healthz = %d %q", r.code, r.body)
	}
	r = h.do(t, http.MethodGet, "/readyz", nil, nil)
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "not ready: Atlas authentication failed") {
		t.Errorf("GET /readyz = %d %q", r.code, r.body)
	}
	// HEAD works wherever GET does.
	if r := h.do(t, http.MethodHead, "/healthz", nil, nil); r.code != http.StatusServiceUnavailable {
		t.Errorf("HEAD /healthz = %d, want 503", r.code)
	}
}

func TestNilProbesAndBackend(t *testing.T) {
	s := New(Config{})
	for path, want := range map[string]int{
		"/healthz": 200, "/readyz": 200, "/metrics": 404, "/api/v1/status": 503, "/api/v1/runs": 503,
	} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s with an empty config = %d, want %d", path, rec.Code, want)
		}
	}
	// No token func: mutating endpoints are disabled.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/policies/p/trigger", nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("trigger with no token func = %d, want 403", rec.Code)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t)
	r := h.do(t, http.MethodGet, "/metrics", nil, nil)
	if r.code != http.StatusOK || !strings.Contains(r.body, "backupd_up 1") {
		t.Errorf("GET /metrics = %d %q", r.code, r.body)
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t)
	in := &run.Run{ID: "abc", Policy: "nightly", Stage: run.StageSnapshotting, SnapshotID: "6650c0f9a2b3c4d5e6f70819", Target: run.Target{ProjectID: projectID, Cluster: "prod-a"}}
	h.backend.status = run.Status{
		Version: "v1.0.0", StartedAt: t0, Now: t0.Add(time.Hour), Ready: true,
		Policies: []run.PolicyStatus{{Name: "nightly", Action: run.ActionSnapshot, Schedule: "0 2 * * *", Timezone: "UTC",
			Targets: []run.TargetStatus{{Target: in.Target, NextRun: t0.Add(24 * time.Hour), InFlight: in}}}},
	}
	r := h.do(t, http.MethodGet, "/api/v1/status", nil, nil)
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/status = %d %s", r.code, r.header.Get("Content-Type"))
	}
	var got run.Status
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h.backend.status) {
		t.Errorf("status round trip:\n got %+v\nwant %+v", got, h.backend.status)
	}
}

func TestRuns(t *testing.T) {
	h := newHarness(t)
	h.backend.runs = []run.Run{{ID: "b", Policy: "nightly", Stage: run.StageSucceeded}, {ID: "a", Policy: "nightly", Stage: run.StageFailed, Reason: "timeout"}}

	r := h.do(t, http.MethodGet, "/api/v1/runs", nil, nil)
	var got runsResponse
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != http.StatusOK {
		t.Fatalf("GET /api/v1/runs = %d %q (%v)", r.code, r.body, err)
	}
	if len(got.Runs) != 2 || got.Runs[0].ID != "b" || got.Runs[1].Reason != "timeout" {
		t.Errorf("runs = %+v", got.Runs)
	}
	r = h.do(t, http.MethodGet, "/api/v1/runs?policy=nightly&limit=1000", nil, nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET with policy and limit = %d %q", r.code, r.body)
	}
	r = h.do(t, http.MethodGet, "/api/v1/runs?limit=1", nil, nil)
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || len(got.Runs) != 1 {
		t.Errorf("limit=1 returned %q; a backend returning more must be cut to the limit", r.body)
	}
	h.backend.mu.Lock()
	if want := []string{"", "nightly", ""}; !reflect.DeepEqual(h.backend.policies, want) {
		t.Errorf("backend policies = %q, want %q", h.backend.policies, want)
	}
	// One more than asked, to learn whether there is a next page.
	if want := []int{51, 1001, 2}; !reflect.DeepEqual(h.backend.limits, want) {
		t.Errorf("backend limits = %v, want %v (default 50, plus one)", h.backend.limits, want)
	}
	h.backend.mu.Unlock()

	// An empty history is an empty list, not null.
	h.backend.runs = nil
	r = h.do(t, http.MethodGet, "/api/v1/runs", nil, nil)
	if !strings.Contains(r.body, `"runs":[]`) {
		t.Errorf("empty history body = %q", r.body)
	}

	h.backend.runsErr = fmt.Errorf("read journal: %w", ErrUnknownPolicy)
	r = h.do(t, http.MethodGet, "/api/v1/runs?policy=gone", nil, nil)
	if e := r.apiError(t); r.code != http.StatusNotFound || e.Field != "policy" {
		t.Errorf("unknown policy = %d %+v", r.code, e)
	}
	h.backend.runsErr = errors.New("journal closed")
	r = h.do(t, http.MethodGet, "/api/v1/runs", nil, nil)
	if e := r.apiError(t); r.code != http.StatusInternalServerError || !strings.Contains(e.Error, "journal closed") {
		t.Errorf("backend failure = %d %+v", r.code, e)
	}
}

// TestRunsBadQuery: every bad parameter of GET /api/v1/runs is a 400
// naming it and the rule, and never reaches the backend.
func TestRunsBadQuery(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ query, field, contains string }{
		{"limit=0", "limit", "from 1 to 1000"},
		{"limit=1001", "limit", "from 1 to 1000"},
		{"limit=-5", "limit", "from 1 to 1000"},
		{"limit=abc", "limit", "integer"},
		{"limit=", "limit", "integer"},
		{"limit=1&limit=2", "limit", "once"},
		{"policy=Bad_Name", "policy", "must match"},
		{"polcy=nightly", "polcy", "unknown query parameter"},
		// The filters and the cursor: every bad value names the parameter
		// and the rule.
		{"projectID=xyz", "projectID", "must match"},
		{"cluster=-a", "cluster", "must match"},
		{"cluster=" + strings.Repeat("a", 65), "cluster", "at most 64"},
		{"stage=done", "stage", `"done" is not a stage`},
		{"stage=failed,", "stage", `"" is not a stage`},
		{"result=failed", "result", "success, failure, timeout"},
		{"since=yesterday", "since", "RFC 3339"},
		{"since=-1h", "since", "positive duration"},
		{"since=0s", "since", "positive duration"},
		{"cursor=not*base64", "cursor", "next value"},
		{"cursor=" + rawCursor("12.nothex"), "cursor", "not a cursor"},
		{"cursor=" + rawCursor("x.0123456789abcdef0123"), "cursor", "not a cursor"},
		{"cursor=a&cursor=b", "cursor", "once"},
		{"page=2", "page", "unknown query parameter"},
	} {
		r := h.do(t, http.MethodGet, "/api/v1/runs?"+tc.query, nil, nil)
		e := r.apiError(t)
		if r.code != http.StatusBadRequest || e.Field != tc.field || !strings.Contains(e.Error, tc.contains) {
			t.Errorf("?%s = %d %+v, want 400 field %s mentioning %q", tc.query, r.code, e, tc.field, tc.contains)
		}
	}
	if len(h.backend.calls) != 0 {
		t.Errorf("backend called for invalid queries: %v", h.backend.calls)
	}
}

func TestTriggerAuthMatrix(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured string
		header     map[string]string
		want       int
	}{
		{"no token configured", "", bearer(adminToken), http.StatusForbidden},
		{"no token configured, no header", "", nil, http.StatusForbidden},
		{"missing header", adminToken, nil, http.StatusUnauthorized},
		{"wrong token", adminToken, bearer("wrong"), http.StatusUnauthorized},
		{"token prefix", adminToken, bearer(adminToken[:10]), http.StatusUnauthorized},
		{"token with suffix", adminToken, bearer(adminToken + "x"), http.StatusUnauthorized},
		{"basic scheme", adminToken, map[string]string{"Authorization": "Basic " + adminToken}, http.StatusUnauthorized},
		{"empty bearer", adminToken, map[string]string{"Authorization": "Bearer "}, http.StatusUnauthorized},
		{"bare token", adminToken, map[string]string{"Authorization": adminToken}, http.StatusUnauthorized},
		{"right token", adminToken, bearer(adminToken), http.StatusAccepted},
		{"lower-case scheme", adminToken, map[string]string{"Authorization": "bearer " + adminToken}, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.token = tc.configured
			r := h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, tc.header)
			if r.code != tc.want {
				t.Fatalf("status %d %q, want %d", r.code, r.body, tc.want)
			}
			switch tc.want {
			case http.StatusUnauthorized:
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case http.StatusForbidden:
				if e := r.apiError(t); !strings.Contains(e.Error, "no admin token is configured") {
					t.Errorf("403 message %q does not say why", e.Error)
				}
			}
			if calls := h.backend.triggerCalls(); (tc.want == http.StatusAccepted) != (calls == 1) {
				t.Errorf("backend Trigger called %d times for status %d", calls, tc.want)
			}
		})
	}
}

func TestTokenReloadTakesEffect(t *testing.T) {
	h := newHarness(t)
	if r := h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, bearer(adminToken)); r.code != http.StatusAccepted {
		t.Fatalf("old token = %d", r.code)
	}
	h.mu.Lock()
	h.token = "rotated-token"
	h.mu.Unlock()
	if r := h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, bearer(adminToken)); r.code != http.StatusUnauthorized {
		t.Errorf("old token after rotation = %d, want 401", r.code)
	}
	if r := h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, bearer("rotated-token")); r.code != http.StatusAccepted {
		t.Errorf("new token after rotation = %d, want 202", r.code)
	}
}

func TestTriggerTargets(t *testing.T) {
	h := newHarness(t)
	want := &run.Target{ProjectID: projectID, Cluster: "prod-a"}

	r := h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, bearer(adminToken))
	var got runsResponse
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != http.StatusAccepted || len(got.Runs) != 1 || !got.Runs[0].Manual {
		t.Fatalf("trigger all = %d %q", r.code, r.body)
	}
	h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger?projectID="+projectID+"&cluster=prod-a", nil, bearer(adminToken))
	h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", strings.NewReader(`{"projectID":"`+projectID+`","cluster":"prod-a"}`), jsonBearer(adminToken))
	h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", strings.NewReader(`{}`), jsonBearer(adminToken))
	hdr := jsonBearer(adminToken)
	hdr["Content-Type"] = "application/json; charset=utf-8"
	h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", strings.NewReader(" \n"), hdr)

	h.backend.mu.Lock()
	defer h.backend.mu.Unlock()
	wantTargets := []*run.Target{nil, want, want, nil, nil}
	if !reflect.DeepEqual(h.backend.targets, wantTargets) {
		t.Errorf("targets passed to Trigger = %v, want %v", h.backend.targets, wantTargets)
	}
	for _, p := range h.backend.policies {
		if p != "nightly" {
			t.Errorf("policy passed = %q", p)
		}
	}
}

func TestTriggerBackendErrors(t *testing.T) {
	h := newHarness(t)
	h.backend.trigErr = fmt.Errorf("trigger: %w", ErrUnknownPolicy)
	r := h.do(t, http.MethodPost, "/api/v1/policies/nope/trigger", nil, bearer(adminToken))
	if e := r.apiError(t); r.code != http.StatusNotFound || e.Field != "name" || !strings.Contains(e.Error, `"nope"`) {
		t.Errorf("unknown policy = %d %+v", r.code, e)
	}
	h.backend.trigErr = fmt.Errorf("trigger: %w", ErrUnknownTarget)
	r = h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger?projectID="+projectID+"&cluster=other", nil, bearer(adminToken))
	if e := r.apiError(t); r.code != http.StatusNotFound || e.Field != "cluster" || !strings.Contains(e.Error, projectID+"/other") {
		t.Errorf("unknown target = %d %+v", r.code, e)
	}
	h.backend.trigErr = errors.New("engine is shutting down")
	r = h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, bearer(adminToken))
	if e := r.apiError(t); r.code != http.StatusInternalServerError || !strings.Contains(e.Error, "shutting down") {
		t.Errorf("backend failure = %d %+v", r.code, e)
	}
}

func TestTriggerMalformed(t *testing.T) {
	const path = "/api/v1/policies/nightly/trigger"
	huge := `{"projectID":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		header map[string]string
		code   int
		field  string
	}{
		{"bad JSON", path, `{"projectID":`, jsonBearer(adminToken), 400, ""},
		{"not an object", path, `[1,2]`, jsonBearer(adminToken), 400, ""},
		{"wrong type", path, `{"projectID": 5, "cluster": "x"}`, jsonBearer(adminToken), 400, "projectID"},
		{"unknown field", path, `{"project":"` + projectID + `"}`, jsonBearer(adminToken), 400, "project"},
		{"trailing data", path, `{} {}`, jsonBearer(adminToken), 400, ""},
		{"huge body", path, huge, jsonBearer(adminToken), 413, ""},
		{"form content", path, `projectID=` + projectID, map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/x-www-form-urlencoded"}, 415, ""},
		{"no content type", path, `{}`, bearer(adminToken), 415, ""},
		{"bad project id", path + "?projectID=XYZ&cluster=prod-a", "", bearer(adminToken), 400, "projectID"},
		{"upper-case project id", path + "?projectID=32B6E34B3D91647ABB20E7B8&cluster=prod-a", "", bearer(adminToken), 400, "projectID"},
		{"bad cluster", path + "?projectID=" + projectID + "&cluster=-prod", "", bearer(adminToken), 400, "cluster"},
		{"cluster with slash", path, `{"projectID":"` + projectID + `","cluster":"a/b"}`, jsonBearer(adminToken), 400, "cluster"},
		{"only project", path + "?projectID=" + projectID, "", bearer(adminToken), 400, "cluster"},
		{"only cluster", path, `{"cluster":"prod-a"}`, jsonBearer(adminToken), 400, "projectID"},
		{"query and body", path + "?projectID=" + projectID + "&cluster=prod-a", `{"projectID":"` + projectID + `","cluster":"prod-a"}`, jsonBearer(adminToken), 400, ""},
		{"unknown query", path + "?force=true", "", bearer(adminToken), 400, "force"},
		{"bad policy name", "/api/v1/policies/Nightly_Prod/trigger", "", bearer(adminToken), 400, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.do(t, http.MethodPost, tc.path, strings.NewReader(tc.body), tc.header)
			e := r.apiError(t)
			if r.code != tc.code || e.Field != tc.field {
				t.Errorf("= %d %+v, want %d field %q", r.code, e, tc.code, tc.field)
			}
			if h.backend.triggerCalls() != 0 {
				t.Error("backend Trigger called for a malformed request")
			}
		})
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodGet, "/api/v1/policies/nightly", 404, ""},
		{http.MethodGet, "/api/v2/status", 404, ""},
		{http.MethodPost, "/api/v1/status", 405, "GET, HEAD"},
		{http.MethodDelete, "/api/v1/runs", 405, "GET, HEAD"},
		{http.MethodPut, "/metrics", 405, "GET, HEAD"},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
		{http.MethodGet, "/api/v1/policies/nightly/trigger", 405, "POST"},
	} {
		r := h.do(t, tc.method, tc.path, nil, bearer(adminToken))
		r.apiError(t)
		if r.code != tc.code || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d Allow %q, want %d Allow %q", tc.method, tc.path, r.code, r.header.Get("Allow"), tc.code, tc.allow)
		}
	}
	if len(h.backend.calls) != 0 {
		t.Errorf("backend called: %v", h.backend.calls)
	}
}

// TestTokenNeverLeaks sends every kind of request with the real and with
// wrong tokens and checks that neither appears in any response or log line.
func TestTokenNeverLeaks(t *testing.T) {
	h := newHarness(t)
	h.backend.trigErr = nil
	wrong := "wrong-token-1234567890"
	for _, tok := range []string{adminToken, wrong} {
		for _, req := range []struct{ method, path, body string }{
			{http.MethodPost, "/api/v1/policies/nightly/trigger", ""},
			{http.MethodPost, "/api/v1/policies/nightly/trigger", `{"projectID":"bad"}`},
			{http.MethodPost, "/api/v1/policies/nightly/trigger", `{"bad json`},
			{http.MethodGet, "/api/v1/status", ""},
			{http.MethodGet, "/api/v1/runs?limit=x", ""},
			{http.MethodGet, "/nope", ""},
			{http.MethodDelete, "/api/v1/policies/nightly/trigger", ""},
		} {
			r := h.do(t, req.method, req.path, strings.NewReader(req.body), jsonBearer(tok))
			for _, secret := range []string{adminToken, wrong} {
				if strings.Contains(r.body, secret) || strings.Contains(fmt.Sprint(r.header), secret) {
					t.Errorf("%s %s with token %q: response contains a token: %d %v %q", req.method, req.path, tok, r.code, r.header, r.body)
				}
			}
		}
	}
	entries := h.logs.All()
	if len(entries) == 0 {
		t.Fatal("no log lines captured; the access log must log at debug")
	}
	for _, e := range entries {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, secret := range []string{adminToken, wrong} {
			if strings.Contains(line, secret) {
				t.Errorf("log line contains a token: %s", line)
			}
		}
		if strings.Contains(strings.ToLower(line), "authorization") {
			t.Errorf("log line mentions the Authorization header: %s", line)
		}
	}
}

func TestAccessLog(t *testing.T) {
	h := newHarness(t)
	h.do(t, http.MethodGet, "/api/v1/runs?limit=7", nil, nil)
	h.do(t, http.MethodPost, "/api/v1/policies/nightly/trigger", nil, nil)
	var access []observer.LoggedEntry
	for _, e := range h.logs.All() {
		if e.Message == "http request" {
			access = append(access, e)
		}
	}
	if len(access) != 2 {
		t.Fatalf("access log lines = %d, want 2", len(access))
	}
	for i, want := range []struct {
		method, path string
		status       int64
	}{{"GET", "/api/v1/runs", 200}, {"POST", "/api/v1/policies/nightly/trigger", 401}} {
		m := access[i].ContextMap()
		if access[i].Level != zapcore.DebugLevel || m["method"] != want.method || m["path"] != want.path || m["status"] != want.status {
			t.Errorf("access line %d = %v %v, want debug %s %s %d", i, access[i].Level, m, want.method, want.path, want.status)
		}
		if _, ok := m["bytes"]; !ok {
			t.Errorf("access line %d lacks bytes", i)
		}
	}
}

func TestStartServeShutdown(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	addr, err := h.srv.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	h.srv.mu.Lock()
	srv := h.srv.srv
	h.srv.mu.Unlock()
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 || srv.MaxHeaderBytes == 0 {
		t.Errorf("server timeouts not all set: %+v", srv)
	}

	base := "http://" + addr.String()
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("GET /healthz over TCP = %d %q", res.StatusCode, body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/policies/nightly/trigger?projectID="+projectID+"&cluster=prod-a", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Errorf("trigger over TCP = %d", res.StatusCode)
	}
	// Headers beyond MaxHeaderBytes are refused.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*maxHeaderBytes))
	if res, err := http.DefaultClient.Do(req); err == nil {
		_ = res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("huge header = %d, want 431", res.StatusCode)
		}
	}

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}

func TestStartListenError(t *testing.T) {
	s := New(Config{Listen: "256.0.0.1:bad"})
	if _, err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "256.0.0.1:bad") {
		t.Errorf("Start on a bad address = %v, want an error naming it", err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown of a server that never started = %v", err)
	}
}
