package atlassim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

func drillBody(snapshotID, target string) string {
	return fmt.Sprintf(`{"deliveryType":"automated","snapshotId":%q,"targetClusterName":%q,"targetGroupId":%q}`, snapshotID, target, pid)
}

// A dedicated restore has Atlas's shape: no status, flags and finishedAt;
// its target is UPDATING while it runs and settles, IDLE after; its id
// dates it on the simulator's clock. Every answer is checked against the
// spec by the harness.
func TestClusterRestoreLifecycle(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.completedSnapshot("prod-main")
	created := h.clk.Now()
	r := h.must(h.post(base+"/clusters/prod-main/backup/restoreJobs", drillBody(sn.ID, "analytics")), http.StatusOK)
	if strings.Contains(string(r.raw), `"status"`) {
		t.Errorf("restore job carries a status: %s", r.raw)
	}
	job := decode[atlas.RestoreJob](t, r)
	if job.State() != atlas.RestoreRunning || job.DeliveryType != atlas.DeliveryAutomated || job.TargetGroupID != pid || !job.Timestamp.Equal(ts(sn.CreatedAt)) {
		t.Fatalf("created job %+v", job)
	}
	if at, ok := job.CreatedAt(); !ok || !at.Equal(created.Truncate(time.Second)) {
		t.Errorf("id %s dates the job %v, want %v", job.ID, at, created)
	}
	state := func() atlas.ClusterState {
		return decode[atlas.Cluster](t, h.must(h.get(base+"/clusters/analytics"), http.StatusOK)).StateName
	}
	if st := state(); st != atlas.ClusterUpdating {
		t.Errorf("target while restoring is %s, want UPDATING", st)
	}
	// A second restore into the same target is a conflict, from any source.
	other := h.completedSnapshot("prod-shards")
	expectError(t, h.post(base+"/clusters/prod-shards/backup/restoreJobs", drillBody(other.ID, "analytics")), http.StatusConflict, atlas.CodeRestoreInProgress)

	h.clk.Advance(DefaultTimings.ClusterRestore - (h.clk.Now().Sub(created)))
	done := decode[atlas.RestoreJob](t, h.must(h.get(base+"/clusters/prod-main/backup/restoreJobs/"+job.ID), http.StatusOK))
	if done.State() != atlas.RestoreSucceeded || !done.FinishedAt.Equal(ts(created.Add(DefaultTimings.ClusterRestore))) {
		t.Errorf("finished job %+v", done)
	}
	if st := state(); st != atlas.ClusterUpdating {
		t.Errorf("target just after the restore is %s, want UPDATING until it settles", st)
	}
	h.clk.Advance(DefaultTimings.ClusterRestoreSettle)
	if st := state(); st != atlas.ClusterIdle {
		t.Errorf("target after the restore settled is %s, want IDLE", st)
	}
	list := decode[atlas.Page[atlas.RestoreJob]](t, h.must(h.get(base+"/clusters/prod-main/backup/restoreJobs"), http.StatusOK))
	if list.TotalCount != 1 || list.Results[0].ID != job.ID {
		t.Errorf("list %+v", list)
	}
	// Once it is over, the target takes a restore again.
	h.must(h.post(base+"/clusters/prod-shards/backup/restoreJobs", drillBody(other.ID, "analytics")), http.StatusOK)
	if got := h.sim.ClusterRestoreJobs(pid, "prod-shards"); len(got) != 1 || len(got[0].Components) != 3 {
		t.Errorf("sharded restore = %+v, want one job with a component per replica set", got)
	}
}

// Failures on demand end a job failed, cancelled or expired, with the flag
// Atlas sets; failed and cancelled jobs carry finishedAt, expired ones not.
func TestClusterRestoreFailuresOnDemand(t *testing.T) {
	for _, end := range []atlas.RestoreState{atlas.RestoreFailed, atlas.RestoreCancelled, atlas.RestoreExpired} {
		t.Run(string(end), func(t *testing.T) {
			h := newHarness(t, Options{})
			sn := h.completedSnapshot("prod-main")
			if err := h.sim.FailNextClusterRestores(1, end); err != nil {
				t.Fatal(err)
			}
			job := decode[atlas.RestoreJob](t, h.must(h.post(base+"/clusters/prod-main/backup/restoreJobs", drillBody(sn.ID, "analytics")), http.StatusOK))
			if job.State() != atlas.RestoreRunning {
				t.Fatalf("job starts %s", job.State())
			}
			h.clk.Advance(DefaultTimings.ClusterRestore)
			got := decode[atlas.RestoreJob](t, h.must(h.get(base+"/clusters/prod-main/backup/restoreJobs/"+job.ID), http.StatusOK))
			if got.State() != end || (end == atlas.RestoreExpired) != got.FinishedAt.IsZero() {
				t.Errorf("job ended %+v, want %s", got, end)
			}
			// Only the next one: the following restore succeeds.
			h.clk.Advance(DefaultTimings.ClusterRestoreSettle)
			next := decode[atlas.RestoreJob](t, h.must(h.post(base+"/clusters/prod-main/backup/restoreJobs", drillBody(sn.ID, "analytics")), http.StatusOK))
			h.clk.Advance(DefaultTimings.ClusterRestore)
			if st := h.sim.ClusterRestoreJobs(pid, "prod-main")[0]; st.ID != next.ID || st.State() != atlas.RestoreSucceeded {
				t.Errorf("next job %+v, want succeeded", st)
			}
		})
	}
	h := newHarness(t, Options{})
	if err := h.sim.FailNextClusterRestores(1, atlas.RestoreRunning); err == nil {
		t.Error("FailNextClusterRestores accepted end running")
	}
}

