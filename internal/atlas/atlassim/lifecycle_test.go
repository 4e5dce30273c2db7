package atlassim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

func TestSnapshotLifecycle(t *testing.T) {
	h := newHarness(t, Options{})
	desc := `nightly "run" <backupd:9f2c> & ü ✓`
	sn := h.takeSnapshot("prod-main", fmt.Sprintf(`{"description":%q,"retentionInDays":5}`, desc))
	if sn.Status != atlas.SnapshotQueued || sn.SnapshotType != atlas.SnapshotOnDemand || sn.Type != atlas.KindReplicaSet {
		t.Fatalf("new snapshot = %+v", sn)
	}
	if sn.Description != desc {
		t.Errorf("description %q, want verbatim %q", sn.Description, desc)
	}
	if raw := string(h.get(base + "/clusters/prod-main/backup/snapshots/" + sn.ID).raw); !strings.Contains(raw, `<backupd:9f2c> & ü`) {
		t.Errorf("description is escaped on the wire: %s", raw)
	}
	if !sn.CreatedAt.Equal(t0) || !sn.ExpiresAt.Equal(t0.Add(5*24*time.Hour)) {
		t.Errorf("createdAt %v expiresAt %v", sn.CreatedAt, sn.ExpiresAt)
	}
	if sn.StorageSizeBytes != 0 || !hexIDPattern.MatchString(sn.ID) {
		t.Errorf("queued snapshot = %+v", sn)
	}

	steps := []struct {
		advance time.Duration
		want    atlas.SnapshotStatus
	}{
		{29 * time.Second, atlas.SnapshotQueued},
		{time.Second, atlas.SnapshotInProgress},
		{2*time.Minute - time.Second, atlas.SnapshotInProgress},
		{time.Second, atlas.SnapshotCompleted},
	}
	for _, st := range steps {
		h.clk.Advance(st.advance)
		if got := h.snapshot("prod-main", sn.ID); got.Status != st.want {
			t.Fatalf("at +%v status %s, want %s", h.clk.Now().Sub(t0), got.Status, st.want)
		}
	}
	done := h.snapshot("prod-main", sn.ID)
	if done.StorageSizeBytes <= 0 || done.ReplicaSetName == "" || done.CloudProvider != "AWS" || done.Description != desc {
		t.Errorf("completed snapshot = %+v", done)
	}

	// Atlas deletes a snapshot at expiresAt.
	h.clk.Set(sn.ExpiresAt)
	h.token = h.fetchToken(DemoClientID, DemoClientSecret)
	expectError(t, h.get(base+"/clusters/prod-main/backup/snapshots/"+sn.ID), http.StatusNotFound, atlas.CodeSnapshotNotFound)
}

func TestOneOnDemandSnapshotAtATime(t *testing.T) {
	h := newHarness(t, Options{})
	first := h.takeSnapshot("prod-main", `{}`)
	for _, at := range []time.Duration{0, DefaultTimings.SnapshotQueued} { // queued, then inProgress
		h.clk.Set(t0.Add(at))
		e := expectError(t, h.post(base+"/clusters/prod-main/backup/snapshots", `{"retentionInDays":1}`), http.StatusBadRequest, atlas.CodeUnfinishedOnDemandSnapshot)
		if e.Detail != "Another on-demand snapshot is queued or in progress." {
			t.Errorf("detail %q", e.Detail)
		}
	}
	// Other clusters are independent.
	h.takeSnapshot("analytics", `{}`)
	h.clk.Set(t0.Add(DefaultTimings.SnapshotQueued + DefaultTimings.SnapshotInProgress))
	second := h.takeSnapshot("prod-main", `{}`)
	if second.ID == first.ID {
		t.Fatal("second snapshot reused the first id")
	}
	// Default retention is one day.
	if !second.ExpiresAt.Equal(second.CreatedAt.Add(24 * time.Hour)) {
		t.Errorf("default retention: createdAt %v expiresAt %v", second.CreatedAt, second.ExpiresAt)
	}
}

