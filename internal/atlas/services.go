package atlas

import (
	"context"
	"iter"
	"strconv"
)

// SnapshotsService covers cloud backup snapshots of dedicated clusters
// (media type 2023-01-01).
type SnapshotsService struct{ c *Client }

// Take requests one on-demand snapshot. Atlas allows one queued/inProgress
// on-demand snapshot per cluster and answers UNFINISHED_ON_DEMAND_SNAPSHOT
// otherwise (check with IsCode). Take is not retried once it may have reached
// Atlas: on OutcomeUnknown(err), list and look for the description marker.
func (s *SnapshotsService) Take(ctx context.Context, projectID, cluster string, req OnDemandSnapshotRequest) (*Snapshot, error) {
	op := OpTakeSnapshot
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster)); err != nil {
		return nil, err
	}
	if req.RetentionInDays < 0 {
		return nil, &ArgError{Operation: op, Field: "req.retentionInDays", Value: strconv.Itoa(req.RetentionInDays), Rule: "must be at least 1 (or 0 for Atlas's default)"}
	}
	r := post(op, clusterPath(projectID, cluster)+"/backup/snapshots", MediaSnapshots, projectID, req)
	var out Snapshot
	err := s.c.do(ctx, &r, &out)
	if err := created(r, out.ID, err); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get reads one snapshot. kind selects the endpoint: KindReplicaSet (or "")
// polls snapshots/{id}, KindShardedCluster polls snapshots/shardedCluster/{id};
// use the Type that Take or List returned.
func (s *SnapshotsService) Get(ctx context.Context, projectID, cluster, id string, kind SnapshotKind) (*Snapshot, error) {
	op := OpGetSnapshot
	sub := "/backup/snapshots/"
	switch kind {
	case KindReplicaSet, "":
	case KindShardedCluster:
		op, sub = OpGetShardedSnapshot, "/backup/snapshots/shardedCluster/"
	default:
		return nil, &ArgError{Operation: op, Field: "kind", Value: string(kind), Rule: `must be "replicaSet" or "shardedCluster"`}
	}
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster), checkID(op, "snapshotID", id)); err != nil {
		return nil, err
	}
	r := get(op, clusterPath(projectID, cluster)+sub+id, MediaSnapshots, projectID)
	var out Snapshot
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// All iterates over every replica-set snapshot of a cluster, page by page.
func (s *SnapshotsService) All(ctx context.Context, projectID, cluster string) iter.Seq2[Snapshot, error] {
	op := OpListSnapshots
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster)); err != nil {
		return failed[Snapshot](err)
	}
	return pages[Snapshot](ctx, s.c, get(op, clusterPath(projectID, cluster)+"/backup/snapshots", MediaSnapshots, projectID), true)
}

// List returns every replica-set snapshot of a cluster (all pages).
func (s *SnapshotsService) List(ctx context.Context, projectID, cluster string) ([]Snapshot, error) {
	return collect(s.All(ctx, projectID, cluster))
}

// AllSharded iterates over every sharded-cluster snapshot of a cluster. The
// spec declares no paging parameters here, so only server "next" links are followed.
func (s *SnapshotsService) AllSharded(ctx context.Context, projectID, cluster string) iter.Seq2[Snapshot, error] {
	op := OpListShardedSnapshots
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster)); err != nil {
		return failed[Snapshot](err)
	}
	return pages[Snapshot](ctx, s.c, get(op, clusterPath(projectID, cluster)+"/backup/snapshots/shardedClusters", MediaSnapshots, projectID), false)
}

// ListSharded returns every sharded-cluster snapshot of a cluster.
func (s *SnapshotsService) ListSharded(ctx context.Context, projectID, cluster string) ([]Snapshot, error) {
	return collect(s.AllSharded(ctx, projectID, cluster))
}

// ExportsService covers snapshot export jobs (media type 2023-01-01).
type ExportsService struct{ c *Client }

// Create starts exporting a completed, non-fallback snapshot to an export
// bucket. It is not retried once it may have reached Atlas: on
// OutcomeUnknown(err), list and look for the customData marker.
func (s *ExportsService) Create(ctx context.Context, projectID, cluster string, req ExportJobRequest) (*ExportJob, error) {
	op := OpCreateExport
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster),
		checkID(op, "req.exportBucketId", req.ExportBucketID), checkID(op, "req.snapshotId", req.SnapshotID)); err != nil {
		return nil, err
	}
	r := post(op, clusterPath(projectID, cluster)+"/backup/exports", MediaSnapshots, projectID, req)
	var out ExportJob
	err := s.c.do(ctx, &r, &out)
	if err := created(r, out.ID, err); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get reads one export job.
func (s *ExportsService) Get(ctx context.Context, projectID, cluster, id string) (*ExportJob, error) {
	op := OpGetExport
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster), checkID(op, "exportID", id)); err != nil {
		return nil, err
	}
	r := get(op, clusterPath(projectID, cluster)+"/backup/exports/"+id, MediaSnapshots, projectID)
	var out ExportJob
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// All iterates over every export job of a cluster, page by page.
func (s *ExportsService) All(ctx context.Context, projectID, cluster string) iter.Seq2[ExportJob, error] {
	op := OpListExports
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster)); err != nil {
		return failed[ExportJob](err)
	}
	return pages[ExportJob](ctx, s.c, get(op, clusterPath(projectID, cluster)+"/backup/exports", MediaSnapshots, projectID), true)
}

