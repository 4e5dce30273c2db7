package atlas

import (
	"net/http"
	"net/url"
)

// Operation labels, as passed to RequestHook and carried by Error. They are
// a fixed, bounded set so they can be metric label values.
const (
	OpTakeSnapshot         = "take_snapshot"
	OpGetSnapshot          = "get_snapshot"
	OpGetShardedSnapshot   = "get_sharded_snapshot"
	OpListSnapshots        = "list_snapshots"
	OpListShardedSnapshots = "list_sharded_snapshots"
	OpCreateExport         = "create_export"
	OpGetExport            = "get_export"
	OpListExports          = "list_exports"
	OpListExportBuckets    = "list_export_buckets"
	OpGetExportBucket      = "get_export_bucket"
	OpListFlexSnapshots    = "list_flex_snapshots"
	OpGetFlexSnapshot      = "get_flex_snapshot"
	OpCreateFlexRestore    = "create_flex_restore"
	OpGetFlexRestore       = "get_flex_restore"
	OpListFlexRestores     = "list_flex_restores"
	OpCreateRestore        = "create_restore"
	OpGetRestore           = "get_restore"
	OpListRestores         = "list_restores"
	OpListClusters         = "list_clusters"
	OpGetCluster           = "get_cluster"
	OpListFlexClusters     = "list_flex_clusters"
	OpGetFlexCluster       = "get_flex_cluster"
	OpGetBackupSchedule    = "get_backup_schedule"
	OpGetCompliancePolicy  = "get_compliance_policy"
	OpAuthenticate         = "authenticate"
	OpFetchToken           = "fetch_token"
)

// Operations lists every operation label the client can report, so metrics
// can initialise their series.
func Operations() []string {
	return []string{
		OpTakeSnapshot, OpGetSnapshot, OpGetShardedSnapshot, OpListSnapshots, OpListShardedSnapshots,
		OpCreateExport, OpGetExport, OpListExports,
		OpListExportBuckets, OpGetExportBucket,
		OpListFlexSnapshots, OpGetFlexSnapshot, OpCreateFlexRestore, OpGetFlexRestore, OpListFlexRestores,
		OpCreateRestore, OpGetRestore, OpListRestores,
		OpListClusters, OpGetCluster, OpListFlexClusters, OpGetFlexCluster,
		OpGetBackupSchedule, OpGetCompliancePolicy,
		OpAuthenticate, OpFetchToken,
	}
}

// groupPath is /api/atlas/v2/groups/{projectID}.
func groupPath(projectID string) string {
	return APIPrefix + "/groups/" + url.PathEscape(projectID)
}

// clusterPath is .../groups/{projectID}/clusters/{cluster}.
func clusterPath(projectID, cluster string) string {
	return groupPath(projectID) + "/clusters/" + url.PathEscape(cluster)
}

// flexPath is .../groups/{projectID}/flexClusters/{name}.
func flexPath(projectID, name string) string {
	return groupPath(projectID) + "/flexClusters/" + url.PathEscape(name)
}

func get(op, path, media, projectID string) request {
	return request{op: op, method: http.MethodGet, path: path, media: media, projectID: projectID}
}

func post(op, path, media, projectID string, body any) request {
	return request{op: op, method: http.MethodPost, path: path, media: media, projectID: projectID, body: body}
}

// created checks that a POST's 200 answer names the object it created; an
// answer without an id leaves the caller unable to track it, which is the
// same as not knowing the outcome.
func created(r request, id string, err error) error {
	if err != nil || id != "" {
		return err
	}
	return &Error{Operation: r.op, Method: r.method, Path: r.path, StatusCode: http.StatusOK,
		Detail: "response carries no id", OutcomeUnknown: true}
}
