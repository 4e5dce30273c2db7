package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

// TestFindDrillRestore: after an unknown outcome a drill adopts the job of
// its snapshot into its target that its baseline did not hold, by ids
// alone (the fields the spec documents), even when the ids say nothing of
// time; a baseline that kept only its newest second still needs Atlas's
// creation time; of several new jobs the oldest is the run's.
func TestFindDrillRestore(t *testing.T) {
	const snap = "65f1b0000000000000000001"
	r := run.Run{SnapshotID: snap, Spec: run.Spec{TargetProjectID: "p", TargetCluster: "scratch"}}
	oid := func(sec int64, n int) string { return fmt.Sprintf("%08x%016x", sec, n) }
	job := func(id string) atlas.RestoreJob {
		return atlas.RestoreJob{ID: id, SnapshotID: snap, TargetClusterName: "scratch", TargetGroupID: "p"}
	}
	elsewhere := job(oid(2000, 9))
	elsewhere.TargetClusterName = "other"
	otherSnap := job(oid(2000, 8))
	otherSnap.SnapshotID = "65f1b0000000000000000002"
	for _, tc := range []struct {
		name   string
		before []atlas.RestoreJob // the list when the baseline is taken
		after  []atlas.RestoreJob // the list after the unknown outcome
		old    bool               // a baseline of the newest second only
		want   string
	}{
		{"new job", []atlas.RestoreJob{job(oid(1000, 1)), job(oid(1000, 2))}, []atlas.RestoreJob{job(oid(1000, 1)), job(oid(1000, 2)), job(oid(1000, 3))}, false, oid(1000, 3)},
		{"nothing new: post again", []atlas.RestoreJob{job(oid(1000, 1))}, []atlas.RestoreJob{job(oid(1000, 1)), elsewhere, otherSnap}, false, ""},
		{"ids without a time", []atlas.RestoreJob{job("restore-a")}, []atlas.RestoreJob{job("restore-a"), job("restore-b")}, false, "restore-b"},
		{"the oldest new one", nil, []atlas.RestoreJob{job("restore-x"), job(oid(1500, 2)), job(oid(1400, 1))}, false, oid(1400, 1)},
		{"an older baseline: older jobs are not the run's", []atlas.RestoreJob{job(oid(1000, 1))}, []atlas.RestoreJob{job(oid(900, 1)), job(oid(1000, 1)), job(oid(1001, 1))}, true, oid(1001, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r
			r.RestoreBaseline = drillBaseline(tc.before, r)
			if tc.old {
				// As journaled before baselines kept every id: the newest
				// second's ids only.
				r.RestoreBaseline.AllJobs = false
			} else if !r.RestoreBaseline.AllJobs || len(r.RestoreBaseline.JobIDs) != len(tc.before) {
				t.Fatalf("baseline %+v, want every one of the %d jobs", r.RestoreBaseline, len(tc.before))
			}
			got := ""
			if j := findDrillRestore(tc.after, r); j != nil {
				got = j.ID
			}
			if got != tc.want {
				t.Fatalf("adopted %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDrillBaselineBound: past maxBaselineJobs the baseline keeps the
// newest creation second's ids, and adoption falls back to Atlas's times.
func TestDrillBaselineBound(t *testing.T) {
	const snap = "65f1b0000000000000000001"
	r := run.Run{SnapshotID: snap, Spec: run.Spec{TargetProjectID: "p", TargetCluster: "scratch"}}
	var jobs []atlas.RestoreJob
	base := time.Unix(1_700_000_000, 0)
	for i := range maxBaselineJobs + 1 {
		jobs = append(jobs, atlas.RestoreJob{ID: fmt.Sprintf("%08x%016x", base.Unix()+int64(i), i), SnapshotID: snap, TargetClusterName: "scratch"})
	}
	b := drillBaseline(jobs, r)
	if b.AllJobs || len(b.JobIDs) != 1 || b.JobIDs[0] != jobs[maxBaselineJobs].ID || !b.NewestJob.Equal(base.Add(maxBaselineJobs*time.Second)) {
		t.Fatalf("baseline of %d jobs = %+v", len(jobs), b)
	}
	r.RestoreBaseline = b
	ours := atlas.RestoreJob{ID: fmt.Sprintf("%08x%016x", base.Unix()+maxBaselineJobs, 999), SnapshotID: snap, TargetClusterName: "scratch"}
	if j := findDrillRestore(append(jobs, ours), r); j == nil || j.ID != ours.ID {
		t.Fatalf("adopted %+v, want %s", j, ours.ID)
	}
}
