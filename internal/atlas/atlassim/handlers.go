package atlassim

import (
	"fmt"
	"net/http"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// Handlers run with s.mu held; c.now is the request's instant.

func (s *Sim) pathProject(c *call) (*project, *apiError) {
	id := c.params["groupId"]
	if !hexIDPattern.MatchString(id) {
		return nil, errInvalidPathParam("groupId", id)
	}
	p, ok := s.projects[id]
	if !ok {
		return nil, errGroupNotFound(id)
	}
	return p, nil
}

func (s *Sim) pathCluster(c *call) (*project, *cluster, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, nil, e
	}
	name := c.params["clusterName"]
	if !clusterNamePattern.MatchString(name) {
		return nil, nil, errInvalidPathParam("clusterName", name)
	}
	if cl, ok := p.clusters[name]; ok {
		s.produceLocked(cl, c.now)
		return p, cl, nil
	}
	if _, ok := p.flex[name]; ok {
		return nil, nil, newErr(http.StatusBadRequest, CodeFlexInClusterAPI, fmt.Sprintf("Flex cluster %s cannot be used in the Cluster API.", name), name)
	}
	return nil, nil, errClusterNotFound(name, p.id)
}

func (s *Sim) pathFlex(c *call) (*project, *flexCluster, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, nil, e
	}
	name := c.params["name"]
	if !clusterNamePattern.MatchString(name) {
		return nil, nil, errInvalidPathParam("name", name)
	}
	if f, ok := p.flex[name]; ok {
		return p, f, nil
	}
	if _, ok := p.clusters[name]; ok {
		return nil, nil, newErr(http.StatusBadRequest, CodeNonFlexInFlexAPI, fmt.Sprintf("Cluster %s is not a flex cluster and cannot be used in the Flex API.", name), name)
	}
	return nil, nil, errClusterNotFound(name, p.id)
}

func pathID(c *call, name string) (string, *apiError) {
	id := c.params[name]
	if !hexIDPattern.MatchString(id) {
		return "", errInvalidPathParam(name, id)
	}
	return id, nil
}

// --- projects -------------------------------------------------------------

// projectView is the parts of Atlas's Group that the simulator knows.
type projectView struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	OrgID        string       `json:"orgId"`
	Created      time.Time    `json:"created"`
	ClusterCount int          `json:"clusterCount"`
	Links        []atlas.Link `json:"links,omitempty"`
}

// listProjects is GET /groups (listProjects, 2023-01-01). backupd's client
// uses it to prove digest credentials; every credential sees every project.
func (s *Sim) listProjects(c *call) (any, *apiError) {
	pg, e := parsePaging(c.r.URL.Query())
	if e != nil {
		return nil, e
	}
	all := make([]projectView, 0, len(s.projectOrder))
	for _, id := range s.projectOrder {
		p := s.projects[id]
		all = append(all, projectView{
			ID: id, Name: p.name, OrgID: s.orgID, Created: ts(p.created),
			ClusterCount: len(p.clusters) + len(p.flex), Links: selfLink(c, "/groups/"+id),
		})
	}
	return paginate(c, all, pg), nil
}

// --- clusters -------------------------------------------------------------

func (s *Sim) listClusters(c *call) (any, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, e
	}
	pg, e := parsePaging(c.r.URL.Query())
	if e != nil {
		return nil, e
	}
	all := make([]atlas.Cluster, 0, len(p.clusterOrder))
	for _, name := range p.clusterOrder {
		all = append(all, clusterView(c, p.id, p.clusters[name], s.clusterState(p.id, p.clusters[name], c.now)))
	}
	return paginate(c, all, pg), nil
}

func (s *Sim) getCluster(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	return clusterView(c, p.id, cl, s.clusterState(p.id, cl, c.now)), nil
}

func (s *Sim) listFlexClusters(c *call) (any, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, e
	}
	pg, e := parsePaging(c.r.URL.Query())
	if e != nil {
		return nil, e
	}
	all := make([]atlas.FlexCluster, 0, len(p.flexOrder))
	for _, name := range p.flexOrder {
		all = append(all, flexClusterView(c, p.id, p.flex[name]))
	}
	return paginate(c, all, pg), nil
}

func (s *Sim) getFlexCluster(c *call) (any, *apiError) {
	p, f, e := s.pathFlex(c)
	if e != nil {
		return nil, e
	}
	return flexClusterView(c, p.id, f), nil
}

// --- export buckets -------------------------------------------------------

