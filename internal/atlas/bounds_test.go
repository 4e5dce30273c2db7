package atlas

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

// hostile is a transport whose token endpoint is the fake Atlas and whose
// every API answer is a 200 streamed from answer, so tests can send answers
// of any size without holding them. It counts the body bytes the client read.
type hostile struct {
	fa *fakeAtlas
	// answer returns the body of the nth API request (from 1) and its
	// Content-Length (-1 when not declared).
	answer   func(r *http.Request, n int) (io.Reader, int64)
	requests atomic.Int32
	read     atomic.Int64
}

func (h *hostile) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == TokenPath {
		return handlerTransport{h.fa}.RoundTrip(req)
	}
	n := int(h.requests.Add(1))
	body, length := h.answer(req, n)
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {MediaSnapshots}},
		Body: io.NopCloser(&countingReader{r: body, n: &h.read}), ContentLength: length, Request: req,
	}, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// repeat is an endless reader of unit, over and over.
type repeat struct {
	unit string
	off  int
}

func (r *repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.unit[r.off]
		r.off = (r.off + 1) % len(r.unit)
	}
	return len(p), nil
}

// padded is prefix, then n bytes of 'a', then suffix.
func padded(prefix string, n int64, suffix string) io.Reader {
	return io.MultiReader(strings.NewReader(prefix), io.LimitReader(&repeat{unit: "a"}, n), strings.NewReader(suffix))
}

func newHostileClient(t testing.TB, h *hostile) *Client {
	t.Helper()
	h.fa = newFakeAtlas(t, nil)
	return newTestClient(t, nil, func(c *Config) { c.Transport = h; c.MaxAttempts = 2 })
}

// wantBound checks that err is the call's *Error carrying a *BoundError whose
// message is want.
func wantBound(t *testing.T, err error, op, want string) *Error {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Operation != op || !OverBound(err) {
		t.Fatalf("err = %v, want an over-bound *Error of %s", err, op)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
	return e
}

const slack = 64 << 10 // what a reader may fetch past a bound in one read

func TestHugeObjectAnswerFailsAtItsBound(t *testing.T) {
	for _, declared := range []bool{false, true} {
		t.Run(fmt.Sprintf("content-length declared %v", declared), func(t *testing.T) {
			const size = 100 << 20
			h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) {
				length := int64(-1)
				if declared {
					length = size + 40
				}
				return padded(`{"id":"`+testSnapshot+`","description":"`, size, `"}`), length
			}}
			c := newHostileClient(t, h)
			_, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet)
			wantBound(t, err, OpGetSnapshot, "answer of get_snapshot exceeds 1048576 bytes")
			if n := h.requests.Load(); n != 1 {
				t.Errorf("%d requests: an answer over its bound must not be fetched again", n)
			}
			limit := int64(MaxObjectBytes + slack)
			if declared {
				limit = 0 // the declared length is enough to refuse
			}
			if r := h.read.Load(); r > limit {
				t.Errorf("read %d bytes of the answer, want at most %d", r, limit)
			}
		})
	}
}

func TestHugeAnswerToPOSTIsOutcomeUnknown(t *testing.T) {
	h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) {
		return padded(`{"id":"`+testSnapshot+`","description":"`, 100<<20, `"}`), -1
	}}
	c := newHostileClient(t, h)
	_, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{Description: "x"})
	wantBound(t, err, OpTakeSnapshot, "answer of take_snapshot exceeds 1048576 bytes")
	if !OutcomeUnknown(err) {
		t.Errorf("err = %v: the POST may have happened, so its outcome is unknown", err)
	}
}

func TestAnswerElementsAreBounded(t *testing.T) {
	elems := func(prefix string, n int, suffix string) io.Reader {
		return strings.NewReader(prefix + strings.Repeat("{},", n-1) + "{}" + suffix)
	}
	t.Run("object", func(t *testing.T) {
		// 30 KB of JSON that would decode into 10,001 links.
		h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) {
			return elems(`{"id":"`+testSnapshot+`","links":[`, MaxObjectElements+1, `]}`), -1
		}}
		c := newHostileClient(t, h)
		_, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet)
		wantBound(t, err, OpGetSnapshot, "answer of get_snapshot exceeds 10000 array elements")
	})
	t.Run("page", func(t *testing.T) {
		// 150 KB of JSON that would decode into 50,001 snapshots (17 MB).
		h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) {
			return elems(`{"results":[`, MaxPageElements+1, `]}`), -1
		}}
		c := newHostileClient(t, h)
		_, err := c.Snapshots.List(t.Context(), testProject, "prod")
		wantBound(t, err, OpListSnapshots, "answer of list_snapshots exceeds 50000 array elements (at page 1)")
	})
	t.Run("at the limit", func(t *testing.T) {
		h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) {
			return elems(`{"id":"`+testSnapshot+`","links":[`, MaxObjectElements, `]}`), -1
		}}
		c := newHostileClient(t, h)
		s, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet)
		if err != nil || len(s.Links) != MaxObjectElements {
			t.Fatalf("an answer at its bound: %v", err)
		}
	})
}

