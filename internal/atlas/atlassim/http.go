package atlassim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// mediaVersion is one dated version an operation serves, with its sunset
// date (after which Atlas answers 410 VERSION_GONE) when it has one.
type mediaVersion struct {
	date   string
	sunset string
}

// Versions per resource, from the spec and ATLAS_API_NOTES.md §2.
var (
	versionsBackup   = []mediaVersion{{date: "2023-01-01"}}
	versionsBuckets  = []mediaVersion{{date: "2024-05-30"}, {date: "2023-01-01", sunset: "2027-07-01"}}
	versionsClusters = []mediaVersion{{date: "2024-08-05"}, {date: "2023-02-01", sunset: "2027-07-01"}, {date: "2023-01-01", sunset: "2027-07-01"}}
	versionsFlex     = []mediaVersion{{date: "2024-11-13"}}
	versionsProjects = []mediaVersion{{date: "2023-01-01"}}
	versionsSchedule = []mediaVersion{{date: "2024-08-05"}, {date: "2023-01-01", sunset: "2027-07-01"}}
	versionsComply   = []mediaVersion{{date: "2023-10-01"}}
)

func mediaType(date string) string { return "application/vnd.atlas." + date + "+json" }

type handlerFunc func(s *Sim, c *call) (any, *apiError)

// route is one operation: a method and a path pattern below /api/atlas/v2
// whose {placeholders} are captured.
type route struct {
	method   string
	pattern  []string
	op       string
	versions []mediaVersion
	handle   handlerFunc
	// outsideSubset marks operations backupd uses that the OpenAPI subset
	// does not carry (listProjects, the client's digest credential probe).
	outsideSubset bool
}

func newRoute(method, pattern, op string, versions []mediaVersion, h handlerFunc) route {
	return route{method: method, pattern: strings.Split(pattern, "/"), op: op, versions: versions, handle: h}
}

// routes lists literal segments before placeholders where both could match
// (snapshots/shardedClusters before snapshots/{id}).
var routes = []route{
	{method: "GET", pattern: []string{"groups"}, op: "list_projects", versions: versionsProjects, handle: (*Sim).listProjects, outsideSubset: true},
	newRoute("GET", "groups/{groupId}/backup/exportBuckets", "list_export_buckets", versionsBuckets, (*Sim).listBuckets),
	newRoute("GET", "groups/{groupId}/backup/exportBuckets/{exportBucketId}", "get_export_bucket", versionsBuckets, (*Sim).getBucket),
	newRoute("GET", "groups/{groupId}/backupCompliancePolicy", "get_compliance_policy", versionsComply, (*Sim).getCompliancePolicy),
	newRoute("GET", "groups/{groupId}/clusters", "list_clusters", versionsClusters, (*Sim).listClusters),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}", "get_cluster", versionsClusters, (*Sim).getCluster),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/schedule", "get_backup_schedule", versionsSchedule, (*Sim).getSchedule),
	newRoute("POST", "groups/{groupId}/clusters/{clusterName}/backup/snapshots", "take_snapshot", versionsBackup, (*Sim).takeSnapshot),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/snapshots", "list_snapshots", versionsBackup, (*Sim).listSnapshots),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/snapshots/shardedClusters", "list_sharded_snapshots", versionsBackup, (*Sim).listShardedSnapshots),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/snapshots/shardedCluster/{snapshotId}", "get_sharded_snapshot", versionsBackup, (*Sim).getShardedSnapshot),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/snapshots/{snapshotId}", "get_snapshot", versionsBackup, (*Sim).getSnapshot),
	newRoute("POST", "groups/{groupId}/clusters/{clusterName}/backup/exports", "create_export", versionsBackup, (*Sim).createExport),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/exports", "list_exports", versionsBackup, (*Sim).listExports),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/exports/{exportId}", "get_export", versionsBackup, (*Sim).getExport),
	newRoute("POST", "groups/{groupId}/clusters/{clusterName}/backup/restoreJobs", "create_restore", versionsBackup, (*Sim).createClusterRestore),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/restoreJobs", "list_restores", versionsBackup, (*Sim).listClusterRestores),
	newRoute("GET", "groups/{groupId}/clusters/{clusterName}/backup/restoreJobs/{restoreJobId}", "get_restore", versionsBackup, (*Sim).getClusterRestore),
	newRoute("GET", "groups/{groupId}/flexClusters", "list_flex_clusters", versionsFlex, (*Sim).listFlexClusters),
	newRoute("GET", "groups/{groupId}/flexClusters/{name}", "get_flex_cluster", versionsFlex, (*Sim).getFlexCluster),
	newRoute("GET", "groups/{groupId}/flexClusters/{name}/backup/snapshots", "list_flex_snapshots", versionsFlex, (*Sim).listFlexSnapshots),
	newRoute("GET", "groups/{groupId}/flexClusters/{name}/backup/snapshots/{snapshotId}", "get_flex_snapshot", versionsFlex, (*Sim).getFlexSnapshot),
	newRoute("POST", "groups/{groupId}/flexClusters/{name}/backup/restoreJobs", "create_flex_restore", versionsFlex, (*Sim).createRestore),
	newRoute("GET", "groups/{groupId}/flexClusters/{name}/backup/restoreJobs", "list_flex_restores", versionsFlex, (*Sim).listRestores),
	newRoute("GET", "groups/{groupId}/flexClusters/{name}/backup/restoreJobs/{restoreJobId}", "get_flex_restore", versionsFlex, (*Sim).getRestore),
}

