package atlassim

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// ts is how Atlas renders times: UTC, whole seconds.
func ts(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}

func selfLink(c *call, path string) []atlas.Link {
	if c == nil {
		return nil
	}
	return []atlas.Link{{Href: c.link(path), Rel: "self"}}
}

func (s *Sim) snapshotView(c *call, projectID string, cl *cluster, sn *snapshot, now time.Time) atlas.Snapshot {
	v := atlas.Snapshot{
		ID:            sn.id,
		SnapshotType:  sn.snapType,
		FrequencyType: sn.frequency,
		Type:          sn.kind,
		CreatedAt:     ts(sn.createdAt),
		ExpiresAt:     ts(sn.expiresAt),
		Description:   sn.description,
		MongodVersion: sn.mongodVersion,
		PolicyItems:   sn.policyItems,
	}
	switch sn.timeline.at(now) {
	case 0:
		v.Status = atlas.SnapshotQueued
	case 1:
		v.Status = atlas.SnapshotInProgress
	default:
		v.Status = sn.final
	}
	if v.Status == atlas.SnapshotCompleted {
		v.StorageSizeBytes = sn.size
	}
	path := "/groups/" + projectID + "/clusters/" + cl.spec.Name + "/backup/snapshots/"
	if sn.kind == atlas.KindShardedCluster {
		v.ConfigServerType = "DEDICATED"
		v.Members = append([]atlas.SnapshotMember(nil), sn.members...)
		for _, m := range sn.members {
			v.SnapshotIDs = append(v.SnapshotIDs, m.ID)
		}
		path += "shardedCluster/"
	} else {
		v.CloudProvider = cl.spec.Provider
		v.ReplicaSetName = cl.replicaSetNames()[0]
	}
	v.Links = selfLink(c, path+sn.id)
	return v
}

func (s *Sim) exportView(c *call, projectID string, cl *cluster, e *exportJob, now time.Time) atlas.ExportJob {
	v := atlas.ExportJob{
		ID:             e.id,
		SnapshotID:     e.snapshotID,
		ExportBucketID: e.bucketID,
		CustomData:     append([]atlas.Label(nil), e.customData...),
		Prefix:         e.prefix,
		CreatedAt:      ts(e.createdAt),
		Components:     append([]atlas.ExportMember(nil), e.components...),
		Links:          selfLink(c, "/groups/"+projectID+"/clusters/"+cl.spec.Name+"/backup/exports/"+e.id),
	}
	progress := func(at time.Time) int {
		span := e.timeline.doneAt.Sub(e.timeline.queuedUntil)
		if span <= 0 {
			return e.total
		}
		return int(float64(e.total) * float64(at.Sub(e.timeline.queuedUntil)) / float64(span))
	}
	switch e.timeline.at(now) {
	case 0:
		v.State = atlas.ExportQueued
	case 1:
		v.State = atlas.ExportInProgress
		v.ExportStatus = &atlas.ExportStatus{ExportedCollections: progress(now), TotalCollections: e.total}
	default:
		v.State = e.final
		v.FinishedAt = ts(e.timeline.doneAt)
		switch e.final {
		case atlas.ExportSuccessful:
			v.ExportStatus = &atlas.ExportStatus{ExportedCollections: e.total, TotalCollections: e.total}
		case atlas.ExportFailed:
			v.ExportStatus = &atlas.ExportStatus{ExportedCollections: e.total / 2, TotalCollections: e.total}
			v.StateReason = &atlas.StateReason{
				ErrorCode: CodeExportFailed,
				Message:   "Export failed while writing collections to the bucket; partial data may remain under the export prefix (injected by atlassim).",
			}
		default:
			v.ExportStatus = &atlas.ExportStatus{ExportedCollections: e.total / 3, TotalCollections: e.total}
		}
	}
	return v
}

func (s *Sim) restoreView(c *call, flexProject string, f *flexCluster, j *restoreJob, now time.Time) atlas.FlexRestoreJob {
	v := atlas.FlexRestoreJob{
		ID:                       j.id,
		DeliveryType:             atlas.DeliveryRestore,
		SnapshotID:               j.snapshotID,
		TargetDeploymentItemName: j.targetName,
		TargetProjectID:          j.targetProject,
		ProjectID:                j.projectID,
		InstanceName:             j.instanceName,
		RestoreScheduledDate:     ts(j.scheduled),
		SnapshotFinishedDate:     ts(j.snapshotDone),
		Links:                    selfLink(c, "/groups/"+flexProject+"/flexClusters/"+f.name+"/backup/restoreJobs/"+j.id),
	}
	switch j.timeline.at(now) {
	case 0:
		v.Status = atlas.FlexPending
	case 1:
		v.Status = atlas.FlexRunning
	default:
		v.Status = j.final
		v.RestoreFinishedDate = ts(j.timeline.doneAt)
	}
	return v
}

