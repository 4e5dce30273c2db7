package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// request is what a receiver saw.
type request struct {
	Method, Path, Query, ContentType string
	Body                             []byte
}

// receiver is a local HTTP server that records every request and answers
// with status (200 unless set); block, when set, holds each request until
// it is closed or the request is cancelled.
type receiver struct {
	*httptest.Server
	reqs   chan request
	mu     sync.Mutex
	status int
	block  chan struct{}
	header http.Header // added to every answer
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{reqs: make(chan request, 100), status: http.StatusOK}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.reqs <- request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"), Body: b}
		rc.mu.Lock()
		status, block := rc.status, rc.block
		for k, v := range rc.header {
			w.Header()[k] = v
		}
		rc.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) set(status int, block chan struct{}) {
	rc.mu.Lock()
	rc.status, rc.block = status, block
	rc.mu.Unlock()
}

func (rc *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-rc.reqs:
		return r
	case <-time.After(10 * time.Second): // a bound on a hang, not synchronisation
		t.Fatal("the receiver got no request")
		return request{}
	}
}

// harness runs a Notifier on a fake clock and reports each attempt's outcome.
type harness struct {
	n        *Notifier
	clk      *clock.Fake
	reg      *prometheus.Registry
	outcomes chan string
	stop     func()
}

