package atlas

import "time"

// Versioned media types, pinned per resource as ATLAS_API_NOTES.md §14 asks.
// Atlas answers 406 when Accept does not name a version it serves.
const (
	MediaSnapshots   = "application/vnd.atlas.2023-01-01+json" // snapshots, exports
	MediaBuckets     = "application/vnd.atlas.2024-05-30+json" // export buckets
	MediaClusters    = "application/vnd.atlas.2024-08-05+json" // clusters, schedule
	MediaFlex        = "application/vnd.atlas.2024-11-13+json" // flex clusters, snapshots, restores
	MediaError       = "application/json"                      // error bodies are plain JSON
	DefaultBaseURL   = "https://cloud.mongodb.com"
	APIPrefix        = "/api/atlas/v2"
	TokenPath        = "/api/oauth/token"
	MaxItemsPerPage  = 500
	DefaultUserAgent = "backupd"
)

// SnapshotStatus is the lifecycle of a cloud backup snapshot.
type SnapshotStatus string

// Snapshot statuses (lowercase camel in Atlas).
const (
	SnapshotQueued     SnapshotStatus = "queued"
	SnapshotInProgress SnapshotStatus = "inProgress"
	SnapshotCompleted  SnapshotStatus = "completed"
	SnapshotFailed     SnapshotStatus = "failed"
)

// Terminal reports whether Atlas will not move the snapshot any further.
func (s SnapshotStatus) Terminal() bool { return s == SnapshotCompleted || s == SnapshotFailed }

// SnapshotType says who took a snapshot; fallback snapshots cannot be exported.
type SnapshotType string

// Snapshot types.
const (
	SnapshotOnDemand  SnapshotType = "onDemand"
	SnapshotScheduled SnapshotType = "scheduled"
	SnapshotFallback  SnapshotType = "fallback"
)

// SnapshotKind selects the endpoint a snapshot is polled on.
type SnapshotKind string

// Snapshot kinds (the `type` discriminator).
const (
	KindReplicaSet     SnapshotKind = "replicaSet"
	KindShardedCluster SnapshotKind = "shardedCluster"
)

// FrequencyType is the policy frequency a scheduled snapshot belongs to.
type FrequencyType string

// Frequency types.
const (
	FrequencyHourly  FrequencyType = "hourly"
	FrequencyDaily   FrequencyType = "daily"
	FrequencyWeekly  FrequencyType = "weekly"
	FrequencyMonthly FrequencyType = "monthly"
	FrequencyYearly  FrequencyType = "yearly"
)

// Link is the spec's hypermedia link.
type Link struct {
	Href string `json:"href,omitempty"`
	Rel  string `json:"rel,omitempty"`
}

// Snapshot is DiskBackupReplicaSet or DiskBackupShardedClusterSnapshot; the
// fields of both are merged and Type tells which one Atlas returned.
type Snapshot struct {
	ID               string         `json:"id"`
	Status           SnapshotStatus `json:"status"`
	SnapshotType     SnapshotType   `json:"snapshotType,omitempty"`
	FrequencyType    FrequencyType  `json:"frequencyType,omitempty"`
	Type             SnapshotKind   `json:"type,omitempty"`
	CreatedAt        time.Time      `json:"createdAt,omitzero"`
	ExpiresAt        time.Time      `json:"expiresAt,omitzero"`
	Description      string         `json:"description,omitempty"`
	MasterKeyUUID    string         `json:"masterKeyUUID,omitempty"`
	MongodVersion    string         `json:"mongodVersion,omitempty"`
	PolicyItems      []string       `json:"policyItems,omitempty"`
	StorageSizeBytes int64          `json:"storageSizeBytes,omitempty"`
	// Replica set only.
	CloudProvider  string   `json:"cloudProvider,omitempty"`
	CopyRegions    []string `json:"copyRegions,omitempty"`
	ReplicaSetName string   `json:"replicaSetName,omitempty"`
	// Sharded cluster only.
	ConfigServerType string           `json:"configServerType,omitempty"`
	Members          []SnapshotMember `json:"members,omitempty"`
	SnapshotIDs      []string         `json:"snapshotIds,omitempty"`
	Links            []Link           `json:"links,omitempty"`
}

