package engine_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/metrics"
	"github.com/backupd/backupd/internal/run"
)

var snapshotGet = regexp.MustCompile(`/backup/snapshots/[a-f0-9]{24}$`)

// manglingTransport spoils every GET of a path matching match (the snapshot
// by default) answered before until; the rest goes to the simulator untouched.
type manglingTransport struct {
	next   http.RoundTripper
	until  time.Time
	match  *regexp.Regexp
	mangle func(req *http.Request, real *http.Response) *http.Response
}

func (m *manglingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.next.RoundTrip(req)
	match := m.match
	if match == nil {
		match = snapshotGet
	}
	if err != nil || req.Method != http.MethodGet || !match.MatchString(req.URL.Path) || !time.Now().Before(m.until) {
		return resp, err
	}
	return m.mangle(req, resp), nil
}

func answer(req *http.Request, status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}
}

// rewrite changes one field of the real answer's JSON.
func rewrite(field string, value any) func(*http.Request, *http.Response) *http.Response {
	return func(req *http.Request, real *http.Response) *http.Response {
		var m map[string]any
		if err := json.NewDecoder(real.Body).Decode(&m); err != nil {
			panic(err)
		}
		_ = real.Body.Close()
		m[field] = value
		b, _ := json.Marshal(m)
		return answer(req, real.StatusCode, real.Header, string(b))
	}
}

func apiError(status int, code string) func(*http.Request, *http.Response) *http.Response {
	return func(req *http.Request, real *http.Response) *http.Response {
		_ = real.Body.Close()
		body := `{"error":` + strconv.Itoa(status) + `,"errorCode":"` + code + `","reason":"` + http.StatusText(status) + `","detail":"injected"}`
		return answer(req, status, http.Header{"Content-Type": {"application/json"}}, body)
	}
}

// A snapshot GET answered with something backupd cannot use is a failed
// read: it is shown in the run's detail, logged, counted as what it was and
// read again with backoff, and once Atlas answers properly the run
// completes. Each of these answers left the run silent in snapshotting,
// counted as code="200" for a bad body, until it timed out although Atlas
// had completed the snapshot.
func TestUnusablePollAnswersAreReportedAndRetried(t *testing.T) {
	cases := []struct {
		name   string
		mangle func(*http.Request, *http.Response) *http.Response
		code   string // the attempts' backupd_atlas_requests_total code
		detail string // in the run's detail and the logged error
	}{
		{"truncated body", func(req *http.Request, real *http.Response) *http.Response {
			b, _ := io.ReadAll(real.Body)
			_ = real.Body.Close()
			return answer(req, real.StatusCode, real.Header, string(b[:len(b)/2]))
		}, "decode_error", "unexpected end of JSON input"},
		{"mistyped field", rewrite("status", 7), "decode_error", "cannot unmarshal number"},
		{"non-hex id", rewrite("id", "snapshot-one"), "decode_error", `field id "snapshot-one" must be 24 lowercase hexadecimal digits`},
		{"307", func(req *http.Request, real *http.Response) *http.Response {
			_ = real.Body.Close()
			return answer(req, http.StatusTemporaryRedirect, http.Header{"Location": {"https://elsewhere.example/"}}, "")
		}, "307", "307"},
		{"401", apiError(http.StatusUnauthorized, "UNAUTHORIZED"), "401", "401 UNAUTHORIZED"},
		{"500", apiError(http.StatusInternalServerError, "UNEXPECTED_ERROR"), "500", "500 UNEXPECTED_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				began := time.Now()
				const window = 15 * time.Minute // the snapshot completes within it
				tr := &manglingTransport{next: sim.Transport(), until: began.Add(window), mangle: tc.mangle}
				var mu sync.Mutex
				var polls []time.Time // first attempts of snapshot GETs inside the window
				codes := map[string]int{}
				client, err := atlas.New(atlas.Config{
					BaseURL: "http://atlas.sim", ServiceAccount: &atlas.ServiceAccount{ClientID: saID, ClientSecret: saSecret},
					Transport: tr, RequestsPerMinute: 6000, Clock: clock.Real(),
					Hook: func(i atlas.RequestInfo) {
						if i.Operation != atlas.OpGetSnapshot || !time.Now().Before(began.Add(window)) {
							return
						}
						mu.Lock()
						defer mu.Unlock()
						codes[metrics.AttemptCode(i.StatusCode, i.Undecodable)]++
						if i.Attempt == 1 {
							polls = append(polls, time.Now())
						}
					},
				})
				must(t, err)
				core, logs := observer.New(zapcore.InfoLevel)
				p := snapshotPolicy("nightly", "rs", false)
				h := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(client), Logger: zap.New(core)}, p)
				defer h.stop()
				rec := h.rec

				id := fire(t, h, p, "rs", slot)
				r := h.await(id)
				if r.Stage != run.StageSucceeded || r.Detail != "" {
					t.Fatalf("run ended %s{%s} %q, want succeeded once Atlas answers properly", r.Stage, r.Reason, r.Detail)
				}
				if r.FinishedAt.Sub(began) > window+2*time.Minute {
					t.Errorf("run finished %v after the answers became usable, want within a poll interval", r.FinishedAt.Sub(began)-window)
				}

				shown := false
				rec.mu.Lock()
				events := rec.events
				rec.mu.Unlock()
				for _, e := range events {
					if e.Run.ID == id && e.Run.Stage == run.StageSnapshotting && strings.Contains(e.Run.Detail, tc.detail) {
						shown = true
					}
				}
				if !shown {
					t.Errorf("no event showed the failed read in the run's detail (want %q)", tc.detail)
				}

				logged := 0
				for _, l := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
					var errText bytes.Buffer
					for _, f := range l.Context {
						if f.Key == "error" {
							errText.WriteString(f.Interface.(error).Error())
						}
					}
					if l.ContextMap()["run"] == string(id) && strings.Contains(errText.String(), tc.detail) {
						logged++
					}
				}
				if logged == 0 {
					t.Errorf("no warning logged the failed read (want %q); logs: %v", tc.detail, logs.All())
				}

				mu.Lock()
				defer mu.Unlock()
				if codes[tc.code] == 0 || codes["200"] != 0 {
					t.Errorf("snapshot GETs counted by code %v, want them as %q and none as 200", codes, tc.code)
				}
				// Read again with backoff (10s doubling to 1m, plus the
				// client's own retries), neither in a tight loop nor given up.
				if len(polls) < 3 || len(polls) > int(window/(10*time.Second)) {
					t.Errorf("%d reads of the snapshot in %v, want a backoff between 10s and 1m", len(polls), window)
				}
				for i := 2; i < len(polls); i++ {
					if gap := polls[i].Sub(polls[i-1]); gap < 10*time.Second {
						t.Errorf("read %d came %v after the previous one, want at least PollMin", i, gap)
					}
				}
			})
		})
	}
}

