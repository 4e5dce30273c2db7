package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/run"
)

// Validation rules, as in DESIGN.md; the error messages quote them.
var (
	policyNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	projectIDRE   = regexp.MustCompile(`^[a-f0-9]{24}$`)
	clusterNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*$`)
)

// apiError is the body of every JSON error answer.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the parameter or body field at fault
}

// standbyAnswer is the body of a trigger refused by a standby replica:
// leader is the identity of the replica that acts, "" when none is known.
type standbyAnswer struct {
	Error   string `json:"error"`
	Standby bool   `json:"standby"`
	Leader  string `json:"leader"`
}

// runsResponse is the body of GET /api/v1/runs and of a trigger's 202.
type runsResponse struct {
	Runs []run.Run `json:"runs"`
	// Next is the cursor of the following page; absent on the last one.
	Next string `json:"next,omitempty"`
}

// triggerRequest is the optional body of POST .../trigger.
type triggerRequest struct {
	ProjectID string `json:"projectID"`
	Cluster   string `json:"cluster"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		// The method-less pattern is less specific, so it only sees the
		// methods the route does not serve.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, allow), "")
		})
	}
	if s.cfg.Metrics != nil {
		handle(http.MethodGet, "/metrics", s.cfg.Metrics.ServeHTTP)
	}
	handle(http.MethodGet, "/healthz", s.probe(s.cfg.Healthy, "unhealthy"))
	handle(http.MethodGet, "/readyz", s.probe(s.cfg.Ready, "not ready"))
	handle(http.MethodGet, "/api/v1/status", s.status)
	handle(http.MethodGet, "/api/v1/runs", s.runs)
	handle(http.MethodGet, "/api/v1/runs/{id}", s.runByID)
	handle(http.MethodGet, "/api/v1/report", s.report)
	handle(http.MethodPost, "/api/v1/policies/{name}/trigger", s.trigger)
	handle(http.MethodGet, "/debug/pprof/{name}", s.profile)
	if s.cfg.Page != nil {
		mux.Handle("/{$}", s.cfg.Page)
		mux.Handle("/ui/", s.cfg.Page)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint", "")
	})
	return mux
}

// probe answers 200 "ok" when check passes and 503 with its reason when not.
func (s *Server) probe(check func() error, failure string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if check != nil {
			if err := check(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, "%s: %s\n", failure, err)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if field, msg := checkQuery(r.URL.Query()); field != "" {
		writeError(w, http.StatusBadRequest, msg, field)
		return
	}
	if s.cfg.Backend == nil {
		writeError(w, http.StatusServiceUnavailable, "status is not available yet", "")
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Backend.Status(r.Context()))
}

func (s *Server) trigger(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	name := r.PathValue("name")
	if !policyNameRE.MatchString(name) {
		writeError(w, http.StatusBadRequest, "policy name must match "+policyNameRE.String(), "name")
		return
	}
	target, status, apiErr := parseTarget(w, r)
	if apiErr != nil {
		writeError(w, status, apiErr.Error, apiErr.Field)
		return
	}
	if s.cfg.Backend == nil {
		writeError(w, http.StatusServiceUnavailable, "triggers are not available yet", "")
		return
	}
	runs, err := s.cfg.Backend.Trigger(r.Context(), name, target)
	var standby *StandbyError
	switch {
	case errors.As(err, &standby):
		writeJSON(w, http.StatusServiceUnavailable, standbyAnswer{Error: standby.Error(), Leader: standby.Leader, Standby: true})
		return
	case errors.Is(err, ErrUnknownPolicy):
		writeError(w, http.StatusNotFound, fmt.Sprintf("policy %q is not configured", name), "name")
		return
	case errors.Is(err, ErrUnknownTarget):
		msg := fmt.Sprintf("policy %q resolves to no target", name)
		if target != nil {
			msg = fmt.Sprintf("policy %q does not act on %s", name, target)
		}
		writeError(w, http.StatusNotFound, msg, "cluster")
		return
	case err != nil:
		s.log.Error("trigger policy", zap.String("policy", name), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "trigger policy: "+err.Error(), "")
		return
	}
	if runs == nil {
		runs = []run.Run{}
	}
	fields := []zap.Field{zap.String("policy", name), zap.Int("runs", len(runs))}
	if target != nil {
		fields = append(fields, zap.String("project", target.ProjectID), zap.String("cluster", target.Cluster))
	}
	s.log.Info("manual trigger", fields...)
	writeJSON(w, http.StatusAccepted, runsResponse{Runs: runs})
}

// authorize checks the bearer token of a mutating request and answers 403
// (no token configured) or 401 (missing or wrong token) itself. The token
// is compared in constant time and never echoed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	want := ""
	if s.cfg.AdminToken != nil {
		want = s.cfg.AdminToken()
	}
	if want == "" {
		writeError(w, http.StatusForbidden, "the admin API is disabled: no admin token is configured (server.adminTokenFile)", "")
		return false
	}
	got, ok := bearerToken(r.Header.Get("Authorization"))
	// Hashing first makes the comparison constant-time in the length too.
	gotSum, wantSum := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	if !ok || subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="backupd"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token in the Authorization header", "")
		return false
	}
	return true
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive.
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// parseTarget reads the optional target of a trigger from the query or a
// JSON body (not both): projectID and cluster together, or neither (nil).
func parseTarget(w http.ResponseWriter, r *http.Request) (*run.Target, int, *apiError) {
	q := r.URL.Query()
	if field, msg := checkQuery(q, "projectID", "cluster"); field != "" {
		return nil, http.StatusBadRequest, &apiError{msg, field}
	}
	fromQuery := triggerRequest{ProjectID: q.Get("projectID"), Cluster: q.Get("cluster")}

	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return nil, http.StatusRequestEntityTooLarge, &apiError{Error: fmt.Sprintf("request body exceeds %d bytes", maxBodyBytes)}
		}
		return nil, http.StatusBadRequest, &apiError{Error: "read request body: " + err.Error()}
	}
	var fromBody triggerRequest
	if len(bytes.TrimSpace(data)) > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return nil, http.StatusUnsupportedMediaType, &apiError{Error: "a request body must be JSON with Content-Type: application/json"}
		}
		if apiErr := decodeJSON(data, &fromBody); apiErr != nil {
			return nil, http.StatusBadRequest, apiErr
		}
	}
	req := fromQuery
	if fromBody != (triggerRequest{}) {
		if fromQuery != (triggerRequest{}) {
			return nil, http.StatusBadRequest, &apiError{Error: "give projectID and cluster either in the query or in the body, not both"}
		}
		req = fromBody
	}
	switch {
	case req.ProjectID == "" && req.Cluster == "":
		return nil, 0, nil
	case req.ProjectID == "":
		return nil, http.StatusBadRequest, &apiError{"projectID is required when cluster is given (both or neither)", "projectID"}
	case req.Cluster == "":
		return nil, http.StatusBadRequest, &apiError{"cluster is required when projectID is given (both or neither)", "cluster"}
	case !projectIDRE.MatchString(req.ProjectID):
		return nil, http.StatusBadRequest, &apiError{"projectID must match " + projectIDRE.String(), "projectID"}
	case !clusterNameRE.MatchString(req.Cluster) || len(req.Cluster) > 64:
		return nil, http.StatusBadRequest, &apiError{"cluster must match " + clusterNameRE.String() + " and be at most 64 characters", "cluster"}
	}
	return &run.Target{ProjectID: req.ProjectID, Cluster: req.Cluster}, 0, nil
}

