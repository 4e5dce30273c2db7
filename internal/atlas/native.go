package atlas

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"time"
)

// MediaCompliance is the versioned media type of the project's Backup
// Compliance Policy, the only version the spec serves for it.
const MediaCompliance = "application/vnd.atlas.2023-10-01+json"

// CodeInvalidGroupID is Atlas's 404 for a malformed project id: a 404 that
// is about the project, not about its compliance policy.
const CodeInvalidGroupID = "INVALID_GROUP_ID"

// CodeBackupConfigNotFound is Atlas's 404 for the backup schedule of a
// cluster without cloud backup.
const CodeBackupConfigNotFound = "BACKUP_CONFIG_NOT_FOUND"

// FrequencyOnDemand is the frequencyType of a policy item that governs
// on-demand snapshots. Snapshots themselves say snapshotType onDemand and
// carry no frequencyType.
const FrequencyOnDemand FrequencyType = "ondemand"

// RetentionUnit is the unit of a policy item's retentionValue.
type RetentionUnit string

// Retention units.
const (
	RetentionDays   RetentionUnit = "days"
	RetentionWeeks  RetentionUnit = "weeks"
	RetentionMonths RetentionUnit = "months"
	RetentionYears  RetentionUnit = "years"
)

// Retention returns value units as a duration, counting a month as 31 days
// and a year as 366 so that a monitor's "retained long enough" never errs
// short. It is 0 for an unknown unit or a value below 1.
func (u RetentionUnit) Retention(value int) time.Duration {
	if value < 1 {
		return 0
	}
	day := 24 * time.Hour
	switch u {
	case RetentionDays:
		return time.Duration(value) * day
	case RetentionWeeks:
		return time.Duration(value) * 7 * day
	case RetentionMonths:
		return time.Duration(value) * 31 * day
	case RetentionYears:
		return time.Duration(value) * 366 * day
	}
	return 0
}

// PolicyItem is DiskBackupApiPolicyItem (a cluster's schedule) and
// BackupComplianceScheduledPolicyItem / BackupComplianceOnDemandPolicyItem
// (a compliance policy's minimum): one frequency and how long its snapshots
// are kept.
type PolicyItem struct {
	ID            string        `json:"id,omitempty"`
	FrequencyType FrequencyType `json:"frequencyType"`
	// FrequencyInterval: hours between snapshots for hourly items (1, 2, 4,
	// 6, 8, 12); the weekday (1 = Monday … 7 = Sunday) for weekly ones; the
	// day of the month (1…28, 40 = the last) for monthly ones; the month
	// (1…12) for yearly ones; 1 for daily ones.
	FrequencyInterval int           `json:"frequencyInterval"`
	RetentionUnit     RetentionUnit `json:"retentionUnit"`
	RetentionValue    int           `json:"retentionValue"`
}

// Retention is how long the item keeps each snapshot (see RetentionUnit.Retention).
func (p PolicyItem) Retention() time.Duration { return p.RetentionUnit.Retention(p.RetentionValue) }

// Interval is the longest time between two snapshots the item promises:
// FrequencyInterval hours for hourly items, a day, a week, 31 days or 366
// days for the others; 0 for on-demand items and unknown frequencies. An
// hourly interval below 1 counts as every hour, as the monitor counts it:
// the two must agree on what a schedule promises.
func (p PolicyItem) Interval() time.Duration {
	switch p.FrequencyType {
	case FrequencyHourly:
		return time.Duration(max(p.FrequencyInterval, 1)) * time.Hour
	case FrequencyDaily:
		return 24 * time.Hour
	case FrequencyWeekly:
		return 7 * 24 * time.Hour
	case FrequencyMonthly:
		return 31 * 24 * time.Hour
	case FrequencyYearly:
		return 366 * 24 * time.Hour
	}
	return 0
}

// BackupPolicy is AdvancedDiskBackupSnapshotSchedulePolicy.
type BackupPolicy struct {
	ID          string       `json:"id,omitempty"`
	PolicyItems []PolicyItem `json:"policyItems"`
}

// AutoExportPolicy is AutoExportPolicyView.
type AutoExportPolicy struct {
	ExportBucketID string        `json:"exportBucketId,omitempty"`
	FrequencyType  FrequencyType `json:"frequencyType,omitempty"`
}

// CopySetting is DiskBackupCopySetting20240805 (the parts a monitor reads).
type CopySetting struct {
	CloudProvider    string `json:"cloudProvider,omitempty"`
	RegionName       string `json:"regionName,omitempty"`
	ZoneID           string `json:"zoneId,omitempty"`
	ShouldCopyOplogs bool   `json:"shouldCopyOplogs,omitempty"`
}

