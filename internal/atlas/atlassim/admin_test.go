package atlassim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// admin sends one request to the admin handler of h's simulator.
func (h *harness) admin(method, path, body string) resp {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.sim.AdminHandler().ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusNoContent && ct != "application/json" {
		h.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp{code: rec.Code, hdr: rec.Header(), raw: rec.Body.Bytes()}
}

func TestAdminCallsCountsAndLog(t *testing.T) {
	h := newHarness(t, Options{})
	h.must(h.get(base+"/clusters/prod-main"), http.StatusOK)
	h.must(h.get(base+"/clusters/prod-main"), http.StatusOK)
	h.sim.Burst429(1, 7*time.Second)
	h.clk.Advance(time.Second)
	r := h.get(base + "/clusters/prod-main/backup/snapshots")
	if r.code != http.StatusTooManyRequests {
		t.Fatalf("burst: status %d, want 429", r.code)
	}

	short := decode[AdminCalls](t, h.must(h.admin("GET", "/_sim/calls", ""), http.StatusOK))
	if short.Counts["get_cluster"] != 2 || short.Counts["list_snapshots"] != 1 || short.Counts["token"] != 1 {
		t.Errorf("counts = %v, want get_cluster 2, list_snapshots 1, token 1", short.Counts)
	}
	if short.Log != nil {
		t.Errorf("log sent without ?log=true: %d entries", len(short.Log))
	}
	if short.LogLength != len(h.sim.CallLog()) {
		t.Errorf("logLength %d, want %d", short.LogLength, len(h.sim.CallLog()))
	}

	full := decode[AdminCalls](t, h.must(h.admin("GET", "/_sim/calls?log=true", ""), http.StatusOK))
	if len(full.Log) != full.LogLength {
		t.Fatalf("log has %d entries, logLength %d", len(full.Log), full.LogLength)
	}
	last := full.Log[len(full.Log)-1]
	if last.Op != "list_snapshots" || last.Status != http.StatusTooManyRequests || time.Duration(last.RetryAfter) != 7*time.Second {
		t.Errorf("last call = %+v, want list_snapshots 429 retryAfter 7s", last)
	}
	if last.ProjectID != pid || !last.Received.Equal(t0.Add(time.Second)) {
		t.Errorf("last call project %q received %s, want %s at %s", last.ProjectID, last.Received, pid, t0.Add(time.Second))
	}
	if first := full.Log[0]; first.RetryAfter != 0 || first.Status != http.StatusOK {
		t.Errorf("first call = %+v, want a 200 without retryAfter", first)
	}
	// Each call names the credential it authenticated as, so a test with
	// one credential per client can count each client's writes.
	for _, c := range full.Log {
		if c.Op != "token" && c.Who != DemoClientID {
			t.Errorf("call %s %s: who %q, want %q", c.Method, c.Path, c.Who, DemoClientID)
		}
	}
	h.do(http.MethodGet, base+"/clusters/prod-main", "", func(r *http.Request) { r.Header.Del("Authorization") })
	anon := decode[AdminCalls](t, h.must(h.admin("GET", "/_sim/calls?log=true", ""), http.StatusOK))
	if c := anon.Log[len(anon.Log)-1]; c.Status != http.StatusUnauthorized || c.Who != "" {
		t.Errorf("unauthenticated call = %+v, want a 401 without who", c)
	}
	if strings.Contains(string(h.admin("GET", "/_sim/calls?log=true", "").raw), `"retryAfter":"0s"`) {
		t.Error("calls without Retry-After carry a retryAfter field")
	}
}

func TestAdminStateShowsTheFleet(t *testing.T) {
	h := newHarness(t, Options{})
	sn := h.completedSnapshot("prod-main")
	h.must(h.post(base+"/clusters/prod-main/backup/exports",
		`{"snapshotId":"`+sn.ID+`","exportBucketId":"`+bucketID+`","customData":[{"key":"backupd.run","value":"r1"}]}`), http.StatusOK)

	st := decode[AdminState](t, h.must(h.admin("GET", "/_sim/state", ""), http.StatusOK))
	if !st.Now.Equal(h.clk.Now()) {
		t.Errorf("now %s, want %s", st.Now, h.clk.Now())
	}
	if len(st.Projects) != 1 || st.Projects[0].ID != pid {
		t.Fatalf("projects = %+v, want the demo project", st.Projects)
	}
	p := st.Projects[0]
	if len(p.BucketIDs) != 1 || p.BucketIDs[0] != bucketID {
		t.Errorf("buckets = %v, want [%s]", p.BucketIDs, bucketID)
	}
	var main, archive *AdminCluster
	for i := range p.Clusters {
		switch p.Clusters[i].Name {
		case "prod-main":
			main = &p.Clusters[i]
		case "prod-archive":
			archive = &p.Clusters[i]
		}
	}
	if main == nil || archive == nil {
		t.Fatalf("clusters = %+v, want prod-main and prod-archive", p.Clusters)
	}
	if !archive.Paused || main.Paused || main.StateName != atlas.ClusterIdle {
		t.Errorf("prod-main paused=%v state=%s, prod-archive paused=%v", main.Paused, main.StateName, archive.Paused)
	}
	found := false
	for _, s := range main.Snapshots {
		if s.ID == sn.ID && s.Status == atlas.SnapshotCompleted {
			found = true
		}
	}
	if !found {
		t.Errorf("prod-main snapshots %+v lack completed %s", main.Snapshots, sn.ID)
	}
	if len(main.Exports) != 1 || main.Exports[0].SnapshotID != sn.ID || main.Exports[0].CustomData[0].Value != "r1" {
		t.Errorf("prod-main exports = %+v, want one export of %s with its customData", main.Exports, sn.ID)
	}
	var flex *AdminFlexCluster
	for i := range p.FlexClusters {
		if p.FlexClusters[i].Name == "flex-prod" {
			flex = &p.FlexClusters[i]
		}
	}
	if flex == nil || len(flex.Snapshots) != 3 || flex.RestoreJobs == nil {
		t.Errorf("flex-prod = %+v, want its 3 seeded snapshots and an empty restore list", flex)
	}
}

func TestAdminFaultsApplyAndValidate(t *testing.T) {
	h := newHarness(t, Options{})
	got := decode[AdminFaults](t, h.must(h.admin("POST", "/_sim/faults",
		`{"errorRate": 1, "errorStatus": 503, "latency": "2s", "latencyRate": 0.5, "dropAfterApplyRate": 0.1}`), http.StatusOK))
	if time.Duration(got.Latency) != 2*time.Second || got.ErrorStatus != 503 {
		t.Errorf("echo = %+v", got)
	}
	h.sim.mu.Lock()
	f := h.sim.faults
	h.sim.mu.Unlock()
	want := Faults{ErrorRate: 1, ErrorStatus: 503, Latency: 2 * time.Second, LatencyRate: 0.5, DropAfterApplyRate: 0.1}
	if f != want {
		t.Errorf("faults = %+v, want %+v", f, want)
	}
	h.must(h.admin("POST", "/_sim/faults", `{"errorRate": 1, "errorStatus": 500}`), http.StatusOK)
	if r := h.get(base + "/clusters/prod-main"); r.code != http.StatusInternalServerError {
		t.Errorf("with errorRate 1: status %d, want 500", r.code)
	}
	h.must(h.admin("POST", "/_sim/faults", `{}`), http.StatusOK)
	h.must(h.get(base+"/clusters/prod-main"), http.StatusOK)

	for _, body := range []string{
		`{"errorRate": 1.5}`,
		`{"latencyRate": -0.1}`,
		`{"errorStatus": 502}`,
		`{"latency": "-1s"}`,
		`{"latency": "soon"}`,
		`{"latency": true}`,
		`{"eror_rate": 1}`,
		`{"errorRate": 1} {"errorRate": 0}`,
		`not json`,
	} {
		r := h.admin("POST", "/_sim/faults", body)
		if r.code != http.StatusBadRequest || !strings.Contains(string(r.raw), `"error"`) {
			t.Errorf("faults %s: %d %s, want 400 with an error", body, r.code, r.raw)
		}
	}
	h.sim.mu.Lock()
	f = h.sim.faults
	h.sim.mu.Unlock()
	if f != (Faults{}) {
		t.Errorf("a rejected request changed the faults to %+v", f)
	}
	// A number is seconds.
	h.must(h.admin("POST", "/_sim/faults", `{"latency": 1.5}`), http.StatusOK)
	h.sim.mu.Lock()
	f = h.sim.faults
	h.sim.mu.Unlock()
	if f.Latency != 1500*time.Millisecond {
		t.Errorf("latency 1.5 = %s, want 1.5s", f.Latency)
	}
}

func TestAdminBurst429(t *testing.T) {
	h := newHarness(t, Options{})
	h.must(h.admin("POST", "/_sim/burst429", `{"n": 2, "retryAfter": "3s"}`), http.StatusOK)
	for i := range 2 {
		r := h.get(base + "/clusters/prod-main")
		if r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") != "3" {
			t.Errorf("request %d: %d Retry-After %q, want 429 with 3", i, r.code, r.hdr.Get("Retry-After"))
		}
	}
	h.must(h.get(base+"/clusters/prod-main"), http.StatusOK)
	if r := h.admin("POST", "/_sim/burst429", `{"n": -1}`); r.code != http.StatusBadRequest {
		t.Errorf("negative n: %d, want 400", r.code)
	}
}

