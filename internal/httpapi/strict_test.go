package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestTriggerStrictBody: a trigger body is exactly one JSON object whose
// keys are the documented names, each once, spelled exactly; anything else
// is a 400 naming the field and the rule, and triggers nothing. (A body of
// null used to trigger every target; a duplicate key used to win silently.)
func TestTriggerStrictBody(t *testing.T) {
	const path = "/api/v1/policies/nightly/trigger"
	good := `"projectID":"` + projectID + `","cluster":"prod-a"`
	for _, tc := range []struct {
		name, body, field, want string
	}{
		{"null", `null`, "", "must be a JSON object"},
		{"string", `"prod-a"`, "", "must be a JSON object"},
		{"number", `5`, "", "must be a JSON object"},
		{"array", `[]`, "", "must be a JSON object"},
		{"duplicate key", `{` + good + `,"cluster":"prod-b"}`, "cluster", `"cluster" is given twice`},
		{"case mismatch", `{"ProjectID":"` + projectID + `","cluster":"prod-a"}`, "ProjectID", `did you mean "projectID"`},
		{"all upper case", `{"projectID":"` + projectID + `","CLUSTER":"prod-a"}`, "CLUSTER", `did you mean "cluster"`},
		{"null value", `{"projectID":null,"cluster":"prod-a"}`, "projectID", "projectID must be a string, not null"},
		{"unknown field", `{` + good + `,"force":true}`, "force", `unknown field "force" (allowed: projectID, cluster)`},
		{"trailing object", `{` + good + `} {}`, "", "unexpected data after the JSON object"},
		{"trailing garbage", `{` + good + `}x`, "", "unexpected data after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.do(t, http.MethodPost, path, strings.NewReader(tc.body), jsonBearer(adminToken))
			e := r.apiError(t)
			if r.code != http.StatusBadRequest || e.Field != tc.field || !strings.Contains(e.Error, tc.want) {
				t.Errorf("= %d %+v, want 400 field %q error containing %q", r.code, e, tc.field, tc.want)
			}
			if h.backend.triggerCalls() != 0 {
				t.Error("backend Trigger called for a malformed body")
			}
		})
	}
	// The strict decoder still takes a well-formed body, with any spacing.
	h := newHarness(t)
	r := h.do(t, http.MethodPost, path, strings.NewReader(" {\n "+good+" }\n"), jsonBearer(adminToken))
	if r.code != http.StatusAccepted || h.backend.triggerCalls() != 1 {
		t.Fatalf("good body = %d %s", r.code, r.body)
	}
}

// TestStatusRejectsUnknownQuery: /api/v1/status takes no parameters, and
// like every endpoint answers an unknown one with 400 instead of ignoring it.
func TestStatusRejectsUnknownQuery(t *testing.T) {
	h := newHarness(t)
	r := h.do(t, http.MethodGet, "/api/v1/status?x=1", nil, nil)
	e := r.apiError(t)
	if r.code != http.StatusBadRequest || e.Field != "x" || !strings.Contains(e.Error, `unknown query parameter "x"`) || !strings.Contains(e.Error, "takes none") {
		t.Fatalf("GET /api/v1/status?x=1 = %d %+v, want 400 field x", r.code, e)
	}
	if r := h.do(t, http.MethodGet, "/api/v1/status", nil, nil); r.code != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %d", r.code)
	}
}
