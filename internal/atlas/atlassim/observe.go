package atlassim

import (
	"github.com/backupd/backupd/internal/atlas"
)

// Snapshots returns a cluster's unexpired snapshots (replica-set and sharded)
// as Atlas would show them now, newest first, without links. Unknown
// projects or clusters give nil.
func (s *Sim) Snapshots(projectID, clusterName string) []atlas.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return nil
	}
	now := s.clk.Now()
	s.produceLocked(cl, now)
	var out []atlas.Snapshot
	for _, sn := range cl.liveSnapshots(now) {
		out = append(out, s.snapshotView(nil, projectID, cl, sn, now))
	}
	return out
}

// Exports returns a cluster's export jobs as Atlas would show them now,
// newest first, without links.
func (s *Sim) Exports(projectID, clusterName string) []atlas.ExportJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return nil
	}
	now := s.clk.Now()
	return newestViews(cl.exports, func(j *exportJob) atlas.ExportJob { return s.exportView(nil, projectID, cl, j, now) })
}

// RestoreJobs returns the restore jobs created from a flex cluster's
// snapshots as Atlas would show them now, newest first, without links.
func (s *Sim) RestoreJobs(projectID, flexName string) []atlas.FlexRestoreJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.flexLocked(projectID, flexName)
	if err != nil {
		return nil
	}
	now := s.clk.Now()
	return newestViews(f.restores, func(j *restoreJob) atlas.FlexRestoreJob { return s.restoreView(nil, projectID, f, j, now) })
}

// FlexSnapshots returns a flex cluster's snapshots, newest first, without links.
func (s *Sim) FlexSnapshots(projectID, flexName string) []atlas.FlexSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.flexLocked(projectID, flexName)
	if err != nil {
		return nil
	}
	return newestViews(f.snapshots, func(x *flexSnapshot) atlas.FlexSnapshot { return flexSnapshotView(nil, projectID, f, x) })
}
