package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/backupd/backupd/internal/atlas"
)

// Fencer admits the engine's POSTs to Atlas when several replicas share the
// work (internal/leader.Elector): each request runs on the context it
// returns, which ends before another replica could take over, and is refused
// when this replica does not lead.
type Fencer interface {
	Fence(ctx context.Context) (fenced context.Context, done func(), err error)
}

// ErrNotActing wraps a request the fence refused or cut off: this replica
// has lost, or cannot vouch for, its lease. The run is parked in its last
// recorded state, never failed: Atlas did not refuse anything, and the
// replica that leads next carries the run on from its marker.
var ErrNotActing = errors.New("this replica is not acting (leader election)")

// fencedAtlas sends every creating request (the only ones that change
// Atlas) through the fence; reads go as they are.
type fencedAtlas struct {
	Atlas
	f Fencer
}

func fenced[T any](ctx context.Context, f Fencer, what string, call func(context.Context) (T, error)) (T, error) {
	var zero T
	fctx, done, err := f.Fence(ctx)
	if err != nil {
		return zero, fmt.Errorf("%s: %w: %w", what, ErrNotActing, err)
	}
	defer done()
	v, err := call(fctx)
	if err != nil && fctx.Err() != nil && ctx.Err() == nil {
		// Cut off by the fence, not by the caller: the request may have
		// landed (the run's intent flag is already persisted, so whoever
		// carries it on lists Atlas before sending again).
		return zero, fmt.Errorf("%s: %w: %w (%w)", what, ErrNotActing, context.Cause(fctx), err)
	}
	return v, err
}

func (a fencedAtlas) TakeSnapshot(ctx context.Context, p, c string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	return fenced(ctx, a.f, "requesting a snapshot", func(ctx context.Context) (*atlas.Snapshot, error) {
		return a.Atlas.TakeSnapshot(ctx, p, c, req)
	})
}

func (a fencedAtlas) CreateExport(ctx context.Context, p, c string, req atlas.ExportJobRequest) (*atlas.ExportJob, error) {
	return fenced(ctx, a.f, "requesting an export", func(ctx context.Context) (*atlas.ExportJob, error) {
		return a.Atlas.CreateExport(ctx, p, c, req)
	})
}

func (a fencedAtlas) CreateFlexRestore(ctx context.Context, p, n string, req atlas.FlexRestoreJobRequest) (*atlas.FlexRestoreJob, error) {
	return fenced(ctx, a.f, "requesting a flex restore", func(ctx context.Context) (*atlas.FlexRestoreJob, error) {
		return a.Atlas.CreateFlexRestore(ctx, p, n, req)
	})
}

func (a fencedAtlas) CreateRestore(ctx context.Context, p, c string, req atlas.RestoreJobRequest) (*atlas.RestoreJob, error) {
	return fenced(ctx, a.f, "requesting a drill's restore", func(ctx context.Context) (*atlas.RestoreJob, error) {
		return a.Atlas.CreateRestore(ctx, p, c, req)
	})
}
