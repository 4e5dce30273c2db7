package atlassim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

func TestBurst429(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.Burst429(2, 1500*time.Millisecond)
	for i := range 2 {
		r := h.post(base+"/clusters/prod-main/backup/snapshots", `{}`)
		expectError(t, r, http.StatusTooManyRequests, atlas.CodeRateLimited)
		if got := r.hdr.Get("Retry-After"); got != "2" {
			t.Errorf("429 #%d Retry-After %q, want 2 (seconds, rounded up)", i+1, got)
		}
	}
	if n := len(h.sim.Snapshots(pid, "prod-main")); n != 1 {
		t.Errorf("a 429 applied the POST: %d snapshots", n)
	}
	h.takeSnapshot("prod-main", `{}`)
	if got := h.sim.Calls("take_snapshot"); got != 3 {
		t.Errorf("Calls(take_snapshot) = %d, want 3 (two 429s and one success)", got)
	}
}

func TestProjectRateLimit(t *testing.T) {
	h := newHarness(t, Options{RateLimit: RateLimit{Capacity: 3, RefillPerMinute: 6}})
	other := "bbbbbbbbbbbbbbbbbbbbbbbb"
	if err := h.sim.AddProject(other); err != nil {
		t.Fatal(err)
	}
	for want := 2; want >= 0; want-- {
		r := h.must(h.get(base+"/clusters"), http.StatusOK)
		if r.hdr.Get("RateLimit-Limit") != "3" || r.hdr.Get("RateLimit-Remaining") != fmt.Sprint(want) {
			t.Errorf("headers Limit=%q Remaining=%q, want 3 and %d", r.hdr.Get("RateLimit-Limit"), r.hdr.Get("RateLimit-Remaining"), want)
		}
	}
	r := h.get(base + "/clusters/prod-main/backup/snapshots")
	e := expectError(t, r, http.StatusTooManyRequests, atlas.CodeRateLimitedTokenBucket)
	if r.hdr.Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q, want 10 (one token at 6/min)", r.hdr.Get("Retry-After"))
	}
	want := "Rate limit exceeded for api/atlas/v2/groups/" + pid + ". Please retry after 10 seconds. Request capacity: 3. Refill rate: 6 per 60 seconds."
	if e.Detail != want {
		t.Errorf("detail %q\nwant   %q", e.Detail, want)
	}
	// Another project has its own bucket.
	h.must(h.get(atlas.APIPrefix+"/groups/"+other+"/clusters"), http.StatusOK)
	h.clk.Advance(9 * time.Second)
	expectError(t, h.get(base+"/clusters"), http.StatusTooManyRequests, atlas.CodeRateLimitedTokenBucket)
	h.clk.Advance(time.Second)
	h.must(h.get(base+"/clusters"), http.StatusOK)
}

func TestInjectedErrors(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h := newHarness(t, Options{})
			h.sim.SetFaults(Faults{ErrorRate: 1, ErrorStatus: status})
			code := map[int]string{500: atlas.CodeUnexpectedError, 503: atlas.CodeServiceUnavailable}[status]
			r := h.post(base+"/clusters/prod-main/backup/snapshots", `{}`)
			expectError(t, r, status, code)
			if (status == http.StatusServiceUnavailable) != (r.hdr.Get("Retry-After") != "") {
				t.Errorf("Retry-After %q on %d", r.hdr.Get("Retry-After"), status)
			}
			if n := len(h.sim.Snapshots(pid, "prod-main")); n != 1 {
				t.Errorf("an injected %d applied the POST", status)
			}
			h.sim.SetFaults(Faults{})
			h.takeSnapshot("prod-main", `{}`)
		})
	}
	t.Run("rate is a probability", func(t *testing.T) {
		h := newHarness(t, Options{Seed: 7})
		h.sim.SetFaults(Faults{ErrorRate: 0.5})
		fails := 0
		for range 200 {
			if r := h.get(base + "/clusters"); r.code >= 500 {
				fails++
			}
		}
		if fails < 60 || fails > 140 {
			t.Errorf("%d of 200 requests failed at rate 0.5", fails)
		}
	})
}