// List returns every export job of a cluster (all pages).
func (s *ExportsService) List(ctx context.Context, projectID, cluster string) ([]ExportJob, error) {
	return collect(s.All(ctx, projectID, cluster))
}

// BucketsService covers export buckets (media type 2024-05-30).
type BucketsService struct{ c *Client }

// Get reads one export bucket by its id (the `_id` field).
func (s *BucketsService) Get(ctx context.Context, projectID, id string) (*ExportBucket, error) {
	op := OpGetExportBucket
	if err := firstErr(checkID(op, "projectID", projectID), checkID(op, "bucketID", id)); err != nil {
		return nil, err
	}
	r := get(op, groupPath(projectID)+"/backup/exportBuckets/"+id, MediaBuckets, projectID)
	var out ExportBucket
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// All iterates over every export bucket of a project, page by page.
func (s *BucketsService) All(ctx context.Context, projectID string) iter.Seq2[ExportBucket, error] {
	op := OpListExportBuckets
	if err := checkID(op, "projectID", projectID); err != nil {
		return failed[ExportBucket](err)
	}
	return pages[ExportBucket](ctx, s.c, get(op, groupPath(projectID)+"/backup/exportBuckets", MediaBuckets, projectID), true)
}

// List returns every export bucket of a project (all pages).
func (s *BucketsService) List(ctx context.Context, projectID string) ([]ExportBucket, error) {
	return collect(s.All(ctx, projectID))
}

// FlexService covers flex-cluster snapshots and restore jobs (media type 2024-11-13).
type FlexService struct{ c *Client }

// GetSnapshot reads one flex snapshot.
func (s *FlexService) GetSnapshot(ctx context.Context, projectID, name, id string) (*FlexSnapshot, error) {
	op := OpGetFlexSnapshot
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "name", name), checkID(op, "snapshotID", id)); err != nil {
		return nil, err
	}
	r := get(op, flexPath(projectID, name)+"/backup/snapshots/"+id, MediaFlex, projectID)
	var out FlexSnapshot
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllSnapshots iterates over every snapshot of a flex cluster, page by page.
func (s *FlexService) AllSnapshots(ctx context.Context, projectID, name string) iter.Seq2[FlexSnapshot, error] {
	op := OpListFlexSnapshots
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "name", name)); err != nil {
		return failed[FlexSnapshot](err)
	}
	return pages[FlexSnapshot](ctx, s.c, get(op, flexPath(projectID, name)+"/backup/snapshots", MediaFlex, projectID), true)
}

// ListSnapshots returns every snapshot of a flex cluster (all pages).
func (s *FlexService) ListSnapshots(ctx context.Context, projectID, name string) ([]FlexSnapshot, error) {
	return collect(s.AllSnapshots(ctx, projectID, name))
}

// CreateRestoreJob restores a flex snapshot into req.TargetDeploymentItemName
// (whose data is replaced). It is not retried once it may have reached Atlas:
// on OutcomeUnknown(err), list restore jobs and adopt the matching one.
func (s *FlexService) CreateRestoreJob(ctx context.Context, projectID, name string, req FlexRestoreJobRequest) (*FlexRestoreJob, error) {
	op := OpCreateFlexRestore
	errs := []error{checkID(op, "projectID", projectID), checkClusterName(op, "name", name),
		checkID(op, "req.snapshotId", req.SnapshotID), checkRestoreTarget(op, "req.targetDeploymentItemName", req.TargetDeploymentItemName)}
	if req.TargetProjectID != "" {
		errs = append(errs, checkID(op, "req.targetProjectId", req.TargetProjectID))
	}
	if err := firstErr(errs...); err != nil {
		return nil, err
	}
	r := post(op, flexPath(projectID, name)+"/backup/restoreJobs", MediaFlex, projectID, req)
	var out FlexRestoreJob
	err := s.c.do(ctx, &r, &out)
	if err := created(r, out.ID, err); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRestoreJob reads one flex restore job.
func (s *FlexService) GetRestoreJob(ctx context.Context, projectID, name, id string) (*FlexRestoreJob, error) {
	op := OpGetFlexRestore
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "name", name), checkID(op, "restoreJobID", id)); err != nil {
		return nil, err
	}
	r := get(op, flexPath(projectID, name)+"/backup/restoreJobs/"+id, MediaFlex, projectID)
	var out FlexRestoreJob
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllRestoreJobs iterates over every restore job of a flex cluster, page by page.
func (s *FlexService) AllRestoreJobs(ctx context.Context, projectID, name string) iter.Seq2[FlexRestoreJob, error] {
	op := OpListFlexRestores
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "name", name)); err != nil {
		return failed[FlexRestoreJob](err)
	}
	return pages[FlexRestoreJob](ctx, s.c, get(op, flexPath(projectID, name)+"/backup/restoreJobs", MediaFlex, projectID), true)
}

