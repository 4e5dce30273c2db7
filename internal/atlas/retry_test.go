package atlas

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// scripted answers the i-th API request with steps[i] (the last step repeats)
// and records when each request arrived.
type scripted struct {
	mu    sync.Mutex
	steps []func(w http.ResponseWriter, r *http.Request)
	times []time.Time
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := len(s.times)
	s.times = append(s.times, time.Now())
	step := s.steps[min(i, len(s.steps)-1)]
	s.mu.Unlock()
	step(w, r)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

func (s *scripted) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.times); i++ {
		out = append(out, s.times[i].Sub(s.times[i-1]))
	}
	return out
}

func status(code int, errCode string, hdr ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		writeAPIError(w, code, errCode, "scripted")
	}
}

func ok(w http.ResponseWriter, r *http.Request) { okSnapshot().ServeHTTP(w, r) }

func TestGetRetriesWithExponentialBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{steps: []func(http.ResponseWriter, *http.Request){
			status(500, "UNEXPECTED_ERROR"),
			status(503, "SERVICE_UNAVAILABLE"),
			func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) },
			status(429, "RATE_LIMITED"),
			ok,
		}}
		var hooks []RequestInfo
		c := newTestClient(t, newFakeAtlas(t, s), func(cfg *Config) {
			cfg.Hook = func(i RequestInfo) {
				if i.Operation != OpFetchToken {
					hooks = append(hooks, i)
				}
			}
		})
		snap, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet)
		if err != nil || snap.ID != testSnapshot {
			t.Fatalf("Get = %v, %v", snap, err)
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
		if got := s.gaps(); !equalDurations(got, want) {
			t.Errorf("gaps between attempts %v, want %v", got, want)
		}
		wantStatus := []int{500, 503, 502, 429, 200}
		if len(hooks) != len(wantStatus) {
			t.Fatalf("%d hook calls, want %d", len(hooks), len(wantStatus))
		}
		for i, h := range hooks {
			if h.Attempt != i+1 || h.StatusCode != wantStatus[i] || h.Operation != OpGetSnapshot || h.Method != "GET" || h.ProjectID != testProject {
				t.Errorf("hook %d = %+v", i, h)
			}
			if h.RateLimited != (wantStatus[i] == 429) {
				t.Errorf("hook %d RateLimited = %v", i, h.RateLimited)
			}
		}
		if hooks[0].ErrorCode != "UNEXPECTED_ERROR" || hooks[3].ErrorCode != "RATE_LIMITED" || hooks[2].ErrorCode != "" {
			t.Errorf("hook error codes %q %q %q", hooks[0].ErrorCode, hooks[2].ErrorCode, hooks[3].ErrorCode)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBackoffJitterAndCap(t *testing.T) {
	c := newTestClient(t, okSnapshot(), func(cfg *Config) { cfg.Rand = func() float64 { return 0 } })
	if got := c.backoff(1); got != 500*time.Millisecond {
		t.Errorf("backoff(1) with jitter 0 = %s, want 500ms", got)
	}
	if got := c.backoff(3); got != 2*time.Second {
		t.Errorf("backoff(3) with jitter 0 = %s, want 2s", got)
	}
	c.rand = func() float64 { return 1 }
	for _, n := range []int{6, 7, 60} {
		if got := c.backoff(n); got != backoffCap {
			t.Errorf("backoff(%d) = %s, want cap %s", n, got, backoffCap)
		}
	}
}

func TestGetWaitsAtLeastRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{steps: []func(http.ResponseWriter, *http.Request){
			status(503, "SERVICE_UNAVAILABLE", "Retry-After", "7"),
			status(429, "RATE_LIMITED", "Retry-After", "1"), // shorter than the 2s backoff
			ok,
		}}
		c := newTestClient(t, newFakeAtlas(t, s))
		if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
			t.Fatal(err)
		}
		if got, want := s.gaps(), []time.Duration{7 * time.Second, 2 * time.Second}; !equalDurations(got, want) {
			t.Errorf("gaps %v, want %v", got, want)
		}
	})
}

func TestGetGivesUpAfterMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{steps: []func(http.ResponseWriter, *http.Request){status(500, "UNEXPECTED_ERROR")}}
		c := newTestClient(t, newFakeAtlas(t, s), func(cfg *Config) { cfg.MaxAttempts = 3 })
		_, err := c.Exports.Get(t.Context(), testProject, "prod", testSnapshot)
		e, ok := AsError(err)
		if !ok || e.StatusCode != 500 || e.Attempts != 3 || e.OutcomeUnknown || s.count() != 3 {
			t.Fatalf("err %v after %d requests", err, s.count())
		}
	})
}

func TestNonRetriableErrorsReturnAtOnce(t *testing.T) {
	for _, code := range []int{400, 403, 404, 406, 409, 410, 501} {
		s := &scripted{steps: []func(http.ResponseWriter, *http.Request){status(code, "X")}}
		c := newTestClient(t, newFakeAtlas(t, s))
		_, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, "")
		if e, ok := AsError(err); !ok || e.StatusCode != code || s.count() != 1 {
			t.Errorf("status %d: err %v after %d requests, want 1 request", code, err, s.count())
		}
		if IsNotFound(err) != (code == 404) {
			t.Errorf("status %d: IsNotFound = %v", code, IsNotFound(err))
		}
	}
}

func TestGetRetriesTransportErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		fa := newFakeAtlas(t, okSnapshot())
		c := newTestClient(t, fa, func(cfg *Config) {
			cfg.Transport = rtFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path != TokenPath && calls.Add(1) <= 2 {
					return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
				}
				return handlerTransport{fa}.RoundTrip(r)
			})
		})
		if _, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, ""); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 {
			t.Errorf("%d API attempts, want 3", calls.Load())
		}
	})
}

// TestPostWithUnknownOutcomeIsNotRepeated is the exactly-once guard: whenever
// a POST may have reached Atlas without a usable answer, the client makes no
// second request and says the outcome is unknown.
func TestPostWithUnknownOutcomeIsNotRepeated(t *testing.T) {
	tests := []struct {
		name string
		// serve handles the request (executing it) and may then break the exchange.
		serve func(w http.ResponseWriter, r *http.Request) error
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) error {
			status(500, "UNEXPECTED_ERROR")(w, r)
			return nil
		}},
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) error {
			status(503, "SERVICE_UNAVAILABLE", "Retry-After", "1")(w, r)
			return nil
		}},
		{"502 without body", func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(502)
			return nil
		}},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) error {
			return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		}},
		{"EOF", func(w http.ResponseWriter, r *http.Request) error { return io.ErrUnexpectedEOF }},
		{"timeout", func(w http.ResponseWriter, r *http.Request) error {
			<-r.Context().Done() // the per-attempt timeout fires while Atlas works
			return r.Context().Err()
		}},
		{"200 with unreadable body", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.WriteString(w, `{"id":"5f1b2c3d4e5f60718293a4b5","status":`)
			return nil
		}},
		{"200 without id", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.WriteString(w, `{"status":"queued"}`)
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var executed atomic.Int32
				fa := newFakeAtlas(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
				c := newTestClient(t, fa, func(cfg *Config) {
					cfg.Timeout = 5 * time.Second
					cfg.Transport = rtFunc(func(r *http.Request) (*http.Response, error) {
						if r.URL.Path == TokenPath {
							return handlerTransport{fa}.RoundTrip(r)
						}
						executed.Add(1)
						rec := httptest.NewRecorder()
						if err := tt.serve(rec, r); err != nil {
							return nil, err
						}
						return rec.Result(), nil
					})
				})
				_, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{Description: "backupd:r1"})
				if err == nil {
					t.Fatal("Take succeeded")
				}
				if !OutcomeUnknown(err) {
					t.Errorf("OutcomeUnknown(%v) = false", err)
				}
				if n := executed.Load(); n != 1 {
					t.Errorf("POST sent %d times, want exactly 1", n)
				}
			})
		})
	}
}

