package httpapi

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// FuzzRequest feeds arbitrary request bodies and query strings to the
// parsers of the API's inputs: a trigger's JSON body, the report query,
// a runs cursor and since. None may panic; every refusal must say what is
// wrong (a query refusal naming the parameter at fault); an accepted body must be one JSON object; an accepted cursor
// must be one the server could have written.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"projectID":"32b6e34b3d91647abb20e7b8","cluster":"prod-main"}`), "since=24h&policy=nightly-*,weekly&cluster=prod-*")
	f.Add([]byte(`{"projectID":"32b6e34b3d91647abb20e7b8","projectID":"x"}`), "from=2026-03-01T00:00:00Z&to=2026-03-31T00:00:00Z&format=csv")
	f.Add([]byte(`null`), "since=7d&from=2026-03-01T00:00:00Z")
	f.Add([]byte(`{"cluster":null} {}`), "cursor="+Cursor{CreatedAt: time.Unix(1, 2), ID: "0123456789abcdef0123"}.String())
	f.Add([]byte(`[`), "policy=&cluster=%zz&since=-1h")
	now := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, rawQuery string) {
		var req triggerRequest
		if apiErr := decodeJSON(body, &req); apiErr != nil {
			if apiErr.Error == "" {
				t.Fatalf("decodeJSON(%q) refused with %+v", body, apiErr)
			}
		} else {
			var obj map[string]json.RawMessage
			if json.Unmarshal(body, &obj) != nil || obj == nil {
				t.Fatalf("decodeJSON accepted %q, not one JSON object", body)
			}
		}

		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		if rq, _, apiErr := parseReportQuery(q, now); apiErr != nil {
			if _, given := q[apiErr.Field]; apiErr.Error == "" || !given && apiErr.Field != "from" && apiErr.Field != "since" {
				t.Fatalf("parseReportQuery(%q) refused with %+v", rawQuery, apiErr)
			}
		} else if !rq.From.Before(rq.To) {
			t.Fatalf("parseReportQuery(%q) accepted the period %s..%s", rawQuery, rq.From, rq.To)
		}
		for _, v := range q["cursor"] {
			c, err := parseCursor(v)
			if err != nil {
				if err.Error() == "" {
					t.Fatal("parseCursor refused without a reason")
				}
				continue
			}
			if again, err := parseCursor(c.String()); err != nil || !again.CreatedAt.Equal(c.CreatedAt) || again.ID != c.ID {
				t.Fatalf("cursor %q decodes to %+v, which encodes to %q and decodes to %+v, %v", v, c, c.String(), again, err)
			}
		}
		for _, v := range q["since"] {
			if _, err := parseSince(v, now); err != nil && err.Error() == "" {
				t.Fatalf("parseSince(%q) refused without a reason", v)
			}
		}
	})
}
