package atlas

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

func TestClientSideBudgetUsesInjectedClock(t *testing.T) {
	var served atomic.Int32
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		okSnapshot().ServeHTTP(w, r)
	})
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newTestClient(t, newFakeAtlas(t, api), func(cfg *Config) {
		cfg.Clock = fc
		cfg.RequestsPerMinute = 60 // one a second, burst 10
	})
	get := func() error {
		_, err := c.Snapshots.Get(context.Background(), testProject, "prod", testSnapshot, "")
		return err
	}
	for range 10 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- get() }()
	if err := fc.WaitForTimers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if n := served.Load(); n != 10 {
		t.Fatalf("served %d, want the 11th request held by the budget", n)
	}
	fc.Advance(999 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("11th request finished %v before its token was due", err)
	default:
	}
	fc.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := served.Load(); n != 11 {
		t.Errorf("served %d, want 11", n)
	}
}

func TestBudgetWaitIsCancellable(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newTestClient(t, newFakeAtlas(t, okSnapshot()), func(cfg *Config) {
		cfg.Clock = fc
		cfg.RequestsPerMinute = 1
	})
	if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Clusters.Get(ctx, testProject, "prod")
		done <- err
	}()
	if err := fc.WaitForTimers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	err := <-done
	if e, ok := AsError(err); !ok || !strings.Contains(err.Error(), "waiting for the request budget") || e.Attempts != 0 || e.OutcomeUnknown {
		t.Errorf("err %v", err)
	}
	// The cancelled reservation was returned: after one minute a new call goes straight through.
	fc.Advance(time.Minute)
	if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimitedProjectIsHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		arrivals := map[string][]time.Duration{}
		first := true
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			project := strings.Split(r.URL.Path, "/")[5]
			mu.Lock()
			arrivals[project] = append(arrivals[project], time.Since(start))
			limited := project == testProject && first
			first = first && project != testProject
			mu.Unlock()
			if limited {
				w.Header().Set("RateLimit-Limit", "100")
				w.Header().Set("RateLimit-Remaining", "0")
				w.Header().Set("Retry-After", "30")
				writeAPIError(w, 429, "RATE_LIMITED", "slow down")
				return
			}
			w.Header().Set("RateLimit-Limit", "100")
			w.Header().Set("RateLimit-Remaining", "99")
			okSnapshot().ServeHTTP(w, r)
		})
		c := newTestClient(t, newFakeAtlas(t, api))

		results := make(chan string, 3)
		call := func(name, project string) {
			_, err := c.Clusters.Get(t.Context(), project, "prod")
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			results <- name
		}
		go call("A", testProject)
		synctest.Wait() // A got its 429 and sleeps
		info := c.RateLimit(testProject)
		if info.Limit != 100 || info.Remaining != 0 || !info.HoldUntil.Equal(start.Add(30*time.Second)) {
			t.Errorf("RateLimit(P) = %+v, want limit 100, remaining 0, hold until +30s", info)
		}
		go call("B", testProject)
		go call("C", testProject2)
		if got := <-results; got != "C" || time.Since(start) != 0 {
			t.Errorf("first finished %s at +%s; want C (other project) at once", got, time.Since(start))
		}
		<-results
		<-results
		mu.Lock()
		defer mu.Unlock()
		p := arrivals[testProject]
		if len(p) != 3 || p[0] != 0 || p[1] < 30*time.Second || p[2] < 30*time.Second {
			t.Errorf("requests to the limited project arrived at %v; all after the first must wait 30s", p)
		}
		if got := c.RateLimit(testProject); got.Remaining != 99 || got.Observed.IsZero() {
			t.Errorf("RateLimit after recovery = %+v", got)
		}
		if got := c.RateLimit("000000000000000000000000"); got.Limit != -1 || got.Remaining != -1 || !got.HoldUntil.IsZero() {
			t.Errorf("RateLimit(unknown) = %+v", got)
		}
	})
}

// TestHoldSetWhileWaitingForBudgetIsHonoured: a request queued for a budget
// token when another request to the same project gets a 429 must still wait
// out the Retry-After, not go out as soon as its token is due.
func TestHoldSetWhileWaitingForBudgetIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var arrivals []time.Duration
		release := make(chan struct{})
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			n := len(arrivals)
			arrivals = append(arrivals, time.Since(start))
			mu.Unlock()
			if n == 0 { // the first request answers 429 once B is queued for the budget
				<-release
				w.Header().Set("Retry-After", "10")
				writeAPIError(w, 429, "RATE_LIMITED", "slow down")
				return
			}
			okSnapshot().ServeHTTP(w, r)
		})
		c := newTestClient(t, newFakeAtlas(t, api), func(cfg *Config) {
			cfg.RequestsPerMinute = 1 // burst 1: B waits a minute for its token
		})
		done := make(chan error, 2)
		go func() { _, err := c.Clusters.Get(t.Context(), testProject, "prod"); done <- err }()
		synctest.Wait() // A is at the server
		go func() { _, err := c.Clusters.Get(t.Context(), testProject, "prod"); done <- err }()
		synctest.Wait() // B waits for its budget token
		time.Sleep(59*time.Second + 500*time.Millisecond)
		close(release) // A's 429 arrives just before B's token is due: hold until ~+69.5s
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for i, at := range arrivals[1:] {
			if at < 69*time.Second {
				t.Fatalf("request %d reached the project at +%s, inside the Retry-After hold that ends at +69.5s (arrivals %v)", i+2, at, arrivals)
			}
		}
	})
}
