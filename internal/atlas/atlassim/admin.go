package atlassim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// AdminPrefix is where AdminHandler serves; it lies outside /api/atlas so it
// can never be mistaken for an Atlas path.
const AdminPrefix = "/_sim/"

// maxAdminBody bounds an admin request body.
const maxAdminBody = 64 << 10

// AdminHandler serves a small test-control API under /_sim/ so that tests
// driving `backupd atlas-sim` as a separate process can inject faults,
// change the fleet mid-run and read back what the simulator saw:
//
//	GET    /_sim/calls[?log=true]         request counts per operation (+ the call log, with who sent each)
//	GET    /_sim/state                    every project's snapshots, exports and restore jobs
//	POST   /_sim/faults                   {errorRate, errorStatus, latency, latencyRate, dropAfterApplyRate, hugeAnswerRate}
//	POST   /_sim/burst429                 {n, retryAfter}
//	POST   /_sim/fail                     {snapshots, exports, exportsCancelled, restores, clusterRestores, clusterRestoreEnd}
//	POST   /_sim/clusters/{project}/{name} {state, paused, deleted}
//	DELETE /_sim/buckets/{project}/{id}
//	POST   /_sim/native/{project}/{cluster} {schedule, stalled, failScheduled, fallback}
//	POST   /_sim/compliance/{project}  {policy} (omitted: none)
//
// Durations are Go duration strings ("2s"). It has no authentication: serve
// it only where the simulator itself is reachable (tests, dry runs).
func (s *Sim) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/calls", s.adminCalls)
	mux.HandleFunc("GET /_sim/state", s.adminState)
	mux.HandleFunc("POST /_sim/faults", s.adminFaults)
	mux.HandleFunc("POST /_sim/burst429", s.adminBurst)
	mux.HandleFunc("POST /_sim/fail", s.adminFail)
	mux.HandleFunc("POST /_sim/clusters/{project}/{name}", s.adminCluster)
	mux.HandleFunc("DELETE /_sim/buckets/{project}/{id}", s.adminBucket)
	mux.HandleFunc("POST /_sim/native/{project}/{cluster}", s.adminNative)
	mux.HandleFunc("POST /_sim/compliance/{project}", s.adminCompliance)
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, fmt.Errorf("no admin endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// AdminCalls is the answer of GET /_sim/calls.
type AdminCalls struct {
	// Counts is Calls(op) for every operation seen (token requests under "token").
	Counts map[string]int `json:"counts"`
	// LogLength is how many entries the call log holds (at most 10000).
	LogLength int `json:"logLength"`
	// Log is the call log, oldest first, when ?log=true.
	Log []AdminCall `json:"log,omitempty"`
}

// AdminCall is one Call as JSON.
type AdminCall struct {
	At         time.Time `json:"at"`
	Received   time.Time `json:"received"`
	Op         string    `json:"op,omitempty"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	ProjectID  string    `json:"projectID,omitempty"`
	Dropped    bool      `json:"dropped,omitempty"`
	Huge       bool      `json:"huge,omitempty"`
	RetryAfter Duration  `json:"retryAfter,omitempty"`
	Who        string    `json:"who,omitempty"`
}

func (s *Sim) adminCalls(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	counts := make(map[string]int, len(s.calls))
	for op, n := range s.calls {
		counts[op] = n
	}
	s.mu.Unlock()
	log := s.CallLog()
	out := AdminCalls{Counts: counts, LogLength: len(log)}
	if r.URL.Query().Get("log") == "true" {
		out.Log = make([]AdminCall, 0, len(log))
		for _, c := range log {
			out.Log = append(out.Log, AdminCall{
				At: c.At, Received: c.Received, Op: c.Op, Method: c.Method, Path: c.Path, Status: c.Status,
				ProjectID: c.ProjectID, Dropped: c.Dropped, Huge: c.Huge, RetryAfter: Duration(c.RetryAfter), Who: c.Who,
			})
		}
	}
	adminJSON(w, http.StatusOK, out)
}

// AdminState is the answer of GET /_sim/state: the whole fleet as Atlas
// would show it now. Snapshots, exports and restore jobs use the Atlas wire
// types, newest first.
type AdminState struct {
	Now      time.Time      `json:"now"`
	Projects []AdminProject `json:"projects"`
}

// AdminProject is one project of AdminState.
type AdminProject struct {
	ID           string             `json:"id"`
	Name         string             `json:"name"`
	Clusters     []AdminCluster     `json:"clusters"`
	FlexClusters []AdminFlexCluster `json:"flexClusters"`
	BucketIDs    []string           `json:"bucketIDs"`
}

// AdminCluster is one dedicated cluster of AdminState.
type AdminCluster struct {
	Name      string             `json:"name"`
	StateName atlas.ClusterState `json:"stateName"`
	Paused    bool               `json:"paused"`
	Snapshots []atlas.Snapshot   `json:"snapshots"`
	Exports   []atlas.ExportJob  `json:"exports"`
	// RestoreJobs are the restores of its snapshots (it is their source).
	RestoreJobs []atlas.RestoreJob `json:"restoreJobs"`
}

// AdminFlexCluster is one flex cluster of AdminState.
type AdminFlexCluster struct {
	Name        string                 `json:"name"`
	Snapshots   []atlas.FlexSnapshot   `json:"snapshots"`
	RestoreJobs []atlas.FlexRestoreJob `json:"restoreJobs"`
}

func (s *Sim) adminState(w http.ResponseWriter, _ *http.Request) {
	// Copy the fleet's names under the lock, then read each object through
	// the public accessors, which take the lock themselves.
	s.mu.Lock()
	now := s.clk.Now()
	var projects []AdminProject
	for _, pid := range s.projectOrder {
		p := s.projects[pid]
		ap := AdminProject{ID: pid, Name: p.name, Clusters: []AdminCluster{}, FlexClusters: []AdminFlexCluster{},
			BucketIDs: append([]string{}, p.bucketOrder...)}
		for _, name := range p.clusterOrder {
			c := p.clusters[name]
			ap.Clusters = append(ap.Clusters, AdminCluster{Name: name, StateName: s.clusterState(pid, c, now), Paused: c.spec.Paused})
		}
		for _, name := range p.flexOrder {
			ap.FlexClusters = append(ap.FlexClusters, AdminFlexCluster{Name: name})
		}
		projects = append(projects, ap)
	}
	s.mu.Unlock()
	for i := range projects {
		p := &projects[i]
		for k := range p.Clusters {
			c := &p.Clusters[k]
			c.Snapshots = nonNil(s.Snapshots(p.ID, c.Name))
			c.Exports = nonNil(s.Exports(p.ID, c.Name))
			c.RestoreJobs = nonNil(s.ClusterRestoreJobs(p.ID, c.Name))
		}
		for k := range p.FlexClusters {
			f := &p.FlexClusters[k]
			f.Snapshots = nonNil(s.FlexSnapshots(p.ID, f.Name))
			f.RestoreJobs = nonNil(s.RestoreJobs(p.ID, f.Name))
		}
	}
	adminJSON(w, http.StatusOK, AdminState{Now: now, Projects: nonNil(projects)})
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// AdminFaults is the body of POST /_sim/faults (see Faults). Omitted fields
// are zero, so posting {} turns injection off.
type AdminFaults struct {
	ErrorRate          float64  `json:"errorRate"`
	ErrorStatus        int      `json:"errorStatus"`
	Latency            Duration `json:"latency"`
	LatencyRate        float64  `json:"latencyRate"`
	DropAfterApplyRate float64  `json:"dropAfterApplyRate"`
	HugeAnswerRate     float64  `json:"hugeAnswerRate"`
}

func (s *Sim) adminFaults(w http.ResponseWriter, r *http.Request) {
	var f AdminFaults
	if err := decodeAdmin(r, &f); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	for name, p := range map[string]float64{"errorRate": f.ErrorRate, "latencyRate": f.LatencyRate, "dropAfterApplyRate": f.DropAfterApplyRate, "hugeAnswerRate": f.HugeAnswerRate} {
		if math.IsNaN(p) || p < 0 || p > 1 {
			adminError(w, http.StatusBadRequest, fmt.Errorf("%s %g: want a probability from 0 to 1", name, p))
			return
		}
	}
	if f.ErrorStatus != 0 && f.ErrorStatus != http.StatusInternalServerError && f.ErrorStatus != http.StatusServiceUnavailable {
		adminError(w, http.StatusBadRequest, fmt.Errorf("errorStatus %d: want 500, 503 or 0 (either)", f.ErrorStatus))
		return
	}
	if f.Latency < 0 {
		adminError(w, http.StatusBadRequest, fmt.Errorf("latency %s: must not be negative", time.Duration(f.Latency)))
		return
	}
	s.SetFaults(Faults{
		ErrorRate: f.ErrorRate, ErrorStatus: f.ErrorStatus, Latency: time.Duration(f.Latency),
		LatencyRate: f.LatencyRate, DropAfterApplyRate: f.DropAfterApplyRate, HugeAnswerRate: f.HugeAnswerRate,
	})
	s.log("atlassim: admin: faults set to %+v", f)
	adminJSON(w, http.StatusOK, f)
}

// AdminBurst is the body of POST /_sim/burst429 (see Burst429).
type AdminBurst struct {
	N          int      `json:"n"`
	RetryAfter Duration `json:"retryAfter"`
}

func (s *Sim) adminBurst(w http.ResponseWriter, r *http.Request) {
	var b AdminBurst
	if err := decodeAdmin(r, &b); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	if b.N < 0 || b.RetryAfter < 0 {
		adminError(w, http.StatusBadRequest, fmt.Errorf("n %d and retryAfter %s must not be negative", b.N, time.Duration(b.RetryAfter)))
		return
	}
	s.Burst429(b.N, time.Duration(b.RetryAfter))
	adminJSON(w, http.StatusOK, b)
}

// AdminFail is the body of POST /_sim/fail: how many of the next snapshots,
// exports and flex restores end failed. Omitted fields leave their counter
// as it is; exports and exportsCancelled cannot both be positive, because
// one counter drives both (see FailNextExports).
type AdminFail struct {
	Snapshots        *int `json:"snapshots,omitempty"`
	Exports          *int `json:"exports,omitempty"`
	ExportsCancelled *int `json:"exportsCancelled,omitempty"`
	Restores         *int `json:"restores,omitempty"`
	// ClusterRestores of the next restore jobs of dedicated clusters end
	// ClusterRestoreEnd: failed (default), cancelled or expired.
	ClusterRestores   *int   `json:"clusterRestores,omitempty"`
	ClusterRestoreEnd string `json:"clusterRestoreEnd,omitempty"`
}

func (s *Sim) adminFail(w http.ResponseWriter, r *http.Request) {
	var f AdminFail
	if err := decodeAdmin(r, &f); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	for name, n := range map[string]*int{"snapshots": f.Snapshots, "exports": f.Exports, "exportsCancelled": f.ExportsCancelled, "restores": f.Restores, "clusterRestores": f.ClusterRestores} {
		if n != nil && *n < 0 {
			adminError(w, http.StatusBadRequest, fmt.Errorf("%s %d: must not be negative", name, *n))
			return
		}
	}
	if f.Exports != nil && f.ExportsCancelled != nil && *f.Exports > 0 && *f.ExportsCancelled > 0 {
		adminError(w, http.StatusBadRequest, errors.New("exports and exportsCancelled cannot both be positive: the next exports either fail or are cancelled"))
		return
	}
	if f.ClusterRestores != nil || f.ClusterRestoreEnd != "" {
		end := atlas.RestoreState(f.ClusterRestoreEnd)
		if end == "" {
			end = atlas.RestoreFailed
		}
		n := 0
		if f.ClusterRestores != nil {
			n = *f.ClusterRestores
		}
		if err := s.FailNextClusterRestores(n, end); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
	}
	if f.Snapshots != nil {
		s.FailNextSnapshots(*f.Snapshots)
	}
	switch {
	case f.ExportsCancelled != nil && *f.ExportsCancelled > 0:
		s.FailNextExports(*f.ExportsCancelled, true)
	case f.Exports != nil:
		s.FailNextExports(*f.Exports, false)
	case f.ExportsCancelled != nil:
		s.FailNextExports(0, true)
	}
	if f.Restores != nil {
		s.FailNextRestores(*f.Restores)
	}
	adminJSON(w, http.StatusOK, f)
}

// AdminClusterChange is the body of POST /_sim/clusters/{project}/{name}.
// Omitted fields are left as they are. Deleted removes the cluster (a flex
// cluster too) with its snapshots and jobs; it cannot be combined.
type AdminClusterChange struct {
	State   *atlas.ClusterState `json:"state,omitempty"`
	Paused  *bool               `json:"paused,omitempty"`
	Deleted bool                `json:"deleted,omitempty"`
}

func (s *Sim) adminCluster(w http.ResponseWriter, r *http.Request) {
	project, name := r.PathValue("project"), r.PathValue("name")
	var c AdminClusterChange
	if err := decodeAdmin(r, &c); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	if c.Deleted {
		if c.State != nil || c.Paused != nil {
			adminError(w, http.StatusBadRequest, errors.New("deleted cannot be combined with state or paused"))
			return
		}
		err := s.DeleteCluster(project, name)
		if errors.Is(err, ErrNotFound) {
			err = s.DeleteFlexCluster(project, name)
		}
		if err != nil {
			adminFleetError(w, err)
			return
		}
		s.log("atlassim: admin: deleted cluster %s/%s", project, name)
		adminJSON(w, http.StatusOK, c)
		return
	}
	if c.State != nil {
		if err := s.SetClusterState(project, name, *c.State); err != nil {
			adminFleetError(w, err)
			return
		}
	}
	if c.Paused != nil {
		if err := s.PauseCluster(project, name, *c.Paused); err != nil {
			adminFleetError(w, err)
			return
		}
	}
	s.log("atlassim: admin: changed cluster %s/%s", project, name)
	adminJSON(w, http.StatusOK, c)
}

func (s *Sim) adminBucket(w http.ResponseWriter, r *http.Request) {
	project, id := r.PathValue("project"), r.PathValue("id")
	if err := s.RemoveBucket(project, id); err != nil {
		adminFleetError(w, err)
		return
	}
	s.log("atlassim: admin: removed bucket %s from project %s", id, project)
	w.WriteHeader(http.StatusNoContent)
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("2s"); decoding also accepts a number of seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("duration %q: %w", x, err)
		}
		*d = Duration(p)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > float64(math.MaxInt64)/float64(time.Second) {
			return fmt.Errorf("duration %g seconds is out of range", x)
		}
		*d = Duration(x * float64(time.Second))
	default:
		return fmt.Errorf("duration %s: want a string such as \"2s\" or a number of seconds", b)
	}
	return nil
}

// decodeAdmin decodes one JSON object strictly: unknown fields and trailing
// data are errors, so a typo in a test never silently does nothing.
func decodeAdmin(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return fmt.Errorf("reading the request body: %w", err)
	}
	if len(data) > maxAdminBody {
		return fmt.Errorf("request body larger than %d bytes", maxAdminBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding the JSON body of %s %s: %w", r.Method, r.URL.Path, err)
	}
	if dec.More() {
		return fmt.Errorf("decoding the JSON body of %s %s: more than one JSON value", r.Method, r.URL.Path)
	}
	return nil
}

func adminFleetError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrNotFound) {
		status = http.StatusNotFound
	}
	adminError(w, status, err)
}

func adminError(w http.ResponseWriter, status int, err error) {
	adminJSON(w, status, map[string]string{"error": err.Error()})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, "application/json", v, false)
}
