package atlas

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// pagedServer serves total snapshots in pages the way Atlas does, with knobs
// to misbehave.
type pagedServer struct {
	total      int
	claimTotal int    // totalCount to report; -1 = omit
	links      string // "next" (Atlas-like), "self-only", "none"
	shortPage  bool   // return one item per page whatever was asked
	failOnPage int    // answer this page with 404

	mu    sync.Mutex
	pages []string // pageNum of each request
}

func (p *pagedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.pages = append(p.pages, q.Get("pageNum"))
	p.mu.Unlock()
	page, _ := strconv.Atoi(q.Get("pageNum"))
	per, _ := strconv.Atoi(q.Get("itemsPerPage"))
	if page == p.failOnPage {
		writeAPIError(w, 404, "CLUSTER_NOT_FOUND", "gone")
		return
	}
	if p.shortPage {
		per = 1
	}
	var res []Snapshot
	for i := (page - 1) * per; i < min(page*per, p.total); i++ {
		res = append(res, Snapshot{ID: fmt.Sprintf("%024x", i)})
	}
	body := map[string]any{"results": res}
	if p.claimTotal >= 0 {
		body["totalCount"] = p.claimTotal
	}
	switch p.links {
	case "next":
		l := []Link{{Rel: "self", Href: "https://cloud.mongodb.com" + r.URL.Path}}
		if page*per < p.total {
			l = append(l, Link{Rel: "next", Href: "https://cloud.mongodb.com" + r.URL.Path + "?pageNum=" + strconv.Itoa(page+1)})
		}
		body["links"] = l
	case "self-only":
		body["links"] = []Link{{Rel: "self", Href: "https://cloud.mongodb.com" + r.URL.Path}}
	}
	writeJSON(w, body)
}

func (p *pagedServer) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.pages...)
}

func TestListFetchesEveryPage(t *testing.T) {
	ps := &pagedServer{total: 1234, claimTotal: 1234, links: "next"}
	c := newTestClient(t, newFakeAtlas(t, ps))
	got, err := c.Snapshots.List(t.Context(), testProject, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1234 || got[0].ID != fmt.Sprintf("%024x", 0) || got[1233].ID != fmt.Sprintf("%024x", 1233) {
		t.Fatalf("got %d items", len(got))
	}
	for i := range got {
		if got[i].ID != fmt.Sprintf("%024x", i) {
			t.Fatalf("item %d is %s: order or duplicates wrong", i, got[i].ID)
		}
	}
	if r := ps.requests(); fmt.Sprint(r) != "[1 2 3]" {
		t.Errorf("pages requested %v, want [1 2 3]", r)
	}
}

func TestListStopRules(t *testing.T) {
	tests := []struct {
		name string
		srv  *pagedServer
		want int // items
		reqs string
	}{
		{"short page ends the list even if totalCount claims more", &pagedServer{total: 900, claimTotal: 5000, links: "next", shortPage: true}, 1, "[1]"},
		{"totalCount reached on a full page", &pagedServer{total: 1000, claimTotal: 500, links: "none"}, 500, "[1]"},
		{"links without next on a full page", &pagedServer{total: 1000, claimTotal: -1, links: "self-only"}, 500, "[1]"},
		{"exactly one full page then an empty one", &pagedServer{total: 500, claimTotal: -1, links: "none"}, 500, "[1 2]"},
		{"empty list", &pagedServer{total: 0, claimTotal: 0, links: "next"}, 0, "[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, newFakeAtlas(t, tt.srv))
			got, err := c.Snapshots.List(t.Context(), testProject, "prod")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want || fmt.Sprint(tt.srv.requests()) != tt.reqs {
				t.Errorf("%d items over pages %v, want %d over %s", len(got), tt.srv.requests(), tt.want, tt.reqs)
			}
		})
	}
}

func TestListGivesUpOnEndlessServer(t *testing.T) {
	endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := make([]Cluster, MaxItemsPerPage)
		writeJSON(w, map[string]any{"results": res, "links": []Link{{Rel: "next", Href: "x"}}})
	})
	c := newTestClient(t, newFakeAtlas(t, endless))
	c.caps.listingPages = 4
	_, err := c.Clusters.List(t.Context(), testProject)
	e, ok := AsError(err)
	if !ok || e.Operation != OpListClusters || !OverBound(err) ||
		e.Err.Error() != "listing of list_clusters exceeds 4 pages: 2000 items read and the server keeps offering more" {
		t.Errorf("err = %v", err)
	}
}

func TestIteratorIsLazyAndStopsOnBreak(t *testing.T) {
	ps := &pagedServer{total: 1500, claimTotal: 1500, links: "next"}
	c := newTestClient(t, newFakeAtlas(t, ps))
	n := 0
	for s, err := range c.Snapshots.All(t.Context(), testProject, "prod") {
		if err != nil {
			t.Fatal(err)
		}
		if s.ID == "" {
			t.Fatal("empty item")
		}
		n++
		if n == 3 {
			break
		}
	}
	if r := ps.requests(); fmt.Sprint(r) != "[1]" {
		t.Errorf("pages %v after breaking on item 3, want [1]", r)
	}
}

func TestIteratorYieldsErrorMidway(t *testing.T) {
	ps := &pagedServer{total: 1500, claimTotal: 1500, links: "next", failOnPage: 2}
	c := newTestClient(t, newFakeAtlas(t, ps))
	items, errs := 0, 0
	for _, err := range c.Snapshots.All(t.Context(), testProject, "prod") {
		if err != nil {
			errs++
			if !IsCode(err, CodeClusterNotFound) {
				t.Errorf("err %v", err)
			}
			continue
		}
		items++
	}
	if items != 500 || errs != 1 {
		t.Errorf("%d items and %d errors, want 500 then 1 error", items, errs)
	}
	if _, err := c.Snapshots.List(t.Context(), testProject, "prod"); !IsNotFound(err) {
		t.Errorf("List err %v, want the 404", err)
	}
}

func TestShardedListFollowsNextLinksOnly(t *testing.T) {
	const shardA, shardB = "aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"
	var mu sync.Mutex
	var queries []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		switch r.URL.Query().Get("pageNum") {
		case "":
			writeJSON(w, map[string]any{"results": []Snapshot{{ID: shardA, Type: KindShardedCluster}}, "totalCount": 3,
				"links": []Link{{Rel: "next", Href: "https://cloud.mongodb.com" + r.URL.Path + "?pageNum=2&itemsPerPage=1"}}})
		case "2":
			writeJSON(w, map[string]any{"results": []Snapshot{{ID: shardB}}, "totalCount": 3,
				"links": []Link{{Rel: "next", Href: "https://evil.example/other/path?pageNum=3"}}})
		default:
			t.Errorf("unexpected query %q", r.URL.RawQuery)
		}
	})
	c := newTestClient(t, newFakeAtlas(t, h))
	got, err := c.Snapshots.ListSharded(t.Context(), testProject, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != shardA || got[1].ID != shardB {
		t.Errorf("got %+v", got)
	}
	if fmt.Sprint(queries) != "[ itemsPerPage=1&pageNum=2]" {
		t.Errorf("queries %q", queries)
	}
}