// ListRestoreJobs returns every restore job of a flex cluster (all pages).
func (s *FlexService) ListRestoreJobs(ctx context.Context, projectID, name string) ([]FlexRestoreJob, error) {
	return collect(s.AllRestoreJobs(ctx, projectID, name))
}

// RestoresService covers restore jobs of dedicated clusters (media type
// 2023-01-01), for restore drills. An automated restore deletes all data on
// its target: callers must make sure the target is a scratch cluster.
type RestoresService struct{ c *Client }

// Create starts restoring snapshot req.SnapshotID of cluster into
// req.TargetClusterName of project req.TargetGroupID. Only automated
// restores are supported. It is not retried once it may have reached
// Atlas: on OutcomeUnknown(err), list and match snapshot, target and
// creation time (the job carries no marker).
func (s *RestoresService) Create(ctx context.Context, projectID, cluster string, req RestoreJobRequest) (*RestoreJob, error) {
	op := OpCreateRestore
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster),
		checkID(op, "req.snapshotId", req.SnapshotID), checkID(op, "req.targetGroupId", req.TargetGroupID),
		checkClusterName(op, "req.targetClusterName", req.TargetClusterName)); err != nil {
		return nil, err
	}
	if req.DeliveryType != DeliveryAutomated {
		return nil, &ArgError{Operation: op, Field: "req.deliveryType", Value: string(req.DeliveryType), Rule: `must be "automated" (the only delivery type backupd requests)`}
	}
	r := post(op, clusterPath(projectID, cluster)+"/backup/restoreJobs", MediaSnapshots, projectID, req)
	var out RestoreJob
	err := s.c.do(ctx, &r, &out)
	if err := created(r, out.ID, err); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get reads one restore job of a cluster.
func (s *RestoresService) Get(ctx context.Context, projectID, cluster, id string) (*RestoreJob, error) {
	op := OpGetRestore
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster), checkID(op, "restoreJobID", id)); err != nil {
		return nil, err
	}
	r := get(op, clusterPath(projectID, cluster)+"/backup/restoreJobs/"+id, MediaSnapshots, projectID)
	var out RestoreJob
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// All iterates over every restore job of a cluster (the source's), page by page.
func (s *RestoresService) All(ctx context.Context, projectID, cluster string) iter.Seq2[RestoreJob, error] {
	op := OpListRestores
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster)); err != nil {
		return failed[RestoreJob](err)
	}
	return pages[RestoreJob](ctx, s.c, get(op, clusterPath(projectID, cluster)+"/backup/restoreJobs", MediaSnapshots, projectID), true)
}

// List returns every restore job of a cluster (all pages).
func (s *RestoresService) List(ctx context.Context, projectID, cluster string) ([]RestoreJob, error) {
	return collect(s.All(ctx, projectID, cluster))
}

// ClustersService covers cluster discovery: dedicated clusters (2024-08-05)
// and flex clusters (2024-11-13).
type ClustersService struct{ c *Client }

// Get reads one dedicated cluster.
func (s *ClustersService) Get(ctx context.Context, projectID, name string) (*Cluster, error) {
	op := OpGetCluster
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "name", name)); err != nil {
		return nil, err
	}
	r := get(op, clusterPath(projectID, name), MediaClusters, projectID)
	var out Cluster
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// All iterates over every cluster of a project, page by page.
func (s *ClustersService) All(ctx context.Context, projectID string) iter.Seq2[Cluster, error] {
	op := OpListClusters
	if err := checkID(op, "projectID", projectID); err != nil {
		return failed[Cluster](err)
	}
	return pages[Cluster](ctx, s.c, get(op, groupPath(projectID)+"/clusters", MediaClusters, projectID), true)
}

// List returns every cluster of a project (all pages).
func (s *ClustersService) List(ctx context.Context, projectID string) ([]Cluster, error) {
	return collect(s.All(ctx, projectID))
}

// GetFlex reads one flex cluster.
func (s *ClustersService) GetFlex(ctx context.Context, projectID, name string) (*FlexCluster, error) {
	op := OpGetFlexCluster
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "name", name)); err != nil {
		return nil, err
	}
	r := get(op, flexPath(projectID, name), MediaFlex, projectID)
	var out FlexCluster
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllFlex iterates over every flex cluster of a project, page by page.
func (s *ClustersService) AllFlex(ctx context.Context, projectID string) iter.Seq2[FlexCluster, error] {
	op := OpListFlexClusters
	if err := checkID(op, "projectID", projectID); err != nil {
		return failed[FlexCluster](err)
	}
	return pages[FlexCluster](ctx, s.c, get(op, groupPath(projectID)+"/flexClusters", MediaFlex, projectID), true)
}

// ListFlex returns every flex cluster of a project (all pages).
func (s *ClustersService) ListFlex(ctx context.Context, projectID string) ([]FlexCluster, error) {
	return collect(s.AllFlex(ctx, projectID))
}
