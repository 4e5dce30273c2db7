package atlas

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// recorded is one request as it reached the server.
type recorded struct {
	Method, Path, RawPath, Accept, ContentType, UserAgent string
	Query                                                 map[string][]string
	Body                                                  []byte
}

// recorder answers every API request with a body that decodes as any object
// or as an empty page, and records what it saw.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Accept: r.Header.Get("Accept"),
		ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"),
		Query: r.URL.Query(), Body: body,
	})
	rc.mu.Unlock()
	w.Header().Set("Content-Type", r.Header.Get("Accept"))
	_, _ = io.WriteString(w, `{"id":"`+testSnapshot+`","_id":"`+testBucket+`","results":[],"totalCount":0,"policies":[]}`)
}

func (rc *recorder) take() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.reqs
	rc.reqs = nil
	return out
}

// opCase is one client operation with the request it must produce.
type opCase struct {
	op, method, path, media string
	call                    func(context.Context, *Client) error
}

const (
	cPath = "/api/atlas/v2/groups/" + testProject + "/clusters/prod-1"
	fPath = "/api/atlas/v2/groups/" + testProject + "/flexClusters/flex-1"
)

func allOps() []opCase {
	ign := func(_ any, err error) error { return err }
	return []opCase{
		{OpTakeSnapshot, "POST", cPath + "/backup/snapshots", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Snapshots.Take(ctx, testProject, "prod-1", OnDemandSnapshotRequest{Description: "backupd:run-1", RetentionInDays: 7}))
		}},
		{OpGetSnapshot, "GET", cPath + "/backup/snapshots/" + testSnapshot, MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Snapshots.Get(ctx, testProject, "prod-1", testSnapshot, KindReplicaSet))
		}},
		{OpGetShardedSnapshot, "GET", cPath + "/backup/snapshots/shardedCluster/" + testSnapshot, MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Snapshots.Get(ctx, testProject, "prod-1", testSnapshot, KindShardedCluster))
		}},
		{OpListSnapshots, "GET", cPath + "/backup/snapshots", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Snapshots.List(ctx, testProject, "prod-1"))
		}},
		{OpListShardedSnapshots, "GET", cPath + "/backup/snapshots/shardedClusters", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Snapshots.ListSharded(ctx, testProject, "prod-1"))
		}},
		{OpCreateExport, "POST", cPath + "/backup/exports", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Exports.Create(ctx, testProject, "prod-1", ExportJobRequest{ExportBucketID: testBucket, SnapshotID: testSnapshot,
				CustomData: []Label{{Key: "backupd.run", Value: "run-1"}}}))
		}},
		{OpGetExport, "GET", cPath + "/backup/exports/" + testSnapshot, MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Exports.Get(ctx, testProject, "prod-1", testSnapshot))
		}},
		{OpListExports, "GET", cPath + "/backup/exports", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Exports.List(ctx, testProject, "prod-1"))
		}},
		{OpListExportBuckets, "GET", "/api/atlas/v2/groups/" + testProject + "/backup/exportBuckets", MediaBuckets, func(ctx context.Context, c *Client) error {
			return ign(c.Buckets.List(ctx, testProject))
		}},
		{OpGetExportBucket, "GET", "/api/atlas/v2/groups/" + testProject + "/backup/exportBuckets/" + testBucket, MediaBuckets, func(ctx context.Context, c *Client) error {
			return ign(c.Buckets.Get(ctx, testProject, testBucket))
		}},
		{OpListFlexSnapshots, "GET", fPath + "/backup/snapshots", MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Flex.ListSnapshots(ctx, testProject, "flex-1"))
		}},
		{OpGetFlexSnapshot, "GET", fPath + "/backup/snapshots/" + testSnapshot, MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Flex.GetSnapshot(ctx, testProject, "flex-1", testSnapshot))
		}},
		{OpCreateFlexRestore, "POST", fPath + "/backup/restoreJobs", MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Flex.CreateRestoreJob(ctx, testProject, "flex-1", FlexRestoreJobRequest{SnapshotID: testSnapshot,
				TargetDeploymentItemName: "staging", TargetProjectID: testProject}))
		}},
		{OpGetFlexRestore, "GET", fPath + "/backup/restoreJobs/" + testSnapshot, MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Flex.GetRestoreJob(ctx, testProject, "flex-1", testSnapshot))
		}},
		{OpListFlexRestores, "GET", fPath + "/backup/restoreJobs", MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Flex.ListRestoreJobs(ctx, testProject, "flex-1"))
		}},
		{OpCreateRestore, "POST", cPath + "/backup/restoreJobs", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Restores.Create(ctx, testProject, "prod-1", RestoreJobRequest{DeliveryType: DeliveryAutomated, SnapshotID: testSnapshot,
				TargetClusterName: "drill-scratch", TargetGroupID: testProject}))
		}},
		{OpGetRestore, "GET", cPath + "/backup/restoreJobs/" + testSnapshot, MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Restores.Get(ctx, testProject, "prod-1", testSnapshot))
		}},
		{OpListRestores, "GET", cPath + "/backup/restoreJobs", MediaSnapshots, func(ctx context.Context, c *Client) error {
			return ign(c.Restores.List(ctx, testProject, "prod-1"))
		}},
		{OpListClusters, "GET", "/api/atlas/v2/groups/" + testProject + "/clusters", MediaClusters, func(ctx context.Context, c *Client) error {
			return ign(c.Clusters.List(ctx, testProject))
		}},
		{OpGetCluster, "GET", cPath, MediaClusters, func(ctx context.Context, c *Client) error {
			return ign(c.Clusters.Get(ctx, testProject, "prod-1"))
		}},
		{OpListFlexClusters, "GET", "/api/atlas/v2/groups/" + testProject + "/flexClusters", MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Clusters.ListFlex(ctx, testProject))
		}},
		{OpGetFlexCluster, "GET", fPath, MediaFlex, func(ctx context.Context, c *Client) error {
			return ign(c.Clusters.GetFlex(ctx, testProject, "flex-1"))
		}},
		{OpGetBackupSchedule, "GET", cPath + "/backup/schedule", MediaClusters, func(ctx context.Context, c *Client) error {
			return ign(c.Native.Schedule(ctx, testProject, "prod-1"))
		}},
		{OpGetCompliancePolicy, "GET", "/api/atlas/v2/groups/" + testProject + "/backupCompliancePolicy", MediaCompliance, func(ctx context.Context, c *Client) error {
			return ign(c.Native.CompliancePolicy(ctx, testProject))
		}},
	}
}

