package atlas

import (
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/backupd/backupd/internal/clock"
)

// TestAbsurdRetryAfterIsCappedAndLogged: ten years in seconds, or an HTTP
// date in 2037, hold the project for the one-hour cap, not for what Atlas
// asked, and say so in a warning naming the project, the host, the value
// sent and the cap (issue 10 item 10).
func TestAbsurdRetryAfterIsCappedAndLogged(t *testing.T) {
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	for _, sent := range []string{"315360000", "Fri, 01 Jan 2037 00:00:00 GMT"} {
		t.Run(sent, func(t *testing.T) {
			fc := clock.NewFake(now)
			core, logs := observer.New(zapcore.WarnLevel)
			s := &scripted{steps: []func(http.ResponseWriter, *http.Request){status(429, "RATE_LIMITED", "Retry-After", sent)}}
			c := newTestClient(t, newFakeAtlas(t, s), func(cfg *Config) {
				cfg.Clock = fc
				cfg.Logger = zap.New(core)
			})
			_, err := c.Clusters.Get(t.Context(), testProject, "prod")
			e, ok := AsError(err)
			if !ok || !IsRateLimited(err) || e.RetryAfter != time.Hour {
				t.Fatalf("err %v, want the 429 with RetryAfter capped at 1h", err)
			}
			if hold := c.RateLimit(testProject).HoldUntil; !hold.Equal(now.Add(time.Hour)) {
				t.Errorf("HoldUntil %s, want %s (the cap)", hold, now.Add(time.Hour))
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d warnings, want 1: %+v", len(entries), entries)
			}
			f := entries[0].ContextMap()
			if f["project"] != testProject || f["host"] != "atlas.test" || f["retryAfter"] != sent || f["cap"] != time.Hour {
				t.Errorf("warning %q fields %v", entries[0].Message, f)
			}
		})
	}
}

// TestTokenEndpointAbsurdRetryAfterIsLogged: the token endpoint's answer is
// capped and reported the same way (it has no project).
func TestTokenEndpointAbsurdRetryAfterIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "315360000")
		writeAPIError(w, http.StatusTooManyRequests, "RATE_LIMITED", "slow down")
	})
	c := newTestClient(t, h, func(cfg *Config) { cfg.Logger = zap.New(core) })
	err := c.Authenticate(t.Context())
	if e, ok := AsError(err); !ok || e.RetryAfter != time.Hour {
		t.Fatalf("err %v, want RetryAfter capped at 1h", err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d warnings, want 1", len(entries))
	}
	if f := entries[0].ContextMap(); f["host"] != "atlas.test" || f["retryAfter"] != "315360000" || f["cap"] != time.Hour || f["project"] != nil {
		t.Errorf("warning fields %v", f)
	}
}