func TestDropAfterApply(t *testing.T) {
	t.Run("in-memory transport", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.sim.SetFaults(Faults{DropAfterApplyRate: 1})
		client := &http.Client{Transport: h.sim.Transport()}
		req, _ := http.NewRequest(http.MethodPost, "http://atlas.test"+base+"/clusters/prod-main/backup/snapshots", strings.NewReader(`{"description":"backupd:run-1"}`))
		req.Header.Set("Accept", atlas.MediaSnapshots)
		req.Header.Set("Content-Type", atlas.MediaSnapshots)
		req.Header.Set("Authorization", "Bearer "+h.token)
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("dropped POST answered %d", res.StatusCode)
		}
		if !errors.Is(err, ErrDropped) {
			t.Errorf("error %v does not wrap ErrDropped", err)
		}
		snaps := h.sim.Snapshots(pid, "prod-main")
		if len(snaps) != 2 || snaps[0].Description != "backupd:run-1" || snaps[0].Status != atlas.SnapshotQueued {
			t.Errorf("the dropped POST was not applied: %+v", snaps)
		}
		log := h.sim.CallLog()
		if last := log[len(log)-1]; !last.Dropped || last.Op != "take_snapshot" {
			t.Errorf("last call %+v", last)
		}
		// GETs are never dropped.
		h.must(h.get(base+"/clusters/prod-main/backup/snapshots"), http.StatusOK)
	})
	t.Run("real server", func(t *testing.T) {
		h := newHarness(t, Options{})
		srv := httptest.NewServer(h.sim)
		defer srv.Close()
		sn := h.completedSnapshot("analytics")
		h.sim.SetFaults(Faults{DropAfterApplyRate: 1})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+base+"/clusters/analytics/backup/exports",
			strings.NewReader(fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, sn.ID)))
		req.Header.Set("Accept", atlas.MediaSnapshots)
		req.Header.Set("Content-Type", atlas.MediaSnapshots)
		req.Header.Set("Authorization", "Bearer "+h.token)
		res, err := srv.Client().Do(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("dropped POST answered %d", res.StatusCode)
		}
		if n := len(h.sim.Exports(pid, "analytics")); n != 1 {
			t.Errorf("the dropped export was not applied: %d jobs", n)
		}
	})
}

// TestLatencyInSynctest runs the real clock in a bubble: injected latency
// passes in virtual time and a caller's deadline cuts it short.
func TestLatencyInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{Clock: clock.Real()})
		if err := DemoFixture().Apply(s); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: s.Transport()}
		tok := fetchTokenVia(t, client)
		get := func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://atlas.test"+base+"/clusters", nil)
			req.Header.Set("Accept", atlas.MediaClusters)
			req.Header.Set("Authorization", "Bearer "+tok)
			return client.Do(req)
		}
		s.SetFaults(Faults{Latency: 5 * time.Second})
		start := time.Now()
		res, err := get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if took := time.Since(start); res.StatusCode != http.StatusOK || took != 5*time.Second {
			t.Errorf("status %d after %v, want 200 after 5s", res.StatusCode, took)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := get(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancelled during latency: %v", err)
		}
		log := s.CallLog()
		if last := log[len(log)-1]; last.Status != 0 || last.Op != "list_clusters" {
			t.Errorf("abandoned call logged as %+v", last)
		}
		// Lifecycles follow the bubble's clock too.
		s.SetFaults(Faults{})
		if _, err := s.SeedSnapshot(pid, "prod-main", SeedSnapshot{Type: atlas.SnapshotOnDemand, Status: atlas.SnapshotQueued}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(DefaultTimings.SnapshotQueued + DefaultTimings.SnapshotInProgress)
		if got := s.Snapshots(pid, "prod-main")[0].Status; got != atlas.SnapshotCompleted {
			t.Errorf("seeded snapshot after its lifecycle: %s", got)
		}
	})
}

func fetchTokenVia(t *testing.T, client *http.Client) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://atlas.test"+atlas.TokenPath, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(DemoClientID, DemoClientSecret)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return decode[tokenResponse](t, resp{code: res.StatusCode, raw: body}).AccessToken
}

