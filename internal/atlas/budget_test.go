package atlas

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
)

// served records which waiters a budget served, in order, and when.
type served struct {
	mu    sync.Mutex
	order []string
	at    map[string]time.Duration
}

func (s *served) add(name string, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order = append(s.order, name)
	if s.at == nil {
		s.at = map[string]time.Duration{}
	}
	s.at[name] = at
}

func (s *served) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// drain takes every token of project's budget, so that what follows waits.
func drain(t *testing.T, b *budgets, project string) {
	t.Helper()
	for range b.burst {
		if err := b.wait(t.Context(), project, PriorityUrgent); err != nil {
			t.Fatal(err)
		}
	}
}

// Under contention the budget serves the highest priority first, and calls
// of one priority in arrival order, whatever order they arrived in.
func TestBudgetServesByPriorityThenArrival(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudgets(clock.Real(), 600, zap.NewNop()) // 10 a second, burst 10
		drain(t, b, testProject)
		var s served
		start := time.Now()
		for _, w := range []struct {
			name string
			prio Priority
		}{
			{"monitor", PriorityMonitor}, {"discovery", PriorityDiscovery}, {"engine-1", PriorityEngine},
			{"urgent-1", PriorityUrgent}, {"engine-2", PriorityEngine}, {"urgent-2", PriorityUrgent},
		} {
			go func() {
				if err := b.wait(t.Context(), testProject, w.prio); err != nil {
					t.Error(err)
				}
				s.add(w.name, time.Since(start))
			}()
			synctest.Wait() // queued, in this order
		}
		time.Sleep(time.Second)
		synctest.Wait()
		want := []string{"urgent-1", "urgent-2", "engine-1", "engine-2", "discovery", "monitor"}
		if got := s.get(); !slices.Equal(got, want) {
			t.Errorf("served %v, want %v", got, want)
		}
		// Still at the budget's rate: one every 100 ms.
		for i, name := range want {
			if at := s.at[name]; at != time.Duration(i+1)*100*time.Millisecond {
				t.Errorf("%s served at +%s, want +%s", name, at, time.Duration(i+1)*100*time.Millisecond)
			}
		}
	})
}

// A monitor read behind a stream of urgent calls is not starved: it rises a
// level per ageStep waited, and once at the top it goes before the urgent
// calls that arrived after it.
func TestBudgetLowPriorityIsServedWithinItsAgeingBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudgets(clock.Real(), 60, zap.NewNop()) // one a second, burst 10
		drain(t, b, testProject)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		// Three urgent callers, each asking again as soon as it is served:
		// always more urgent work than budget.
		for range 3 {
			wg.Go(func() {
				for b.wait(ctx, testProject, PriorityUrgent) == nil {
				}
			})
		}
		synctest.Wait()
		start := time.Now()
		mctx, mcancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer mcancel()
		if err := b.wait(mctx, testProject, PriorityMonitor); err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("the monitor read behind urgent calls: %v after %s", err, time.Since(start))
		}
		waited := time.Since(start)
		cancel()
		wg.Wait()
		bound := 3 * ageStep // monitor → urgent
		if waited < bound-time.Second || waited > bound+time.Second {
			t.Errorf("the monitor read was served after %s; want about %s (3 levels of %s), neither starved nor ahead of urgent calls", waited, bound, ageStep)
		}
	})
}

// A 429 with Retry-After on project P pauses every caller of P, whatever
// its priority and whether it was already waiting, until the Retry-After
// has passed. Project Q goes on meanwhile.
func TestRetryAfterPausesEveryCallerOfTheProjectOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudgets(clock.Real(), 600, zap.NewNop()) // 10 a second, burst 10
		start := time.Now()
		drain(t, b, testProject)
		var s served
		for i, prio := range []Priority{PriorityUrgent, PriorityEngine, PriorityMonitor} {
			go func() {
				if err := b.wait(t.Context(), testProject, prio); err != nil {
					t.Error(err)
				}
				s.add(strings.Repeat("p", i+1), time.Since(start))
			}()
			synctest.Wait() // all three wait for a token (due at +100 ms), in this order
		}
		// Shorter than ageStep, so that no waiter rises a level meanwhile.
		b.observe(testProject, http.StatusTooManyRequests, http.Header{"Retry-After": {"20"}}, 20*time.Second, time.Now())
		// Arriving during the hold: another call of P, and one of Q.
		go func() {
			if err := b.wait(t.Context(), testProject, PriorityUrgent); err != nil {
				t.Error(err)
			}
			s.add("pppp", time.Since(start))
		}()
		if err := b.wait(t.Context(), testProject2, PriorityMonitor); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("project Q's call waited %s for project P's hold", took)
		}
		time.Sleep(19 * time.Second)
		synctest.Wait()
		if got := s.get(); len(got) != 0 {
			t.Fatalf("served %v inside the 20 s hold", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := s.get(); len(got) != 4 {
			t.Fatalf("served %v after the hold, want all four", got)
		}
		// All at the hold's end: the budget refilled meanwhile.
		for name, at := range s.at {
			if at != 20*time.Second {
				t.Errorf("%s served at +%s, want when the hold ended (+20s)", name, at)
			}
		}
	})
}