// The reads a stage needs before it creates anything (the snapshot an
// export policy exports, the export jobs it adopts from) report a failure
// the same way: detail, log, backoff, and the run goes on once Atlas
// answers properly. Both used to back off silently.
func TestFailedStageReadsAreReportedAndRetried(t *testing.T) {
	cases := []struct {
		name, path, detail, shown string
	}{
		{"snapshot list", `/backup/snapshots$`, "500 UNEXPECTED_ERROR", "could not read the snapshots of "},
		{"export list", `/backup/exports$`, "500 UNEXPECTED_ERROR", "could not read the export jobs of "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := fleet(t)
				began := time.Now()
				newest, err := sim.SeedSnapshot(project, "rs", atlassim.SeedSnapshot{Type: atlas.SnapshotScheduled, Status: atlas.SnapshotCompleted, CreatedAt: began.Add(-time.Hour)})
				must(t, err)
				const window = 10 * time.Minute
				tr := &manglingTransport{next: sim.Transport(), until: began.Add(window), match: regexp.MustCompile(tc.path),
					mangle: apiError(http.StatusInternalServerError, "UNEXPECTED_ERROR")}
				core, logs := observer.New(zapcore.WarnLevel)
				p := engine.Policy{Name: "weekly", Action: run.ActionExport, Targets: []run.Target{{ProjectID: project, Cluster: "rs"}},
					Spec: run.Spec{ExportBucketID: bucketID, ExportSource: "latest", Timeouts: timeouts}}
				h := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(clientOver(t, tr)), Logger: zap.New(core)}, p)
				defer h.stop()
				rec := h.rec

				id := fire(t, h, p, "rs", slot)
				r := h.await(id)
				if r.Stage != run.StageSucceeded || r.SnapshotID != newest || r.Detail != "" {
					t.Fatalf("run ended %s{%s} %q exporting %s, want succeeded exporting %s", r.Stage, r.Reason, r.Detail, r.SnapshotID, newest)
				}
				if r.FinishedAt.Before(began.Add(window)) {
					t.Fatalf("run finished at +%v, inside the window of failed reads", r.FinishedAt.Sub(began))
				}
				shown := false
				rec.mu.Lock()
				for _, e := range rec.events {
					if e.Run.ID == id && strings.HasPrefix(e.Run.Detail, tc.shown) && strings.Contains(e.Run.Detail, tc.detail) {
						shown = true
					}
				}
				rec.mu.Unlock()
				if !shown {
					t.Errorf("no event showed the failed read in the run's detail (want %q ... %q)", tc.shown, tc.detail)
				}
				if n := logs.FilterField(zap.String("run", string(id))).Len(); n == 0 {
					t.Errorf("no warning logged the failed read")
				}
			})
		})
	}
}