// ExtraRetentionSetting is ExtraRetentionSetting (upper-case frequencies).
type ExtraRetentionSetting struct {
	FrequencyType string `json:"frequencyType,omitempty"`
	RetentionDays int    `json:"retentionDays,omitempty"`
}

// BackupSchedule is DiskBackupSnapshotSchedule20240805: what Atlas itself
// snapshots for a cluster, and when it will next.
type BackupSchedule struct {
	ClusterID              string                  `json:"clusterId,omitempty"`
	ClusterName            string                  `json:"clusterName,omitempty"`
	Policies               []BackupPolicy          `json:"policies"`
	NextSnapshot           time.Time               `json:"nextSnapshot,omitzero"`
	ReferenceHourOfDay     int                     `json:"referenceHourOfDay"`
	ReferenceMinuteOfHour  int                     `json:"referenceMinuteOfHour"`
	RestoreWindowDays      int                     `json:"restoreWindowDays,omitempty"`
	AutoExportEnabled      bool                    `json:"autoExportEnabled,omitempty"`
	Export                 *AutoExportPolicy       `json:"export,omitempty"`
	CopySettings           []CopySetting           `json:"copySettings,omitempty"`
	ExtraRetentionSettings []ExtraRetentionSetting `json:"extraRetentionSettings,omitempty"`
	UseOrgAndGroupNames    bool                    `json:"useOrgAndGroupNamesInExportPrefix,omitempty"`
	Links                  []Link                  `json:"links,omitempty"`
}

// PolicyItems returns the items of every policy (Atlas has at most one).
func (s BackupSchedule) PolicyItems() []PolicyItem {
	var out []PolicyItem
	for _, p := range s.Policies {
		out = append(out, p.PolicyItems...)
	}
	return out
}

// ComplianceState is a Backup Compliance Policy's state.
type ComplianceState string

// Compliance policy states.
const (
	ComplianceActive    ComplianceState = "ACTIVE"
	ComplianceEnabling  ComplianceState = "ENABLING"
	ComplianceUpdating  ComplianceState = "UPDATING"
	ComplianceDisabling ComplianceState = "DISABLING"
)

// CompliancePolicy is DataProtectionSettings20231001: the minimum every
// cluster of the project must keep. authorizedEmail and the user names are
// people's details: keep them out of metrics and logs.
type CompliancePolicy struct {
	ProjectID               string          `json:"projectId,omitempty"`
	State                   ComplianceState `json:"state,omitempty"`
	ScheduledPolicyItems    []PolicyItem    `json:"scheduledPolicyItems,omitempty"`
	OnDemandPolicyItem      *PolicyItem     `json:"onDemandPolicyItem,omitempty"`
	CopyProtectionEnabled   bool            `json:"copyProtectionEnabled,omitempty"`
	EncryptionAtRestEnabled bool            `json:"encryptionAtRestEnabled,omitempty"`
	PitEnabled              bool            `json:"pitEnabled,omitempty"`
	RestoreWindowDays       int             `json:"restoreWindowDays,omitempty"`
	Deletable               bool            `json:"deletable,omitempty"`
	UpdatedDate             time.Time       `json:"updatedDate,omitzero"`
	UpdatedUser             string          `json:"updatedUser,omitempty"`
	AuthorizedEmail         string          `json:"authorizedEmail"`
	AuthorizedUserFirstName string          `json:"authorizedUserFirstName"`
	AuthorizedUserLastName  string          `json:"authorizedUserLastName"`
}

// ProjectCompliance is the answer about a project's Backup Compliance
// Policy. Atlas answers 404 when a project has none; that is a fact about
// the project, not a failure, so it is InForce false with no error.
type ProjectCompliance struct {
	InForce bool
	Policy  CompliancePolicy // zero unless InForce
}

// NativeService reads what Atlas does by itself: a cluster's backup
// schedule, the project's Backup Compliance Policy and the snapshots of a
// cluster of either topology. Every call is a GET.
type NativeService struct{ c *Client }