// TestEveryOperationSendsItsMediaType pins method, path, versioned Accept,
// POST Content-Type and the hook's operation label for every operation.
func TestEveryOperationSendsItsMediaType(t *testing.T) {
	rec := &recorder{}
	var mu sync.Mutex
	var ops []string
	c := newTestClient(t, newFakeAtlas(t, rec), func(cfg *Config) {
		cfg.UserAgent = "backupd/test"
		cfg.Hook = func(i RequestInfo) {
			mu.Lock()
			defer mu.Unlock()
			if i.Operation != OpFetchToken {
				ops = append(ops, i.Operation)
			}
		}
	})
	if got := len(allOps()); got != len(Operations())-2 {
		t.Fatalf("allOps covers %d operations, Operations() lists %d API operations", got, len(Operations())-2)
	}
	for _, oc := range allOps() {
		t.Run(oc.op, func(t *testing.T) {
			mu.Lock()
			ops = nil
			mu.Unlock()
			if err := oc.call(t.Context(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := rec.take()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != oc.method || r.Path != oc.path {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, oc.method, oc.path)
			}
			if r.Accept != oc.media {
				t.Errorf("Accept %q, want %q", r.Accept, oc.media)
			}
			wantCT := ""
			if oc.method == http.MethodPost {
				wantCT = oc.media
			}
			if r.ContentType != wantCT {
				t.Errorf("Content-Type %q, want %q", r.ContentType, wantCT)
			}
			if r.UserAgent != "backupd/test" {
				t.Errorf("User-Agent %q", r.UserAgent)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ops) != 1 || ops[0] != oc.op {
				t.Errorf("hook operations %v, want [%s]", ops, oc.op)
			}
		})
	}
}

func TestPagedListsAskForFullPages(t *testing.T) {
	rec := &recorder{}
	c := newTestClient(t, newFakeAtlas(t, rec))
	if _, err := c.Snapshots.List(t.Context(), testProject, "prod-1"); err != nil {
		t.Fatal(err)
	}
	q := rec.take()[0].Query
	if q["itemsPerPage"][0] != "500" || q["pageNum"][0] != "1" || q["includeCount"][0] != "true" {
		t.Errorf("query %v, want itemsPerPage=500 pageNum=1 includeCount=true", q)
	}
	if _, err := c.Snapshots.ListSharded(t.Context(), testProject, "prod-1"); err != nil {
		t.Fatal(err)
	}
	if q := rec.take()[0].Query; len(q) != 0 {
		t.Errorf("sharded list sent query %v; the spec declares no paging parameters there", q)
	}
}

func TestArgumentsValidatedBeforeSending(t *testing.T) {
	rec := &recorder{}
	c := newTestClient(t, newFakeAtlas(t, rec))
	ctx := t.Context()
	ign := func(_ any, err error) error { return err }
	tests := []struct {
		name, field string
		call        func() error
	}{
		{"short project", "projectID", func() error { return ign(c.Snapshots.Get(ctx, "abc", "prod", testSnapshot, "")) }},
		{"upper-case project", "projectID", func() error { return ign(c.Clusters.List(ctx, strings.ToUpper(testProject))) }},
		{"slash in cluster", "cluster", func() error { return ign(c.Snapshots.List(ctx, testProject, "a/../b")) }},
		{"leading hyphen", "name", func() error { return ign(c.Clusters.Get(ctx, testProject, "-prod")) }},
		{"empty cluster", "cluster", func() error { return ign(c.Exports.List(ctx, testProject, "")) }},
		{"bad snapshot id", "snapshotID", func() error { return ign(c.Snapshots.Get(ctx, testProject, "prod", "zz", "")) }},
		{"bad kind", "kind", func() error { return ign(c.Snapshots.Get(ctx, testProject, "prod", testSnapshot, "weird")) }},
		{"bad export id", "exportID", func() error { return ign(c.Exports.Get(ctx, testProject, "prod", "1")) }},
		{"bad bucket in request", "req.exportBucketId", func() error {
			return ign(c.Exports.Create(ctx, testProject, "prod", ExportJobRequest{ExportBucketID: "x", SnapshotID: testSnapshot}))
		}},
		{"bad snapshot in request", "req.snapshotId", func() error {
			return ign(c.Exports.Create(ctx, testProject, "prod", ExportJobRequest{ExportBucketID: testBucket}))
		}},
		{"negative retention", "req.retentionInDays", func() error {
			return ign(c.Snapshots.Take(ctx, testProject, "prod", OnDemandSnapshotRequest{RetentionInDays: -1}))
		}},
		{"bad restore target", "req.targetDeploymentItemName", func() error {
			return ign(c.Flex.CreateRestoreJob(ctx, testProject, "flex", FlexRestoreJobRequest{SnapshotID: testSnapshot, TargetDeploymentItemName: "a/b"}))
		}},
		{"bad target project", "req.targetProjectId", func() error {
			return ign(c.Flex.CreateRestoreJob(ctx, testProject, "flex", FlexRestoreJobRequest{SnapshotID: testSnapshot, TargetDeploymentItemName: "stg", TargetProjectID: "nope"}))
		}},
		{"bad bucket id", "bucketID", func() error { return ign(c.Buckets.Get(ctx, testProject, "b")) }},
		{"bad flex name", "name", func() error { return ign(c.Flex.ListSnapshots(ctx, testProject, "flex_1")) }},
		{"bad restore id", "restoreJobID", func() error { return ign(c.Flex.GetRestoreJob(ctx, testProject, "flex", "r")) }},
		{"iterator", "projectID", func() error {
			for _, err := range c.Buckets.All(ctx, "p") {
				return err
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *ArgError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *ArgError", err, err)
			}
			if ae.Field != tt.field || !strings.Contains(err.Error(), "invalid "+tt.field) || ae.Rule == "" {
				t.Errorf("error %q names field %q, want %q", err, ae.Field, tt.field)
			}
			if n := len(rec.take()); n != 0 {
				t.Errorf("%d requests sent for an invalid argument", n)
			}
		})
	}
	// Unicode letters are legal in restore targets.
	if _, err := c.Flex.CreateRestoreJob(ctx, testProject, "flex", FlexRestoreJobRequest{SnapshotID: testSnapshot, TargetDeploymentItemName: "Prüfung(1)"}); err != nil {
		t.Errorf("valid unicode target rejected: %v", err)
	}
}

func TestPostBodiesAreTheRequestTypes(t *testing.T) {
	rec := &recorder{}
	c := newTestClient(t, newFakeAtlas(t, rec))
	if _, err := c.Exports.Create(t.Context(), testProject, "prod-1", ExportJobRequest{ExportBucketID: testBucket, SnapshotID: testSnapshot,
		CustomData: []Label{{Key: "backupd.run", Value: "r1"}}}); err != nil {
		t.Fatal(err)
	}
	got := string(rec.take()[0].Body)
	want := `{"exportBucketId":"` + testBucket + `","snapshotId":"` + testSnapshot + `","customData":[{"key":"backupd.run","value":"r1"}]}`
	if got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
}
