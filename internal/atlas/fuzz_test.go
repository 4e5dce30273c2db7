package atlas

import (
	"net/http"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeResponses feeds arbitrary bytes to the decoder of every response
// type and to the error decoder: each must return a value or an error, never
// panic, and error messages must stay bounded, printable UTF-8.
func FuzzDecodeResponses(f *testing.F) {
	f.Add([]byte(`{"id":"5f1b2c3d4e5f60718293a4b5","status":"queued","type":"replicaSet","createdAt":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"results":[{"_id":"32b6e34b3d91647abb20e7b9","bucketName":"b","cloudProvider":"AWS"}],"totalCount":1}`))
	f.Add([]byte(`{"error":429,"errorCode":"RATE_LIMITED","detail":"slow","parameters":["x",1]}`))
	f.Add([]byte(`{"id":`))
	f.Add([]byte{})
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		decoders := []func() error{
			func() error { var v Snapshot; return decodeJSON(data, &v) },
			func() error { var v Page[Snapshot]; return decodeJSON(data, &v) },
			func() error { var v ExportJob; return decodeJSON(data, &v) },
			func() error { var v Page[ExportJob]; return decodeJSON(data, &v) },
			func() error { var v ExportBucket; return decodeJSON(data, &v) },
			func() error { var v Page[ExportBucket]; return decodeJSON(data, &v) },
			func() error { var v FlexSnapshot; return decodeJSON(data, &v) },
			func() error { var v Page[FlexSnapshot]; return decodeJSON(data, &v) },
			func() error { var v FlexRestoreJob; return decodeJSON(data, &v) },
			func() error { var v Page[FlexRestoreJob]; return decodeJSON(data, &v) },
			func() error { var v Cluster; return decodeJSON(data, &v) },
			func() error { var v Page[Cluster]; return decodeJSON(data, &v) },
			func() error { var v FlexCluster; return decodeJSON(data, &v) },
			func() error { var v Page[FlexCluster]; return decodeJSON(data, &v) },
		}
		for _, d := range decoders {
			_ = d() // a value or an error; a panic fails the fuzzer
		}
		for _, status := range []int{400, 429, 500, 503} {
			h := http.Header{"Retry-After": {string(data)}}
			e := decodeError(status, h, data, now)
			if e == nil || e.StatusCode != status {
				t.Fatalf("decodeError(%d) = %+v", status, e)
			}
			if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
				t.Fatalf("RetryAfter %s out of range", e.RetryAfter)
			}
			msg := e.Error()
			if !utf8.ValidString(msg) || len(e.Detail) > 4*maxSnippet+8 || len(e.ErrorCode) > maxSnippet+8 {
				t.Fatalf("unbounded or invalid message (%d bytes)", len(msg))
			}
		}
	})
}