// A cancelled or expired wait returns its context's error at once, and the
// calls behind it are still served: the first in line leaving hands its
// timer on, a token nobody waits for returns to the budget.
func TestBudgetWaitsEndWithTheirContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudgets(clock.Real(), 60, zap.NewNop()) // one a second, burst 10
		drain(t, b, testProject)
		start := time.Now()
		first, cancelFirst := context.WithCancel(t.Context())
		errs := make(chan error, 1)
		go func() { errs <- b.wait(first, testProject, PriorityUrgent) }()
		synctest.Wait() // first in line, sleeping on the token's timer
		short, cancelShort := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancelShort()
		shortErr := make(chan error, 1)
		go func() { shortErr <- b.wait(short, testProject, PriorityEngine) }()
		var s served
		go func() {
			if err := b.wait(t.Context(), testProject, PriorityMonitor); err != nil {
				t.Error(err)
			}
			s.add("monitor", time.Since(start))
		}()
		synctest.Wait()
		cancelFirst()
		if err := <-errs; !errors.Is(err, context.Canceled) || time.Since(start) != 0 {
			t.Errorf("cancelled wait: %v after %s, want context.Canceled at once", err, time.Since(start))
		}
		if err := <-shortErr; !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 500*time.Millisecond {
			t.Errorf("wait with a 500 ms deadline: %v after %s, want its deadline", err, time.Since(start))
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if at, ok := s.at["monitor"]; !ok || at != time.Second {
			t.Errorf("the call behind the cancelled ones was served at %s (%v), want when the token was due (+1s)", at, ok)
		}
		// Every waiter is gone and the bubble ends: nothing is left blocked.
		b.mu.Lock()
		defer b.mu.Unlock()
		if p := b.projects[testProject]; len(p.waiters) != 0 || p.next != nil {
			t.Errorf("budget left with %d waiters, reservation %v", len(p.waiters), p.next)
		}
	})
}

// Each project has its own budget: exhausting one does not slow another.
func TestEachProjectHasItsOwnBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestClient(t, newFakeAtlas(t, okSnapshot()), func(cfg *Config) { cfg.RequestsPerMinute = 1 })
		start := time.Now()
		for _, p := range []string{testProject, testProject2} {
			if _, err := c.Snapshots.Get(t.Context(), p, "prod", testSnapshot, ""); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("the second project's call waited %s for the first project's budget", took)
		}
	})
}

