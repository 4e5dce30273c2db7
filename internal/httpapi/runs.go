package httpapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// runIDRE is the shape of the ids run.NewID derives; anything else cannot
// name a run, so it is a malformed request rather than an unknown run.
var runIDRE = regexp.MustCompile(`^[0-9a-f]{20}$`)

// stages are the values the stage filter accepts, in run-model order.
var stages = []run.Stage{
	run.StagePending, run.StageWaiting, run.StageSnapshotting, run.StageExporting,
	run.StageRestoring, run.StageVerifying, run.StageSucceeded, run.StageFailed, run.StageSkipped,
}

// results are the values the result filter accepts: run.Run.Result's, the
// result label of backupd_runs_total.
var results = []string{"success", "failure", "timeout"}

// RunQuery is what GET /api/v1/runs asks of the Backend. Empty fields
// select everything.
type RunQuery struct {
	Policy    string
	ProjectID string
	Cluster   string
	// Stages keeps runs in any of these stages.
	Stages []run.Stage
	// Result keeps runs whose run.Run.Result is this.
	Result string
	// Since keeps runs created at or after it.
	Since time.Time
	// After continues a listing after the run it names (zero: from the
	// newest run).
	After Cursor
	// Limit is how many runs to return at most (always > 0).
	Limit int
}

// Match reports whether r passes every filter of q; After and Limit are
// the caller's to apply.
func (q RunQuery) Match(r run.Run) bool {
	switch {
	case q.Policy != "" && r.Policy != q.Policy,
		q.ProjectID != "" && r.Target.ProjectID != q.ProjectID,
		q.Cluster != "" && r.Target.Cluster != q.Cluster,
		len(q.Stages) > 0 && !slices.Contains(q.Stages, r.Stage),
		q.Result != "" && r.Result() != q.Result,
		!q.Since.IsZero() && r.CreatedAt.Before(q.Since):
		return false
	}
	return true
}

// Cursor is a position in the run history: the run a page ended with.
// Clients see it only encoded, as an opaque string.
type Cursor struct {
	CreatedAt time.Time
	ID        run.ID
}

// IsZero reports whether c is the start of the history.
func (c Cursor) IsZero() bool { return c.ID == "" }

// String encodes c for the next field of an answer.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%s", c.CreatedAt.UnixNano(), c.ID))
}

// parseCursor decodes a cursor String produced.
func parseCursor(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, errors.New("not base64url")
	}
	ns, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !runIDRE.MatchString(id) {
		return Cursor{}, errors.New("not a cursor")
	}
	return Cursor{CreatedAt: time.Unix(0, n).UTC(), ID: run.ID(id)}, nil
}