func (s *Sim) listBuckets(c *call) (any, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, e
	}
	pg, e := parsePaging(c.r.URL.Query())
	if e != nil {
		return nil, e
	}
	all := make([]atlas.ExportBucket, 0, len(p.bucketOrder))
	for _, id := range p.bucketOrder {
		b := p.buckets[id]
		// The sunset 2023-01-01 version only knows AWS buckets.
		if c.version == "2023-01-01" && b.CloudProvider != "AWS" {
			continue
		}
		all = append(all, bucketView(c, p.id, b))
	}
	return paginate(c, all, pg), nil
}

func (s *Sim) getBucket(c *call) (any, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, e
	}
	id, e := pathID(c, "exportBucketId")
	if e != nil {
		return nil, e
	}
	b, ok := p.buckets[id]
	if !ok || (c.version == "2023-01-01" && b.CloudProvider != "AWS") {
		return nil, errBucketNotFound(id)
	}
	return bucketView(c, p.id, b), nil
}

// --- snapshots ------------------------------------------------------------

func (s *Sim) takeSnapshot(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	f, e := parseBody(c.body, false, []string{"description", "retentionInDays"}, []string{"links"})
	if e != nil {
		return nil, e
	}
	description := f.str("description", false)
	retention, set := f.int32("retentionInDays")
	if set && retention < 1 {
		f.fail("retentionInDays", "must be at least 1")
	}
	if !set {
		retention = 1 // the Atlas CLI's default for on-demand snapshots
	}
	if e := f.err(); e != nil {
		return nil, e
	}
	spec := cl.spec
	switch {
	case tenantTier(spec.Tier):
		return nil, errNoCloudBackup(spec)
	case !spec.BackupEnabled:
		return nil, newErr(http.StatusBadRequest, atlas.CodeBackupJobNotFound, "Backups are not enabled for this cluster.", spec.Name)
	case spec.Paused:
		return nil, newErr(http.StatusBadRequest, atlas.CodeClusterPaused, fmt.Sprintf("Cannot take a snapshot of paused cluster %s.", spec.Name), spec.Name)
	}
	for _, sn := range cl.liveSnapshots(c.now) {
		if sn.snapType == atlas.SnapshotOnDemand && sn.timeline.at(c.now) < 2 {
			return nil, newErr(http.StatusBadRequest, atlas.CodeUnfinishedOnDemandSnapshot, "Another on-demand snapshot is queued or in progress.")
		}
	}
	sn := s.newSnapshotLocked(cl, s.newID(), atlas.SnapshotOnDemand, c.now, retention, description)
	t := s.timings
	q := s.scaled(t.SnapshotQueued)
	sn.timeline = phases{queuedUntil: c.now.Add(q), doneAt: c.now.Add(q + s.scaled(s.spread.Scale(t.SnapshotInProgress, p.id, spec.Name)))}
	sn.final = atlas.SnapshotCompleted
	if s.failSnapshots > 0 {
		s.failSnapshots--
		sn.final = atlas.SnapshotFailed
	}
	cl.snapshots = append(cl.snapshots, sn)
	s.log("atlassim: snapshot %s taken on %s/%s (ends %s at %s)", sn.id, p.id, spec.Name, sn.final, sn.timeline.doneAt.Format(time.RFC3339))
	return s.snapshotView(c, p.id, cl, sn, c.now), nil
}

func (s *Sim) listSnapshotsOfKind(c *call, kind atlas.SnapshotKind, paged bool) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	pg := paging{}
	if paged {
		if pg, e = parsePaging(c.r.URL.Query()); e != nil {
			return nil, e
		}
	}
	all := []atlas.Snapshot{}
	for _, sn := range cl.liveSnapshots(c.now) {
		if sn.kind == kind {
			all = append(all, s.snapshotView(c, p.id, cl, sn, c.now))
		}
	}
	if !paged {
		return unpaged(c, all), nil
	}
	return paginate(c, all, pg), nil
}

func (s *Sim) listSnapshots(c *call) (any, *apiError) {
	return s.listSnapshotsOfKind(c, atlas.KindReplicaSet, true)
}

func (s *Sim) listShardedSnapshots(c *call) (any, *apiError) {
	return s.listSnapshotsOfKind(c, atlas.KindShardedCluster, false)
}

