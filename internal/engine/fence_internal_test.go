package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/backupd/backupd/internal/atlas"
)

// refusingFence never admits a request: this replica does not lead.
type refusingFence struct{}

func (refusingFence) Fence(context.Context) (context.Context, func(), error) {
	return nil, nil, errors.New("no lease")
}

// Every request that creates something in Atlas goes through the fence,
// the restore drills' included; a refused one never reaches Atlas (the
// wrapped Atlas is nil: reaching it would panic).
func TestEveryCreatingRequestIsFenced(t *testing.T) {
	a := fencedAtlas{f: refusingFence{}}
	ctx := t.Context()
	_, e1 := a.TakeSnapshot(ctx, "p", "c", atlas.OnDemandSnapshotRequest{})
	_, e2 := a.CreateExport(ctx, "p", "c", atlas.ExportJobRequest{})
	_, e3 := a.CreateFlexRestore(ctx, "p", "c", atlas.FlexRestoreJobRequest{})
	_, e4 := a.CreateRestore(ctx, "p", "c", atlas.RestoreJobRequest{})
	for i, err := range []error{e1, e2, e3, e4} {
		if !errors.Is(err, ErrNotActing) {
			t.Errorf("request %d: %v, want ErrNotActing", i+1, err)
		}
	}
}