// SnapshotMember is one shard's snapshot of a sharded cluster snapshot.
type SnapshotMember struct {
	CloudProvider  string `json:"cloudProvider"`
	ID             string `json:"id"`
	ReplicaSetName string `json:"replicaSetName"`
}

// OnDemandSnapshotRequest is DiskBackupOnDemandSnapshotRequest.
type OnDemandSnapshotRequest struct {
	Description     string `json:"description,omitempty"`
	RetentionInDays int    `json:"retentionInDays,omitempty"`
}

// ExportState is the lifecycle of an export job (PascalCase in Atlas).
type ExportState string

// Export states.
const (
	ExportQueued     ExportState = "Queued"
	ExportInProgress ExportState = "InProgress"
	ExportSuccessful ExportState = "Successful"
	ExportFailed     ExportState = "Failed"
	ExportCancelled  ExportState = "Cancelled"
)

// Terminal reports whether Atlas will not move the export any further.
func (s ExportState) Terminal() bool {
	return s == ExportSuccessful || s == ExportFailed || s == ExportCancelled
}

// Label is the spec's BackupLabel, a key/value stamped into the export's .complete file.
type Label struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// ExportStatus is the progress meter of an export.
type ExportStatus struct {
	ExportedCollections int `json:"exportedCollections"`
	TotalCollections    int `json:"totalCollections"`
}

// StateReason explains a Failed export.
type StateReason struct {
	ErrorCode string `json:"errorCode,omitempty"`
	Message   string `json:"message,omitempty"`
}

// ExportMember is the per-shard export job of a sharded cluster export.
type ExportMember struct {
	ExportID       string `json:"exportId"`
	ReplicaSetName string `json:"replicaSetName"`
}

// ExportJob is DiskBackupExportJob.
type ExportJob struct {
	ID             string         `json:"id"`
	SnapshotID     string         `json:"snapshotId,omitempty"`
	ExportBucketID string         `json:"exportBucketId"`
	State          ExportState    `json:"state,omitempty"`
	StateReason    *StateReason   `json:"stateReason,omitempty"`
	ExportStatus   *ExportStatus  `json:"exportStatus,omitempty"`
	Components     []ExportMember `json:"components,omitempty"`
	CustomData     []Label        `json:"customData,omitempty"`
	Prefix         string         `json:"prefix,omitempty"`
	CreatedAt      time.Time      `json:"createdAt,omitzero"`
	FinishedAt     time.Time      `json:"finishedAt,omitzero"`
	Links          []Link         `json:"links,omitempty"`
}

// ExportJobRequest is DiskBackupExportJobRequest.
type ExportJobRequest struct {
	ExportBucketID string  `json:"exportBucketId"`
	SnapshotID     string  `json:"snapshotId"`
	CustomData     []Label `json:"customData,omitempty"`
}

// ExportBucket is DiskBackupSnapshotExportBucketResponse (2024-05-30); the
// per-provider fields are merged and CloudProvider tells which apply.
type ExportBucket struct {
	ID            string `json:"_id"`
	BucketName    string `json:"bucketName"`
	CloudProvider string `json:"cloudProvider"`
	// AWS
	IAMRoleID                string `json:"iamRoleId,omitempty"`
	Region                   string `json:"region,omitempty"`
	RequirePrivateNetworking bool   `json:"requirePrivateNetworking,omitempty"`
	// Azure and GCP
	RoleID     string `json:"roleId,omitempty"`
	ServiceURL string `json:"serviceUrl,omitempty"`
	TenantID   string `json:"tenantId,omitempty"`
	Links      []Link `json:"links,omitempty"`
}

