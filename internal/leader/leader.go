// Package leader is what the daemon and the engine know of leader election:
// whether this replica acts, who does, and a fence around each request that
// must not outlive the lease. It imports no Kubernetes client: the election
// itself (internal/ha, client-go) is linked only into binaries built with
// the `ha` tag, because client-go costs the binary ~26 MB and ~15 MiB of
// idle memory even when unused (docs/benchmarks.md). A lean binary gets a nil
// Factory and refuses a configuration with an ha: section.
package leader

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
)

// Elector is one replica's part in the election for one Lease.
type Elector interface {
	// Identity is the name this replica holds the lease under.
	Identity() string
	// Leading reports whether this replica holds the lease now.
	Leading() bool
	// Leader is the identity of the last observed leader, "" if none.
	Leader() string
	// Fence admits one request that must not outlive the lease: it fails
	// with a *NotLeaderError unless this replica leads on a fresh renewal,
	// and otherwise returns a context that ends before another replica
	// could take over (cause ErrFenceExpired) or as soon as this one stops
	// leading (cause ErrLeaseLost). done must be called when the request
	// has returned; graceful stop waits for it.
	Fence(ctx context.Context) (fenced context.Context, done func(), err error)
	// Run takes part in the election until ctx ends, then stops
	// gracefully: no new fences, the fenced requests return, BeforeRelease,
	// and only then the lease is released.
	Run(ctx context.Context)
}

// Hooks let the daemon follow leadership. They run on the elector's
// goroutines, in order, and must return quickly.
type Hooks struct {
	// StartedLeading is called when this replica acquires the lease.
	StartedLeading func()
	// StoppedLeading is called when this replica loses or releases it;
	// every fenced context has been cancelled by then.
	StoppedLeading func()
	// NewLeader is called with each newly observed leader identity.
	NewLeader func(identity string)
	// BeforeRelease is called on graceful stop, once every fenced request
	// has returned and before the lease is released, while still leading:
	// the daemon parks its runs here. ctx bounds it.
	BeforeRelease func(ctx context.Context)
}

// Options are what a Factory needs besides the ha: section.
type Options struct {
	// Clock times the fence. It must run at the rate of real time: the
	// other replicas (client-go) expire the lease by their real clocks.
	Clock  clock.Clock
	Logger *zap.Logger
	Hooks  Hooks
}

// Factory builds the elector for an ha: section. It is nil in a binary
// built without the `ha` tag.
type Factory func(cfg policy.HA, opts Options) (Elector, error)

// ErrNotBuilt is the answer of a lean binary to a configuration with ha:.
// Running unfenced instead would let two replicas act on the same slot.
var ErrNotBuilt = errors.New("built without HA support: build with -tags ha (go build -tags ha ./cmd/backupd) or use the HA container image")

// ErrNotLeader is returned by Fence when this replica may not act: it does
// not hold the lease, its last renewal is too old to trust, or it is
// stopping.
var ErrNotLeader = errors.New("this replica does not hold the lease")

// ErrFenceExpired is the cause of a fenced context that reached its
// deadline: past it, another replica may already lead.
var ErrFenceExpired = errors.New("the lease may have passed to another replica")

// ErrLeaseLost is the cause of a fenced context cancelled because this
// replica stopped leading while the request was in flight.
var ErrLeaseLost = errors.New("this replica lost the lease")

// NotLeaderError names the leader as last observed ("" when none is known),
// so a refused trigger can tell the user where to go.
type NotLeaderError struct {
	Leader string
	Reason string
}

func (e *NotLeaderError) Error() string {
	leader := "no leader is known"
	if e.Leader != "" {
		leader = "the leader is " + e.Leader
	}
	return fmt.Sprintf("%v (%s): %s", ErrNotLeader, e.Reason, leader)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// Fenced reports whether err, or the cause of ctx, says a request was cut
// off or refused by the fence rather than answered by its server.
func Fenced(ctx context.Context, err error) bool {
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrFenceExpired) || errors.Is(err, ErrLeaseLost) {
		return true
	}
	if ctx != nil && ctx.Err() != nil {
		c := context.Cause(ctx)
		return errors.Is(c, ErrFenceExpired) || errors.Is(c, ErrLeaseLost)
	}
	return false
}

// Unsupported is the located configuration error of an ha: section that a
// binary without a Factory cannot honour.
func Unsupported(h *policy.HA) error {
	return &policy.Errors{List: []policy.Issue{{
		File: h.Pos.File, Line: h.Pos.Line, Column: h.Pos.Column, Path: "ha", Message: ErrNotBuilt.Error(),
	}}}
}