func start(t *testing.T, cfg *policy.Notify, store Store, log *zap.Logger) *harness {
	t.Helper()
	h := &harness{clk: clock.NewFake(t0), reg: prometheus.NewRegistry(), outcomes: make(chan string, 100)}
	h.n = New(Config{Clock: h.clk, Store: store, Logger: log, Registerer: h.reg,
		OnFinish: func(d Delivery, outcome string) { h.outcomes <- d.Sink + ":" + d.Signal + ":" + outcome }}, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.n.Run(ctx) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(h.stop)
	return h
}

func (h *harness) outcome(t *testing.T) string {
	t.Helper()
	select {
	case o := <-h.outcomes:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt finished")
		return ""
	}
}

func notifyCfg(webhooks []policy.Webhook, pings []policy.Ping) *policy.Notify {
	return &policy.Notify{Webhooks: webhooks, Pings: pings, QueueSize: 100, Attempts: 3, Timeout: 10 * time.Second,
		Backoff: time.Minute, MaxBackoff: 10 * time.Minute}
}

func testRun(policyName string, stage run.Stage) run.Run {
	tg := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-a"}
	r := run.Run{ID: run.NewID(policyName, tg.ProjectID, tg.Cluster, t0, false), Policy: policyName, Action: run.ActionSnapshot,
		Target: tg, Slot: t0, ScheduledAt: t0.Add(time.Minute), Stage: stage, CreatedAt: t0.Add(time.Minute),
		SnapshotID: "65f0c0ffee0000000000000a"}
	if stage.Terminal() {
		r.FinishedAt = t0.Add(time.Hour + 30*time.Second)
	}
	if stage == run.StageFailed {
		r.Reason, r.Detail = run.ReasonSnapshotFailed, "Atlas: snapshot <failed> & gone"
	}
	return r
}

// started and ended are the events of a run's start and end.
func started(r run.Run) run.Event {
	r.Stage, r.FinishedAt, r.Reason, r.Detail = run.StagePending, time.Time{}, "", ""
	return run.Event{Run: r, At: r.CreatedAt}
}

func ended(r run.Run) run.Event {
	return run.Event{Run: r, From: run.StageSnapshotting, At: r.FinishedAt}
}

func TestWebhooksAndPingsAreDelivered(t *testing.T) {
	rc := newReceiver(t)
	cfg := notifyCfg([]policy.Webhook{
		{Name: "ops", URL: policy.NewSecret(rc.URL + "/hook/json"), Format: policy.FormatJSON, Events: []string{policy.EventSucceeded, policy.EventFailed}},
		{Name: "chat", URL: policy.NewSecret(rc.URL + "/hook/slack"), Format: policy.FormatSlack, Events: []string{policy.EventFailed}, Policies: []string{"nightly"}},
	}, []policy.Ping{{Policy: "nightly", URL: policy.NewSecret(rc.URL + "/ping/abc?create=1"), Start: "/start", Fail: "/fail",
		Send: []string{policy.PingStart, policy.PingSuccess, policy.PingFail}, Method: "POST"}})
	h := start(t, cfg, nil, nil)

	failed := testRun("nightly", run.StageFailed)
	h.n.Observe(started(failed))
	if got := rc.next(t); got.Path != "/ping/abc/start" || got.Query != "create=1" || got.Method != "POST" {
		t.Errorf("start ping %+v", got)
	}
	if o := h.outcome(t); o != "nightly:start:delivered" {
		t.Errorf("outcome %s", o)
	}
	// A progress note is no event.
	h.n.Observe(run.Event{Run: started(failed).Run, From: run.StagePending, Note: "snapshot inProgress"})
	h.n.Observe(ended(failed))
	got := map[string]request{}
	for range 3 {
		r := rc.next(t)
		got[r.Path] = r
		h.outcome(t)
	}
	// The JSON payload, field by field from the run.
	var p map[string]any
	if err := json.Unmarshal(got["/hook/json"].Body, &p); err != nil {
		t.Fatalf("json payload: %v", err)
	}
	runInfo, _ := p["run"].(map[string]any)
	want := map[string]any{"id": string(failed.ID), "policy": failed.Policy, "action": string(failed.Action), "projectID": failed.Target.ProjectID,
		"cluster": failed.Target.Cluster, "stage": "failed", "reason": failed.Reason, "detail": failed.Detail, "snapshotID": failed.SnapshotID,
		"createdAt": failed.CreatedAt.Format(time.RFC3339), "finishedAt": failed.FinishedAt.Format(time.RFC3339),
		"duration": failed.FinishedAt.Sub(failed.CreatedAt).String(), "manual": false, "catchUp": false}
	for k, v := range want {
		if runInfo[k] != v {
			t.Errorf("run.%s = %v, want %v", k, runInfo[k], v)
		}
	}
	if p["version"] != float64(PayloadVersion) || p["event"] != "failed" || p["at"] != failed.FinishedAt.Format(time.RFC3339) {
		t.Errorf("payload head %v %v %v", p["version"], p["event"], p["at"])
	}
	if ct := got["/hook/json"].ContentType; ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	// Slack: one text, escaped as Slack asks.
	var slack map[string]string
	if err := json.Unmarshal(got["/hook/slack"].Body, &slack); err != nil || len(slack) != 1 {
		t.Fatalf("slack payload %s: %v", got["/hook/slack"].Body, err)
	}
	for _, part := range []string{":x:", failed.Policy, failed.Target.String(), "failed (snapshot_failed)", "after 59m30s",
		"Atlas: snapshot &lt;failed&gt; &amp; gone", string(failed.ID)} {
		if !strings.Contains(slack["text"], part) {
			t.Errorf("slack text %q lacks %q", slack["text"], part)
		}
	}
	if r, ok := got["/ping/abc/fail"]; !ok || !strings.Contains(string(r.Body), "failed") {
		t.Errorf("fail ping %+v (all: %v)", r, got)
	}

	// Success: the JSON webhook and the success ping (the base URL); the
	// slack webhook wants failures only; a skipped run sends nothing.
	ok := testRun("nightly", run.StageSucceeded)
	h.n.Observe(ended(ok))
	paths := map[string]bool{}
	for range 2 {
		paths[rc.next(t).Path] = true
		h.outcome(t)
	}
	if !paths["/hook/json"] || !paths["/ping/abc"] {
		t.Errorf("success went to %v", paths)
	}
	h.n.Observe(run.Event{Run: testRun("nightly", run.StageSkipped), At: t0})
	h.n.Observe(ended(testRun("other", run.StageFailed))) // only ops wants it
	if r := rc.next(t); r.Path != "/hook/json" {
		t.Errorf("other policy's failure went to %s", r.Path)
	}
	h.outcome(t)
	select {
	case r := <-rc.reqs:
		t.Errorf("unexpected request %+v", r)
	default:
	}
	if v := testutil.ToFloat64(h.n.met.delivered.WithLabelValues(KindWebhook, "ops")); v != 3 {
		t.Errorf("delivered{ops} = %v, want 3", v)
	}
	if v := testutil.ToFloat64(h.n.met.delivered.WithLabelValues(KindPing, "nightly")); v != 3 {
		t.Errorf("delivered{ping nightly} = %v, want 3", v)
	}
	if v := testutil.ToFloat64(h.n.met.depth); v != 0 {
		t.Errorf("queue depth %v", v)
	}
}

func TestReceiverDownRetriesWithBackoffThenGivesUp(t *testing.T) {
	rc := newReceiver(t)
	rc.set(http.StatusServiceUnavailable, nil)
	h := start(t, notifyCfg([]policy.Webhook{{Name: "ops", URL: policy.NewSecret(rc.URL), Format: policy.FormatJSON, Events: []string{policy.EventFailed}}}, nil), nil, nil)
	h.n.Observe(ended(testRun("nightly", run.StageFailed)))
	rc.next(t)
	if o := h.outcome(t); o != "ops:failed:retry" {
		t.Fatalf("first outcome %s", o)
	}
	// The second attempt waits one backoff (1m): not a second earlier.
	if p := h.n.Pending(); len(p) != 1 || !p[0].NextAt.Equal(t0.Add(time.Minute)) || p[0].Attempts != 1 {
		t.Fatalf("pending %+v", p)
	}
	h.clk.Advance(time.Minute)
	rc.next(t)
	if o := h.outcome(t); o != "ops:failed:retry" {
		t.Fatalf("second outcome %s", o)
	}
	if p := h.n.Pending(); len(p) != 1 || !p[0].NextAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("backoff did not double: %+v", p)
	}
	h.clk.Advance(2 * time.Minute)
	rc.next(t)
	if o := h.outcome(t); o != "ops:failed:failed" {
		t.Fatalf("third outcome %s", o)
	}
	if v := testutil.ToFloat64(h.n.met.failed.WithLabelValues(KindWebhook, "ops", ReasonExhausted)); v != 1 {
		t.Errorf("failed{exhausted} = %v", v)
	}
	if v := testutil.ToFloat64(h.n.met.retries.WithLabelValues(KindWebhook, "ops")); v != 2 {
		t.Errorf("retries = %v", v)
	}
	if len(h.n.Pending()) != 0 {
		t.Errorf("still pending after giving up")
	}

	// A 4xx is final at once.
	rc.set(http.StatusNotFound, nil)
	h.n.Observe(ended(testRun("weekly", run.StageFailed)))
	rc.next(t)
	if o := h.outcome(t); o != "ops:failed:failed" {
		t.Fatalf("4xx outcome %s", o)
	}
	if v := testutil.ToFloat64(h.n.met.failed.WithLabelValues(KindWebhook, "ops", ReasonRejected)); v != 1 {
		t.Errorf("failed{rejected} = %v", v)
	}
}