func TestCallLogAndCounters(t *testing.T) {
	h := newHarness(t, Options{})
	h.get(base + "/clusters")
	h.get(base + "/clusters/nope")
	h.post(base+"/clusters/prod-main/backup/snapshots", `{}`)
	if h.sim.Calls("list_clusters") != 1 || h.sim.Calls("get_cluster") != 1 || h.sim.Calls("take_snapshot") != 1 || h.sim.Calls("token") != 1 {
		t.Errorf("counters list=%d get=%d take=%d token=%d", h.sim.Calls("list_clusters"), h.sim.Calls("get_cluster"), h.sim.Calls("take_snapshot"), h.sim.Calls("token"))
	}
	log := h.sim.CallLog()
	var got []string
	for _, c := range log {
		got = append(got, fmt.Sprintf("%s %s %d", c.Op, c.Method, c.Status))
		if !c.At.Equal(t0) {
			t.Errorf("call at %v, want the fake clock's %v", c.At, t0)
		}
	}
	if want := "token POST 200|list_clusters GET 200|get_cluster GET 404|take_snapshot POST 200"; strings.Join(got, "|") != want {
		t.Errorf("call log %s\nwant         %s", strings.Join(got, "|"), want)
	}
	if log[1].Path != base+"/clusters" || log[1].ProjectID != pid {
		t.Errorf("call %+v", log[1])
	}
}

func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, Options{RateLimit: RateLimit{Capacity: 1000}})
	sn := h.completedSnapshot("analytics")
	client := &http.Client{Transport: h.sim.Transport()}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for j := range 8 {
				path := base + "/clusters/prod-main/backup/snapshots"
				method, body := http.MethodGet, ""
				switch (i + j) % 4 {
				case 1:
					method, body = http.MethodPost, `{}`
				case 2:
					path, method, body = base+"/clusters/analytics/backup/exports", http.MethodPost, fmt.Sprintf(`{"exportBucketId":%q,"snapshotId":%q}`, bucketID, sn.ID)
				case 3:
					path = base + "/flexClusters/flex-prod/backup/snapshots"
				}
				req, _ := http.NewRequest(method, "http://atlas.test"+path, strings.NewReader(body))
				req.Header.Set("Accept", mediaFor(path))
				req.Header.Set("Content-Type", mediaFor(path))
				req.Header.Set("Authorization", "Bearer "+h.token)
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode >= 500 {
					errs <- fmt.Errorf("%s %s: %d", method, path, res.StatusCode)
				}
			}
		})
	}
	wg.Go(func() { h.sim.SetFaults(Faults{}); h.clk.Advance(time.Second) })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Atlas's one-at-a-time rules held under concurrency.
	onDemand := 0
	for _, s := range h.sim.Snapshots(pid, "prod-main") {
		if s.SnapshotType == atlas.SnapshotOnDemand {
			onDemand++
		}
	}
	if onDemand != 1 || len(h.sim.Exports(pid, "analytics")) != 1 {
		t.Errorf("on-demand snapshots %d, exports %d; want 1 and 1", onDemand, len(h.sim.Exports(pid, "analytics")))
	}
}

func TestDeterministicIDs(t *testing.T) {
	ids := func(seed int64) []string {
		h := newHarness(t, Options{Seed: seed})
		a := h.completedSnapshot("prod-main")
		b := h.takeSnapshot("prod-shards", `{}`)
		return []string{a.ID, b.ID, b.Members[0].ID}
	}
	first, again, other := ids(42), ids(42), ids(43)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Errorf("same seed, different ids: %v vs %v", first, again)
	}
	if fmt.Sprint(first) == fmt.Sprint(other) {
		t.Errorf("different seeds, same ids: %v", first)
	}
	for _, id := range first {
		if !hexIDPattern.MatchString(id) {
			t.Errorf("id %q is not 24-hex", id)
		}
	}
}

func TestHugeAnswer(t *testing.T) {
	h := newHarness(t, Options{})
	h.sim.SetFaults(Faults{HugeAnswerRate: 1})
	r := h.must(h.get(base+"/clusters/prod-main/backup/snapshots"), http.StatusOK)
	if len(r.raw) <= HugeAnswerPad {
		t.Fatalf("answer of %d bytes, want more than %d", len(r.raw), HugeAnswerPad)
	}
	var page atlas.Page[atlas.Snapshot]
	if err := json.Unmarshal(r.raw, &page); err != nil || len(page.Results) == 0 {
		t.Errorf("a huge answer is still the JSON answer: %v, %d results", err, len(page.Results))
	}
	log := h.sim.CallLog()
	if last := log[len(log)-1]; !last.Huge || last.Status != http.StatusOK {
		t.Errorf("last call %+v, want it marked huge", last)
	}
	h.sim.SetFaults(Faults{})
	if r := h.must(h.get(base+"/clusters/prod-main/backup/snapshots"), http.StatusOK); len(r.raw) > 1<<20 {
		t.Errorf("answer of %d bytes with the fault off", len(r.raw))
	}
}