// parseRunQuery validates the query of GET /api/v1/runs. Errors name the
// parameter and the rule.
func (s *Server) parseRunQuery(q map[string][]string) (RunQuery, *apiError) {
	if field, msg := checkQuery(q, "policy", "projectID", "cluster", "stage", "result", "since", "cursor", "limit"); field != "" {
		return RunQuery{}, &apiError{msg, field}
	}
	get := func(k string) (string, bool) {
		if vs, ok := q[k]; ok {
			return vs[0], true
		}
		return "", false
	}
	rq := RunQuery{Limit: defaultRunsLimit}
	if v, ok := get("policy"); ok {
		if !policyNameRE.MatchString(v) {
			return rq, &apiError{"policy must match " + policyNameRE.String(), "policy"}
		}
		rq.Policy = v
	}
	if v, ok := get("projectID"); ok {
		if !projectIDRE.MatchString(v) {
			return rq, &apiError{"projectID must match " + projectIDRE.String(), "projectID"}
		}
		rq.ProjectID = v
	}
	if v, ok := get("cluster"); ok {
		if !clusterNameRE.MatchString(v) || len(v) > 64 {
			return rq, &apiError{"cluster must match " + clusterNameRE.String() + " and be at most 64 characters", "cluster"}
		}
		rq.Cluster = v
	}
	if v, ok := get("stage"); ok {
		for st := range strings.SplitSeq(v, ",") {
			if !slices.Contains(stages, run.Stage(st)) {
				return rq, &apiError{fmt.Sprintf("stage %q is not a stage: give one or more, comma-separated, of %s", st, joinStages()), "stage"}
			}
			if !slices.Contains(rq.Stages, run.Stage(st)) {
				rq.Stages = append(rq.Stages, run.Stage(st))
			}
		}
	}
	if v, ok := get("result"); ok {
		if !slices.Contains(results, v) {
			return rq, &apiError{fmt.Sprintf("result must be one of %s", strings.Join(results, ", ")), "result"}
		}
		rq.Result = v
	}
	if v, ok := get("since"); ok {
		since, err := parseSince(v, s.clk.Now())
		if err != nil {
			return rq, &apiError{err.Error(), "since"}
		}
		rq.Since = since
	}
	if v, ok := get("cursor"); ok {
		c, err := parseCursor(v)
		if err != nil {
			return rq, &apiError{"cursor must be the next value of an earlier answer, unchanged (" + err.Error() + ")", "cursor"}
		}
		rq.After = c
	}
	if v, ok := get("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRunsLimit {
			return rq, &apiError{fmt.Sprintf("limit must be an integer from 1 to %d (default %d)", maxRunsLimit, defaultRunsLimit), "limit"}
		}
		rq.Limit = n
	}
	return rq, nil
}

// parseSince reads an RFC 3339 time or a positive duration back from now,
// in the config's syntax ("24h", "90m", "7d").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := policy.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("since must be an RFC 3339 time (2026-03-01T02:00:00Z) or a positive duration back from now (24h, 90m, 7d), not %q", v)
	}
	return now.Add(-d), nil
}

func joinStages() string {
	names := make([]string, len(stages))
	for i, st := range stages {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	q, apiErr := s.parseRunQuery(r.URL.Query())
	if apiErr != nil {
		writeError(w, http.StatusBadRequest, apiErr.Error, apiErr.Field)
		return
	}
	if s.cfg.Backend == nil {
		writeError(w, http.StatusServiceUnavailable, "run history is not available yet", "")
		return
	}
	limit := q.Limit
	q.Limit++ // one more than asked tells whether there is a next page
	runs, err := s.cfg.Backend.Runs(r.Context(), q)
	switch {
	case errors.Is(err, ErrUnknownPolicy):
		writeError(w, http.StatusNotFound, fmt.Sprintf("policy %q is not configured", q.Policy), "policy")
		return
	case err != nil:
		s.log.Error("list runs", zap.String("policy", q.Policy), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "list runs: "+err.Error(), "")
		return
	}
	resp := runsResponse{Runs: runs}
	if len(runs) > limit {
		resp.Runs = runs[:limit]
		last := resp.Runs[limit-1]
		resp.Next = Cursor{CreatedAt: last.CreatedAt, ID: last.ID}.String()
	}
	if resp.Runs == nil {
		resp.Runs = []run.Run{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) runByID(w http.ResponseWriter, r *http.Request) {
	if field, msg := checkQuery(r.URL.Query()); field != "" {
		writeError(w, http.StatusBadRequest, msg, field)
		return
	}
	id := r.PathValue("id")
	if !runIDRE.MatchString(id) {
		writeError(w, http.StatusBadRequest, "run id must match "+runIDRE.String(), "id")
		return
	}
	if s.cfg.Backend == nil {
		writeError(w, http.StatusServiceUnavailable, "run history is not available yet", "")
		return
	}
	got, found, err := s.cfg.Backend.Run(r.Context(), run.ID(id))
	switch {
	case err != nil:
		s.log.Error("get run", zap.String("run", id), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "get run: "+err.Error(), "")
	case !found:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no run %s in the journal (it may have been pruned)", id), "id")
	default:
		writeJSON(w, http.StatusOK, got)
	}
}
