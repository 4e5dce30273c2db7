package daemon

import (
	"context"
	"os"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// The engine.Atlas methods of swapAtlas delegate to the current client.

func (s *swapAtlas) GetCluster(ctx context.Context, p, n string) (*atlas.Cluster, error) {
	return s.get().GetCluster(ctx, p, n)
}

func (s *swapAtlas) GetFlexCluster(ctx context.Context, p, n string) (*atlas.FlexCluster, error) {
	return s.get().GetFlexCluster(ctx, p, n)
}

func (s *swapAtlas) TakeSnapshot(ctx context.Context, p, c string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	return s.get().TakeSnapshot(ctx, p, c, req)
}

func (s *swapAtlas) GetSnapshot(ctx context.Context, p, c, id string, kind atlas.SnapshotKind) (*atlas.Snapshot, error) {
	return s.get().GetSnapshot(ctx, p, c, id, kind)
}

func (s *swapAtlas) ListSnapshots(ctx context.Context, p, c string, kind atlas.SnapshotKind) ([]atlas.Snapshot, error) {
	return s.get().ListSnapshots(ctx, p, c, kind)
}

func (s *swapAtlas) CreateExport(ctx context.Context, p, c string, req atlas.ExportJobRequest) (*atlas.ExportJob, error) {
	return s.get().CreateExport(ctx, p, c, req)
}

func (s *swapAtlas) GetExport(ctx context.Context, p, c, id string) (*atlas.ExportJob, error) {
	return s.get().GetExport(ctx, p, c, id)
}

func (s *swapAtlas) ListExports(ctx context.Context, p, c string) ([]atlas.ExportJob, error) {
	return s.get().ListExports(ctx, p, c)
}

func (s *swapAtlas) ListFlexSnapshots(ctx context.Context, p, n string) ([]atlas.FlexSnapshot, error) {
	return s.get().ListFlexSnapshots(ctx, p, n)
}

func (s *swapAtlas) CreateFlexRestore(ctx context.Context, p, n string, req atlas.FlexRestoreJobRequest) (*atlas.FlexRestoreJob, error) {
	return s.get().CreateFlexRestore(ctx, p, n, req)
}

func (s *swapAtlas) GetFlexRestore(ctx context.Context, p, n, id string) (*atlas.FlexRestoreJob, error) {
	return s.get().GetFlexRestore(ctx, p, n, id)
}

func (s *swapAtlas) ListFlexRestores(ctx context.Context, p, n string) ([]atlas.FlexRestoreJob, error) {
	return s.get().ListFlexRestores(ctx, p, n)
}

func (s *swapAtlas) CreateRestore(ctx context.Context, p, c string, req atlas.RestoreJobRequest) (*atlas.RestoreJob, error) {
	return s.get().CreateRestore(ctx, p, c, req)
}

func (s *swapAtlas) GetRestore(ctx context.Context, p, c, id string) (*atlas.RestoreJob, error) {
	return s.get().GetRestore(ctx, p, c, id)
}

func (s *swapAtlas) ListRestores(ctx context.Context, p, c string) ([]atlas.RestoreJob, error) {
	return s.get().ListRestores(ctx, p, c)
}

func (s *swapAtlas) HoldUntil(p string) time.Time { return s.get().HoldUntil(p) }

// stderr writes logs to the process's standard error.
type stderr struct{}

func (stderr) Write(p []byte) (int, error) { return os.Stderr.Write(p) }