func flexSnapshotView(c *call, projectID string, f *flexCluster, fs *flexSnapshot) atlas.FlexSnapshot {
	return atlas.FlexSnapshot{
		ID:             fs.id,
		Status:         fs.status,
		ScheduledTime:  ts(fs.scheduled),
		StartTime:      ts(fs.started),
		FinishTime:     ts(fs.finished),
		Expiration:     ts(fs.expiration),
		MongoDBVersion: fs.mongoDBVersion,
		Links:          selfLink(c, "/groups/"+projectID+"/flexClusters/"+f.name+"/backup/snapshots/"+fs.id),
	}
}

// clusterView renders cl with the state Atlas shows now (Sim.clusterState).
func clusterView(c *call, projectID string, cl *cluster, state atlas.ClusterState) atlas.Cluster {
	spec := cl.spec
	provider := spec.Provider
	nodes := 3
	if tenantTier(spec.Tier) {
		provider, nodes = "TENANT", 0
	}
	v := atlas.Cluster{
		ID:             cl.id,
		GroupID:        projectID,
		Name:           spec.Name,
		ClusterType:    spec.Type,
		BackupEnabled:  spec.BackupEnabled,
		Paused:         spec.Paused,
		StateName:      state,
		MongoDBVersion: spec.MongoDBVersion,
		Links:          selfLink(c, "/groups/"+projectID+"/clusters/"+spec.Name),
	}
	if !tenantTier(spec.Tier) {
		host := strings.ToLower(spec.Name) + "." + cl.id[:5] + ".mongodb.net"
		v.ConnectionStrings = &atlas.ConnectionStrings{
			Standard:    "mongodb://" + host + ":27017/?ssl=true&authSource=admin",
			StandardSrv: "mongodb+srv://" + host,
		}
	}
	for _, id := range cl.specIDs {
		v.ReplicationSpecs = append(v.ReplicationSpecs, atlas.ReplicationSpec{
			ID:       id,
			ZoneName: "Zone 1",
			RegionConfigs: []atlas.RegionConfig{{
				ProviderName:   provider,
				RegionName:     spec.Region,
				Priority:       7,
				ElectableSpecs: &atlas.HardwareSpec{InstanceSize: spec.Tier, NodeCount: nodes},
			}},
		})
	}
	return v
}

func flexClusterView(c *call, projectID string, f *flexCluster) atlas.FlexCluster {
	return atlas.FlexCluster{
		ID:             f.id,
		GroupID:        projectID,
		Name:           f.name,
		ClusterType:    atlas.ClusterReplicaSet,
		StateName:      atlas.ClusterIdle,
		BackupSettings: &atlas.FlexBackupSettings{Enabled: true},
		ProviderSettings: &atlas.FlexProviderSettings{
			ProviderName:        "FLEX",
			BackingProviderName: "AWS",
			RegionName:          "US_EAST_1",
			DiskSizeGB:          5,
		},
		MongoDBVersion: "8.0.4",
		CreateDate:     ts(f.createdAt),
		Links:          selfLink(c, "/groups/"+projectID+"/flexClusters/"+f.name),
	}
}

func bucketView(c *call, projectID string, b *atlas.ExportBucket) atlas.ExportBucket {
	v := *b
	v.Links = selfLink(c, "/groups/"+projectID+"/backup/exportBuckets/"+b.ID)
	return v
}

// listBody is the spec's Paginated* envelope; totalCount is omitted when
// includeCount=false.
type listBody[T any] struct {
	Links      []atlas.Link `json:"links"`
	Results    []T          `json:"results"`
	TotalCount *int         `json:"totalCount,omitempty"`
}

type paging struct {
	itemsPerPage int
	pageNum      int
	includeCount bool
}