func TestCountElements(t *testing.T) {
	for in, want := range map[string]int{
		`{}`:                           0,
		`[]`:                           0,
		`[ ]`:                          0,
		`[1]`:                          1,
		`[1, 2 ,3]`:                    3,
		`{"a":[{},{"b":[1,2]}],"c":1}`: 4,
		`["[1,2]", "\"],[", "x"]`:      3,
		`[[],[[]],[[],[]]]`:            6,
		`{"a":"[1,2,3]"}`:              0,
	} {
		if got := countElements([]byte(in), 100); got != want {
			t.Errorf("countElements(%s) = %d, want %d", in, got, want)
		}
	}
	if got := countElements([]byte(`[1,2,3,4,5]`), 2); got != 3 {
		t.Errorf("countElements past its limit = %d, want it to stop at 3", got)
	}
}

func TestHugePageFailsAtThePageBound(t *testing.T) {
	// A 339 MB cluster list in one page.
	h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) {
		return padded(`{"results":[{"name":"`, 339<<20, `"}]}`), -1
	}}
	c := newHostileClient(t, h)
	_, err := c.Clusters.List(t.Context(), testProject)
	wantBound(t, err, OpListClusters, "answer of list_clusters exceeds 8388608 bytes (at page 1)")
	if r := h.read.Load(); r > MaxPageBytes+slack {
		t.Errorf("read %d bytes, want at most the page bound", r)
	}
}

// fatPage is a full page of 500 clusters of about 14 KiB each (7 MB, under
// the page bound) that always offers a next page.
func fatPage() string {
	item := `{"name":"c","mongoDBVersion":"` + strings.Repeat("a", 14<<10) + `"}`
	return `{"results":[` + strings.Repeat(item+",", MaxItemsPerPage-1) + item +
		`],"links":[{"rel":"next","href":"https://cloud.mongodb.com/next"}]}`
}

func TestEndlessListFailsAtTheListingBytes(t *testing.T) {
	page := fatPage()
	h := &hostile{answer: func(_ *http.Request, n int) (io.Reader, int64) {
		if n > 10 {
			// Far past any bound: stop the test server from going on forever.
			return strings.NewReader(`{"results":[]}`), -1
		}
		return strings.NewReader(page), int64(len(page))
	}}
	c := newHostileClient(t, h)
	_, err := c.Clusters.List(t.Context(), testProject)
	e := wantBound(t, err, OpListClusters, "listing of list_clusters exceeds 16777216 bytes (at page 3)")
	if e.StatusCode != http.StatusOK {
		t.Errorf("status %d, want the 200 of the page that passed the bound", e.StatusCode)
	}
	if r := h.read.Load(); r > MaxListingBytes+slack {
		t.Errorf("read %d bytes, want at most the listing bound", r)
	}
}

func TestEndlessListFailsAtThePageCap(t *testing.T) {
	small := `{"results":[` + strings.Repeat(`{},`, MaxItemsPerPage-1) + `{}],"links":[{"rel":"next","href":"x"}]}`
	h := &hostile{answer: func(_ *http.Request, n int) (io.Reader, int64) {
		if n > MaxListingPages+10 {
			return strings.NewReader(`{"results":[]}`), -1
		}
		return strings.NewReader(small), -1
	}}
	c := newHostileClient(t, h)
	_, err := c.Clusters.List(t.Context(), testProject)
	wantBound(t, err, OpListClusters, "listing of list_clusters exceeds 100 pages: 50000 items read and the server keeps offering more")
	if n := h.requests.Load(); n != MaxListingPages {
		t.Errorf("%d requests, want %d", n, MaxListingPages)
	}
}

func TestListingElementsAreBounded(t *testing.T) {
	small := `{"results":[` + strings.Repeat(`{},`, MaxItemsPerPage-1) + `{}],"links":[{"rel":"next","href":"x"}]}`
	h := &hostile{answer: func(*http.Request, int) (io.Reader, int64) { return strings.NewReader(small), -1 }}
	c := newHostileClient(t, h)
	c.caps.listingElements = 1200 // a page is 501 elements: page 3 has 198 left
	_, err := c.Clusters.List(t.Context(), testProject)
	wantBound(t, err, OpListClusters, "listing of list_clusters exceeds 1200 array elements (at page 3)")
}