// match finds the route for a path below the API prefix. It returns the
// route, its captures, and whether the path exists under another method.
func match(method string, segs []string) (*route, map[string]string, bool) {
	pathKnown := false
	for i := range routes {
		rt := &routes[i]
		if len(rt.pattern) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for j, p := range rt.pattern {
			if strings.HasPrefix(p, "{") {
				if segs[j] == "" {
					ok = false
					break
				}
				params[strings.Trim(p, "{}")] = segs[j]
			} else if p != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, params, true
		}
		pathKnown = true
	}
	return nil, nil, pathKnown
}

// call is one API request being handled.
type call struct {
	r       *http.Request
	now     time.Time
	params  map[string]string
	base    string // scheme://host, for links
	version string
	body    []byte
}

func (c *call) link(path string) string { return c.base + atlas.APIPrefix + path }

const maxBody = 1 << 20

// ServeHTTP serves the Atlas Admin API v2 subset and the OAuth2 token endpoint.
func (s *Sim) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == atlas.TokenPath {
		s.serveToken(w, req)
		return
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		if err != nil {
			return // the client went away mid-body; nothing to answer
		}
		body = b
	}
	rec := Call{Method: req.Method, Path: req.URL.Path}
	if !strings.HasPrefix(req.URL.Path, atlas.APIPrefix+"/") && req.URL.Path != atlas.APIPrefix {
		s.finish(w, req, rec, false, errResourceNotFound(req.URL.Path), nil)
		return
	}
	segs := strings.Split(strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, atlas.APIPrefix), "/"), "/")
	if len(segs) > 1 && segs[0] == "groups" {
		rec.ProjectID = segs[1]
	}
	rt, params, known := match(req.Method, segs)
	if rt != nil {
		rec.Op = rt.op
	}

	// Atlas authenticates before it routes: any unauthenticated request
	// under /api/atlas/v2 earns the digest challenge.
	s.mu.Lock()
	now := s.clk.Now()
	rec.Received = now
	auth := s.authenticateLocked(req, now)
	if !auth.ok {
		e := errUnauthorized()
		e.header = http.Header{"Www-Authenticate": {s.digestChallengeLocked(now, auth.stale)}}
		s.mu.Unlock()
		s.finish(w, req, rec, false, e, nil)
		return
	}
	rec.Who = auth.who
	s.mu.Unlock()
	if rt == nil {
		e := errResourceNotFound(req.URL.Path)
		if known {
			e = errMethodNotAllowed(req.Method, req.URL.Path)
			e.header = http.Header{"Allow": {allowedMethods(segs)}}
		}
		s.finish(w, req, rec, false, e, nil)
		return
	}

	s.mu.Lock()
	var delay time.Duration
	if f := s.faults; f.Latency > 0 && (f.LatencyRate <= 0 || s.chance(f.LatencyRate)) {
		delay = f.Latency
	}
	s.mu.Unlock()
	if delay > 0 {
		if err := clock.Sleep(req.Context(), s.clk, delay); err != nil {
			rec.Status = 0
			s.mu.Lock()
			rec.At = s.clk.Now()
			s.recordLocked(rec, true)
			s.mu.Unlock()
			return
		}
	}

	s.mu.Lock()
	c := &call{r: req, now: s.clk.Now(), params: params, base: baseURL(req), body: body}
	result, rateHdr, apiErr := s.dispatchLocked(rt, c)
	drop := false
	if apiErr == nil && req.Method == http.MethodPost {
		drop = s.chance(s.faults.DropAfterApplyRate)
	}
	rec.At = c.now
	if drop {
		rec.Status = http.StatusOK
		rec.Dropped = true
		s.recordLocked(rec, true)
		s.mu.Unlock()
		s.log("atlassim: %s %s applied, connection dropped", req.Method, req.URL.Path)
		panic(http.ErrAbortHandler)
	}
	s.mu.Unlock()
	for k, v := range rateHdr {
		w.Header()[k] = v
	}
	if apiErr != nil {
		s.finish(w, req, rec, true, apiErr, c)
		return
	}
	rec.Status = http.StatusOK
	s.mu.Lock()
	rec.Huge = s.chance(s.faults.HugeAnswerRate)
	s.recordLocked(rec, true)
	s.mu.Unlock()
	s.log("atlassim: %s %s -> 200", req.Method, req.URL.Path)
	if rec.Huge {
		writeHuge(w, mediaType(c.version), result)
		return
	}
	writeJSON(w, http.StatusOK, mediaType(c.version), result, req.URL.Query().Get("pretty") == "true")
}