// FlexStatus is the lifecycle of flex snapshots and flex restore jobs.
type FlexStatus string

// Flex statuses (upper case in Atlas).
const (
	FlexPending   FlexStatus = "PENDING"
	FlexQueued    FlexStatus = "QUEUED"
	FlexRunning   FlexStatus = "RUNNING"
	FlexFailed    FlexStatus = "FAILED"
	FlexCompleted FlexStatus = "COMPLETED"
)

// Terminal reports whether Atlas will not move the job any further.
func (s FlexStatus) Terminal() bool { return s == FlexCompleted || s == FlexFailed }

// FlexSnapshot is FlexBackupSnapshot20241113.
type FlexSnapshot struct {
	ID             string     `json:"id"`
	Status         FlexStatus `json:"status"`
	ScheduledTime  time.Time  `json:"scheduledTime,omitzero"`
	StartTime      time.Time  `json:"startTime,omitzero"`
	FinishTime     time.Time  `json:"finishTime,omitzero"`
	Expiration     time.Time  `json:"expiration,omitzero"`
	MongoDBVersion string     `json:"mongoDBVersion,omitempty"`
	Links          []Link     `json:"links,omitempty"`
}

// DeliveryType says whether a flex job restores into a cluster or offers a download.
type DeliveryType string

// Delivery types.
const (
	DeliveryRestore  DeliveryType = "RESTORE"
	DeliveryDownload DeliveryType = "DOWNLOAD"
)

// FlexRestoreJob is FlexBackupRestoreJob20241113.
type FlexRestoreJob struct {
	ID                       string       `json:"id"`
	Status                   FlexStatus   `json:"status"`
	DeliveryType             DeliveryType `json:"deliveryType,omitempty"`
	SnapshotID               string       `json:"snapshotId,omitempty"`
	TargetDeploymentItemName string       `json:"targetDeploymentItemName,omitempty"`
	TargetProjectID          string       `json:"targetProjectId,omitempty"`
	ProjectID                string       `json:"projectId,omitempty"`
	InstanceName             string       `json:"instanceName,omitempty"`
	RestoreScheduledDate     time.Time    `json:"restoreScheduledDate,omitzero"`
	RestoreFinishedDate      time.Time    `json:"restoreFinishedDate,omitzero"`
	SnapshotFinishedDate     time.Time    `json:"snapshotFinishedDate,omitzero"`
	ExpirationDate           time.Time    `json:"expirationDate,omitzero"`
	SnapshotURL              string       `json:"snapshotUrl,omitempty"`
	Links                    []Link       `json:"links,omitempty"`
}

// FlexRestoreJobRequest is FlexBackupRestoreJobCreate20241113. backupd always
// sends TargetProjectID because Atlas's default for it is undocumented.
type FlexRestoreJobRequest struct {
	SnapshotID               string `json:"snapshotId"`
	TargetDeploymentItemName string `json:"targetDeploymentItemName"`
	TargetProjectID          string `json:"targetProjectId,omitempty"`
}

// RestoreDelivery is how a dedicated cluster's restore job delivers its
// snapshot (the spec's deliveryType enum, lower camel case, unlike flex's).
type RestoreDelivery string

// Restore delivery types.
const (
	DeliveryAutomated     RestoreDelivery = "automated"   // restore into a target cluster, replacing its data
	DeliveryDownloadLinks RestoreDelivery = "download"    // offer download links
	DeliveryPointInTime   RestoreDelivery = "pointInTime" // continuous backup to a moment
)

