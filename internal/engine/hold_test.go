package engine_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/run"
)

const projectB = "32b6e34b3d91647abb20e7c1"

// holdingTransport answers every request to one project with 429 and a
// Retry-After reaching until, as Atlas does when the project's token bucket
// is empty; other projects and the token endpoint go to the simulator.
type holdingTransport struct {
	next    http.RoundTripper
	project string
	until   time.Time

	mu      sync.Mutex
	refused int
}

func (h *holdingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now()
	if !strings.Contains(req.URL.Path, "/groups/"+h.project+"/") || !now.Before(h.until) {
		return h.next.RoundTrip(req)
	}
	h.mu.Lock()
	h.refused++
	h.mu.Unlock()
	secs := int((h.until.Sub(now) + time.Second - 1) / time.Second)
	body := `{"error":429,"errorCode":"RATE_LIMITED","reason":"Too Many Requests","detail":"rate limited"}`
	return &http.Response{
		StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Retry-After": {strconv.Itoa(secs)}, "Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader(body)),
		Request: req,
	}, nil
}

func (h *holdingTransport) refusals() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
}

// A long Retry-After on one project parks that project's runs without a
// worker: with more held runs than workers, a run in another project still
// completes in its normal time (it took the whole hold when held runs waited
// in the client, each holding a worker).
func TestHeldProjectDoesNotStallOtherProjects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		must(t, sim.AddProject(projectB))
		must(t, sim.AddCluster(projectB, atlassim.ClusterSpec{Name: "other", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}))
		const workers, held = 2, 6
		pa := snapshotPolicy("held", "rs", false)
		pa.Targets = addClusters(t, sim, "h%02d", held)
		pb := snapshotPolicy("free", "other", false)
		pb.Targets = []run.Target{{ProjectID: projectB, Cluster: "other"}}

		began := time.Now()
		const hold = 2 * time.Hour
		tr := &holdingTransport{next: sim.Transport(), project: project, until: began.Add(hold)}
		h := startConfig(t, sim, engine.Config{Atlas: engine.FromClient(clientOver(t, tr)), Workers: workers}, pa, pb)
		defer h.stop()
		eng := h.eng

		var heldIDs []run.ID
		for _, tg := range pa.Targets {
			must(t, eng.Fire(context.Background(), pa.Name, tg, slot, slot, false, "", ""))
			heldIDs = append(heldIDs, run.NewID(pa.Name, tg.ProjectID, tg.Cluster, slot, false))
		}
		// Let the held project's runs take the workers and meet the hold.
		time.Sleep(time.Second)
		synctest.Wait()
		must(t, eng.Fire(context.Background(), pb.Name, pb.Targets[0], slot, slot, false, "", ""))
		free := h.await(run.NewID(pb.Name, projectB, "other", slot, false))
		if free.Stage != run.StageSucceeded {
			t.Fatalf("project B's run ended %s{%s}: %s", free.Stage, free.Reason, free.Detail)
		}
		// An M10 snapshot takes minutes in the simulator; the hold is 2h.
		if took := free.FinishedAt.Sub(began); took > 30*time.Minute {
			t.Fatalf("project B's run took %v while project A was held for %v: held runs stalled the workers", took, hold)
		}
		// While held, the project's runs wait parked, not in the client,
		// and show what they wait for.
		for _, r := range eng.Active() {
			if r.Target.ProjectID == project && !strings.Contains(r.Detail, "Retry-After") {
				t.Errorf("held run %s detail = %q, want it to name the Retry-After hold", r.ID, r.Detail)
			}
		}
		refusedDuringHold := tr.refusals()
		for _, id := range heldIDs {
			r := h.await(id)
			if r.Stage != run.StageSucceeded {
				t.Fatalf("held run %s ended %s{%s}: %s", id, r.Stage, r.Reason, r.Detail)
			}
			if r.FinishedAt.Before(began.Add(hold)) {
				t.Fatalf("held run %s finished at %v, before the hold ended", id, r.FinishedAt.Sub(began))
			}
		}
		// Held runs do not keep asking: at most one refused request per
		// worker reached Atlas before the engine parked them.
		if refusedDuringHold > workers {
			t.Errorf("%d requests to the held project were refused, want at most %d", refusedDuringHold, workers)
		}
	})
}
