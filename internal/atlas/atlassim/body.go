package atlassim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"

	"github.com/backupd/backupd/internal/atlas"
)

// bodyFields validates a JSON request body field by field, collecting every
// violation so one 400 VALIDATION_ERROR names them all, as Atlas's
// badRequestDetail.fields does.
type bodyFields struct {
	m   map[string]json.RawMessage
	bad []atlas.FieldViolation
}

// parseBody decodes a JSON object. writable are the fields a client may send;
// readOnly are schema properties Atlas ignores in requests. Anything else is
// a violation. A JSON null body is treated as {} when nullable.
func parseBody(body []byte, nullable bool, writable, readOnly []string) (*bodyFields, *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, newErr(http.StatusBadRequest, CodeInvalidJSON, "Received JSON does not match expected format: the request body is empty.")
	}
	if bytes.Equal(trimmed, []byte("null")) {
		if nullable {
			return &bodyFields{m: map[string]json.RawMessage{}}, nil
		}
		return nil, newErr(http.StatusBadRequest, CodeInvalidJSON, "Received JSON does not match expected format: the body must be a JSON object.")
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&m); err != nil || dec.More() {
		return nil, newErr(http.StatusBadRequest, CodeInvalidJSON, "Received JSON does not match expected format: the body must be one JSON object.")
	}
	f := &bodyFields{m: m}
	known := map[string]bool{}
	for _, k := range writable {
		known[k] = true
	}
	for _, k := range readOnly {
		known[k] = true
	}
	var unknown []string
	for k := range m {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		f.fail(k, "is not a property of this request body")
	}
	return f, nil
}

func (f *bodyFields) fail(field, description string) {
	f.bad = append(f.bad, atlas.FieldViolation{Field: field, Description: description})
}

func (f *bodyFields) err() *apiError {
	if len(f.bad) == 0 {
		return nil
	}
	return errValidation(f.bad...)
}

func present(raw json.RawMessage) bool {
	return raw != nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str returns a string field; a missing required field is a violation.
func (f *bodyFields) str(key string, required bool) string {
	raw, ok := f.m[key]
	if !ok || !present(raw) {
		if required {
			f.fail(key, "is required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.fail(key, "must be a string")
		return ""
	}
	return s
}

// pattern returns a string field that must match re.
func (f *bodyFields) pattern(key string, required bool, re *regexp.Regexp) string {
	n := len(f.bad)
	s := f.str(key, required)
	if len(f.bad) == n && (s != "" || present(f.m[key])) && !re.MatchString(s) {
		f.fail(key, fmt.Sprintf("must match %s", re))
	}
	return s
}

// int32 returns an integer field and whether it was present.
func (f *bodyFields) int32(key string) (int, bool) {
	raw, ok := f.m[key]
	if !ok || !present(raw) {
		return 0, false
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil || v != math.Trunc(v) || v > math.MaxInt32 || v < math.MinInt32 {
		f.fail(key, "must be a 32-bit integer")
		return 0, false
	}
	return int(v), true
}

// labels returns customData: an array of {key, value} strings.
func (f *bodyFields) labels(key string) []atlas.Label {
	raw, ok := f.m[key]
	if !ok || !present(raw) {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		f.fail(key, "must be an array of {key, value} objects")
		return nil
	}
	out := make([]atlas.Label, 0, len(items))
	for i, item := range items {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(item, &m); err != nil || m == nil {
			f.fail(fmt.Sprintf("%s[%d]", key, i), "must be a {key, value} object")
			continue
		}
		sub := &bodyFields{m: m}
		var extra []string
		for k := range m {
			if k != "key" && k != "value" {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		for _, k := range extra {
			sub.fail(k, "is not a property of BackupLabel")
		}
		l := atlas.Label{Key: sub.str("key", false), Value: sub.str("value", false)}
		for _, b := range sub.bad {
			f.fail(fmt.Sprintf("%s[%d].%s", key, i, b.Field), b.Description)
		}
		out = append(out, l)
	}
	return out
}
