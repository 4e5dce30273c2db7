package engine

import (
	"context"
	"errors"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// Atlas is the part of the Atlas Admin API the engine drives. It is an
// interface so tests can wrap the real client (against the simulator) to cut
// connections at chosen moments.
type Atlas interface {
	GetCluster(ctx context.Context, projectID, name string) (*atlas.Cluster, error)
	GetFlexCluster(ctx context.Context, projectID, name string) (*atlas.FlexCluster, error)
	TakeSnapshot(ctx context.Context, projectID, cluster string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error)
	GetSnapshot(ctx context.Context, projectID, cluster, id string, kind atlas.SnapshotKind) (*atlas.Snapshot, error)
	ListSnapshots(ctx context.Context, projectID, cluster string, kind atlas.SnapshotKind) ([]atlas.Snapshot, error)
	CreateExport(ctx context.Context, projectID, cluster string, req atlas.ExportJobRequest) (*atlas.ExportJob, error)
	GetExport(ctx context.Context, projectID, cluster, id string) (*atlas.ExportJob, error)
	ListExports(ctx context.Context, projectID, cluster string) ([]atlas.ExportJob, error)
	ListFlexSnapshots(ctx context.Context, projectID, name string) ([]atlas.FlexSnapshot, error)
	CreateFlexRestore(ctx context.Context, projectID, name string, req atlas.FlexRestoreJobRequest) (*atlas.FlexRestoreJob, error)
	GetFlexRestore(ctx context.Context, projectID, name, id string) (*atlas.FlexRestoreJob, error)
	ListFlexRestores(ctx context.Context, projectID, name string) ([]atlas.FlexRestoreJob, error)
	// Restore jobs of dedicated clusters, for restore drills: listed under
	// their source cluster.
	CreateRestore(ctx context.Context, projectID, cluster string, req atlas.RestoreJobRequest) (*atlas.RestoreJob, error)
	GetRestore(ctx context.Context, projectID, cluster, id string) (*atlas.RestoreJob, error)
	ListRestores(ctx context.Context, projectID, cluster string) ([]atlas.RestoreJob, error)
	// HoldUntil is the end of the project's Retry-After hold (zero or past:
	// none). The engine parks a held project's runs until then rather than
	// let their requests wait in the client, each holding a worker.
	HoldUntil(projectID string) time.Time
}

// FromClient adapts the typed client to the engine's flat interface.
func FromClient(c *atlas.Client) Atlas { return clientAtlas{c} }

type clientAtlas struct{ c *atlas.Client }

func (a clientAtlas) GetCluster(ctx context.Context, p, n string) (*atlas.Cluster, error) {
	return a.c.Clusters.Get(ctx, p, n)
}

func (a clientAtlas) GetFlexCluster(ctx context.Context, p, n string) (*atlas.FlexCluster, error) {
	return a.c.Clusters.GetFlex(ctx, p, n)
}

func (a clientAtlas) TakeSnapshot(ctx context.Context, p, c string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	return a.c.Snapshots.Take(ctx, p, c, req)
}

func (a clientAtlas) GetSnapshot(ctx context.Context, p, c, id string, kind atlas.SnapshotKind) (*atlas.Snapshot, error) {
	return a.c.Snapshots.Get(ctx, p, c, id, kind)
}

func (a clientAtlas) ListSnapshots(ctx context.Context, p, c string, kind atlas.SnapshotKind) ([]atlas.Snapshot, error) {
	if kind == atlas.KindShardedCluster {
		return a.c.Snapshots.ListSharded(ctx, p, c)
	}
	return a.c.Snapshots.List(ctx, p, c)
}

func (a clientAtlas) CreateExport(ctx context.Context, p, c string, req atlas.ExportJobRequest) (*atlas.ExportJob, error) {
	return a.c.Exports.Create(ctx, p, c, req)
}

func (a clientAtlas) GetExport(ctx context.Context, p, c, id string) (*atlas.ExportJob, error) {
	return a.c.Exports.Get(ctx, p, c, id)
}

func (a clientAtlas) ListExports(ctx context.Context, p, c string) ([]atlas.ExportJob, error) {
	return a.c.Exports.List(ctx, p, c)
}

func (a clientAtlas) ListFlexSnapshots(ctx context.Context, p, n string) ([]atlas.FlexSnapshot, error) {
	return a.c.Flex.ListSnapshots(ctx, p, n)
}

func (a clientAtlas) CreateFlexRestore(ctx context.Context, p, n string, req atlas.FlexRestoreJobRequest) (*atlas.FlexRestoreJob, error) {
	return a.c.Flex.CreateRestoreJob(ctx, p, n, req)
}

func (a clientAtlas) GetFlexRestore(ctx context.Context, p, n, id string) (*atlas.FlexRestoreJob, error) {
	return a.c.Flex.GetRestoreJob(ctx, p, n, id)
}

func (a clientAtlas) CreateRestore(ctx context.Context, p, c string, req atlas.RestoreJobRequest) (*atlas.RestoreJob, error) {
	return a.c.Restores.Create(ctx, p, c, req)
}

func (a clientAtlas) GetRestore(ctx context.Context, p, c, id string) (*atlas.RestoreJob, error) {
	return a.c.Restores.Get(ctx, p, c, id)
}

func (a clientAtlas) ListRestores(ctx context.Context, p, c string) ([]atlas.RestoreJob, error) {
	return a.c.Restores.List(ctx, p, c)
}

func (a clientAtlas) HoldUntil(p string) time.Time { return a.c.RateLimit(p).HoldUntil }

func (a clientAtlas) ListFlexRestores(ctx context.Context, p, n string) ([]atlas.FlexRestoreJob, error) {
	return a.c.Flex.ListRestoreJobs(ctx, p, n)
}

// errKind is how the engine reacts to an error from Atlas.
type errKind int

const (
	errNone      errKind = iota
	errStopped           // our context ended: stop, state is persisted
	errUnknown           // a POST may or may not have taken effect: reconcile by listing
	errBusy              // UNFINISHED_ON_DEMAND_SNAPSHOT or a 409: wait and try again
	errNotFound          // the cluster, snapshot or bucket is gone
	errRejected          // Atlas refused for good (4xx)
	errTransient         // 5xx, 429 or the network, after the client's own retries
)

func classify(ctx context.Context, err error) errKind {
	switch {
	case err == nil:
		return errNone
	case ctx.Err() != nil, errors.Is(err, ErrNotActing):
		return errStopped
	case atlas.IsCode(err, atlas.CodeUnfinishedOnDemandSnapshot, atlas.CodeRestoreInProgress, atlas.CodeExportConflict):
		return errBusy
	case atlas.OutcomeUnknown(err):
		return errUnknown
	case atlas.IsNotFound(err):
		return errNotFound
	}
	var ae *atlas.Error
	if errors.As(err, &ae) {
		switch {
		case ae.StatusCode == 409:
			return errBusy
		case ae.StatusCode == 429 || ae.StatusCode >= 500:
			return errTransient
		case ae.StatusCode >= 400:
			return errRejected
		}
	}
	return errTransient
}

// notSupportedCodes are rejections that mean the cluster cannot take this
// kind of backup at all; runs end skipped{not_supported}, not failed.
var notSupportedCodes = []string{
	atlas.CodeClusterPaused,
	atlas.CodeBackupJobNotFound,
	atlas.CodeProviderBackupNotSupported,
	atlas.CodeFlexInClusterAPI,
	atlas.CodeClusterPausedCannotRestore,
}
