package daemon_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
)

const (
	projB       = "32b6e34b3d91647abb20e7c1"
	projC       = "32b6e34b3d91647abb20e7c2"
	multiPolicy = `
  - name: multi
    schedule: "30 * * * *"
    targets:
      - {projectID: ` + projB + `, clusters: ["b-*"]}
      - {projectID: ` + projC + `, clusters: ["c-*"]}
    snapshot: {retentionInDays: 1}
`
)

// badProject answers every request about one project badly once broken:
// "stall" holds it until the caller gives up, "garbage" answers 200 with a
// body that is not JSON.
type badProject struct {
	rt      http.RoundTripper
	project string
	mu      sync.Mutex
	mode    string
}

func (b *badProject) set(mode string) {
	b.mu.Lock()
	b.mode = mode
	b.mu.Unlock()
}

func (b *badProject) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	mode := b.mode
	b.mu.Unlock()
	if mode == "" || !strings.Contains(r.URL.Path, "/groups/"+b.project+"/") {
		return b.rt.RoundTrip(r)
	}
	if mode == "stall" {
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{"Content-Type": {"application/vnd.atlas.2024-08-05+json"}},
		Body:   io.NopCloser(strings.NewReader(`{"results": [{"name": "b-main",`)),
	}, nil
}

// setupMulti adds the multi policy's two projects to the simulator: b-main
// in projB and c-main in projC.
func setupMulti(t *testing.T) (string, *atlassim.Sim) {
	t.Helper()
	dir, sim := setup(t, multiPolicy)
	for _, err := range []error{
		sim.AddProject(projB), sim.AddProject(projC),
		sim.AddCluster(projB, atlassim.ClusterSpec{Name: "b-main", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}),
		sim.AddCluster(projC, atlassim.ClusterSpec{Name: "c-main", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir, sim
}

// multiStatus is the multi policy's part of /api/v1/status.
type multiStatus struct {
	Targets []struct {
		Target struct{ ProjectID, Cluster string }
	}
	ResolutionErrors []struct {
		ProjectID string `json:"projectID"`
		Error     string `json:"error"`
		Since     time.Time
		KeptFrom  string `json:"keptFrom"`
	} `json:"resolutionErrors"`
}

func (e *env) multi(t *testing.T) (multiStatus, []string) {
	t.Helper()
	_, body := e.get(t, "/api/v1/status")
	var st struct {
		Policies []struct {
			Name string
			multiStatus
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status %s: %v", body, err)
	}
	for _, p := range st.Policies {
		if p.Name == "multi" {
			var names []string
			for _, ts := range p.Targets {
				names = append(names, ts.Target.Cluster)
			}
			slices.Sort(names)
			return p.multiStatus, names
		}
	}
	t.Fatalf("no policy multi in %s", body)
	return multiStatus{}, nil
}

// TestStalledProjectKeepsItsTargetsAndOthersProceed: a project whose
// cluster list stalls at a later discovery keeps the targets it had, says
// why in status, logs and metrics, and the other project's new cluster is
// still picked up and run.
func TestStalledProjectKeepsItsTargetsAndOthersProceed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setupMulti(t)
		bp := &badProject{rt: sim.Transport(), project: projB}
		e := launchWith(t, dir, sim, bp)
		defer e.stop()
		<-e.d.RunsStarted()
		synctest.Wait()
		if _, got := e.multi(t); !slices.Equal(got, []string{"b-main", "c-main"}) {
			t.Fatalf("targets at start = %v", got)
		}

		bp.set("stall")
		if err := sim.AddCluster(projC, atlassim.ClusterSpec{Name: "c-new", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Minute) // the 10m discovery, and the stalled project's deadline
		synctest.Wait()
		st, got := e.multi(t)
		if !slices.Equal(got, []string{"b-main", "c-main", "c-new"}) {
			t.Fatalf("targets after a discovery with %s stalled = %v, want b-main kept and c-new picked up\n%s", projB, got, e.logs.String())
		}
		if len(st.ResolutionErrors) != 1 || st.ResolutionErrors[0].ProjectID != projB ||
			!strings.Contains(st.ResolutionErrors[0].Error, "no answer within 2m0s") || st.ResolutionErrors[0].KeptFrom != "resolution" {
			t.Fatalf("resolution errors = %+v, want one for %s saying it did not answer in time", st.ResolutionErrors, projB)
		}
		if !e.metric(t, `backupd_target_resolution_failures_total{project="`+projB+`"} 1`) {
			_, body := e.get(t, "/metrics")
			t.Fatalf("failure not counted:\n%s", grep(body, "resolution"))
		}
		if !strings.Contains(e.logs.String(), "keeping its last known targets") {
			t.Fatal("the failure was not logged")
		}
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz = %d %s: a project that answered before does not make the daemon unready", code, body)
		}

		time.Sleep(time.Until(time.Now().Truncate(time.Hour).Add(50 * time.Minute))) // past the :30 slot
		synctest.Wait()
		if n := len(sim.Snapshots(projC, "c-new")); n != 1 {
			t.Fatalf("snapshots of c-new = %d, want 1: the healthy project's clusters run\n%s", n, e.logs.String())
		}
		if st, got := e.multi(t); !slices.Equal(got, []string{"b-main", "c-main", "c-new"}) || len(st.ResolutionErrors) != 1 {
			t.Fatalf("after another discovery: targets %v, errors %+v", got, st.ResolutionErrors)
		}

		bp.set("")
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		if st, got := e.multi(t); !slices.Equal(got, []string{"b-main", "c-main", "c-new"}) || len(st.ResolutionErrors) != 0 {
			t.Fatalf("once %s answers again: targets %v, errors %+v", projB, got, st.ResolutionErrors)
		}
	})
}

// TestUndecodableProjectAtStartKeepsJournalTargets: at a restart, a
// project whose cluster list cannot be decoded keeps the targets the
// journal knows for it, while the healthy project resolves and runs.
func TestUndecodableProjectAtStartKeepsJournalTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setupMulti(t)
		bp := &badProject{rt: sim.Transport(), project: projB}
		e := launchWith(t, dir, sim, bp)
		<-e.d.RunsStarted()
		synctest.Wait()
		time.Sleep(time.Until(time.Now().Truncate(time.Hour).Add(50 * time.Minute))) // the :30 slot ran
		synctest.Wait()
		e.stop()
		if n := len(sim.Snapshots(projB, "b-main")); n != 1 {
			t.Fatalf("snapshots of b-main before the restart = %d", n)
		}

		bp.set("garbage")
		if err := sim.AddCluster(projC, atlassim.ClusterSpec{Name: "c-new", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}); err != nil {
			t.Fatal(err)
		}
		e2 := launchWith(t, dir, sim, bp)
		defer e2.stop()
		<-e2.d.RunsStarted()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		st, got := e2.multi(t)
		if !slices.Equal(got, []string{"b-main", "c-main", "c-new"}) {
			t.Fatalf("targets after a restart with %s undecodable = %v, want b-main from the journal and projC's clusters", projB, got)
		}
		if len(st.ResolutionErrors) != 1 || st.ResolutionErrors[0].ProjectID != projB || st.ResolutionErrors[0].KeptFrom != "journal" || st.ResolutionErrors[0].Error == "" {
			t.Fatalf("resolution errors = %+v, want one for %s kept from the journal", st.ResolutionErrors, projB)
		}
		if code, body := e2.get(t, "/readyz"); code != 503 || !strings.Contains(body, projB) {
			t.Fatalf("/readyz = %d %s, want 503 naming the project that never answered", code, body)
		}
		time.Sleep(time.Until(time.Now().Truncate(time.Hour).Add(time.Hour + 50*time.Minute))) // past the 01:30 slot
		synctest.Wait()
		if n := len(sim.Snapshots(projC, "c-new")); n != 1 {
			t.Fatalf("snapshots of c-new = %d, want 1: the healthy project's clusters run\n%s", n, e2.logs.String())
		}
	})
}