func TestRetryAfterIsHonouredUpToMaxBackoff(t *testing.T) {
	rc := newReceiver(t)
	rc.set(http.StatusTooManyRequests, nil)
	rc.header = http.Header{"Retry-After": {"300"}}
	h := start(t, notifyCfg([]policy.Webhook{{Name: "ops", URL: policy.NewSecret(rc.URL), Format: policy.FormatJSON, Events: []string{policy.EventFailed}}}, nil), nil, nil)
	h.n.Observe(ended(testRun("nightly", run.StageFailed)))
	rc.next(t)
	h.outcome(t)
	// 5m asked, more than the 1m backoff, less than the 10m cap.
	if p := h.n.Pending(); len(p) != 1 || !p[0].NextAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("pending %+v", p)
	}
	rc.mu.Lock()
	rc.header = http.Header{"Retry-After": {h.clk.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat)}}
	rc.mu.Unlock()
	h.clk.Advance(5 * time.Minute)
	rc.next(t)
	h.outcome(t)
	if p := h.n.Pending(); len(p) != 1 || !p[0].NextAt.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("an HTTP-date two days ahead is capped at maxBackoff: %+v", p)
	}
	for v, want := range map[string]time.Duration{"": 0, "x": 0, "-5": 0, "0": 0, "7": 7 * time.Second} {
		if got := retryAfter(v, t0); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestBackoffDoublesUpToTheLimit(t *testing.T) {
	for attempts, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 7: 30 * time.Minute, 50: 30 * time.Minute} {
		if got := Backoff(30*time.Second, 30*time.Minute, attempts); got != want {
			t.Errorf("Backoff after %d = %s, want %s", attempts, got, want)
		}
	}
}