func (s *Sim) getSnapshotOfKind(c *call, kind atlas.SnapshotKind) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	id, e := pathID(c, "snapshotId")
	if e != nil {
		return nil, e
	}
	var sn *snapshot
	for _, x := range cl.liveSnapshots(c.now) {
		if x.id == id {
			sn = x
		}
	}
	if sn == nil {
		return nil, errSnapshotNotFound(id, cl.spec.Name)
	}
	if sn.kind != kind {
		right := "/groups/" + p.id + "/clusters/" + cl.spec.Name + "/backup/snapshots/" + id
		if sn.kind == atlas.KindShardedCluster {
			right = "/groups/" + p.id + "/clusters/" + cl.spec.Name + "/backup/snapshots/shardedCluster/" + id
		}
		return nil, newErr(http.StatusBadRequest, CodeIncorrectBackupEndpoint,
			fmt.Sprintf("Incorrect Public API endpoint for Cloud Backups. Please use the following endpoint: (%s).", atlas.APIPrefix+right), atlas.APIPrefix+right)
	}
	return s.snapshotView(c, p.id, cl, sn, c.now), nil
}

func (s *Sim) getSnapshot(c *call) (any, *apiError) {
	return s.getSnapshotOfKind(c, atlas.KindReplicaSet)
}

func (s *Sim) getShardedSnapshot(c *call) (any, *apiError) {
	return s.getSnapshotOfKind(c, atlas.KindShardedCluster)
}

// --- exports --------------------------------------------------------------

func (s *Sim) createExport(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	f, e := parseBody(c.body, true, []string{"exportBucketId", "snapshotId", "customData"}, []string{"links"})
	if e != nil {
		return nil, e
	}
	bucketID := f.pattern("exportBucketId", true, hexIDPattern)
	snapshotID := f.pattern("snapshotId", true, hexIDPattern)
	labels := f.labels("customData")
	if e := f.err(); e != nil {
		return nil, e
	}
	if _, ok := p.buckets[bucketID]; !ok {
		return nil, errBucketNotFound(bucketID)
	}
	var sn *snapshot
	for _, x := range cl.liveSnapshots(c.now) {
		if x.id == snapshotID {
			sn = x
		}
	}
	if sn == nil {
		return nil, errSnapshotNotFound(snapshotID, cl.spec.Name)
	}
	if sn.snapType == atlas.SnapshotFallback {
		return nil, newErr(http.StatusBadRequest, atlas.CodeFallbackNotExportable, fmt.Sprintf("Fallback snapshot %s cannot be exported.", sn.id), sn.id)
	}
	if st := s.snapshotView(nil, p.id, cl, sn, c.now).Status; st != atlas.SnapshotCompleted {
		return nil, newErr(http.StatusBadRequest, atlas.CodeSnapshotNotExportable,
			fmt.Sprintf("Snapshot %s is %s; only completed snapshots can be exported.", sn.id, st), sn.id, string(st))
	}
	for _, x := range cl.exports {
		if x.snapshotID == sn.id && x.timeline.at(c.now) < 2 {
			return nil, newErr(http.StatusConflict, atlas.CodeExportConflict,
				fmt.Sprintf("Snapshot %s already has an active export job %s.", sn.id, x.id), sn.id, x.id)
		}
	}
	t := s.timings
	q := s.scaled(t.ExportQueued)
	job := &exportJob{
		id:         s.newID(),
		snapshotID: sn.id,
		bucketID:   bucketID,
		createdAt:  c.now,
		timeline:   phases{queuedUntil: c.now.Add(q), doneAt: c.now.Add(q + s.scaled(s.spread.Scale(t.ExportInProgress, p.id, cl.spec.Name)))},
		final:      atlas.ExportSuccessful,
		total:      5 + s.idRNG.IntN(36),
		customData: labels,
		prefix: fmt.Sprintf("/exported_snapshots/%s/%s/%s/%s/%d",
			s.orgID, p.id, cl.spec.Name, sn.createdAt.UTC().Format("2006-01-02T1504"), c.now.Unix()),
	}
	if sn.kind == atlas.KindShardedCluster {
		for _, m := range sn.members {
			job.components = append(job.components, atlas.ExportMember{ExportID: s.newID(), ReplicaSetName: m.ReplicaSetName})
		}
	}
	if s.failExports > 0 {
		s.failExports--
		job.final = atlas.ExportFailed
		if s.cancelExports {
			job.final = atlas.ExportCancelled
		}
	}
	cl.exports = append(cl.exports, job)
	s.log("atlassim: export %s of snapshot %s on %s/%s (ends %s)", job.id, sn.id, p.id, cl.spec.Name, job.final)
	return s.exportView(c, p.id, cl, job, c.now), nil
}

func (s *Sim) listExports(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	return listed(c, cl.exports, func(j *exportJob) atlas.ExportJob { return s.exportView(c, p.id, cl, j, c.now) })
}

func (s *Sim) getExport(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	return byPathID(c, "exportId", cl.exports, func(j *exportJob) atlas.ExportJob { return s.exportView(c, p.id, cl, j, c.now) },
		func(id string) *apiError { return errResourceNotFound("export job " + id) })
}