func TestAdminFailCounters(t *testing.T) {
	h := newHarness(t, Options{})
	h.must(h.admin("POST", "/_sim/fail", `{"snapshots": 1, "exportsCancelled": 1, "restores": 2}`), http.StatusOK)
	h.sim.mu.Lock()
	snaps, exps, cancel, restores := h.sim.failSnapshots, h.sim.failExports, h.sim.cancelExports, h.sim.failRestores
	h.sim.mu.Unlock()
	if snaps != 1 || exps != 1 || !cancel || restores != 2 {
		t.Errorf("counters = snapshots %d exports %d cancelled %v restores %d", snaps, exps, cancel, restores)
	}
	// The next snapshot fails, the one after completes.
	first := h.completedSnapshot("prod-main")
	if got := h.snapshot("prod-main", first.ID).Status; got != atlas.SnapshotFailed {
		t.Errorf("first snapshot %s, want failed", got)
	}
	second := h.completedSnapshot("prod-main")
	if got := h.snapshot("prod-main", second.ID).Status; got != atlas.SnapshotCompleted {
		t.Errorf("second snapshot %s, want completed", got)
	}
	// Omitted fields stay; exports resets the cancelled flag.
	h.must(h.admin("POST", "/_sim/fail", `{"exports": 3}`), http.StatusOK)
	h.sim.mu.Lock()
	exps, cancel, restores = h.sim.failExports, h.sim.cancelExports, h.sim.failRestores
	h.sim.mu.Unlock()
	if exps != 3 || cancel || restores != 2 {
		t.Errorf("after {exports: 3}: exports %d cancelled %v restores %d, want 3 false 2", exps, cancel, restores)
	}
	h.must(h.admin("POST", "/_sim/fail", `{"clusterRestores": 1, "clusterRestoreEnd": "cancelled"}`), http.StatusOK)
	sn := h.completedSnapshot("prod-main")
	job := decode[atlas.RestoreJob](t, h.must(h.post(base+"/clusters/prod-main/backup/restoreJobs", drillBody(sn.ID, "analytics")), http.StatusOK))
	h.clk.Advance(DefaultTimings.ClusterRestore)
	if got := decode[atlas.RestoreJob](t, h.must(h.get(base+"/clusters/prod-main/backup/restoreJobs/"+job.ID), http.StatusOK)); got.State() != atlas.RestoreCancelled {
		t.Errorf("restore after {clusterRestores: 1, clusterRestoreEnd: cancelled} ended %s", got.State())
	}
	for _, body := range []string{`{"exports": 1, "exportsCancelled": 1}`, `{"snapshots": -1}`, `{"snapshot": 1}`, `{"clusterRestores": -1}`, `{"clusterRestores": 1, "clusterRestoreEnd": "running"}`} {
		if r := h.admin("POST", "/_sim/fail", body); r.code != http.StatusBadRequest {
			t.Errorf("fail %s: %d, want 400", body, r.code)
		}
	}
}