func TestSlowReceiverTimesOutAndNeverHoldsObserve(t *testing.T) {
	rc := newReceiver(t)
	block := make(chan struct{})
	defer close(block)
	rc.set(http.StatusOK, block)
	cfg := notifyCfg([]policy.Webhook{{Name: "ops", URL: policy.NewSecret(rc.URL), Format: policy.FormatJSON, Events: []string{policy.EventFailed, policy.EventSucceeded}}}, nil)
	cfg.QueueSize = 5
	h := start(t, cfg, nil, nil)
	h.n.Observe(ended(testRun("nightly", run.StageFailed)))
	rc.next(t) // the receiver holds it
	// With a request held, Observe still returns at once: a hundred events
	// more are queued, the oldest not in flight dropped beyond the bound.
	for i := range 100 {
		r := testRun("nightly", run.StageSucceeded)
		r.ID = run.ID(fmt.Sprintf("run-%03d", i))
		h.n.Observe(ended(r))
	}
	if n := len(h.n.Pending()); n != 5 {
		t.Errorf("queue holds %d, want its bound 5", n)
	}
	if v := testutil.ToFloat64(h.n.met.dropped.WithLabelValues(ReasonQueueFull)); v != 96 {
		t.Errorf("dropped{queue_full} = %v, want 101 - 5", v)
	}
	for range DefaultConcurrency - 1 { // every worker is now held
		rc.next(t)
	}
	// The held requests end at the timeout, on the injected clock; the one
	// left in the queue is then delivered by a free worker.
	rc.set(http.StatusOK, nil)
	h.clk.Advance(10 * time.Second)
	got := map[string]int{}
	for range DefaultConcurrency + 1 {
		got[h.outcome(t)]++
	}
	if got["ops:failed:retry"] != 1 || got["ops:succeeded:retry"] != DefaultConcurrency-1 || got["ops:succeeded:delivered"] != 1 {
		t.Errorf("outcomes %v", got)
	}
}

func TestPendingDeliveriesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	path := StorePath(filepath.Join(dir, "state.db"))
	down := newReceiver(t)
	down.set(http.StatusBadGateway, nil)
	const token = "T0KEN-in-the-path"
	webhooks := func(base string) []policy.Webhook {
		return []policy.Webhook{{Name: "ops", URL: policy.NewSecret(base + "/hooks/" + token), Format: policy.FormatJSON, Events: []string{policy.EventFailed}}}
	}
	pings := func(base string) []policy.Ping {
		return []policy.Ping{{Policy: "nightly", URL: policy.NewSecret(base + "/" + token), Start: "/start", Fail: "/fail", Send: []string{policy.PingStart, policy.PingFail}, Method: "POST"}}
	}
	store, warn, err := OpenStore(path)
	if err != nil || warn != "" {
		t.Fatalf("open: %v %q", err, warn)
	}
	h := start(t, notifyCfg(webhooks(down.URL), pings(down.URL)), store, nil)
	a, b := testRun("nightly", run.StageFailed), testRun("weekly", run.StageFailed)
	h.n.Observe(started(a))
	h.n.Observe(ended(a))
	h.n.Observe(ended(b))
	for range 4 { // every delivery tried once, and failed
		down.next(t)
		if o := h.outcome(t); !strings.HasSuffix(o, ":retry") {
			t.Fatalf("outcome %s", o)
		}
	}
	h.stop()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(token)) || bytes.Contains(raw, []byte(down.URL)) {
		t.Error("the store holds a URL")
	}

	// A new process: the same sinks, now reachable at another address.
	up := newReceiver(t)
	store, _, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h2 := start(t, notifyCfg(webhooks(up.URL), pings(up.URL)), store, nil)
	if p := h2.n.Pending(); len(p) != 4 {
		t.Fatalf("%d pending after the restart, want 4", len(p))
	}
	h2.clk.Advance(time.Minute) // their retry falls due
	bodies := map[string][]byte{}
	for range 4 {
		r := up.next(t)
		bodies[r.Path+" "+string(r.Body)] = r.Body
		h2.outcome(t)
	}
	wantA, _ := body(policy.FormatJSON, a, a.FinishedAt)
	wantB, _ := body(policy.FormatJSON, b, b.FinishedAt)
	want := []string{
		"/" + token + "/start " + Summary(started(a).Run),
		"/" + token + "/fail " + Summary(a),
		"/hooks/" + token + " " + string(wantA),
		"/hooks/" + token + " " + string(wantB),
	}
	for _, w := range want {
		if _, ok := bodies[w]; !ok {
			t.Errorf("after the restart, missing %q; got %v", w, keys(bodies))
		}
	}
	if len(bodies) != len(want) {
		t.Errorf("got %d distinct deliveries, want %d", len(bodies), len(want))
	}
	select {
	case r := <-up.reqs:
		t.Errorf("delivered twice: %+v", r)
	default:
	}
	h2.stop()
	if ds, err := store.Load(); err != nil || len(ds) != 0 {
		t.Errorf("store after delivery: %v %v", ds, err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestDamagedStoreIsMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.notify")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xAB}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	s, warn, err := OpenStore(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if !strings.Contains(warn, "damaged") {
		t.Errorf("warning %q", warn)
	}
	if _, err := os.Stat(path + ".damaged"); err != nil {
		t.Errorf("damaged copy: %v", err)
	}
	if ds, err := s.Load(); err != nil || len(ds) != 0 {
		t.Errorf("fresh store: %v %v", ds, err)
	}
}

func TestSecretURLsNeverInLogsOrErrors(t *testing.T) {
	const token = "xoxb-SECRET-token-42"
	// A port nobody listens on: the client's *url.Error quotes the URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://user:pa55@" + l.Addr().String() + "/services/" + token + "?key=" + token
	_ = l.Close()
	rc := newReceiver(t)
	rc.set(http.StatusForbidden, nil)
	var logs bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel)
	var mu sync.Mutex
	log := zap.New(&lockedCore{Core: core, mu: &mu})
	cfg := notifyCfg([]policy.Webhook{
		{Name: "dead", URL: policy.NewSecret(deadURL), Format: policy.FormatSlack, Events: []string{policy.EventFailed}},
		{Name: "refusing", URL: policy.NewSecret(rc.URL + "/hooks/" + token), Format: policy.FormatJSON, Events: []string{policy.EventFailed}},
	}, nil)
	cfg.Attempts = 2
	h := start(t, cfg, nil, log)
	h.n.Observe(ended(testRun("nightly", run.StageFailed)))
	seen := 0
	for seen < 3 { // dead: retry then failed; refusing: failed
		select {
		case o := <-h.outcomes:
			seen++
			if o == "dead:failed:retry" {
				h.clk.Advance(time.Minute)
			}
		case <-rc.reqs:
		case <-time.After(10 * time.Second):
			t.Fatal("attempts did not finish")
		}
	}
	h.stop()
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "will retry") || !strings.Contains(out, "refused") {
		t.Fatalf("the failures were not logged:\n%s", out)
	}
	for _, secret := range []string{token, "pa55", "/services/", l.Addr().String() + "/"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
	// scrub on its own: a url.Error as the client makes it.
	_, err = http.Get(deadURL)
	if err == nil || !strings.Contains(err.Error(), token) {
		t.Fatalf("expected the client's error to quote the URL, got %v", err)
	}
	if s := scrub(err, deadURL).Error(); strings.Contains(s, token) || strings.Contains(s, "pa55") {
		t.Errorf("scrubbed: %s", s)
	}
}

