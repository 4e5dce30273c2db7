package atlassim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Transport returns an http.RoundTripper that calls ServeHTTP in the calling
// goroutine, with no network. Tests inside testing/synctest bubbles need it
// because real sockets are not durably blocking. A request the simulator
// drops after applying it (DropAfterApplyRate) becomes an error wrapping
// ErrDropped, as a reset connection would.
func (s *Sim) Transport() http.RoundTripper { return memTransport{s} }

type memTransport struct{ s *Sim }

// RoundTrip implements http.RoundTripper.
func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("atlassim transport: read request body: %w", err)
		}
		body = b
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	in := req.Clone(req.Context())
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.ContentLength = int64(len(body))
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "atlassim-memory:0"
	if in.Host == "" {
		in.Host = req.URL.Host
	}
	w := &memResponse{header: http.Header{}}
	if dropped := t.serve(w, in); dropped {
		return nil, fmt.Errorf("atlassim transport: %s %s: %w", req.Method, req.URL.Redacted(), ErrDropped)
	}
	if err := req.Context().Err(); err != nil {
		return nil, err // the simulator stopped waiting (injected latency) because the caller gave up
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(bytes.NewReader(w.body.Bytes())),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// serve runs the handler, turning its abort into a report; any other panic
// is a simulator bug and propagates.
func (t memTransport) serve(w http.ResponseWriter, r *http.Request) (dropped bool) {
	defer func() {
		if v := recover(); v != nil {
			if errorsIsAbort(v) {
				dropped = true
				return
			}
			panic(v)
		}
	}()
	t.s.ServeHTTP(w, r)
	return false
}

type memResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (m *memResponse) Header() http.Header { return m.header }

func (m *memResponse) WriteHeader(code int) {
	if m.status == 0 {
		m.status = code
	}
}

func (m *memResponse) Write(p []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	return m.body.Write(p)
}
