package atlas

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A call to a project Atlas holds for longer than the client waits returns
// at once, unsent, with the hold's remainder as RetryAfter: waiting it out
// held the caller's goroutine (an engine worker) for the whole hold.
func TestLongHoldReturnsAtOnceWithoutSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var served atomic.Int32
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if served.Add(1) == 1 {
				w.Header().Set("Retry-After", "3600")
				writeAPIError(w, 429, "RATE_LIMITED", "slow down")
				return
			}
			okSnapshot().ServeHTTP(w, r)
		})
		c := newTestClient(t, newFakeAtlas(t, api))
		start := time.Now()
		if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); !IsRateLimited(err) {
			t.Fatalf("first call: %v, want the 429", err)
		}
		time.Sleep(10 * time.Minute)
		_, err := c.Clusters.Get(t.Context(), testProject, "prod")
		if took := time.Since(start); took != 10*time.Minute {
			t.Errorf("the held call returned after %v of hold, want at once", took-10*time.Minute)
		}
		e, ok := AsError(err)
		if !ok || !errors.Is(err, ErrProjectHeld) || e.Attempts != 0 || e.OutcomeUnknown || e.RetryAfter != 50*time.Minute {
			t.Fatalf("held call: %v (%+v), want ErrProjectHeld, 0 attempts, RetryAfter 50m", err, e)
		}
		if n := served.Load(); n != 1 {
			t.Errorf("%d requests reached Atlas during the hold, want 1", n)
		}
		// A hold the client is willing to wait out is still waited out.
		time.Sleep(50*time.Minute - maxRetryWait + time.Second)
		if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
			t.Fatalf("call inside the last %v of the hold: %v", maxRetryWait, err)
		}
		if took := time.Since(start); took != time.Hour {
			t.Errorf("the call went out at +%v, want when the hold ended (+1h)", took)
		}
	})
}