func TestAdminClusterChanges(t *testing.T) {
	h := newHarness(t, Options{})
	h.must(h.admin("POST", "/_sim/clusters/"+pid+"/prod-main", `{"state": "UPDATING", "paused": true}`), http.StatusOK)
	c := decode[atlas.Cluster](t, h.must(h.get(base+"/clusters/prod-main"), http.StatusOK))
	if c.StateName != atlas.ClusterUpdating || !c.Paused {
		t.Errorf("after change: state %s paused %v, want UPDATING and paused", c.StateName, c.Paused)
	}
	h.must(h.admin("POST", "/_sim/clusters/"+pid+"/prod-main", `{"paused": false}`), http.StatusOK)
	c = decode[atlas.Cluster](t, h.must(h.get(base+"/clusters/prod-main"), http.StatusOK))
	if c.StateName != atlas.ClusterUpdating || c.Paused {
		t.Errorf("after resume: state %s paused %v, want UPDATING (kept) and not paused", c.StateName, c.Paused)
	}

	h.must(h.admin("POST", "/_sim/clusters/"+pid+"/prod-main", `{"deleted": true}`), http.StatusOK)
	if r := h.get(base + "/clusters/prod-main"); r.code != http.StatusNotFound {
		t.Errorf("deleted cluster: %d, want 404", r.code)
	}
	h.must(h.admin("POST", "/_sim/clusters/"+pid+"/flex-prod", `{"deleted": true}`), http.StatusOK)
	if r := h.get(base + "/flexClusters/flex-prod"); r.code != http.StatusNotFound {
		t.Errorf("deleted flex cluster: %d, want 404", r.code)
	}

	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/_sim/clusters/" + pid + "/nope", `{"paused": true}`, http.StatusNotFound},
		{"/_sim/clusters/" + pid + "/nope", `{"deleted": true}`, http.StatusNotFound},
		{"/_sim/clusters/" + pid + "/analytics", `{"state": "MELTING"}`, http.StatusBadRequest},
		{"/_sim/clusters/" + pid + "/analytics", `{"deleted": true, "paused": true}`, http.StatusBadRequest},
	} {
		if r := h.admin("POST", tc.path, tc.body); r.code != tc.status {
			t.Errorf("POST %s %s: %d %s, want %d", tc.path, tc.body, r.code, r.raw, tc.status)
		}
	}
}