// RestoreJob is DiskBackupSnapshotRestoreJob, a restore job of a dedicated
// cluster. Atlas gives it no status: State derives one from finishedAt and
// the cancelled, expired and failed flags (ATLAS_API_NOTES.md 9b). It has
// no creation time and no free-text field either; CreatedAt reads the
// creation second from its id.
type RestoreJob struct {
	ID                string          `json:"id"`
	DeliveryType      RestoreDelivery `json:"deliveryType,omitempty"`
	SnapshotID        string          `json:"snapshotId,omitempty"`
	TargetClusterName string          `json:"targetClusterName,omitempty"`
	TargetGroupID     string          `json:"targetGroupId,omitempty"`
	Cancelled         bool            `json:"cancelled,omitempty"`
	Expired           bool            `json:"expired,omitempty"`
	Failed            bool            `json:"failed,omitempty"`
	FinishedAt        time.Time       `json:"finishedAt,omitzero"`
	ExpiresAt         time.Time       `json:"expiresAt,omitzero"`
	// Timestamp is when Atlas took the snapshot being restored.
	Timestamp  time.Time       `json:"timestamp,omitzero"`
	Components []RestoreMember `json:"components,omitempty"`
	Links      []Link          `json:"links,omitempty"`
}

// RestoreMember is DiskBackupRestoreMember: one replica set of a sharded
// cluster's restore.
type RestoreMember struct {
	ReplicaSetName string `json:"replicaSetName,omitempty"`
}

// RestoreState is the state backupd derives for a dedicated restore job.
type RestoreState string

// Derived restore job states.
const (
	RestoreRunning   RestoreState = "running"   // no finishedAt, no flag
	RestoreSucceeded RestoreState = "succeeded" // finishedAt set, no flag
	RestoreFailed    RestoreState = "failed"
	RestoreCancelled RestoreState = "cancelled"
	RestoreExpired   RestoreState = "expired"
)

// Terminal reports whether Atlas will not move the job any further.
func (s RestoreState) Terminal() bool {
	return s == RestoreSucceeded || s == RestoreFailed || s == RestoreCancelled || s == RestoreExpired
}

// State derives the job's state as the notes prescribe: a flag decides
// (failed before cancelled before expired, should Atlas set several);
// without one, finishedAt separates succeeded from running.
func (j RestoreJob) State() RestoreState {
	switch {
	case j.Failed:
		return RestoreFailed
	case j.Cancelled:
		return RestoreCancelled
	case j.Expired:
		return RestoreExpired
	case !j.FinishedAt.IsZero():
		return RestoreSucceeded
	}
	return RestoreRunning
}

// CreatedAt is the job's creation time on Atlas's clock, read from its id.
// The v2 spec declares no creation time (the legacy v1.0 API's createdAt
// is gone from it); reading it from the id infers that Atlas's ids are
// MongoDB ObjectIds, whose first four bytes are the seconds since the epoch
// at which the server made them (docs/atlas-client.md), so backupd adopts
// jobs by their ids and uses this for the times it records. ok is false
// for an id that is not shaped like one.
func (j RestoreJob) CreatedAt() (t time.Time, ok bool) { return ObjectIDTime(j.ID) }

// ObjectIDTime reads the creation second of a 24-hex ObjectId.
func ObjectIDTime(id string) (time.Time, bool) {
	if !hexIDPattern.MatchString(id) {
		return time.Time{}, false
	}
	var secs uint32
	for _, c := range id[:8] {
		d := uint32(c - '0')
		if c >= 'a' {
			d = uint32(c-'a') + 10
		}
		secs = secs<<4 | d
	}
	return time.Unix(int64(secs), 0).UTC(), true
}

// RestoreJobRequest is the writable part of DiskBackupSnapshotRestoreJob
// for an automated restore: the snapshot of the path's cluster, restored
// into TargetClusterName of TargetGroupID, whose data Atlas deletes first.
type RestoreJobRequest struct {
	DeliveryType      RestoreDelivery `json:"deliveryType"`
	SnapshotID        string          `json:"snapshotId"`
	TargetClusterName string          `json:"targetClusterName"`
	TargetGroupID     string          `json:"targetGroupId"`
}

// ClusterState is a cluster's stateName.
type ClusterState string

