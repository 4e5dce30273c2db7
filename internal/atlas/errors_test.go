package atlas

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestErrorMessage(t *testing.T) {
	path := "/api/atlas/v2/groups/" + testProject + "/clusters/prod/backup/snapshots"
	body := `{"detail":"Another on-demand snapshot is queued or in progress.","error":400,"errorCode":"UNFINISHED_ON_DEMAND_SNAPSHOT","parameters":[],"reason":"Bad Request"}`
	e := decodeError(400, http.Header{}, []byte(body), time.Now())
	e.Operation, e.Method, e.Path = OpTakeSnapshot, "POST", path
	want := "atlas take_snapshot POST " + path + ": 400 UNFINISHED_ON_DEMAND_SNAPSHOT: Another on-demand snapshot is queued or in progress."
	if e.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", e.Error(), want)
	}
	wrapped := fmt.Errorf("run r1: %w", e)
	if !IsCode(wrapped, "X", CodeUnfinishedOnDemandSnapshot) || IsCode(wrapped, CodeClusterNotFound) || IsCode(errors.New("x"), "") {
		t.Error("IsCode mismatch")
	}
	if got, ok := AsError(wrapped); !ok || got != e {
		t.Error("AsError did not find the *Error")
	}
	if IsNotFound(wrapped) || IsRateLimited(wrapped) || OutcomeUnknown(wrapped) {
		t.Error("helpers true for a 400")
	}
}

func TestDecodeErrorVariants(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		status       int
		header       http.Header
		body         string
		code, detail string
		retryAfter   time.Duration
		fields       int
	}{
		{name: "rate limited", status: 429, header: http.Header{"Retry-After": {"55"}},
			body: `{"detail":"Rate limit exceeded","error":429,"errorCode":"RATE_LIMITED_TOKEN_BUCKET","parameters":["api/atlas/v2/orgs",55,10,5,60],"reason":"Too Many Requests"}`,
			code: "RATE_LIMITED_TOKEN_BUCKET", detail: "Rate limit exceeded", retryAfter: 55 * time.Second},
		{name: "validation", status: 400,
			body: `{"error":400,"errorCode":"VALIDATION_ERROR","detail":"bad","badRequestDetail":{"fields":[{"field":"retentionInDays","description":"must be >= 1"}]}}`,
			code: "VALIDATION_ERROR", detail: "bad", fields: 1},
		{name: "empty body", status: 502, detail: ""},
		{name: "html", status: 503, body: "<html><body>Service Unavailable</body></html>", detail: "unparsed body: <html><body>Service Unavailable</body></html>"},
		{name: "truncated json", status: 500, body: `{"error":500,"errorCode":"UNEXP`, detail: `unparsed body: {"error":500,"errorCode":"UNEXP`},
		{name: "json without fields", status: 404, body: `{"hello":1}`, detail: `unparsed body: {"hello":1}`},
		{name: "json array", status: 400, body: `[1,2]`, detail: `unparsed body: [1,2]`},
		{name: "binary", status: 500, body: "\x00\x01ok\nline", detail: "unparsed body: ok line"},
		{name: "http date", status: 503, header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, retryAfter: 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			e := decodeError(tt.status, h, []byte(tt.body), now)
			if e.StatusCode != tt.status || e.ErrorCode != tt.code || e.Detail != tt.detail || e.RetryAfter != tt.retryAfter || len(e.Fields) != tt.fields {
				t.Errorf("decodeError = %+v", e)
			}
			msg := e.Error()
			if !strings.Contains(msg, fmt.Sprint(tt.status)) {
				t.Errorf("message %q lacks the status", msg)
			}
		})
	}
	// A huge body is cut to a bounded, valid snippet.
	huge := strings.Repeat("é", 10000)
	e := decodeError(500, http.Header{}, []byte(huge), now)
	if len(e.Detail) > maxSnippet+64 || !utf8.ValidString(e.Detail) || !strings.HasSuffix(e.Detail, "…") {
		t.Errorf("huge body gave detail of %d bytes (valid %v)", len(e.Detail), utf8.ValidString(e.Detail))
	}
	// Field violations appear in the message.
	v := decodeError(400, http.Header{}, []byte(`{"error":400,"errorCode":"VALIDATION_ERROR","badRequestDetail":{"fields":[{"field":"snapshotId","description":"invalid"}]}}`), now)
	if !strings.Contains(v.Error(), "snapshotId: invalid") || !strings.Contains(v.Error(), "400 VALIDATION_ERROR: Bad Request") {
		t.Errorf("message %q", v.Error())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 12 ", 12 * time.Second},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999", maxRetryAfter},
		{"99999999999999999999", maxRetryAfter}, // beyond int64: saturates, then capped
		{"315360000", time.Hour},                // ten years
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	nf := &Error{Operation: OpGetSnapshot, Method: "GET", Path: "/p", StatusCode: 404, ErrorCode: "SNAPSHOT_NOT_FOUND"}
	rl := &Error{Operation: OpGetSnapshot, Method: "GET", Path: "/p", StatusCode: 429, ErrorCode: "RATE_LIMITED", Attempts: 6}
	unk := &Error{Operation: OpCreateExport, Method: "POST", Path: "/p", Err: errors.New("connection reset by peer"), OutcomeUnknown: true}
	if !IsNotFound(nf) || IsNotFound(rl) || !IsRateLimited(rl) || IsRateLimited(nf) || !OutcomeUnknown(unk) || OutcomeUnknown(nf) {
		t.Error("helper mismatch")
	}
	if got := unk.Error(); got != "atlas create_export POST /p: connection reset by peer [outcome unknown: list before creating again]" {
		t.Errorf("unknown-outcome message %q", got)
	}
	if got := rl.Error(); got != "atlas get_snapshot GET /p: 429 RATE_LIMITED: Too Many Requests [after 6 attempts]" {
		t.Errorf("rate-limit message %q", got)
	}
	if !errors.Is(unk, unk.Err) {
		t.Error("Unwrap does not expose the cause")
	}
	if _, ok := AsError(errors.New("plain")); ok {
		t.Error("AsError found an *Error in a plain error")
	}
}