func TestAdminRemoveBucket(t *testing.T) {
	h := newHarness(t, Options{})
	if r := h.admin("DELETE", "/_sim/buckets/"+pid+"/"+bucketID, ""); r.code != http.StatusNoContent {
		t.Fatalf("delete bucket: %d %s", r.code, r.raw)
	}
	if r := h.get(base + "/backup/exportBuckets/" + bucketID); r.code != http.StatusNotFound {
		t.Errorf("removed bucket: %d, want 404", r.code)
	}
	if r := h.admin("DELETE", "/_sim/buckets/"+pid+"/"+bucketID, ""); r.code != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", r.code)
	}
}

func TestAdminUnknownEndpoints(t *testing.T) {
	h := newHarness(t, Options{})
	for _, tc := range []struct{ method, path string }{
		{"GET", "/_sim/nothing"},
		{"GET", "/_sim/faults"},
		{"POST", "/_sim/state"},
	} {
		r := h.admin(tc.method, tc.path, "")
		if r.code/100 != 4 {
			t.Errorf("%s %s: %d, want a 4xx", tc.method, tc.path, r.code)
		}
		var body map[string]string
		if tc.method == "GET" && tc.path == "/_sim/nothing" && (json.Unmarshal(r.raw, &body) != nil || body["error"] == "") {
			t.Errorf("%s %s: body %s, want a JSON error", tc.method, tc.path, r.raw)
		}
	}
}
