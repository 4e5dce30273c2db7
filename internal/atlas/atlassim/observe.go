package atlassim

import (
	"time"

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
	var out []atlas.ExportJob
	for _, j := range newestFirst(cl.exports, func(j *exportJob) time.Time { return j.createdAt }, func(j *exportJob) string { return j.id }) {
		out = append(out, s.exportView(nil, projectID, cl, j, now))
	}
	return out
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
	var out []atlas.FlexRestoreJob
	for _, j := range newestFirst(f.restores, func(j *restoreJob) time.Time { return j.scheduled }, func(j *restoreJob) string { return j.id }) {
		out = append(out, s.restoreView(nil, projectID, f, j, now))
	}
	return out
}

// FlexSnapshots returns a flex cluster's snapshots, newest first, without links.
func (s *Sim) FlexSnapshots(projectID, flexName string) []atlas.FlexSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.flexLocked(projectID, flexName)
	if err != nil {
		return nil
	}
	var out []atlas.FlexSnapshot
	for _, x := range newestFirst(f.snapshots, func(x *flexSnapshot) time.Time { return x.scheduled }, func(x *flexSnapshot) string { return x.id }) {
		out = append(out, flexSnapshotView(nil, projectID, f, x))
	}
	return out
}