// lockedCore serialises writes to the test's buffer.
type lockedCore struct {
	zapcore.Core
	mu *sync.Mutex
}

func (c *lockedCore) With(f []zapcore.Field) zapcore.Core {
	return &lockedCore{Core: c.Core.With(f), mu: c.mu}
}

func (c *lockedCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *lockedCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Core.Write(e, f)
}

func TestRemovedSinkDropsItsDeliveries(t *testing.T) {
	rc := newReceiver(t)
	rc.set(http.StatusServiceUnavailable, nil)
	cfg := notifyCfg([]policy.Webhook{{Name: "ops", URL: policy.NewSecret(rc.URL), Format: policy.FormatJSON, Events: []string{policy.EventFailed}}}, nil)
	h := start(t, cfg, nil, nil)
	h.n.Observe(ended(testRun("nightly", run.StageFailed)))
	rc.next(t)
	h.outcome(t)
	h.n.SetConfig(notifyCfg(nil, nil))
	h.clk.Advance(time.Minute)
	if o := h.outcome(t); o != "ops:failed:dropped" {
		t.Errorf("outcome %s", o)
	}
	if v := testutil.ToFloat64(h.n.met.dropped.WithLabelValues(ReasonSinkRemoved)); v != 1 {
		t.Errorf("dropped{sink_removed} = %v", v)
	}
	if n, err := testutil.GatherAndCount(h.reg, "backupd_notify_delivered_total"); err != nil || n != 0 {
		t.Errorf("series of the removed sink: %d %v", n, err)
	}
}

func TestUnreadableStoredRecordsAreSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.notify")
	s, _, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	good := Delivery{Seq: 2, Kind: KindWebhook, Sink: "ops", Signal: "failed", Run: "r", Body: []byte(`{}`), NextAt: t0}
	if err := s.Save([]Delivery{good}, nil); err != nil {
		t.Fatal(err)
	}
	bs := s.(*boltStore)
	if err := bs.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		if err := b.Put(seqKey(1), []byte("not json")); err != nil {
			return err
		}
		return b.Put([]byte("short"), []byte(`{"seq":9}`))
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Load()
	if err == nil || !strings.Contains(err.Error(), "2 records") {
		t.Errorf("Load error %v, want the 2 unreadable records counted", err)
	}
	if len(ds) != 1 || ds[0].Seq != 2 || ds[0].Sink != "ops" {
		t.Errorf("Load kept %+v, want the readable record", ds)
	}
	// The notifier starts with what could be read.
	n := New(Config{Clock: clock.NewFake(t0), Store: s}, nil)
	if p := n.Pending(); len(p) != 1 || p[0].Seq != 2 {
		t.Errorf("pending %+v", p)
	}
	_ = s.Close()
}

// TestLazyStoreCreatesNoFileUntilNeeded: the store of a daemon without a
// notify: section creates its file only when a delivery is saved, and
// reads one an earlier run left.
func TestLazyStoreCreatesNoFileUntilNeeded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.notify")
	s := LazyStore(path, nil)
	if ds, err := s.Load(); err != nil || len(ds) != 0 {
		t.Fatalf("Load = %v, %v", ds, err)
	}
	if err := s.Save(nil, []uint64{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file exists before anything was saved (stat: %v)", err)
	}
	if err := s.Save([]Delivery{{Seq: 1, Kind: KindPing, Sink: "hourly", Signal: "start"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := LazyStore(path, nil)
	defer again.Close()
	if ds, err := again.Load(); err != nil || len(ds) != 1 || ds[0].Seq != 1 {
		t.Fatalf("reopened Load = %+v, %v", ds, err)
	}
}