// Refusals name the field and the rule, or the Atlas error code.
func TestClusterRestoreRefusals(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.completedSnapshot("prod-main")
	queued := h.takeSnapshot("prod-shards", `{}`)
	path := base + "/clusters/prod-main/backup/restoreJobs"
	fields := []struct{ name, body, field string }{
		{"no deliveryType", fmt.Sprintf(`{"snapshotId":%q,"targetClusterName":"analytics","targetGroupId":%q}`, sn.ID, pid), "deliveryType"},
		{"download", fmt.Sprintf(`{"deliveryType":"download","snapshotId":%q}`, sn.ID), "deliveryType"},
		{"unknown deliveryType", fmt.Sprintf(`{"deliveryType":"copy","snapshotId":%q,"targetClusterName":"analytics","targetGroupId":%q}`, sn.ID, pid), "deliveryType"},
		{"no target", fmt.Sprintf(`{"deliveryType":"automated","snapshotId":%q,"targetGroupId":%q}`, sn.ID, pid), "targetClusterName"},
		{"no target project", fmt.Sprintf(`{"deliveryType":"automated","snapshotId":%q,"targetClusterName":"analytics"}`, sn.ID), "targetGroupId"},
		{"bad target name", drillBody(sn.ID, "-bad"), "targetClusterName"},
		{"unknown field", fmt.Sprintf(`{"deliveryType":"automated","snapshotId":%q,"targetClusterName":"analytics","targetGroupId":%q,"extra":1}`, sn.ID, pid), "extra"},
		{"point in time field", fmt.Sprintf(`{"deliveryType":"automated","snapshotId":%q,"targetClusterName":"analytics","targetGroupId":%q,"oplogTs":1700000000}`, sn.ID, pid), "oplogTs"},
	}
	for _, tc := range fields {
		t.Run(tc.name, func(t *testing.T) {
			e := expectError(t, h.post(path, tc.body), http.StatusBadRequest, atlas.CodeValidationError)
			if e.BadRequestDetail == nil || len(e.BadRequestDetail.Fields) == 0 || e.BadRequestDetail.Fields[0].Field != tc.field || e.BadRequestDetail.Fields[0].Description == "" {
				t.Errorf("fields %+v, want %s with a rule", e.BadRequestDetail, tc.field)
			}
		})
	}
	codes := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown snapshot", path, drillBody("65f1b0000000000000000abc", "analytics"), http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"snapshot not completed", base + "/clusters/prod-shards/backup/restoreJobs", drillBody(queued.ID, "analytics"), http.StatusConflict, CodeRestoreIncompleteSnapshot},
		{"unknown target", path, drillBody(sn.ID, "nope"), http.StatusNotFound, atlas.CodeClusterNotFound},
		{"flex target", path, drillBody(sn.ID, "staging"), http.StatusBadRequest, CodeFlexInClusterAPI},
		{"paused target", path, drillBody(sn.ID, "prod-archive"), http.StatusBadRequest, atlas.CodeClusterPausedCannotRestore},
		{"unknown target project", path, fmt.Sprintf(`{"deliveryType":"automated","snapshotId":%q,"targetClusterName":"analytics","targetGroupId":"65f1b0000000000000000abc"}`, sn.ID), http.StatusNotFound, atlas.CodeGroupNotFound},
	}
	for _, tc := range codes {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, h.post(tc.path, tc.body), tc.status, tc.code)
		})
	}
	expectError(t, h.get(path+"/65f1b0000000000000000abc"), http.StatusNotFound, atlas.CodeResourceNotFound)
	expectError(t, h.get(path+"/nope"), http.StatusBadRequest, atlas.CodeInvalidPathParameter)
	if n := len(h.sim.ClusterRestoreJobs(pid, "prod-main")); n != 0 {
		t.Errorf("%d jobs created by refused requests", n)
	}
}

// A flex restore into a dedicated cluster that a dedicated restore is
// filling is a conflict too: one restore at a time per target.
func TestFlexRestoreConflictsWithClusterRestore(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.completedSnapshot("prod-main")
	h.must(h.post(base+"/clusters/prod-main/backup/restoreJobs", drillBody(sn.ID, "analytics")), http.StatusOK)
	expectError(t, h.post(base+"/flexClusters/flex-prod/backup/restoreJobs",
		fmt.Sprintf(`{"snapshotId":"65f1b0000000000000000001","targetDeploymentItemName":"analytics","targetProjectId":%q}`, pid)),
		http.StatusConflict, atlas.CodeRestoreInProgress)
}