func TestNextLinkLoopFails(t *testing.T) {
	// The sharded list follows next links; this one points back at itself.
	h := &hostile{answer: func(r *http.Request, n int) (io.Reader, int64) {
		if n > 10 {
			return strings.NewReader(`{"results":[]}`), -1
		}
		return strings.NewReader(`{"results":[{"id":"` + testSnapshot + `"}],"links":[{"rel":"next","href":"https://cloud.mongodb.com` +
			r.URL.Path + `?pageNum=2"}]}`), -1
	}}
	c := newHostileClient(t, h)
	_, err := c.Snapshots.ListSharded(t.Context(), testProject, "prod")
	wantBound(t, err, OpListShardedSnapshots, "the next link of page 2 leads back to page 2, so the list would never end")
	if n := h.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// TestHostileAnswersAllocateWithinTheirBounds measures what the client
// allocates (runtime.MemStats.TotalAlloc, which no collection lowers) to
// refuse each hostile answer: a small multiple of the bound, whatever the
// server sends.
func TestHostileAnswersAllocateWithinTheirBounds(t *testing.T) {
	page := fatPage()
	cases := []struct {
		name   string
		answer func(*http.Request, int) (io.Reader, int64)
		call   func(*Client) error
		limit  uint64
	}{
		{"two concurrent 100 MB snapshots", func(*http.Request, int) (io.Reader, int64) {
			return padded(`{"id":"`+testSnapshot+`","description":"`, 100<<20, `"}`), -1
		}, func(c *Client) error {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Go(func() { _, errs[i] = c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet) })
			}
			wg.Wait()
			if !OverBound(errs[0]) || !OverBound(errs[1]) {
				return fmt.Errorf("errors %v", errs)
			}
			return nil
		}, 2 * 3 * MaxObjectBytes},
		{"339 MB cluster page", func(*http.Request, int) (io.Reader, int64) {
			return padded(`{"results":[{"name":"`, 339<<20, `"}]}`), -1
		}, func(c *Client) error { _, err := c.Clusters.List(t.Context(), testProject); return err }, 3 * MaxPageBytes},
		{"endless 7 MB pages", func(_ *http.Request, n int) (io.Reader, int64) {
			if n > 10 {
				return strings.NewReader(`{"results":[]}`), -1
			}
			return strings.NewReader(page), int64(len(page))
		}, func(c *Client) error { _, err := c.Clusters.List(t.Context(), testProject); return err }, 3 * MaxListingBytes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newHostileClient(t, &hostile{answer: tc.answer})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := tc.call(c)
			runtime.ReadMemStats(&after)
			if err != nil && !OverBound(err) {
				t.Fatalf("err = %v, want an over-bound error", err)
			}
			if err == nil && tc.name != "two concurrent 100 MB snapshots" {
				t.Fatal("the hostile answer was accepted")
			}
			got := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %.1f MiB", float64(got)/(1<<20))
			if got > tc.limit {
				t.Errorf("allocated %d bytes, want at most %d", got, tc.limit)
			}
		})
	}
}

func TestReadAtMost(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		limit    int64
		declared int64
		want     string
		over     bool
	}{
		{"empty", "", 8, -1, "", false},
		{"within, unknown length", "abc", 8, -1, "abc", false},
		{"exactly the bound", "abcdefgh", 8, -1, "abcdefgh", false},
		{"one byte over", "abcdefghi", 8, -1, "", true},
		{"declared right", "abc", 8, 3, "abc", false},
		{"declared short: the rest is read too", "abcdef", 8, 2, "abcdef", false},
		{"declared short and over", "abcdefghijk", 8, 2, "", true},
		{"declared long (a cut body)", "ab", 8, 6, "ab", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, over, err := readAtMost(strings.NewReader(tc.body), tc.limit, tc.declared)
			if err != nil || over != tc.over || string(got) != tc.want {
				t.Errorf("readAtMost = %q, over %v, err %v; want %q, over %v", got, over, err, tc.want, tc.over)
			}
		})
	}
	// A read error is the caller's to report, not an over-bound answer.
	_, over, err := readAtMost(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(io.ErrUnexpectedEOF)), 8, -1)
	if err == nil || over {
		t.Errorf("a failing body: over %v, err %v", over, err)
	}
}