// Schedule reads a dedicated cluster's backup schedule (2024-08-05): its
// policy items and the time of the next scheduled snapshot.
func (s *NativeService) Schedule(ctx context.Context, projectID, cluster string) (*BackupSchedule, error) {
	op := OpGetBackupSchedule
	if err := firstErr(checkID(op, "projectID", projectID), checkClusterName(op, "cluster", cluster)); err != nil {
		return nil, err
	}
	r := get(op, clusterPath(projectID, cluster)+"/backup/schedule", MediaClusters, projectID)
	var out BackupSchedule
	if err := s.c.do(ctx, &r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CompliancePolicy reads the project's Backup Compliance Policy
// (2023-10-01). A 404 other than for the project itself (GROUP_NOT_FOUND,
// INVALID_GROUP_ID) means the project has none: InForce false, nil error.
func (s *NativeService) CompliancePolicy(ctx context.Context, projectID string) (ProjectCompliance, error) {
	op := OpGetCompliancePolicy
	if err := checkID(op, "projectID", projectID); err != nil {
		return ProjectCompliance{}, err
	}
	r := get(op, groupPath(projectID)+"/backupCompliancePolicy", MediaCompliance, projectID)
	var out CompliancePolicy
	if err := s.c.do(ctx, &r, &out); err != nil {
		var e *Error
		if errors.As(err, &e) && e.StatusCode == http.StatusNotFound && e.ErrorCode != CodeGroupNotFound && e.ErrorCode != CodeInvalidGroupID {
			return ProjectCompliance{}, nil
		}
		return ProjectCompliance{}, err
	}
	return ProjectCompliance{InForce: true, Policy: out}, nil
}

// AllSnapshots iterates over every snapshot of a dedicated cluster on the
// endpoint for its topology: snapshots (paged) for REPLICASET,
// snapshots/shardedClusters for SHARDED and GEOSHARDED (the cluster's
// clusterType, as ClustersService reports it).
//
// Each snapshot is also held to the spec's enums (status, snapshotType,
// frequencyType) and its policyItems to 24-hex ids, which the snapshot
// poller tolerates but a freshness monitor cannot: a snapshot it cannot
// classify would be silently left out of "newest completed". The first one
// that breaks them ends the walk with an *Error naming the field.
func (s *NativeService) AllSnapshots(ctx context.Context, projectID, cluster string, typ ClusterType) iter.Seq2[Snapshot, error] {
	var seq iter.Seq2[Snapshot, error]
	op, path := OpListSnapshots, clusterPath(projectID, cluster)+"/backup/snapshots"
	switch typ {
	case ClusterReplicaSet:
		seq = s.c.Snapshots.All(ctx, projectID, cluster)
	case ClusterSharded, ClusterGeoSharded:
		op, path = OpListShardedSnapshots, path+"/shardedClusters"
		seq = s.c.Snapshots.AllSharded(ctx, projectID, cluster)
	default:
		return failed[Snapshot](&ArgError{Operation: OpListSnapshots, Field: "clusterType", Value: string(typ), Rule: "must be REPLICASET, SHARDED or GEOSHARDED"})
	}
	return func(yield func(Snapshot, error) bool) {
		i := 0
		for sn, err := range seq {
			if err == nil {
				if cerr := checkNativeSnapshot(sn); cerr != nil {
					// Scrubbed like every error of do: the answer may echo a credential.
					err = s.c.scrubError(&Error{Operation: op, Method: http.MethodGet, Path: path, StatusCode: http.StatusOK,
						Detail: "the answer could not be read", Err: fmt.Errorf("checking 200 response: snapshot %d: %w", i, cerr)})
				}
			}
			i++
			if !yield(sn, err) || err != nil {
				return
			}
		}
	}
}

// checkNativeSnapshot holds a listed snapshot to the spec's enums.
func checkNativeSnapshot(sn Snapshot) error {
	quote := func(v string) string { return strconv.Quote(sanitize(v, 80)) }
	switch sn.Status {
	case SnapshotQueued, SnapshotInProgress, SnapshotCompleted, SnapshotFailed:
	default:
		return fmt.Errorf("field status %s must be queued, inProgress, completed or failed", quote(string(sn.Status)))
	}
	switch sn.SnapshotType {
	case "", SnapshotOnDemand, SnapshotScheduled, SnapshotFallback:
	default:
		return fmt.Errorf("field snapshotType %s must be onDemand, scheduled or fallback", quote(string(sn.SnapshotType)))
	}
	switch sn.FrequencyType {
	case "", FrequencyHourly, FrequencyDaily, FrequencyWeekly, FrequencyMonthly, FrequencyYearly:
	default:
		return fmt.Errorf("field frequencyType %s must be hourly, daily, weekly, monthly or yearly", quote(string(sn.FrequencyType)))
	}
	if sn.StorageSizeBytes < 0 {
		return fmt.Errorf("field storageSizeBytes %d must not be negative", sn.StorageSizeBytes)
	}
	for k, id := range sn.PolicyItems {
		if err := answerIDs([][2]string{{fmt.Sprintf("policyItems[%d]", k), id}}); err != nil {
			return err
		}
	}
	return nil
}

// Snapshots returns every snapshot of a dedicated cluster (see AllSnapshots).
func (s *NativeService) Snapshots(ctx context.Context, projectID, cluster string, typ ClusterType) ([]Snapshot, error) {
	return collect(s.AllSnapshots(ctx, projectID, cluster, typ))
}

// FlexSnapshots returns every snapshot of a flex cluster (Atlas takes them
// daily and keeps the last 8); it is FlexService.ListSnapshots.
func (s *NativeService) FlexSnapshots(ctx context.Context, projectID, name string) ([]FlexSnapshot, error) {
	return s.c.Flex.ListSnapshots(ctx, projectID, name)
}

// hourlyIntervals are the frequencyInterval values the spec allows for
// hourly policy items.
var hourlyIntervals = map[int]bool{1: true, 2: true, 4: true, 6: true, 8: true, 12: true}

// checkPolicyItem holds a policy item to the spec's enums and to the
// meaning of frequencyInterval per frequency: a monitor derives the promised
// interval from it, so a value outside them cannot be trusted.
func checkPolicyItem(field string, p PolicyItem, allowOnDemand bool) error {
	if err := answerIDs(nil, [2]string{field + ".id", p.ID}); err != nil {
		return err
	}
	bad := func(what string, v any, rule string) error {
		return fmt.Errorf("field %s.%s %s %s", field, what, strconv.Quote(sanitize(fmt.Sprint(v), 80)), rule)
	}
	n := p.FrequencyInterval
	switch p.FrequencyType {
	case FrequencyHourly:
		if !hourlyIntervals[n] {
			return bad("frequencyInterval", n, "must be 1, 2, 4, 6, 8 or 12 for an hourly item")
		}
	case FrequencyDaily:
		if n < 1 || (n > 28 && n != 40) {
			return bad("frequencyInterval", n, "must be 1…28 or 40")
		}
	case FrequencyWeekly:
		if n < 1 || n > 7 {
			return bad("frequencyInterval", n, "must be 1 (Monday) … 7 (Sunday) for a weekly item")
		}
	case FrequencyMonthly:
		if n < 1 || (n > 28 && n != 40) {
			return bad("frequencyInterval", n, "must be 1…28 or 40 (last day) for a monthly item")
		}
	case FrequencyYearly:
		if n < 1 || n > 12 {
			return bad("frequencyInterval", n, "must be 1 (January) … 12 (December) for a yearly item")
		}
	case FrequencyOnDemand:
		if !allowOnDemand {
			return bad("frequencyType", p.FrequencyType, "must be hourly, daily, weekly, monthly or yearly")
		}
	default:
		return bad("frequencyType", p.FrequencyType, "must be hourly, daily, weekly, monthly, yearly or ondemand")
	}
	if p.RetentionUnit.Retention(1) == 0 {
		return bad("retentionUnit", p.RetentionUnit, "must be days, weeks, months or years")
	}
	if p.RetentionValue < 1 {
		return bad("retentionValue", p.RetentionValue, "must be at least 1")
	}
	return nil
}

func (s *BackupSchedule) checkAnswer() error {
	if s.Policies == nil {
		return errors.New("field policies is missing (required)")
	}
	if len(s.Policies) > 1 {
		return fmt.Errorf("field policies has %d items, at most 1 allowed", len(s.Policies))
	}
	if err := answerIDs(nil, [2]string{"clusterId", s.ClusterID}); err != nil {
		return err
	}
	for i, p := range s.Policies {
		if err := answerIDs(nil, [2]string{fmt.Sprintf("policies[%d].id", i), p.ID}); err != nil {
			return err
		}
		for k, item := range p.PolicyItems {
			if err := checkPolicyItem(fmt.Sprintf("policies[%d].policyItems[%d]", i, k), item, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *CompliancePolicy) checkAnswer() error {
	if err := answerIDs(nil, [2]string{"projectId", p.ProjectID}); err != nil {
		return err
	}
	switch p.State {
	case "", ComplianceActive, ComplianceEnabling, ComplianceUpdating, ComplianceDisabling:
	default:
		return fmt.Errorf("field state %s must be ACTIVE, ENABLING, UPDATING or DISABLING", strconv.Quote(sanitize(string(p.State), 80)))
	}
	for i, item := range p.ScheduledPolicyItems {
		if err := checkPolicyItem(fmt.Sprintf("scheduledPolicyItems[%d]", i), item, false); err != nil {
			return err
		}
	}
	if od := p.OnDemandPolicyItem; od != nil {
		if od.FrequencyType != FrequencyOnDemand {
			return fmt.Errorf("field onDemandPolicyItem.frequencyType %s must be ondemand", strconv.Quote(sanitize(string(od.FrequencyType), 80)))
		}
		if err := checkPolicyItem("onDemandPolicyItem", *od, true); err != nil {
			return err
		}
	}
	return nil
}