// --- flex snapshots and restores -----------------------------------------

func (s *Sim) listFlexSnapshots(c *call) (any, *apiError) {
	p, f, e := s.pathFlex(c)
	if e != nil {
		return nil, e
	}
	return listed(c, f.snapshots, func(x *flexSnapshot) atlas.FlexSnapshot { return flexSnapshotView(c, p.id, f, x) })
}

func (s *Sim) getFlexSnapshot(c *call) (any, *apiError) {
	p, f, e := s.pathFlex(c)
	if e != nil {
		return nil, e
	}
	id, e := pathID(c, "snapshotId")
	if e != nil {
		return nil, e
	}
	if x := f.snapshotByID(id); x != nil {
		return flexSnapshotView(c, p.id, f, x), nil
	}
	return nil, errSnapshotNotFound(id, f.name)
}

func (s *Sim) createRestore(c *call) (any, *apiError) {
	p, f, e := s.pathFlex(c)
	if e != nil {
		return nil, e
	}
	readOnly := []string{"deliveryType", "expirationDate", "id", "instanceName", "links", "projectId", "restoreFinishedDate",
		"restoreScheduledDate", "snapshotFinishedDate", "snapshotUrl", "status"}
	b, e := parseBody(c.body, false, []string{"snapshotId", "targetDeploymentItemName", "targetProjectId"}, readOnly)
	if e != nil {
		return nil, e
	}
	snapshotID := b.pattern("snapshotId", true, hexIDPattern)
	target := b.pattern("targetDeploymentItemName", true, targetNamePattern())
	targetProject := b.pattern("targetProjectId", false, hexIDPattern)
	if e := b.err(); e != nil {
		return nil, e
	}
	if targetProject == "" {
		targetProject = p.id // UNCONFIRMED default: the source project
	}
	fs := f.snapshotByID(snapshotID)
	if fs == nil {
		return nil, errSnapshotNotFound(snapshotID, f.name)
	}
	if fs.status != atlas.FlexCompleted {
		return nil, newErr(http.StatusConflict, CodeRestoreIncompleteSnapshot,
			fmt.Sprintf("Cannot start a restore job for snapshot %s, which is %s.", fs.id, fs.status), fs.id)
	}
	tp, ok := s.projects[targetProject]
	if !ok {
		return nil, errGroupNotFound(targetProject)
	}
	if tc, ok := tp.clusters[target]; ok {
		if tc.spec.Paused {
			return nil, newErr(http.StatusBadRequest, atlas.CodeClusterPausedCannotRestore, fmt.Sprintf("Cannot restore into paused cluster %s.", target), target)
		}
	} else if _, ok := tp.flex[target]; !ok {
		return nil, errClusterNotFound(target, targetProject)
	}
	if s.restoreRunningInto(targetProject, target, c.now) {
		return nil, newErr(http.StatusConflict, atlas.CodeRestoreInProgress, "Cluster restore already in progress.", target)
	}
	t := s.timings
	q := s.scaled(t.RestorePending)
	job := &restoreJob{
		id:            s.newID(),
		snapshotID:    fs.id,
		snapshotDone:  fs.finished,
		targetName:    target,
		targetProject: targetProject,
		projectID:     p.id,
		instanceName:  f.name,
		scheduled:     c.now,
		timeline:      phases{queuedUntil: c.now.Add(q), doneAt: c.now.Add(q + s.scaled(t.RestoreRunning))},
		final:         atlas.FlexCompleted,
	}
	if s.failRestores > 0 {
		s.failRestores--
		job.final = atlas.FlexFailed
	}
	f.restores = append(f.restores, job)
	s.log("atlassim: flex restore %s of %s/%s snapshot %s into %s/%s (ends %s)", job.id, p.id, f.name, fs.id, targetProject, target, job.final)
	return s.restoreView(c, p.id, f, job, c.now), nil
}

func (s *Sim) listRestores(c *call) (any, *apiError) {
	p, f, e := s.pathFlex(c)
	if e != nil {
		return nil, e
	}
	return listed(c, f.restores, func(j *restoreJob) atlas.FlexRestoreJob { return s.restoreView(c, p.id, f, j, c.now) })
}

func (s *Sim) getRestore(c *call) (any, *apiError) {
	p, f, e := s.pathFlex(c)
	if e != nil {
		return nil, e
	}
	return byPathID(c, "restoreJobId", f.restores, func(j *restoreJob) atlas.FlexRestoreJob { return s.restoreView(c, p.id, f, j, c.now) }, errRestoreNotFound)
}