// decodeJSON strictly decodes exactly one JSON object into the struct v
// points to. encoding/json alone accepts null and other non-objects as "no
// fields", lets a repeated key win silently and matches names ignoring
// case, so the keys are checked first, token by token: each must be one of
// v's json names exactly, given once, with a non-null value. Unknown
// fields, wrong types and trailing data are errors too, named by field
// where there is one.
func decodeJSON(data []byte, v any) *apiError {
	names, kinds := jsonFields(v)
	if apiErr := checkKeys(data, names, kinds); apiErr != nil {
		return apiErr
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return &apiError{fmt.Sprintf("invalid JSON body: %s must be a %s", te.Field, kinds[te.Field]), te.Field}
		}
		return &apiError{Error: "invalid JSON body: " + err.Error()}
	}
	return nil
}

// checkKeys walks the top level of data: one object, whose keys are in
// names exactly and at most once and whose values are not null, then the
// end of the input.
func checkKeys(data []byte, names []string, kinds map[string]string) *apiError {
	dec := json.NewDecoder(bytes.NewReader(data))
	syntax := func(err error) *apiError {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return &apiError{Error: "invalid JSON body: " + err.Error()}
	}
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if tok != json.Delim('{') {
		return &apiError{Error: fmt.Sprintf("invalid JSON body: must be a JSON object with the fields %s, not %s", strings.Join(names, ", "), jsonKind(tok))}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		key, _ := tok.(string) // inside an object the decoder yields only string keys
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return syntax(err)
		}
		switch {
		case !slices.Contains(names, key):
			for _, n := range names {
				if strings.EqualFold(n, key) {
					return &apiError{fmt.Sprintf("invalid JSON body: unknown field %q (field names are case-sensitive: did you mean %q?)", key, n), key}
				}
			}
			return &apiError{fmt.Sprintf("invalid JSON body: unknown field %q (allowed: %s)", key, strings.Join(names, ", ")), key}
		case seen[key]:
			return &apiError{fmt.Sprintf("invalid JSON body: field %q is given twice; give it once", key), key}
		case string(value) == "null":
			return &apiError{fmt.Sprintf("invalid JSON body: %s must be a %s, not null", key, kinds[key]), key}
		}
		seen[key] = true
	}
	if _, err := dec.Token(); err != nil {
		return syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &apiError{Error: "invalid JSON body: unexpected data after the JSON object"}
	}
	return nil
}

// jsonFields lists the json names of the fields of the struct v points to,
// in declaration order, with each field's Go kind for messages.
func jsonFields(v any) ([]string, map[string]string) {
	t := reflect.TypeOf(v).Elem()
	var names []string
	kinds := map[string]string{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		kinds[name] = f.Type.Kind().String()
	}
	return names, kinds
}

// jsonKind names the JSON value a token starts, for "not an object" errors.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	}
	return "an array"
}

// checkQuery rejects query parameters outside allowed and repeated ones, so
// a typo is an error rather than silently ignored.
func checkQuery(q map[string][]string, allowed ...string) (field, msg string) {
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		switch {
		case !known && len(allowed) == 0:
			return k, fmt.Sprintf("unknown query parameter %q (this endpoint takes none)", k)
		case !known:
			return k, fmt.Sprintf("unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return k, fmt.Sprintf("query parameter %q given %d times; give it once", k, len(vs))
		}
	}
	return "", ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only unsupported types can fail here: a programming error.
		status, body = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, apiError{Error: msg, Field: field})
}
