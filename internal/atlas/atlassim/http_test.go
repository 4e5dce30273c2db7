package atlassim

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// TestEveryOperation calls each simulated operation once with backupd's
// pinned media types; the harness checks every body against the spec.
func TestEveryOperation(t *testing.T) {
	h := newHarness(t, Options{})
	rs := h.completedSnapshot("prod-main")
	sh := h.completedSnapshot("prod-shards")
	exp := decode[atlas.ExportJob](t, h.must(h.post(base+"/clusters/prod-main/backup/exports",
		fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q,"customData":[{"key":"team","value":"payments"}]}`, bucketID, rs.ID)), http.StatusOK))
	shExp := decode[atlas.ExportJob](t, h.must(h.post(base+"/clusters/prod-shards/backup/exports",
		fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, sh.ID)), http.StatusOK))
	rj := decode[atlas.FlexRestoreJob](t, h.must(h.post(base+"/flexClusters/flex-prod/backup/restoreJobs",
		fmt.Sprintf(`{"snapshotId":"65f1b0000000000000000001","targetDeploymentItemName":"staging","targetProjectId":%q}`, pid)), http.StatusOK))
	drill := decode[atlas.RestoreJob](t, h.must(h.post(base+"/clusters/prod-main/backup/restoreJobs", drillBody(rs.ID, "analytics")), http.StatusOK))
	if err := h.sim.SetSchedule(pid, "prod-main", DefaultSchedule()); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.SetCompliancePolicy(pid, &CompliancePolicySpec{ScheduledItems: []atlas.PolicyItem{
		{FrequencyType: atlas.FrequencyDaily, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 7}}}); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(DefaultTimings.ExportQueued + time.Minute) // exports InProgress, restore RUNNING

	gets := map[string]string{
		"list_projects":          atlas.APIPrefix + "/groups?itemsPerPage=1&includeCount=false",
		"list_export_buckets":    base + "/backup/exportBuckets",
		"get_export_bucket":      base + "/backup/exportBuckets/" + bucketID,
		"list_clusters":          base + "/clusters",
		"get_cluster":            base + "/clusters/prod-shards",
		"list_snapshots":         base + "/clusters/prod-main/backup/snapshots",
		"get_snapshot":           base + "/clusters/prod-main/backup/snapshots/" + rs.ID,
		"list_sharded_snapshots": base + "/clusters/prod-shards/backup/snapshots/shardedClusters",
		"get_sharded_snapshot":   base + "/clusters/prod-shards/backup/snapshots/shardedCluster/" + sh.ID,
		"list_exports":           base + "/clusters/prod-shards/backup/exports",
		"get_export":             base + "/clusters/prod-main/backup/exports/" + exp.ID,
		"list_flex_clusters":     base + "/flexClusters",
		"get_flex_cluster":       base + "/flexClusters/flex-prod",
		"list_flex_snapshots":    base + "/flexClusters/flex-prod/backup/snapshots",
		"get_flex_snapshot":      base + "/flexClusters/flex-prod/backup/snapshots/65f1b0000000000000000002",
		"list_flex_restores":     base + "/flexClusters/flex-prod/backup/restoreJobs",
		"get_flex_restore":       base + "/flexClusters/flex-prod/backup/restoreJobs/" + rj.ID,
		"list_restores":          base + "/clusters/prod-main/backup/restoreJobs",
		"get_restore":            base + "/clusters/prod-main/backup/restoreJobs/" + drill.ID,
		"get_backup_schedule":    base + "/clusters/prod-main/backup/schedule",
		"get_compliance_policy":  base + "/backupCompliancePolicy",
	}
	for op, path := range gets {
		t.Run(op, func(t *testing.T) {
			before := h.sim.Calls(op)
			r := h.must(h.get(path), http.StatusOK)
			if got, want := r.hdr.Get("Content-Type"), mediaFor(path); got != want {
				t.Errorf("Content-Type %q, want %q", got, want)
			}
			if h.sim.Calls(op) != before+1 {
				t.Errorf("Calls(%s) = %d, want %d", op, h.sim.Calls(op), before+1)
			}
		})
	}
	for _, op := range []string{"take_snapshot", "create_export", "create_flex_restore", "create_restore", "token"} {
		if h.sim.Calls(op) == 0 {
			t.Errorf("Calls(%s) = 0", op)
		}
	}
	// Every route is exercised (and its 200 body held to the spec), a
	// route added later included.
	for _, rt := range routes {
		if h.sim.Calls(rt.op) == 0 {
			t.Errorf("route %s (%s %s) is not exercised by TestEveryOperation", rt.op, rt.method, strings.Join(rt.pattern, "/"))
		}
	}
	// The sharded export has one component per shard plus the config server.
	if got := h.get(base + "/clusters/prod-shards/backup/exports/" + shExp.ID); !strings.Contains(string(got.raw), "prod-shards-config-0") {
		t.Errorf("sharded export lacks the config server component: %s", got.raw)
	}
	// The M0 cluster is a TENANT region config.
	m0 := decode[atlas.Cluster](t, h.must(h.get(base+"/clusters/sandbox"), http.StatusOK))
	if m0.InstanceSize() != "M0" || m0.ReplicationSpecs[0].RegionConfigs[0].ProviderName != "TENANT" {
		t.Errorf("sandbox cluster = %+v", m0)
	}
}

func TestClusterDiscovery(t *testing.T) {
	h := newHarness(t, Options{})
	projects := decode[atlas.Page[projectView]](t, h.must(h.get(atlas.APIPrefix+"/groups"), http.StatusOK))
	if projects.TotalCount != 1 || projects.Results[0].ID != pid || projects.Results[0].Name != "backupd-demo" || projects.Results[0].ClusterCount != 8 {
		t.Errorf("projects = %+v", projects)
	}
	list := decode[atlas.Page[atlas.Cluster]](t, h.must(h.get(base+"/clusters"), http.StatusOK))
	var names []string
	for _, c := range list.Results {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "prod-main,prod-shards,prod-archive,analytics,sandbox,drill-scratch" {
		t.Errorf("clusters = %s (flex clusters must not be listed)", got)
	}
	sh := decode[atlas.Cluster](t, h.must(h.get(base+"/clusters/prod-shards"), http.StatusOK))
	if sh.ClusterType != atlas.ClusterSharded || len(sh.ReplicationSpecs) != 2 || sh.InstanceSize() != "M30" || !sh.BackupEnabled || sh.StateName != atlas.ClusterIdle {
		t.Errorf("prod-shards = %+v", sh)
	}
	if err := h.sim.SetClusterState(pid, "prod-main", atlas.ClusterUpdating); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.PauseCluster(pid, "prod-main", true); err != nil {
		t.Fatal(err)
	}
	pm := decode[atlas.Cluster](t, h.must(h.get(base+"/clusters/prod-main"), http.StatusOK))
	if pm.StateName != atlas.ClusterUpdating || !pm.Paused {
		t.Errorf("prod-main after changes = %+v", pm)
	}
	if err := h.sim.DeleteCluster(pid, "prod-main"); err != nil {
		t.Fatal(err)
	}
	expectError(t, h.get(base+"/clusters/prod-main"), http.StatusNotFound, atlas.CodeClusterNotFound)
	flex := decode[atlas.Page[atlas.FlexCluster]](t, h.must(h.get(base+"/flexClusters"), http.StatusOK))
	if flex.TotalCount != 2 || flex.Results[0].Name != "flex-prod" || flex.Results[0].ProviderSettings.ProviderName != "FLEX" {
		t.Errorf("flex clusters = %+v", flex)
	}
}

func TestVersionNegotiation(t *testing.T) {
	h := newHarness(t, Options{})
	snaps := base + "/clusters/prod-main/backup/snapshots"
	cases := []struct {
		name   string
		path   string
		accept string
		status int
		served string
	}{
		{"missing Accept", snaps, "", http.StatusNotAcceptable, ""},
		{"plain JSON", snaps, "application/json", http.StatusNotAcceptable, ""},
		{"wildcard", snaps, "*/*", http.StatusNotAcceptable, ""},
		{"not a served version", snaps, "application/vnd.atlas.2024-08-05+json", http.StatusNotAcceptable, ""},
		{"no nearest-version resolution", snaps, "application/vnd.atlas.2023-06-01+json", http.StatusNotAcceptable, ""},
		{"malformed date", snaps, "application/vnd.atlas.2023-1-1+json", http.StatusNotAcceptable, ""},
		{"snapshots 2023-01-01", snaps, atlas.MediaSnapshots, http.StatusOK, atlas.MediaSnapshots},
		{"with charset and a list", snaps, "application/json, application/vnd.atlas.2023-01-01+json;charset=utf-8", http.StatusOK, atlas.MediaSnapshots},
		{"buckets 2024-05-30", base + "/backup/exportBuckets", atlas.MediaBuckets, http.StatusOK, atlas.MediaBuckets},
		{"buckets sunset 2023-01-01 still served", base + "/backup/exportBuckets", "application/vnd.atlas.2023-01-01+json", http.StatusOK, "application/vnd.atlas.2023-01-01+json"},
		{"buckets not 2024-08-05", base + "/backup/exportBuckets", atlas.MediaClusters, http.StatusNotAcceptable, ""},
		{"clusters 2024-08-05", base + "/clusters", atlas.MediaClusters, http.StatusOK, atlas.MediaClusters},
		{"clusters 2023-02-01", base + "/clusters", "application/vnd.atlas.2023-02-01+json", http.StatusOK, "application/vnd.atlas.2023-02-01+json"},
		{"clusters 2023-01-01", base + "/clusters/prod-main", "application/vnd.atlas.2023-01-01+json", http.StatusOK, "application/vnd.atlas.2023-01-01+json"},
		{"flex 2024-11-13", base + "/flexClusters", atlas.MediaFlex, http.StatusOK, atlas.MediaFlex},
		{"flex not 2023-01-01", base + "/flexClusters/flex-prod/backup/snapshots", atlas.MediaSnapshots, http.StatusNotAcceptable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(http.MethodGet, tc.path, "", func(r *http.Request) {
				if tc.accept == "" {
					r.Header.Del("Accept")
				} else {
					r.Header.Set("Accept", tc.accept)
				}
			})
			if tc.status == http.StatusNotAcceptable {
				e := expectError(t, r, http.StatusNotAcceptable, atlas.CodeInvalidVersionDate)
				if e.Detail != "Invalid accept header or version date." {
					t.Errorf("detail %q", e.Detail)
				}
				return
			}
			h.must(r, tc.status)
			if got := r.hdr.Get("Content-Type"); got != tc.served {
				t.Errorf("served %q, want %q", got, tc.served)
			}
		})
	}

	t.Run("the sunset 2023-01-01 bucket version lists only AWS buckets", func(t *testing.T) {
		if _, err := h.sim.AddBucket(pid, atlas.ExportBucket{BucketName: "gcs-exports", CloudProvider: "GCP", RoleID: "668c5f0ed436263134491593"}); err != nil {
			t.Fatal(err)
		}
		old := h.do(http.MethodGet, base+"/backup/exportBuckets", "", func(r *http.Request) { r.Header.Set("Accept", "application/vnd.atlas.2023-01-01+json") })
		cur := h.get(base + "/backup/exportBuckets")
		if n := decode[atlas.Page[atlas.ExportBucket]](t, old).TotalCount; n != 1 {
			t.Errorf("2023-01-01 lists %d buckets, want 1", n)
		}
		if n := decode[atlas.Page[atlas.ExportBucket]](t, cur).TotalCount; n != 2 {
			t.Errorf("2024-05-30 lists %d buckets, want 2", n)
		}
	})

	t.Run("POST needs a versioned Content-Type", func(t *testing.T) {
		for _, ct := range []string{"", "application/json", "application/vnd.atlas.2024-08-05+json"} {
			r := h.do(http.MethodPost, snaps, `{"retentionInDays":1}`, func(r *http.Request) {
				if ct == "" {
					r.Header.Del("Content-Type")
				} else {
					r.Header.Set("Content-Type", ct)
				}
			})
			expectError(t, r, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType)
		}
		if n := len(h.sim.Snapshots(pid, "prod-main")); n != 1 {
			t.Errorf("rejected POSTs created snapshots: %d (want only the seeded one)", n)
		}
	})

	t.Run("sunset versions are gone after their date", func(t *testing.T) {
		h.clk.Set(time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC))
		h.token = h.fetchToken(DemoClientID, DemoClientSecret)
		r := h.do(http.MethodGet, base+"/clusters", "", func(r *http.Request) { r.Header.Set("Accept", "application/vnd.atlas.2023-02-01+json") })
		expectError(t, r, http.StatusGone, CodeVersionGone)
		h.must(h.get(base+"/clusters"), http.StatusOK)
	})
}

func TestPathAndLookupErrors(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.sim.AddProject("aaaaaaaaaaaaaaaaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	unknown := "0123456789abcdef01234567"
	cases := []struct {
		name   string
		path   string
		status int
		code   string
	}{
		{"malformed group id", atlas.APIPrefix + "/groups/not-hex/clusters", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"upper-case group id", atlas.APIPrefix + "/groups/32B6E34B3D91647ABB20E7B8/clusters", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"unknown group", atlas.APIPrefix + "/groups/" + unknown + "/clusters", http.StatusNotFound, atlas.CodeGroupNotFound},
		{"malformed cluster name", base + "/clusters/-bad/backup/snapshots", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"unknown cluster", base + "/clusters/nope/backup/snapshots", http.StatusNotFound, atlas.CodeClusterNotFound},
		{"cluster in another project", atlas.APIPrefix + "/groups/aaaaaaaaaaaaaaaaaaaaaaaa/clusters/prod-main", http.StatusNotFound, atlas.CodeClusterNotFound},
		{"malformed snapshot id", base + "/clusters/prod-main/backup/snapshots/123", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"unknown snapshot", base + "/clusters/prod-main/backup/snapshots/" + unknown, http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"unknown sharded snapshot", base + "/clusters/prod-shards/backup/snapshots/shardedCluster/" + unknown, http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"replica-set snapshot on the sharded endpoint", base + "/clusters/prod-main/backup/snapshots/shardedCluster/65f1a0000000000000000005", http.StatusBadRequest, CodeIncorrectBackupEndpoint},
		{"malformed export id", base + "/clusters/prod-main/backup/exports/xyz", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"unknown export", base + "/clusters/prod-main/backup/exports/" + unknown, http.StatusNotFound, atlas.CodeResourceNotFound},
		{"malformed bucket id", base + "/backup/exportBuckets/XYZ", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"unknown bucket", base + "/backup/exportBuckets/" + unknown, http.StatusNotFound, atlas.CodeExportBucketNotFound},
		{"unknown flex cluster", base + "/flexClusters/nope", http.StatusNotFound, atlas.CodeClusterNotFound},
		{"dedicated cluster in the flex API", base + "/flexClusters/prod-main/backup/snapshots", http.StatusBadRequest, CodeNonFlexInFlexAPI},
		{"flex cluster in the cluster API", base + "/clusters/flex-prod", http.StatusBadRequest, CodeFlexInClusterAPI},
		{"flex cluster snapshots in the cluster API", base + "/clusters/flex-prod/backup/snapshots", http.StatusBadRequest, CodeFlexInClusterAPI},
		{"unknown flex snapshot", base + "/flexClusters/flex-prod/backup/snapshots/" + unknown, http.StatusNotFound, atlas.CodeSnapshotNotFound},
		{"malformed restore id", base + "/flexClusters/flex-prod/backup/restoreJobs/1", http.StatusBadRequest, atlas.CodeInvalidPathParameter},
		{"unknown restore job", base + "/flexClusters/flex-prod/backup/restoreJobs/" + unknown, http.StatusNotFound, atlas.CodeResourceNotFound},
		{"unknown path", base + "/clusters/prod-main/backup/nothing", http.StatusNotFound, atlas.CodeResourceNotFound},
		{"outside the API", "/api/atlas/v1.0/groups", http.StatusNotFound, atlas.CodeResourceNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, h.get(tc.path), tc.status, tc.code)
		})
	}
	t.Run("unauthenticated unknown path", func(t *testing.T) {
		r := h.do(http.MethodGet, base+"/clusters/prod-main/backup/nothing", "", func(r *http.Request) { r.Header.Del("Authorization") })
		expectError(t, r, http.StatusUnauthorized, atlas.CodeUnauthorized)
	})
	t.Run("wrong method", func(t *testing.T) {
		r := h.do(http.MethodDelete, base+"/clusters/prod-main/backup/snapshots", "")
		expectError(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
		if got := r.hdr.Get("Allow"); got != "GET, POST" {
			t.Errorf("Allow = %q", got)
		}
	})
}

func TestPagination(t *testing.T) {
	h := newHarness(t, Options{})
	for i := range 6 {
		if _, err := h.sim.SeedSnapshot(pid, "prod-main", SeedSnapshot{Age: time.Duration(i+1) * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	// 7 snapshots: the demo's seed (20h old) plus six newer ones.
	path := base + "/clusters/prod-main/backup/snapshots"
	var seen []atlas.Snapshot
	for page := 1; page <= 3; page++ {
		p := decode[atlas.Page[atlas.Snapshot]](t, h.must(h.get(fmt.Sprintf("%s?itemsPerPage=3&pageNum=%d", path, page)), http.StatusOK))
		if p.TotalCount != 7 {
			t.Errorf("page %d totalCount %d, want 7", page, p.TotalCount)
		}
		wantLen := map[int]int{1: 3, 2: 3, 3: 1}[page]
		if len(p.Results) != wantLen {
			t.Errorf("page %d has %d results, want %d", page, len(p.Results), wantLen)
		}
		rels := map[string]string{}
		for _, l := range p.Links {
			rels[l.Rel] = l.Href
		}
		if _, ok := rels["self"]; !ok {
			t.Errorf("page %d has no self link: %+v", page, p.Links)
		}
		if _, ok := rels["next"]; ok != (page < 3) {
			t.Errorf("page %d next link present=%v", page, ok)
		}
		if _, ok := rels["previous"]; ok != (page > 1) {
			t.Errorf("page %d previous link present=%v", page, ok)
		}
		if next, ok := rels["next"]; ok {
			u, err := url.Parse(next)
			if err != nil || u.Query().Get("pageNum") != fmt.Sprint(page+1) || u.Query().Get("itemsPerPage") != "3" || u.Path != path {
				t.Errorf("page %d next link %q", page, next)
			}
		}
		seen = append(seen, p.Results...)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].CreatedAt.After(seen[i-1].CreatedAt) {
			t.Errorf("results not newest first at %d: %v after %v", i, seen[i].CreatedAt, seen[i-1].CreatedAt)
		}
	}
	ids := map[string]bool{}
	for _, s := range seen {
		ids[s.ID] = true
	}
	if len(ids) != 7 {
		t.Errorf("pages covered %d distinct snapshots, want 7", len(ids))
	}
	beyond := decode[atlas.Page[atlas.Snapshot]](t, h.must(h.get(path+"?itemsPerPage=3&pageNum=4"), http.StatusOK))
	if len(beyond.Results) != 0 || beyond.Results == nil {
		t.Errorf("page beyond the end = %+v, want an empty results array", beyond)
	}
	def := decode[atlas.Page[atlas.Snapshot]](t, h.must(h.get(path), http.StatusOK))
	if len(def.Results) != 7 {
		t.Errorf("default page has %d results", len(def.Results))
	}
	noCount := h.must(h.get(path+"?includeCount=false"), http.StatusOK)
	if strings.Contains(string(noCount.raw), "totalCount") {
		t.Errorf("includeCount=false still carries totalCount: %s", noCount.raw)
	}
	for _, q := range []string{"itemsPerPage=0", "itemsPerPage=501", "itemsPerPage=abc", "pageNum=0", "pageNum=-1", "includeCount=maybe"} {
		t.Run(q, func(t *testing.T) {
			e := expectError(t, h.get(path+"?"+q), http.StatusBadRequest, atlas.CodeValidationError)
			if e.BadRequestDetail == nil || len(e.BadRequestDetail.Fields) != 1 || !strings.HasPrefix(q, e.BadRequestDetail.Fields[0].Field) {
				t.Errorf("badRequestDetail %+v", e.BadRequestDetail)
			}
		})
	}
	h.must(h.get(path+"?itemsPerPage=500"), http.StatusOK)
}