func TestPostRetriedOnlyWhenCertainlyNotExecuted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent, executed atomic.Int32
		fa := newFakeAtlas(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if executed.Add(1) == 1 {
				status(429, "RATE_LIMITED", "Retry-After", "3")(w, r)
				return
			}
			ok(w, r)
		}))
		c := newTestClient(t, fa, func(cfg *Config) {
			cfg.Transport = rtFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path != TokenPath && sent.Add(1) == 1 {
					return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
				}
				return handlerTransport{fa}.RoundTrip(r)
			})
		})
		start := time.Now()
		job, err := c.Flex.CreateRestoreJob(t.Context(), testProject, "flex", FlexRestoreJobRequest{SnapshotID: testSnapshot, TargetDeploymentItemName: "stg"})
		if err != nil || job.ID == "" {
			t.Fatalf("CreateRestoreJob = %v, %v", job, err)
		}
		// dial error (not sent) -> 1s backoff -> 429 (not executed) -> >= 3s -> success
		if sent.Load() != 3 || executed.Load() != 2 {
			t.Errorf("sent %d executed %d, want 3 and 2", sent.Load(), executed.Load())
		}
		if el := time.Since(start); el != 4*time.Second {
			t.Errorf("took %s, want 1s backoff + 3s Retry-After", el)
		}
	})
}

func TestPostOverRealConnections(t *testing.T) {
	t.Run("connection dropped after the request was read", func(t *testing.T) {
		var executed atomic.Int32
		fa := newFakeAtlas(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			executed.Add(1)
			_, _ = io.ReadAll(r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
		}))
		srv := httptest.NewServer(fa)
		defer srv.Close()
		c := newTestClient(t, nil, func(cfg *Config) {
			cfg.BaseURL = srv.URL
			cfg.Transport = nil // a real *http.Transport clone
		})
		_, err := c.Exports.Create(t.Context(), testProject, "prod", ExportJobRequest{ExportBucketID: testBucket, SnapshotID: testSnapshot})
		if !OutcomeUnknown(err) || executed.Load() != 1 {
			t.Errorf("err %v, executed %d; want unknown outcome after exactly 1", err, executed.Load())
		}
	})
	t.Run("connection refused is retried", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		c := newTestClient(t, nil, func(cfg *Config) {
			cfg.BaseURL = "http://" + addr
			cfg.Transport = nil
			cfg.Clock = fc
			cfg.MaxAttempts = 2
		})
		// Pretend a token is cached so the API request itself meets the refused port.
		c.tokens.tok, c.tokens.renewAt = testToken(), fc.Now().Add(time.Hour)
		done := make(chan error, 1)
		go func() {
			_, err := c.Snapshots.Take(context.Background(), testProject, "prod", OnDemandSnapshotRequest{})
			done <- err
		}()
		if err := fc.WaitForTimers(t.Context(), 1); err != nil { // the backoff before attempt 2
			t.Fatal(err)
		}
		fc.Advance(time.Second)
		err = <-done
		e, ok := AsError(err)
		if !ok || e.Attempts != 2 || e.OutcomeUnknown || !isDialError(err) {
			t.Errorf("err %v (attempts %v), want 2 attempts, outcome known", err, e)
		}
	})
}

func TestCancelInterruptsRetryWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{steps: []func(http.ResponseWriter, *http.Request){status(503, "SERVICE_UNAVAILABLE", "Retry-After", "120")}}
		c := newTestClient(t, newFakeAtlas(t, s))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Clusters.List(ctx, testProject)
			done <- err
		}()
		synctest.Wait() // the call is now sleeping before its retry
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
		if e, ok := AsError(err); !ok || e.StatusCode != 503 || e.Attempts != 1 {
			t.Errorf("err %v should keep the last attempt's 503", err)
		}
		if time.Since(start) != 0 || s.count() != 1 {
			t.Errorf("returned after %s and %d requests", time.Since(start), s.count())
		}
	})
}

func TestOverlongRetryAfterIsReturned(t *testing.T) {
	s := &scripted{steps: []func(http.ResponseWriter, *http.Request){status(429, "RATE_LIMITED", "Retry-After", "3600")}}
	c := newTestClient(t, newFakeAtlas(t, s))
	_, err := c.Clusters.Get(t.Context(), testProject, "prod")
	e, ok := AsError(err)
	if !ok || !IsRateLimited(err) || e.RetryAfter != time.Hour || s.count() != 1 {
		t.Errorf("err %v after %d requests; want the 429 with RetryAfter 1h at once", err, s.count())
	}
}