// Cluster states.
const (
	ClusterIdle      ClusterState = "IDLE"
	ClusterCreating  ClusterState = "CREATING"
	ClusterUpdating  ClusterState = "UPDATING"
	ClusterDeleting  ClusterState = "DELETING"
	ClusterRepairing ClusterState = "REPAIRING"
)

// ClusterType is a dedicated cluster's topology.
type ClusterType string

// Cluster types.
const (
	ClusterReplicaSet ClusterType = "REPLICASET"
	ClusterSharded    ClusterType = "SHARDED"
	ClusterGeoSharded ClusterType = "GEOSHARDED"
)

// Cluster is the subset of ClusterDescription20240805 backupd reads.
type Cluster struct {
	ID               string            `json:"id,omitempty"`
	GroupID          string            `json:"groupId,omitempty"`
	Name             string            `json:"name"`
	ClusterType      ClusterType       `json:"clusterType,omitempty"`
	BackupEnabled    bool              `json:"backupEnabled"`
	PitEnabled       bool              `json:"pitEnabled,omitempty"`
	Paused           bool              `json:"paused"`
	StateName        ClusterState      `json:"stateName,omitempty"`
	MongoDBVersion   string            `json:"mongoDBVersion,omitempty"`
	ReplicationSpecs []ReplicationSpec `json:"replicationSpecs,omitempty"`
	// ConnectionStrings is how clients reach the cluster; a drill hands
	// the restored target's standardSrv to its verify command.
	ConnectionStrings *ConnectionStrings `json:"connectionStrings,omitempty"`
	Links             []Link             `json:"links,omitempty"`
}

// ConnectionStrings is the part of ClusterConnectionStrings backupd reads.
// It carries no credentials: drivers add them.
type ConnectionStrings struct {
	Standard    string `json:"standard,omitempty"`
	StandardSrv string `json:"standardSrv,omitempty"`
}

// ReplicationSpec is ReplicationSpec20240805 (the parts backupd reads).
type ReplicationSpec struct {
	ID            string         `json:"id,omitempty"`
	ZoneName      string         `json:"zoneName,omitempty"`
	RegionConfigs []RegionConfig `json:"regionConfigs,omitempty"`
}

// RegionConfig is CloudRegionConfig20240805 (the parts backupd reads).
type RegionConfig struct {
	ProviderName   string        `json:"providerName,omitempty"`
	RegionName     string        `json:"regionName,omitempty"`
	Priority       int           `json:"priority,omitempty"`
	ElectableSpecs *HardwareSpec `json:"electableSpecs,omitempty"`
}

// HardwareSpec is HardwareSpec20240805 (the parts backupd reads).
type HardwareSpec struct {
	InstanceSize string `json:"instanceSize,omitempty"`
	NodeCount    int    `json:"nodeCount,omitempty"`
}

// InstanceSize returns the electable instance size of the first region
// config (e.g. "M10"), or "" when Atlas did not say.
func (c Cluster) InstanceSize() string {
	for _, rs := range c.ReplicationSpecs {
		for _, rc := range rs.RegionConfigs {
			if rc.ElectableSpecs != nil && rc.ElectableSpecs.InstanceSize != "" {
				return rc.ElectableSpecs.InstanceSize
			}
		}
	}
	return ""
}

// FlexCluster is the subset of FlexClusterDescription20241113 backupd reads.
type FlexCluster struct {
	ID               string                `json:"id,omitempty"`
	GroupID          string                `json:"groupId,omitempty"`
	Name             string                `json:"name"`
	ClusterType      ClusterType           `json:"clusterType,omitempty"`
	StateName        ClusterState          `json:"stateName,omitempty"`
	BackupSettings   *FlexBackupSettings   `json:"backupSettings,omitempty"`
	ProviderSettings *FlexProviderSettings `json:"providerSettings,omitempty"`
	MongoDBVersion   string                `json:"mongoDBVersion,omitempty"`
	CreateDate       time.Time             `json:"createDate,omitzero"`
	Links            []Link                `json:"links,omitempty"`
}