func TestShardedSnapshot(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.takeSnapshot("prod-shards", `{"description":"x"}`)
	if sn.Type != atlas.KindShardedCluster || len(sn.Members) != 3 || len(sn.SnapshotIDs) != 3 {
		t.Fatalf("sharded snapshot = %+v", sn)
	}
	for i, m := range sn.Members {
		if m.ID != sn.SnapshotIDs[i] || m.ReplicaSetName == "" || m.CloudProvider != "AWS" {
			t.Errorf("member %d = %+v", i, m)
		}
	}
	h.clk.Advance(DefaultTimings.SnapshotQueued + DefaultTimings.SnapshotInProgress)
	got := decode[atlas.Snapshot](t, h.must(h.get(base+"/clusters/prod-shards/backup/snapshots/shardedCluster/"+sn.ID), http.StatusOK))
	if got.Status != atlas.SnapshotCompleted || got.StorageSizeBytes <= 0 {
		t.Errorf("completed sharded snapshot = %+v", got)
	}
	e := expectError(t, h.get(base+"/clusters/prod-shards/backup/snapshots/"+sn.ID), http.StatusBadRequest, CodeIncorrectBackupEndpoint)
	if !strings.Contains(e.Detail, "/snapshots/shardedCluster/"+sn.ID) {
		t.Errorf("detail does not name the right endpoint: %q", e.Detail)
	}
	rsList := decode[atlas.Page[atlas.Snapshot]](t, h.must(h.get(base+"/clusters/prod-shards/backup/snapshots"), http.StatusOK))
	shList := decode[atlas.Page[atlas.Snapshot]](t, h.must(h.get(base+"/clusters/prod-shards/backup/snapshots/shardedClusters"), http.StatusOK))
	if rsList.TotalCount != 0 || shList.TotalCount != 1 || shList.Results[0].ID != sn.ID {
		t.Errorf("replica-set list %d, sharded list %+v", rsList.TotalCount, shList)
	}
}

func TestSnapshotSpeedAndFailure(t *testing.T) {
	h := newHarness(t, Options{Speed: 10})
	sn := h.takeSnapshot("prod-main", `{}`)
	h.clk.Advance(3 * time.Second)
	if got := h.snapshot("prod-main", sn.ID).Status; got != atlas.SnapshotInProgress {
		t.Errorf("at 3s with speed 10: %s, want inProgress", got)
	}
	h.clk.Advance(12 * time.Second)
	if got := h.snapshot("prod-main", sn.ID).Status; got != atlas.SnapshotCompleted {
		t.Errorf("at 15s with speed 10: %s, want completed", got)
	}

	h.sim.FailNextSnapshots(1)
	failed := h.takeSnapshot("prod-main", `{}`)
	h.clk.Advance(15 * time.Second)
	got := h.snapshot("prod-main", failed.ID)
	if got.Status != atlas.SnapshotFailed || got.StorageSizeBytes != 0 {
		t.Errorf("failed snapshot = %+v", got)
	}
	// A failed snapshot does not block the next one, and the fault is used up.
	next := h.takeSnapshot("prod-main", `{}`)
	h.clk.Advance(15 * time.Second)
	if got := h.snapshot("prod-main", next.ID).Status; got != atlas.SnapshotCompleted {
		t.Errorf("snapshot after the injected failure: %s", got)
	}
}

