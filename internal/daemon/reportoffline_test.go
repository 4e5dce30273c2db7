package daemon_test

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// countingTransport counts the requests the daemon sends towards Atlas.
type countingTransport struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// TestReportAnswersWhileAtlasIsUnreachable: the evidence report is built
// from the journal (issue 13 item 7). With every request to Atlas failing
// for half an hour, GET /api/v1/report still answers, in every format,
// with the runs the journal holds, and building it sends no request to
// Atlas at all.
func TestReportAnswersWhileAtlasIsUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		g := &gate{rt: sim.Transport(), open: true}
		ct := &countingTransport{rt: g}
		e := launchWith(t, dir, sim, ct)
		defer e.stop()
		time.Sleep(3*time.Hour + 30*time.Minute) // the 01:00, 02:00 and 03:00 slots
		synctest.Wait()
		g.set(false)
		time.Sleep(30 * time.Minute)
		synctest.Wait()

		var want int
		for _, r := range e.allRuns(t, "hourly") {
			if r.Target.Cluster == "prod-a" && r.Stage == run.StageSucceeded {
				want++
			}
		}
		if want < 3 {
			t.Fatalf("%d succeeded runs of prod-a before the outage, want 3", want)
		}
		sent := ct.n.Load()
		if sent == 0 {
			t.Fatal("no request to Atlas went through the counting transport")
		}
		code, body := e.get(t, "/api/v1/report?since=1d&format=json")
		if code != 200 {
			t.Fatalf("report during the outage = %d %s", code, body)
		}
		rep, err := report.Decode(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rep.Clusters, func(c report.Cluster) bool { return c.Target.Cluster == "prod-a" })
		if i < 0 || len(rep.Clusters[i].Policies) != 1 {
			t.Fatalf("report has no policy of prod-a: %s", body)
		}
		pr := rep.Clusters[i].Policies[0]
		if pr.Counts.Succeeded != want || len(pr.Snapshots) != want || len(pr.Exports) != want {
			t.Fatalf("report counts %+v, %d snapshots, %d exports; want the journal's %d succeeded runs", pr.Counts, len(pr.Snapshots), len(pr.Exports), want)
		}
		for _, f := range report.Formats {
			if code, body := e.get(t, "/api/v1/report?since=1d&format="+f); code != 200 || !strings.Contains(body, "prod-a") {
				t.Fatalf("%s report during the outage = %d %.200s", f, code, body)
			}
		}
		if n := ct.n.Load() - sent; n != 0 {
			t.Errorf("building the reports sent %d requests to Atlas, want none", n)
		}
	})
}