// Through the client: monitor reads queued before an engine call still
// reach Atlas after it, and a call without WithPriority takes its
// operation's.
func TestMonitorReadsYieldToEngineCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var ops []string
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			ops = append(ops, r.URL.Path)
			mu.Unlock()
			okSnapshot().ServeHTTP(w, r)
		})
		var hooked []RequestInfo
		c := newTestClient(t, newFakeAtlas(t, api), func(cfg *Config) {
			cfg.RequestsPerMinute = 60
			cfg.Hook = func(i RequestInfo) {
				mu.Lock()
				defer mu.Unlock()
				if i.Operation != OpFetchToken {
					hooked = append(hooked, i)
				}
			}
		})
		for range 10 { // the burst
			if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		ops, hooked = nil, nil
		mu.Unlock()
		monitor := WithPriority(t.Context(), PriorityMonitor)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { _, _ = c.Snapshots.Get(monitor, testProject, "mon", testSnapshot, "") })
			synctest.Wait()
		}
		wg.Go(func() { _, _ = c.Clusters.Get(t.Context(), testProject, "prod") })                    // engine
		wg.Go(func() { _, _ = c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, "") }) // urgent
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		snap := "/backup/snapshots/" + testSnapshot
		want := []string{"/clusters/prod" + snap, "/clusters/prod", "/clusters/mon" + snap, "/clusters/mon" + snap}
		if len(ops) != len(want) {
			t.Fatalf("requests %v, want 4", ops)
		}
		for i, suffix := range want {
			if !strings.HasSuffix(ops[i], suffix) {
				t.Errorf("request %d went to %s, want …%s (order %v)", i+1, ops[i], suffix, ops)
			}
		}
		// The hook sees each attempt's priority and its wait for the budget
		// (one token a second after the burst).
		wantHook := []struct {
			prio   Priority
			waited time.Duration
		}{{PriorityUrgent, time.Second}, {PriorityEngine, 2 * time.Second}, {PriorityMonitor, 3 * time.Second}, {PriorityMonitor, 4 * time.Second}}
		for i, w := range wantHook {
			if i >= len(hooked) || hooked[i].Priority != w.prio || hooked[i].BudgetWait != w.waited {
				t.Errorf("hook %d: %+v, want priority %s, budget wait %s", i+1, hooked, w.prio, w.waited)
				break
			}
		}
	})
}

// A call already waiting when Atlas holds its project for longer than the
// client waits out is answered at once, like a call made during the hold.
func TestLongHoldAnswersWaitingCallsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudgets(clock.Real(), 60, zap.NewNop())
		drain(t, b, testProject)
		start := time.Now()
		errs := make(chan error, 1)
		go func() { errs <- b.wait(t.Context(), testProject, PriorityEngine) }()
		synctest.Wait()
		b.observe(testProject, http.StatusTooManyRequests, http.Header{"Retry-After": {"3600"}}, time.Hour, time.Now())
		err := <-errs
		var he *holdError
		if !errors.As(err, &he) || !errors.Is(err, ErrProjectHeld) || time.Since(start) != 0 {
			t.Errorf("waiting call: %v after %s, want ErrProjectHeld at once", err, time.Since(start))
		}
	})
}

// blockingBody is an answer body that yields nothing until release closes.
type blockingBody struct {
	release chan struct{}
	r       io.Reader
}

func (b *blockingBody) Read(p []byte) (int, error) {
	<-b.release
	return b.r.Read(p)
}

func (b *blockingBody) Close() error { return nil }

// A 429's hold is in force as soon as its headers arrive, before its body
// is read: reading the body to its end hands the connection to the next
// call, which must already be held.
func TestHoldIsSetBeforeThe429BodyIsRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body := &blockingBody{release: make(chan struct{}), r: strings.NewReader(`{"error":429,"errorCode":"RATE_LIMITED"}`)}
		c := newTestClient(t, nil, func(cfg *Config) {
			cfg.APIKey, cfg.ServiceAccount = &APIKey{PublicKey: "p", PrivateKey: "k"}, nil
			cfg.MaxAttempts = 1
			cfg.Transport = rtFunc(func(r *http.Request) (*http.Response, error) {
				if r.Header.Get("Authorization") == "" { // the digest challenge
					h := http.Header{"Www-Authenticate": {`Digest realm="atlas", nonce="n", qop="auth", algorithm=MD5`}}
					return &http.Response{StatusCode: 401, Header: h, Body: http.NoBody, Request: r}, nil
				}
				h := http.Header{"Retry-After": {"30"}, "Content-Type": {"application/json"}}
				return &http.Response{StatusCode: 429, Header: h, Body: body, Request: r}, nil
			})
		})
		done := make(chan error, 1)
		go func() { _, err := c.Clusters.Get(t.Context(), testProject, "prod"); done <- err }()
		synctest.Wait() // the call reads the 429's body
		if hold := c.RateLimit(testProject).HoldUntil; !hold.Equal(time.Now().Add(30 * time.Second)) {
			t.Errorf("while the 429's body is unread, the hold is %v, want +30s", hold)
		}
		close(body.release)
		if err := <-done; !IsRateLimited(err) {
			t.Errorf("call: %v, want the 429", err)
		}
	})
}