func TestSnapshotRejections(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.AddCluster(pid, ClusterSpec{Name: "no-backup", Tier: "M10"}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddCluster(pid, ClusterSpec{Name: "tiny", Tier: "M5", BackupEnabled: true}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cluster string
		status  int
		code    string
	}{
		{"prod-archive", http.StatusBadRequest, atlas.CodeClusterPaused},
		{"no-backup", http.StatusBadRequest, atlas.CodeBackupJobNotFound},
		{"sandbox", http.StatusBadRequest, atlas.CodeProviderBackupNotSupported},
		{"tiny", http.StatusBadRequest, atlas.CodeProviderBackupNotSupported},
		{"flex-prod", http.StatusBadRequest, CodeFlexInClusterAPI},
		{"missing", http.StatusNotFound, atlas.CodeClusterNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.cluster, func(t *testing.T) {
			expectError(t, h.post(base+"/clusters/"+tc.cluster+"/backup/snapshots", `{"retentionInDays":1}`), tc.status, tc.code)
		})
	}
	if err := h.sim.SetBackupEnabled(pid, "no-backup", true); err != nil {
		t.Fatal(err)
	}
	h.takeSnapshot("no-backup", `{}`)
}

func TestSnapshotBodyValidation(t *testing.T) {
	h := newHarness(t, Options{})
	cases := []struct {
		name   string
		body   string
		code   string
		fields []string
	}{
		{"retention zero", `{"retentionInDays":0}`, atlas.CodeValidationError, []string{"retentionInDays"}},
		{"retention negative", `{"retentionInDays":-3}`, atlas.CodeValidationError, []string{"retentionInDays"}},
		{"retention as string", `{"retentionInDays":"7"}`, atlas.CodeValidationError, []string{"retentionInDays"}},
		{"retention fractional", `{"retentionInDays":1.5}`, atlas.CodeValidationError, []string{"retentionInDays"}},
		{"description not a string", `{"description":7}`, atlas.CodeValidationError, []string{"description"}},
		{"unknown fields", `{"retention":7,"bogus":true}`, atlas.CodeValidationError, []string{"bogus", "retention"}},
		{"not JSON", `{"retentionInDays":`, CodeInvalidJSON, nil},
		{"an array", `[1]`, CodeInvalidJSON, nil},
		{"two objects", `{} {}`, CodeInvalidJSON, nil},
		{"empty body", ``, CodeInvalidJSON, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := expectError(t, h.post(base+"/clusters/prod-main/backup/snapshots", tc.body), http.StatusBadRequest, tc.code)
			var fields []string
			if e.BadRequestDetail != nil {
				for _, f := range e.BadRequestDetail.Fields {
					fields = append(fields, f.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v", fields, tc.fields)
			}
		})
	}
	// Read-only properties are ignored, as Atlas does.
	h.takeSnapshot("prod-main", `{"links":[],"retentionInDays":2}`)
}

func (h *harness) createExport(cluster, snapshotID, extra string) resp {
	h.t.Helper()
	return h.post(base+"/clusters/"+cluster+"/backup/exports", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q%s}`, bucketID, snapshotID, extra))
}

func (h *harness) export(cluster, id string) atlas.ExportJob {
	h.t.Helper()
	return decode[atlas.ExportJob](h.t, h.must(h.get(base+"/clusters/"+cluster+"/backup/exports/"+id), http.StatusOK))
}

func TestExportLifecycle(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.completedSnapshot("prod-main")
	start := h.clk.Now()
	job := decode[atlas.ExportJob](t, h.must(h.createExport("prod-main", sn.ID,
		`,"customData":[{"key":"backupd.run","value":"r-1"},{"key":"team","value":"payments"}]`), http.StatusOK))
	if job.State != atlas.ExportQueued || job.SnapshotID != sn.ID || job.ExportBucketID != bucketID || !job.FinishedAt.IsZero() {
		t.Fatalf("new export = %+v", job)
	}
	if len(job.CustomData) != 2 || job.CustomData[0] != (atlas.Label{Key: "backupd.run", Value: "r-1"}) {
		t.Errorf("customData not echoed: %+v", job.CustomData)
	}
	if !strings.HasPrefix(job.Prefix, "/exported_snapshots/") || !strings.Contains(job.Prefix, "/"+pid+"/prod-main/") {
		t.Errorf("prefix %q", job.Prefix)
	}

	h.clk.Set(start.Add(DefaultTimings.ExportQueued + DefaultTimings.ExportInProgress/5))
	early := h.export("prod-main", job.ID)
	h.clk.Set(start.Add(DefaultTimings.ExportQueued + 4*DefaultTimings.ExportInProgress/5))
	late := h.export("prod-main", job.ID)
	if early.State != atlas.ExportInProgress || late.State != atlas.ExportInProgress {
		t.Fatalf("states %s, %s; want InProgress", early.State, late.State)
	}
	if early.ExportStatus == nil || late.ExportStatus == nil ||
		late.ExportStatus.ExportedCollections <= early.ExportStatus.ExportedCollections ||
		late.ExportStatus.ExportedCollections >= late.ExportStatus.TotalCollections ||
		early.ExportStatus.TotalCollections != late.ExportStatus.TotalCollections {
		t.Errorf("progress did not rise toward the total: %+v then %+v", early.ExportStatus, late.ExportStatus)
	}

	h.clk.Set(start.Add(DefaultTimings.ExportQueued + DefaultTimings.ExportInProgress))
	done := h.export("prod-main", job.ID)
	if done.State != atlas.ExportSuccessful || !done.FinishedAt.Equal(h.clk.Now()) || done.StateReason != nil ||
		done.ExportStatus.ExportedCollections != done.ExportStatus.TotalCollections {
		t.Errorf("finished export = %+v", done)
	}
	// A finished export frees the snapshot for another one.
	h.must(h.createExport("prod-main", sn.ID, ""), http.StatusOK)
	if got := h.sim.Exports(pid, "prod-main"); len(got) != 2 || got[1].ID != job.ID {
		t.Errorf("Exports() = %+v", got)
	}
}

func TestShardedExportComponents(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.completedSnapshot("prod-shards")
	job := decode[atlas.ExportJob](t, h.must(h.createExport("prod-shards", sn.ID, ""), http.StatusOK))
	if len(job.Components) != len(sn.Members) {
		t.Fatalf("components %+v for members %+v", job.Components, sn.Members)
	}
	for i, c := range job.Components {
		if c.ReplicaSetName != sn.Members[i].ReplicaSetName || !hexIDPattern.MatchString(c.ExportID) {
			t.Errorf("component %d = %+v", i, c)
		}
	}
}

func TestExportFailures(t *testing.T) {
	for _, cancelled := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancelled=%v", cancelled), func(t *testing.T) {
			h := newHarness(t, Options{})
			sn := h.completedSnapshot("prod-main")
			h.sim.FailNextExports(1, cancelled)
			job := decode[atlas.ExportJob](t, h.must(h.createExport("prod-main", sn.ID, ""), http.StatusOK))
			h.clk.Advance(DefaultTimings.ExportQueued + DefaultTimings.ExportInProgress)
			got := h.export("prod-main", job.ID)
			if got.FinishedAt.IsZero() {
				t.Errorf("finishedAt unset: %+v", got)
			}
			if cancelled {
				if got.State != atlas.ExportCancelled || got.StateReason != nil {
					t.Errorf("cancelled export = %+v", got)
				}
				return
			}
			if got.State != atlas.ExportFailed || got.StateReason == nil || got.StateReason.ErrorCode == "" || got.StateReason.Message == "" {
				t.Errorf("failed export = %+v", got)
			}
			if got.ExportStatus.ExportedCollections >= got.ExportStatus.TotalCollections {
				t.Errorf("a failed export should leave partial progress: %+v", got.ExportStatus)
			}
			again := decode[atlas.ExportJob](t, h.must(h.createExport("prod-main", sn.ID, ""), http.StatusOK))
			h.clk.Advance(DefaultTimings.ExportQueued + DefaultTimings.ExportInProgress)
			if s := h.export("prod-main", again.ID).State; s != atlas.ExportSuccessful {
				t.Errorf("export after the injected failure: %s", s)
			}
		})
	}
}

func TestExportRejections(t *testing.T) {
	h := newHarness(t, Options{})
	done := h.completedSnapshot("analytics")
	running := h.takeSnapshot("prod-main", `{}`)
	h.must(h.createExport("analytics", done.ID, ""), http.StatusOK)
	unknown := "0123456789abcdef01234567"
	cases := []struct {
		name    string
		cluster string
		body    string
		status  int
		code    string
	}{
		{"queued snapshot", "prod-main", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, running.ID), http.StatusBadRequest, atlas.CodeSnapshotNotExportable},
		{"fallback snapshot", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":"65f1a0000000000000000001"}`, bucketID), http.StatusBadRequest, atlas.CodeFallbackNotExportable},
		{"second active export", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, done.ID), http.StatusConflict, atlas.CodeExportConflict},
		{"unknown bucket", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, unknown, done.ID), http.StatusNotFound, atlas.CodeExportBucketNotFound},
		{"unknown snapshot", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, unknown), http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"snapshot of another cluster", "prod-main", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, done.ID), http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"flex cluster", "flex-prod", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, done.ID), http.StatusBadRequest, CodeFlexInClusterAPI},
		{"missing ids", "analytics", `{}`, http.StatusBadRequest, atlas.CodeValidationError},
		{"null body", "analytics", `null`, http.StatusBadRequest, atlas.CodeValidationError},
		{"malformed ids", "analytics", `{"exportBucketId":"abc","snapshotId":42}`, http.StatusBadRequest, atlas.CodeValidationError},
		{"customData not an array", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q,"customData":{"k":"v"}}`, bucketID, done.ID), http.StatusBadRequest, atlas.CodeValidationError},
		{"customData with a foreign key", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q,"customData":[{"key":"a","value":"b","ttl":1}]}`, bucketID, done.ID), http.StatusBadRequest, atlas.CodeValidationError},
		{"customData value not a string", "analytics", fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q,"customData":[{"key":"a","value":1}]}`, bucketID, done.ID), http.StatusBadRequest, atlas.CodeValidationError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := expectError(t, h.post(base+"/clusters/"+tc.cluster+"/backup/exports", tc.body), tc.status, tc.code)
			if tc.code == atlas.CodeValidationError && (e.BadRequestDetail == nil || len(e.BadRequestDetail.Fields) == 0) {
				t.Errorf("validation error without fields: %+v", e)
			}
		})
	}
	t.Run("validation names each field", func(t *testing.T) {
		e := expectError(t, h.post(base+"/clusters/analytics/backup/exports", `{"customData":[{"key":1}]}`), http.StatusBadRequest, atlas.CodeValidationError)
		var fields []string
		for _, f := range e.BadRequestDetail.Fields {
			fields = append(fields, f.Field)
		}
		if got := strings.Join(fields, ","); got != "exportBucketId,snapshotId,customData[0].key" {
			t.Errorf("fields %s", got)
		}
	})
	t.Run("a removed bucket is not found", func(t *testing.T) {
		if err := h.sim.RemoveBucket(pid, bucketID); err != nil {
			t.Fatal(err)
		}
		expectError(t, h.get(base+"/backup/exportBuckets/"+bucketID), http.StatusNotFound, atlas.CodeExportBucketNotFound)
	})
}

func (h *harness) createRestore(flex, body string) resp {
	h.t.Helper()
	return h.post(base+"/flexClusters/"+flex+"/backup/restoreJobs", body)
}

func restoreBody(snapshotID, target, project string) string {
	if project == "" {
		return fmt.Sprintf(`{"snapshotId":%q,"targetDeploymentItemName":%q}`, snapshotID, target)
	}
	return fmt.Sprintf(`{"snapshotId":%q,"targetDeploymentItemName":%q,"targetProjectId":%q}`, snapshotID, target, project)
}

func TestFlexRestoreLifecycle(t *testing.T) {
	h := newHarness(t, Options{})
	job := decode[atlas.FlexRestoreJob](t, h.must(h.createRestore("flex-prod", restoreBody("65f1b0000000000000000002", "staging", pid)), http.StatusOK))
	if job.Status != atlas.FlexPending || job.DeliveryType != atlas.DeliveryRestore || job.InstanceName != "flex-prod" ||
		job.TargetDeploymentItemName != "staging" || job.TargetProjectID != pid || job.ProjectID != pid ||
		job.SnapshotID != "65f1b0000000000000000002" || job.SnapshotFinishedDate.IsZero() || !job.RestoreFinishedDate.IsZero() {
		t.Fatalf("new restore = %+v", job)
	}
	get := func() atlas.FlexRestoreJob {
		return decode[atlas.FlexRestoreJob](t, h.must(h.get(base+"/flexClusters/flex-prod/backup/restoreJobs/"+job.ID), http.StatusOK))
	}
	h.clk.Advance(DefaultTimings.RestorePending)
	if s := get().Status; s != atlas.FlexRunning {
		t.Errorf("after PENDING: %s", s)
	}
	h.clk.Advance(DefaultTimings.RestoreRunning)
	done := get()
	if done.Status != atlas.FlexCompleted || !done.RestoreFinishedDate.Equal(h.clk.Now()) {
		t.Errorf("finished restore = %+v", done)
	}

	// An omitted targetProjectId means the source project; a dedicated cluster is a valid target.
	h.sim.FailNextRestores(1)
	failed := decode[atlas.FlexRestoreJob](t, h.must(h.createRestore("flex-prod", restoreBody("65f1b0000000000000000001", "prod-main", "")), http.StatusOK))
	if failed.TargetProjectID != pid {
		t.Errorf("default target project %q", failed.TargetProjectID)
	}
	h.clk.Advance(DefaultTimings.RestorePending + DefaultTimings.RestoreRunning)
	if got := h.sim.RestoreJobs(pid, "flex-prod"); len(got) != 2 || got[0].Status != atlas.FlexFailed || got[1].Status != atlas.FlexCompleted {
		t.Errorf("RestoreJobs() = %+v", got)
	}
}

func TestFlexRestoreRejections(t *testing.T) {
	h := newHarness(t, Options{})
	other := "bbbbbbbbbbbbbbbbbbbbbbbb"
	if err := h.sim.AddProject(other); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sim.SeedFlexSnapshot(pid, "flex-prod", SeedFlexSnapshot{ID: "65f1b00000000000000000aa", Status: atlas.FlexRunning}); err != nil {
		t.Fatal(err)
	}
	h.must(h.createRestore("flex-prod", restoreBody("65f1b0000000000000000001", "staging", pid)), http.StatusOK)
	cases := []struct {
		name   string
		flex   string
		body   string
		status int
		code   string
	}{
		{"target already restoring", "flex-prod", restoreBody("65f1b0000000000000000002", "staging", pid), http.StatusConflict, atlas.CodeRestoreInProgress},
		{"unknown target", "flex-prod", restoreBody("65f1b0000000000000000002", "nowhere", pid), http.StatusNotFound, atlas.CodeClusterNotFound},
		{"target in another project", "flex-prod", restoreBody("65f1b0000000000000000002", "prod-main", other), http.StatusNotFound, atlas.CodeClusterNotFound},
		{"unknown target project", "flex-prod", restoreBody("65f1b0000000000000000002", "staging", "cccccccccccccccccccccccc"), http.StatusNotFound, atlas.CodeGroupNotFound},
		{"paused target", "flex-prod", restoreBody("65f1b0000000000000000002", "prod-archive", pid), http.StatusBadRequest, atlas.CodeClusterPausedCannotRestore},
		{"unknown snapshot", "flex-prod", restoreBody("0123456789abcdef01234567", "staging", pid), http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"snapshot not completed", "flex-prod", restoreBody("65f1b00000000000000000aa", "prod-main", pid), http.StatusConflict, CodeRestoreIncompleteSnapshot},
		{"target name breaks the pattern", "flex-prod", restoreBody("65f1b0000000000000000002", "bad name!", pid), http.StatusBadRequest, atlas.CodeValidationError},
		{"target name too long", "flex-prod", restoreBody("65f1b0000000000000000002", strings.Repeat("a", 65), pid), http.StatusBadRequest, atlas.CodeValidationError},
		{"missing fields", "flex-prod", `{"targetProjectId":"` + pid + `"}`, http.StatusBadRequest, atlas.CodeValidationError},
		{"unknown field", "flex-prod", `{"snapshotId":"65f1b0000000000000000002","targetDeploymentItemName":"staging","deliveryMethod":"x"}`, http.StatusBadRequest, atlas.CodeValidationError},
		{"dedicated source", "prod-main", restoreBody("65f1b0000000000000000002", "staging", pid), http.StatusBadRequest, CodeNonFlexInFlexAPI},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, h.createRestore(tc.flex, tc.body), tc.status, tc.code)
		})
	}
	// Once the running restore finishes, the target is free again.
	h.clk.Advance(DefaultTimings.RestorePending + DefaultTimings.RestoreRunning)
	h.must(h.createRestore("flex-prod", restoreBody("65f1b0000000000000000002", "staging", pid)), http.StatusOK)
}

func TestSeededSnapshots(t *testing.T) {
	h := newHarness(t, Options{})
	list := decode[atlas.Page[atlas.Snapshot]](t, h.must(h.get(base+"/clusters/analytics/backup/snapshots"), http.StatusOK))
	var got []string
	for _, s := range list.Results {
		got = append(got, fmt.Sprintf("%s/%s/%s", s.ID[len(s.ID)-1:], s.SnapshotType, s.FrequencyType))
	}
	if strings.Join(got, " ") != "1/fallback/ 2/scheduled/daily 3/scheduled/daily 4/scheduled/weekly" {
		t.Errorf("analytics snapshots newest first = %v", got)
	}
	// A seeded in-progress on-demand snapshot blocks new ones until it completes.
	id, err := h.sim.SeedSnapshot(pid, "prod-main", SeedSnapshot{Type: atlas.SnapshotOnDemand, Status: atlas.SnapshotInProgress})
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, h.post(base+"/clusters/prod-main/backup/snapshots", `{}`), http.StatusBadRequest, atlas.CodeUnfinishedOnDemandSnapshot)
	h.clk.Advance(DefaultTimings.SnapshotInProgress)
	if s := h.snapshot("prod-main", id); s.Status != atlas.SnapshotCompleted {
		t.Errorf("seeded inProgress snapshot is %s after its duration", s.Status)
	}
	h.takeSnapshot("prod-main", `{}`)
	flex := decode[atlas.Page[atlas.FlexSnapshot]](t, h.must(h.get(base+"/flexClusters/flex-prod/backup/snapshots"), http.StatusOK))
	if flex.TotalCount != 3 || flex.Results[0].ID != "65f1b0000000000000000001" || flex.Results[0].Status != atlas.FlexCompleted || flex.Results[0].FinishTime.IsZero() {
		t.Errorf("flex snapshots = %+v", flex)
	}

	seedErrs := []SeedSnapshot{
		{Type: "hourlyish"}, {Status: "done"}, {FrequencyType: "often"}, {RetentionInDays: -1}, {ID: "XYZ"},
		{ID: "65f1a0000000000000000002"},
	}
	for _, seed := range seedErrs {
		if _, err := h.sim.SeedSnapshot(pid, "analytics", seed); err == nil {
			t.Errorf("SeedSnapshot(%+v) accepted", seed)
		}
	}
	if _, err := h.sim.SeedSnapshot(pid, "nope", SeedSnapshot{}); err == nil {
		t.Error("SeedSnapshot on an unknown cluster accepted")
	}
	if _, err := h.sim.SeedFlexSnapshot(pid, "flex-prod", SeedFlexSnapshot{Status: "DONE"}); err == nil {
		t.Error("SeedFlexSnapshot with a bad status accepted")
	}
}

func TestFleetValidation(t *testing.T) {
	s := New(Options{})
	if err := s.AddProject("nothex"); err == nil {
		t.Error("AddProject accepted a malformed id")
	}
	if err := s.AddProject(pid); err != nil {
		t.Fatal(err)
	}
	if err := s.AddProject(pid); err == nil {
		t.Error("AddProject accepted a duplicate")
	}
	bad := []ClusterSpec{
		{Name: "-x"}, {Name: "a", Type: "STAR"}, {Name: "a", Tier: "m10"}, {Name: "a", State: "ASLEEP"},
		{Name: "a", Type: atlas.ClusterSharded, Shards: -1}, {Name: "a", Provider: "IBM"},
	}
	for _, c := range bad {
		if err := s.AddCluster(pid, c); err == nil {
			t.Errorf("AddCluster(%+v) accepted", c)
		}
	}
	if err := s.AddCluster("cccccccccccccccccccccccc", ClusterSpec{Name: "a"}); err == nil {
		t.Error("AddCluster into an unknown project accepted")
	}
	if err := s.AddCluster(pid, ClusterSpec{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFlexCluster(pid, "a"); err == nil {
		t.Error("AddFlexCluster reused a cluster name")
	}
	buckets := []atlas.ExportBucket{
		{BucketName: "ab", CloudProvider: "AWS", IAMRoleID: "668c5f0ed436263134491592"},
		{BucketName: "abc", CloudProvider: "AWS"},
		{BucketName: "abc", CloudProvider: "AZURE", RoleID: "668c5f0ed436263134491592", ServiceURL: "https://x.example.com"},
		{BucketName: "abc", CloudProvider: "GCP"},
		{BucketName: "abc", CloudProvider: "S3"},
		{BucketName: "abc", CloudProvider: "GCP", RoleID: "668c5f0ed436263134491592", ID: "bad"},
	}
	for _, b := range buckets {
		if _, err := s.AddBucket(pid, b); err == nil {
			t.Errorf("AddBucket(%+v) accepted", b)
		}
	}
	id, err := s.AddBucket(pid, atlas.ExportBucket{BucketName: "abc", CloudProvider: "AZURE", RoleID: "668c5f0ed436263134491592",
		ServiceURL: "https://acct.blob.core.windows.net/c", TenantID: "2f2d7f52-0d28-4a07-9d1b-3f7a2a5c9e11"})
	if err != nil || !hexIDPattern.MatchString(id) {
		t.Errorf("AddBucket(azure) = %q, %v", id, err)
	}
	for _, err := range []error{
		s.SetClusterState(pid, "missing", atlas.ClusterIdle),
		s.SetClusterState(pid, "a", "SLEEPING"),
		s.PauseCluster(pid, "missing", true),
		s.DeleteFlexCluster(pid, "missing"),
		s.RemoveBucket(pid, "0123456789abcdef01234567"),
	} {
		if err == nil {
			t.Error("a fleet change on something missing or invalid succeeded")
		}
	}
}