// writeHuge writes v as JSON followed by HugeAnswerPad bytes of whitespace,
// streamed without a Content-Length so the client has to read its way to
// its bound; it stops when the client hangs up.
func writeHuge(w http.ResponseWriter, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return
	}
	pad := []byte(strings.Repeat(" ", 32<<10))
	for n := 0; n < HugeAnswerPad; n += len(pad) {
		if _, err := w.Write(pad); err != nil {
			return
		}
	}
}

// finish records and writes an error answer.
func (s *Sim) finish(w http.ResponseWriter, req *http.Request, rec Call, counted bool, e *apiError, c *call) {
	s.mu.Lock()
	if c != nil {
		rec.At = c.now
	} else {
		rec.At = s.clk.Now()
	}
	rec.Status = e.status
	if secs, err := strconv.Atoi(e.header.Get("Retry-After")); err == nil && secs > 0 {
		rec.RetryAfter = time.Duration(secs) * time.Second
	}
	s.recordLocked(rec, counted)
	s.mu.Unlock()
	s.log("atlassim: %s %s -> %d %s", req.Method, req.URL.Path, e.status, e.code)
	for k, v := range e.header {
		w.Header()[k] = v
	}
	writeJSON(w, e.status, atlas.MediaError, e.body(), req.URL.Query().Get("pretty") == "true")
}