// parsePaging reads itemsPerPage (1..500, default 100), pageNum (>= 1,
// default 1) and includeCount (default true).
func parsePaging(q url.Values) (paging, *apiError) {
	p := paging{itemsPerPage: 100, pageNum: 1, includeCount: true}
	var bad []atlas.FieldViolation
	if v := q.Get("itemsPerPage"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > atlas.MaxItemsPerPage {
			bad = append(bad, atlas.FieldViolation{Field: "itemsPerPage", Description: "must be an integer between 1 and 500"})
		}
		p.itemsPerPage = n
	}
	if v := q.Get("pageNum"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad = append(bad, atlas.FieldViolation{Field: "pageNum", Description: "must be an integer of at least 1"})
		}
		p.pageNum = n
	}
	if v := q.Get("includeCount"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad = append(bad, atlas.FieldViolation{Field: "includeCount", Description: "must be true or false"})
		}
		p.includeCount = b
	}
	if len(bad) > 0 {
		return p, errValidation(bad...)
	}
	return p, nil
}

// paginate cuts one page out of all and builds self/next/previous links.
func paginate[T any](c *call, all []T, p paging) listBody[T] {
	start := min((p.pageNum-1)*p.itemsPerPage, len(all))
	end := min(start+p.itemsPerPage, len(all))
	out := listBody[T]{Results: append(make([]T, 0, end-start), all[start:end]...)}
	pageLink := func(n int, rel string) atlas.Link {
		q := c.r.URL.Query()
		q.Set("pageNum", strconv.Itoa(n))
		q.Set("itemsPerPage", strconv.Itoa(p.itemsPerPage))
		return atlas.Link{Href: c.base + c.r.URL.Path + "?" + q.Encode(), Rel: rel}
	}
	if p.pageNum > 1 {
		out.Links = append(out.Links, pageLink(p.pageNum-1, "previous"))
	}
	out.Links = append(out.Links, pageLink(p.pageNum, "self"))
	if end < len(all) {
		out.Links = append(out.Links, pageLink(p.pageNum+1, "next"))
	}
	if p.includeCount {
		n := len(all)
		out.TotalCount = &n
	}
	return out
}

// unpaged is the envelope of list operations that declare no paging
// parameters (snapshots/shardedClusters).
func unpaged[T any](c *call, all []T) listBody[T] {
	n := len(all)
	return listBody[T]{
		Links:      []atlas.Link{{Href: c.base + c.r.URL.Path, Rel: "self"}},
		Results:    append(make([]T, 0, n), all...),
		TotalCount: &n,
	}
}

// listedItem is a job or snapshot as list operations order them: newest
// first by listedAt, then by id.
type listedItem interface {
	listedAt() time.Time
	itemID() string
}

func (j *exportJob) listedAt() time.Time      { return j.createdAt }
func (j *exportJob) itemID() string           { return j.id }
func (j *restoreJob) listedAt() time.Time     { return j.scheduled }
func (j *restoreJob) itemID() string          { return j.id }
func (j *clusterRestore) listedAt() time.Time { return j.created }
func (j *clusterRestore) itemID() string      { return j.id }
func (x *flexSnapshot) listedAt() time.Time   { return x.scheduled }
func (x *flexSnapshot) itemID() string        { return x.id }

func newestFirst[T listedItem](items []T) []T {
	out := append([]T(nil), items...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].listedAt(), out[j].listedAt()
		if !a.Equal(b) {
			return a.After(b)
		}
		return out[i].itemID() > out[j].itemID()
	})
	return out
}

// newestViews renders items newest first, as list operations and the
// observers show them.
func newestViews[T listedItem, V any](items []T, view func(T) V) []V {
	sorted := newestFirst(items)
	out := make([]V, 0, len(sorted))
	for _, it := range sorted {
		out = append(out, view(it))
	}
	return out
}

// listed answers a paginated list operation over items, each as view
// renders it.
func listed[T listedItem, V any](c *call, items []T, view func(T) V) (any, *apiError) {
	pg, e := parsePaging(c.r.URL.Query())
	if e != nil {
		return nil, e
	}
	return paginate(c, newestViews(items, view), pg), nil
}

// byPathID answers a get operation: the item whose id is the path's
// param, as view renders it, or missing's error.
func byPathID[T listedItem, V any](c *call, param string, items []T, view func(T) V, missing func(id string) *apiError) (any, *apiError) {
	id, e := pathID(c, param)
	if e != nil {
		return nil, e
	}
	for _, it := range items {
		if it.itemID() == id {
			return view(it), nil
		}
	}
	return nil, missing(id)
}
