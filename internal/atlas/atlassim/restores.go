package atlassim

import (
	"fmt"
	"net/http"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// clusterRestore is a restore job of a dedicated cluster's snapshot
// (DiskBackupSnapshotRestoreJob, ATLAS_API_NOTES.md 9b). It is listed under
// its source cluster. Its timeline: the job runs until timeline.queuedUntil
// (its finishedAt), and the target stays UPDATING until timeline.doneAt,
// as Atlas brings the restored cluster back.
type clusterRestore struct {
	id            string
	snapshotID    string
	snapshotTaken time.Time
	targetProject string
	targetName    string
	created       time.Time
	expiresAt     time.Time
	timeline      phases
	final         atlas.RestoreState
	members       []string // replica sets of a sharded source
}

// running reports whether the job is still restoring at now.
func (j *clusterRestore) running(now time.Time) bool { return now.Before(j.timeline.queuedUntil) }

// restoringTarget reports whether the target is still busy at now (the
// restore runs, or Atlas has not brought the cluster back to IDLE yet).
func (j *clusterRestore) restoringTarget(now time.Time) bool { return now.Before(j.timeline.doneAt) }

// restoreKey indexes restores by target.
func restoreKey(projectID, name string) string { return projectID + "/" + name }

// objectID is a 24-hex id shaped like a MongoDB ObjectId: the creation
// second on the simulator's clock, then seeded random bytes. Dedicated
// restore jobs carry no creation time, so a client reads it from the id.
// Callers hold s.mu.
func (s *Sim) objectID(at time.Time) string {
	return fmt.Sprintf("%08x%016x", uint32(at.Unix()), s.idRNG.Uint64())
}

// clusterState is the stateName Atlas shows for cl at now: UPDATING while a
// restore into it runs or settles, its own state otherwise.
func (s *Sim) clusterState(projectID string, cl *cluster, now time.Time) atlas.ClusterState {
	if cl.spec.State == atlas.ClusterIdle {
		for _, j := range s.restoresInto[restoreKey(projectID, cl.spec.Name)] {
			if j.restoringTarget(now) {
				return atlas.ClusterUpdating
			}
		}
	}
	return cl.spec.State
}

// restoreRunningInto reports whether any restore, dedicated or flex, is
// still running into the target at now.
func (s *Sim) restoreRunningInto(targetProject, target string, now time.Time) bool {
	for _, j := range s.restoresInto[restoreKey(targetProject, target)] {
		if j.running(now) {
			return true
		}
	}
	for _, id := range s.projectOrder {
		for _, name := range s.projects[id].flexOrder {
			for _, j := range s.projects[id].flex[name].restores {
				if j.targetProject == targetProject && j.targetName == target && j.timeline.at(now) < 2 {
					return true
				}
			}
		}
	}
	return false
}

// FailNextClusterRestores makes the next n restore jobs of dedicated
// clusters end with end: failed, cancelled or expired.
func (s *Sim) FailNextClusterRestores(n int, end atlas.RestoreState) error {
	switch end {
	case atlas.RestoreFailed, atlas.RestoreCancelled, atlas.RestoreExpired:
	default:
		return fmt.Errorf("fail cluster restores: end %q is not failed, cancelled or expired: %w", end, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failClusterRestores = max(n, 0)
	s.clusterRestoreEnd = end
	return nil
}

// createClusterRestore is POST C/backup/restoreJobs. Only automated
// restores are simulated (docs/simulator.md).
func (s *Sim) createClusterRestore(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	readOnly := []string{"cancelled", "components", "deliveryUrl", "expired", "expiresAt", "failed", "finishedAt", "id",
		"links", "privateDownloadDeliveryUrls", "timestamp"}
	b, e := parseBody(c.body, false, []string{"deliveryType", "snapshotId", "targetClusterName", "targetGroupId",
		"desiredTimestamp", "oplogInc", "oplogTs", "pointInTimeUTCSeconds"}, readOnly)
	if e != nil {
		return nil, e
	}
	delivery := b.str("deliveryType", true)
	switch atlas.RestoreDelivery(delivery) {
	case "", atlas.DeliveryAutomated:
	case atlas.DeliveryDownloadLinks, atlas.DeliveryPointInTime:
		b.fail("deliveryType", "only automated restores are simulated")
	default:
		b.fail("deliveryType", "must be one of automated, download, pointInTime")
	}
	snapshotID := b.pattern("snapshotId", true, hexIDPattern)
	target := b.pattern("targetClusterName", true, clusterNamePattern)
	targetProject := b.pattern("targetGroupId", true, hexIDPattern)
	for _, k := range []string{"desiredTimestamp", "oplogInc", "oplogTs", "pointInTimeUTCSeconds"} {
		if present(b.m[k]) {
			b.fail(k, "is for pointInTime restores only")
		}
	}
	if e := b.err(); e != nil {
		return nil, e
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
	if st := s.snapshotView(nil, p.id, cl, sn, c.now).Status; st != atlas.SnapshotCompleted {
		return nil, newErr(http.StatusConflict, CodeRestoreIncompleteSnapshot,
			fmt.Sprintf("Cannot start a restore job for snapshot %s, which is %s.", sn.id, st), sn.id)
	}
	tp, ok := s.projects[targetProject]
	if !ok {
		return nil, errGroupNotFound(targetProject)
	}
	tc, ok := tp.clusters[target]
	if !ok {
		if _, flex := tp.flex[target]; flex {
			return nil, newErr(http.StatusBadRequest, CodeFlexInClusterAPI, fmt.Sprintf("Flex cluster %s cannot be used in the Cluster API.", target), target)
		}
		return nil, errClusterNotFound(target, targetProject)
	}
	if tc.spec.Paused {
		return nil, newErr(http.StatusBadRequest, atlas.CodeClusterPausedCannotRestore, fmt.Sprintf("Cannot restore into paused cluster %s.", target), target)
	}
	if s.restoreRunningInto(targetProject, target, c.now) {
		return nil, newErr(http.StatusConflict, atlas.CodeRestoreInProgress, "Cluster restore already in progress.", target)
	}
	t := s.timings
	run := s.scaled(t.ClusterRestore)
	job := &clusterRestore{
		id:            s.objectID(c.now),
		snapshotID:    sn.id,
		snapshotTaken: sn.createdAt,
		targetProject: targetProject,
		targetName:    target,
		created:       c.now,
		expiresAt:     c.now.Add(restoreJobLifetime),
		timeline:      phases{queuedUntil: c.now.Add(run), doneAt: c.now.Add(run + s.scaled(t.ClusterRestoreSettle))},
		final:         atlas.RestoreSucceeded,
	}
	if sn.kind == atlas.KindShardedCluster {
		for _, m := range sn.members {
			job.members = append(job.members, m.ReplicaSetName)
		}
	}
	if s.failClusterRestores > 0 {
		s.failClusterRestores--
		job.final = s.clusterRestoreEnd
	}
	cl.restores = append(cl.restores, job)
	k := restoreKey(targetProject, target)
	s.restoresInto[k] = append(s.restoresInto[k], job)
	s.log("atlassim: restore %s of %s/%s snapshot %s into %s/%s (ends %s)", job.id, p.id, cl.spec.Name, sn.id, targetProject, target, job.final)
	return s.clusterRestoreView(c, p.id, cl, job, c.now), nil
}

// restoreJobLifetime is the expiresAt the simulator gives restore jobs
// (UNCONFIRMED: Atlas documents the field, not its value).
const restoreJobLifetime = 3 * 24 * time.Hour

func (s *Sim) listClusterRestores(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	return listed(c, cl.restores, func(j *clusterRestore) atlas.RestoreJob { return s.clusterRestoreView(c, p.id, cl, j, c.now) })
}

func (s *Sim) getClusterRestore(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	return byPathID(c, "restoreJobId", cl.restores, func(j *clusterRestore) atlas.RestoreJob { return s.clusterRestoreView(c, p.id, cl, j, c.now) }, errRestoreNotFound)
}

// clusterRestoreView renders a job as Atlas does: no status, the flags and
// finishedAt once it ended. Failed and cancelled jobs carry finishedAt too;
// an expired one does not (it never finished).
func (s *Sim) clusterRestoreView(c *call, projectID string, cl *cluster, j *clusterRestore, now time.Time) atlas.RestoreJob {
	v := atlas.RestoreJob{
		ID:                j.id,
		DeliveryType:      atlas.DeliveryAutomated,
		SnapshotID:        j.snapshotID,
		TargetClusterName: j.targetName,
		TargetGroupID:     j.targetProject,
		Timestamp:         ts(j.snapshotTaken),
		ExpiresAt:         ts(j.expiresAt),
		Links:             selfLink(c, "/groups/"+projectID+"/clusters/"+cl.spec.Name+"/backup/restoreJobs/"+j.id),
	}
	for _, m := range j.members {
		v.Components = append(v.Components, atlas.RestoreMember{ReplicaSetName: m})
	}
	if j.running(now) {
		return v
	}
	switch j.final {
	case atlas.RestoreFailed:
		v.Failed = true
	case atlas.RestoreCancelled:
		v.Cancelled = true
	case atlas.RestoreExpired:
		v.Expired = true
		return v
	}
	v.FinishedAt = ts(j.timeline.queuedUntil)
	return v
}

// ClusterRestoreJobs returns the restore jobs created from a dedicated
// cluster's snapshots as Atlas would show them now, newest first, without
// links. Unknown projects or clusters give nil.
func (s *Sim) ClusterRestoreJobs(projectID, clusterName string) []atlas.RestoreJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return nil
	}
	now := s.clk.Now()
	return newestViews(cl.restores, func(j *clusterRestore) atlas.RestoreJob { return s.clusterRestoreView(nil, projectID, cl, j, now) })
}