func allowedMethods(segs []string) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if rt, _, _ := match(m, segs); rt != nil {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

func baseURL(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return scheme + "://" + host
}

// dispatchLocked applies injected faults, the project's rate limit and
// version negotiation, then runs the handler. It returns the rate-limit
// headers to send with whatever answer follows.
func (s *Sim) dispatchLocked(rt *route, c *call) (any, http.Header, *apiError) {
	if s.burst429 > 0 {
		s.burst429--
		secs := int((s.burstRetryAfter + time.Second - 1) / time.Second)
		e := newErr(http.StatusTooManyRequests, atlas.CodeRateLimited,
			fmt.Sprintf("Resource %s is limited to 100 requests every 1 minutes.", c.r.URL.Path), c.r.URL.Path, 100, 1)
		e.header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
		return nil, nil, e
	}
	var rateHdr http.Header
	if gid := c.params["groupId"]; s.rate.Capacity > 0 && s.projects[gid] != nil {
		b := s.projectBuckets[gid]
		if b == nil {
			b = newTokenBucket(s.rate.Capacity, s.rate.RefillPerMinute, c.now)
			s.projectBuckets[gid] = b
		}
		remaining, wait, ok := b.take(c.now)
		rateHdr = http.Header{
			"Ratelimit-Limit":     {strconv.Itoa(s.rate.Capacity)},
			"Ratelimit-Remaining": {strconv.Itoa(remaining)},
		}
		if !ok {
			secs := int(wait / time.Second)
			refill := s.rate.RefillPerMinute
			if refill <= 0 {
				refill = s.rate.Capacity
			}
			endpoint := "api/atlas/v2/groups/" + gid
			e := newErr(http.StatusTooManyRequests, atlas.CodeRateLimitedTokenBucket,
				fmt.Sprintf("Rate limit exceeded for %s. Please retry after %d seconds. Request capacity: %d. Refill rate: %d per 60 seconds.", endpoint, secs, s.rate.Capacity, refill),
				endpoint, secs, s.rate.Capacity, refill, 60)
			e.header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
			return nil, rateHdr, e
		}
	}
	if s.chance(s.faults.ErrorRate) {
		status := s.faults.ErrorStatus
		if status != http.StatusInternalServerError && status != http.StatusServiceUnavailable {
			status = http.StatusInternalServerError
			if s.faultRN.IntN(2) == 1 {
				status = http.StatusServiceUnavailable
			}
		}
		if status == http.StatusServiceUnavailable {
			e := newErr(status, atlas.CodeServiceUnavailable, "Service temporarily unavailable (injected by atlassim).")
			e.header = http.Header{"Retry-After": {"1"}}
			return nil, rateHdr, e
		}
		return nil, rateHdr, newErr(status, atlas.CodeUnexpectedError, "Unexpected error (injected by atlassim).")
	}
	v, e := negotiate(c.r.Header.Get("Accept"), rt.versions, c.now)
	if e != nil {
		return nil, rateHdr, e
	}
	c.version = v
	if rt.method == http.MethodPost {
		if e := checkContentType(c.r.Header.Get("Content-Type"), rt.versions); e != nil {
			return nil, rateHdr, e
		}
		if len(c.body) > maxBody {
			return nil, rateHdr, newErr(http.StatusRequestEntityTooLarge, CodeInvalidJSON, "The request body is larger than 1 MiB.")
		}
	}
	out, e := rt.handle(s, c)
	return out, rateHdr, e
}

var vndPattern = regexp.MustCompile(`^application/vnd\.atlas\.(\d{4}-\d{2}-\d{2})\+json$`)

// negotiate picks the version the Accept header asks for. Atlas answers 406
// INVALID_VERSION_DATE unless Accept names a version the operation serves;
// no nearest-version resolution is done (UNCONFIRMED in the notes).
func negotiate(accept string, versions []mediaVersion, now time.Time) (string, *apiError) {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		m := vndPattern.FindStringSubmatch(mt)
		if m == nil {
			continue
		}
		for _, v := range versions {
			if v.date != m[1] {
				continue
			}
			if v.sunset != "" {
				if sunset, err := time.Parse(time.DateOnly, v.sunset); err == nil && !now.Before(sunset) {
					return "", newErr(http.StatusGone, CodeVersionGone,
						fmt.Sprintf("Version %s of this resource was sunset on %s; use %s.", v.date, v.sunset, mediaType(versions[0].date)), v.date)
				}
			}
			return v.date, nil
		}
	}
	return "", errNotAcceptable()
}

// checkContentType requires a POST body to be declared with one of the
// operation's versioned media types, the only type the spec declares bodies under.
func checkContentType(ct string, versions []mediaVersion) *apiError {
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		if m := vndPattern.FindStringSubmatch(mt); m != nil {
			for _, v := range versions {
				if v.date == m[1] {
					return nil
				}
			}
		}
	}
	return newErr(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
		fmt.Sprintf("Content-Type %q is not supported; send %s.", ct, mediaType(versions[0].date)), ct)
}

// errorsIsAbort reports whether a recovered panic value is http.ErrAbortHandler.
func errorsIsAbort(v any) bool {
	err, ok := v.(error)
	return ok && errors.Is(err, http.ErrAbortHandler)
}