// FlexBackupSettings is FlexBackupSettings20241113.
type FlexBackupSettings struct {
	Enabled bool `json:"enabled"`
}

// FlexProviderSettings is FlexProviderSettings20241113.
type FlexProviderSettings struct {
	ProviderName        string  `json:"providerName,omitempty"`
	BackingProviderName string  `json:"backingProviderName,omitempty"`
	RegionName          string  `json:"regionName,omitempty"`
	DiskSizeGB          float64 `json:"diskSizeGB,omitempty"`
}

// Page is the spec's Paginated* envelope.
type Page[T any] struct {
	Results    []T    `json:"results"`
	TotalCount int    `json:"totalCount"`
	Links      []Link `json:"links,omitempty"`
}

// ErrorBody is the spec's ApiError as it travels on the wire.
type ErrorBody struct {
	Error            int               `json:"error"`
	ErrorCode        string            `json:"errorCode"`
	Detail           string            `json:"detail,omitempty"`
	Reason           string            `json:"reason,omitempty"`
	Parameters       []any             `json:"parameters,omitempty"`
	BadRequestDetail *BadRequestDetail `json:"badRequestDetail,omitempty"`
}

// BadRequestDetail lists the fields a 400 rejected.
type BadRequestDetail struct {
	Fields []FieldViolation `json:"fields,omitempty"`
}

// FieldViolation names one rejected field and the rule it broke.
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// Error codes backupd reacts to. Codes marked UNCONFIRMED in the notes are
// the simulator's choice; the client treats them by HTTP status as well.
const (
	CodeUnfinishedOnDemandSnapshot = "UNFINISHED_ON_DEMAND_SNAPSHOT"
	CodeClusterNotFound            = "CLUSTER_NOT_FOUND"
	CodeSnapshotNotFound           = "SNAPSHOT_NOT_FOUND"
	CodeExportBucketNotFound       = "EXPORT_BUCKET_NOT_FOUND"
	CodeResourceNotFound           = "RESOURCE_NOT_FOUND"
	CodeGroupNotFound              = "GROUP_NOT_FOUND"
	CodeValidationError            = "VALIDATION_ERROR"
	CodeInvalidPathParameter       = "INVALID_PATH_PARAMETER"
	CodeInvalidVersionDate         = "INVALID_VERSION_DATE"
	CodeRateLimited                = "RATE_LIMITED"
	CodeRateLimitedTokenBucket     = "RATE_LIMITED_TOKEN_BUCKET"
	CodeUnexpectedError            = "UNEXPECTED_ERROR"
	CodeServiceUnavailable         = "SERVICE_UNAVAILABLE"
	CodeUnauthorized               = "UNAUTHORIZED"
	CodeBackupJobNotFound          = "BACKUP_JOB_NOT_FOUND"          // backups not enabled
	CodeProviderBackupNotSupported = "PROVIDER_BACKUP_NOT_SUPPORTED" // tier cannot take cloud backups
	CodeClusterPaused              = "CANNOT_TAKE_SNAPSHOT_OF_PAUSED_CLUSTER"
	CodeExportConflict             = "EXPORT_ALREADY_IN_PROGRESS"             // UNCONFIRMED (409)
	CodeSnapshotNotExportable      = "CANNOT_EXPORT_INCOMPLETE_SNAPSHOT"      // UNCONFIRMED
	CodeFallbackNotExportable      = "CANNOT_EXPORT_FALLBACK_SNAPSHOT"        // UNCONFIRMED
	CodeRestoreInProgress          = "ATLAS_CLUSTER_RESTORE_IN_PROGRESS"      // 409
	CodeClusterPausedCannotRestore = "CLUSTER_PAUSED_CANNOT_RESTORE"          // 400
	CodeFlexInClusterAPI           = "CANNOT_USE_FLEX_CLUSTER_IN_CLUSTER_API" // a flex cluster addressed as a dedicated one
)
