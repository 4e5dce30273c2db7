package daemon

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// atlasOutageGrace is how long Atlas requests may fail, with none
// succeeding, before /readyz says so. Long enough that one 503 burst that
// the client's retries absorb does not flap readiness; short enough that an
// outage shows within minutes, not after the 15-minute authentication
// window or a run's two-hour wait.
const atlasOutageGrace = 2 * time.Minute

// atlasHealth follows the outcome of every Atlas request attempt (fed by
// the client's request hook) so readiness reflects an outage as it
// happens. Only answers that say Atlas cannot serve us count as failures:
// no answer, an answer that cannot be read (a proxy's page), a 5xx, or
// credentials refused. Any other answer — a 404 or a 409 included — proves
// Atlas reachable; a 429 proves nothing either way.
type atlasHealth struct {
	clk clock.Clock

	mu           sync.Mutex
	failingSince time.Time // first failure after the last success; zero when healthy
	failures     int       // failed attempts since then
	last         string    // the latest failure, e.g. "503 from list_clusters"
}

func (h *atlasHealth) observe(i atlas.RequestInfo) {
	failed := i.StatusCode == 0 || i.Undecodable || i.StatusCode >= 500 ||
		i.StatusCode == http.StatusUnauthorized || i.StatusCode == http.StatusForbidden
	if i.StatusCode == http.StatusTooManyRequests {
		return
	}
	now := h.clk.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !failed {
		h.failingSince, h.failures, h.last = time.Time{}, 0, ""
		return
	}
	if h.failingSince.IsZero() {
		h.failingSince = now
	}
	h.failures++
	what := "no answer"
	switch {
	case i.Undecodable:
		what = fmt.Sprintf("unreadable %d answer", i.StatusCode)
	case i.StatusCode != 0:
		what = fmt.Sprintf("%d %s", i.StatusCode, http.StatusText(i.StatusCode))
	}
	h.last = what + " to " + i.Operation
}

// err is non-nil once requests have failed for atlasOutageGrace without
// one succeeding. The message names status codes and operations only,
// never an answer's body, so it cannot carry a credential.
func (h *atlasHealth) err() error {
	now := h.clk.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failingSince.IsZero() {
		return nil
	}
	if age := now.Sub(h.failingSince); age >= atlasOutageGrace {
		return fmt.Errorf("requests to Atlas failing for %s (%d attempts, none succeeded; last: %s)", age.Round(time.Second), h.failures, h.last)
	}
	return nil
}
