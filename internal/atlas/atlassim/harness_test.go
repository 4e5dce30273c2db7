package atlassim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

const (
	pid      = DemoProjectID
	bucketID = DemoBucketID
	base     = atlas.APIPrefix + "/groups/" + DemoProjectID
)

// harness drives a simulator loaded with the demo fleet through plain
// net/http requests, authenticated with a bearer token.
type harness struct {
	t     *testing.T
	clk   *clock.Fake
	sim   *Sim
	token string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	loadSpec(t) // fail here, on the test that owns the harness
	clk := clock.NewFake(t0)
	if opts.Clock == nil {
		opts.Clock = clk
	}
	s := New(opts)
	fx := DemoFixture()
	fx.RateLimit = nil // tests opt in to rate limiting
	if err := fx.Apply(s); err != nil {
		t.Fatalf("apply demo fixture: %v", err)
	}
	h := &harness{t: t, clk: clk, sim: s}
	h.token = h.fetchToken(DemoClientID, DemoClientSecret)
	return h
}

func (h *harness) fetchToken(id, secret string) string {
	h.t.Helper()
	rec := h.tokenRequest(id, secret, "grant_type=client_credentials")
	if rec.Code != http.StatusOK {
		h.t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
		h.t.Fatalf("token body: %v", err)
	}
	return tr.AccessToken
}

func (h *harness) tokenRequest(id, secret, form string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, atlas.TokenPath, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	rec := httptest.NewRecorder()
	h.sim.ServeHTTP(rec, req)
	return rec
}

// mediaFor picks the versioned type backupd pins for a path.
func mediaFor(path string) string {
	p, _, _ := strings.Cut(path, "?")
	switch {
	case p == atlas.APIPrefix+"/groups":
		return "application/vnd.atlas.2023-01-01+json" // listProjects
	case strings.Contains(path, "/flexClusters"):
		return atlas.MediaFlex
	case strings.Contains(path, "/exportBuckets"):
		return atlas.MediaBuckets
	case strings.Contains(path, "/backupCompliancePolicy"):
		return atlas.MediaCompliance
	case strings.Contains(path, "/backup/schedule"):
		return atlas.MediaClusters
	case strings.Contains(path, "/backup/"):
		return atlas.MediaSnapshots
	default:
		return atlas.MediaClusters
	}
}

type resp struct {
	code int
	hdr  http.Header
	raw  []byte
}

func (r resp) errorBody(t *testing.T) atlas.ErrorBody {
	t.Helper()
	var e atlas.ErrorBody
	if err := json.Unmarshal(r.raw, &e); err != nil {
		t.Fatalf("error body: %v: %s", err, r.raw)
	}
	return e
}

// do sends a request with the bearer token and the path's pinned media
// type; edit may change the request before it is served.
func (h *harness) do(method, path, body string, edit ...func(*http.Request)) resp {
	h.t.Helper()
	var req *http.Request
	if body != "" || method == http.MethodPost {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", mediaFor(path))
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.Header.Set("Accept", mediaFor(path))
	req.Header.Set("Authorization", "Bearer "+h.token)
	for _, e := range edit {
		e(req)
	}
	rec := httptest.NewRecorder()
	h.sim.ServeHTTP(rec, req)
	r := resp{code: rec.Code, hdr: rec.Header(), raw: rec.Body.Bytes()}
	h.checkShape(req, r)
	return r
}

// checkShape holds every answer to the spec: 200 bodies to the operation's
// schema for the served media type (when the subset has it), errors to ApiError.
func (h *harness) checkShape(req *http.Request, r resp) {
	h.t.Helper()
	if r.code != http.StatusOK {
		assertErrorShape(h.t, r.raw)
		return
	}
	segs := strings.Split(strings.TrimPrefix(req.URL.Path, atlas.APIPrefix+"/"), "/")
	rt, _, _ := match(req.Method, segs)
	if rt == nil {
		h.t.Fatalf("200 for unrouted %s %s", req.Method, req.URL.Path)
	}
	media := r.hdr.Get("Content-Type")
	if media == mediaType(rt.versions[0].date) && !rt.outsideSubset {
		assertSpecShape(h.t, rt.op, media, r.raw)
	}
}

func (h *harness) get(path string) resp { return h.do(http.MethodGet, path, "") }

func (h *harness) post(path, body string) resp { return h.do(http.MethodPost, path, body) }

// must asserts a status and returns the response.
func (h *harness) must(r resp, status int) resp {
	h.t.Helper()
	if r.code != status {
		h.t.Fatalf("status %d, want %d: %s", r.code, status, r.raw)
	}
	return r
}

func decode[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.raw, &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, r.raw)
	}
	return v
}

// expectError asserts an ApiError with status and code, served as application/json.
func expectError(t *testing.T, r resp, status int, code string) atlas.ErrorBody {
	t.Helper()
	if r.code != status {
		t.Fatalf("status %d, want %d (%s): %s", r.code, status, code, r.raw)
	}
	if ct := r.hdr.Get("Content-Type"); ct != atlas.MediaError {
		t.Errorf("error Content-Type %q, want %q", ct, atlas.MediaError)
	}
	e := r.errorBody(t)
	if e.ErrorCode != code || e.Error != status || e.Reason != http.StatusText(status) {
		t.Errorf("error body %+v, want %d %s reason %q", e, status, code, http.StatusText(status))
	}
	assertErrorShape(t, r.raw)
	return e
}

func (h *harness) takeSnapshot(cluster, body string) atlas.Snapshot {
	h.t.Helper()
	r := h.must(h.post(base+"/clusters/"+cluster+"/backup/snapshots", body), http.StatusOK)
	return decode[atlas.Snapshot](h.t, r)
}

func (h *harness) snapshot(cluster, id string) atlas.Snapshot {
	h.t.Helper()
	return decode[atlas.Snapshot](h.t, h.must(h.get(base+"/clusters/"+cluster+"/backup/snapshots/"+id), http.StatusOK))
}

// completedSnapshot takes an on-demand snapshot and runs the clock until it completes.
func (h *harness) completedSnapshot(cluster string) atlas.Snapshot {
	h.t.Helper()
	sn := h.takeSnapshot(cluster, `{"retentionInDays": 3}`)
	h.clk.Advance(DefaultTimings.SnapshotQueued + DefaultTimings.SnapshotInProgress)
	return sn
}
