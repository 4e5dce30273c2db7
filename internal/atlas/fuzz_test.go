package atlas

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeResponses feeds arbitrary bytes to the decoder of every response
// type, through the answer bound, and to the error decoder: each must return
// a value or an error, never panic; an answer over the bound must fail with
// a *BoundError and one within it must not; error messages must stay
// bounded, printable UTF-8, and a decoding error must not repeat the body
// (which may echo credentials).
func FuzzDecodeResponses(f *testing.F) {
	f.Add([]byte(`{"id":"5f1b2c3d4e5f60718293a4b5","status":"queued","type":"replicaSet","createdAt":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"results":[{"_id":"32b6e34b3d91647abb20e7b9","bucketName":"b","cloudProvider":"AWS"}],"totalCount":1}`))
	f.Add([]byte(`{"error":429,"errorCode":"RATE_LIMITED","detail":"slow","parameters":["x",1]}`))
	f.Add([]byte(`{"id":`))
	f.Add([]byte{})
	f.Add([]byte(`{"id":"5f1b2c3d4e5f60718293a4b5","description":"` + strings.Repeat("a", 4096) + `"}`)) // huge
	f.Add([]byte(`{"results":[` + strings.Repeat(`{},`, 64) + `{}]}`))                                   // mistyped: tiny elements, huge decoded
	f.Add([]byte(`{"results":[{"id":"a"}],"links":[{"rel":"next","href":"?pageNum=2"},{"rel":"next"`))   // endless, truncated
	f.Add([]byte(`{"id":{"Authorization":"Bearer tok-1 ` + testSecret + `"},"status":7}`))               // echoed credentials
	f.Add([]byte(`Authorization: Bearer tok-1` + "\r\n" + `Authorization: Basic bWRiX3NhX2lkX3Rlc3Q6bWRiX3NhX3NrX1RPUFNFQ1JFVA==`))
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// A small bound, so that the fuzzer reaches it ("huge" answers) with
	// inputs it can mutate quickly.
	fuzzBound := answerBound{op: OpGetSnapshot, bytes: 2048, elements: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		decode := func(out any) error {
			_, err := readAnswer(bytes.NewReader(data), -1, fuzzBound, out)
			return err
		}
		decoders := []func() error{
			func() error { var v Snapshot; return decode(&v) },
			func() error { var v Page[Snapshot]; return decode(&v) },
			func() error { var v ExportJob; return decode(&v) },
			func() error { var v Page[ExportJob]; return decode(&v) },
			func() error { var v ExportBucket; return decode(&v) },
			func() error { var v Page[ExportBucket]; return decode(&v) },
			func() error { var v FlexSnapshot; return decode(&v) },
			func() error { var v Page[FlexSnapshot]; return decode(&v) },
			func() error { var v FlexRestoreJob; return decode(&v) },
			func() error { var v Page[FlexRestoreJob]; return decode(&v) },
			func() error { var v Cluster; return decode(&v) },
			func() error { var v Page[Cluster]; return decode(&v) },
			func() error { var v FlexCluster; return decode(&v) },
			func() error { var v Page[FlexCluster]; return decode(&v) },
		}
		decoders = append(decoders, nativeDecoders(decode)...)
		over := int64(len(data)) > fuzzBound.bytes || countElements(data, fuzzBound.elements) > fuzzBound.elements
		for _, d := range decoders {
			err := d() // a value or an error; a panic fails the fuzzer
			var b *BoundError
			if isBound := errors.As(err, &b); isBound != over {
				t.Fatalf("%d bytes, over the bound %v: err = %v", len(data), over, err)
			}
			if err != nil && (len(err.Error()) > 512 || strings.Contains(err.Error(), testSecret)) {
				t.Fatalf("decoding error repeats the body: %v", err)
			}
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
