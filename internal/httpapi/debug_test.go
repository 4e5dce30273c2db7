package httpapi

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The runtime profiles are the admin token's holders' only: 403 without a
// token configured, 401 without the right one, and then a heap profile
// `go tool pprof` reads (gzip-compressed protobuf), goroutines as text with
// ?debug=1, a clear 404 for a profile that is not served and 400 for a bad
// debug value.
func TestDebugProfilesNeedTheAdminToken(t *testing.T) {
	h := newHarness(t)
	auth := map[string]string{"Authorization": "Bearer " + adminToken}

	if r := h.do(t, http.MethodGet, "/debug/pprof/heap", nil, nil); r.code != http.StatusUnauthorized {
		t.Errorf("heap without a token = %d, want 401", r.code)
	}
	if r := h.do(t, http.MethodGet, "/debug/pprof/heap", nil, map[string]string{"Authorization": "Bearer wrong"}); r.code != http.StatusUnauthorized {
		t.Errorf("heap with a wrong token = %d, want 401", r.code)
	}

	r := h.do(t, http.MethodGet, "/debug/pprof/heap", nil, auth)
	if r.code != http.StatusOK {
		t.Fatalf("heap = %d %s, want 200", r.code, r.body)
	}
	zr, err := gzip.NewReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("heap profile is not gzip (what go tool pprof reads): %v", err)
	}
	if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
		t.Fatalf("heap profile unreadable: %d bytes, %v", len(raw), err)
	}

	r = h.do(t, http.MethodGet, "/debug/pprof/goroutine?debug=1", nil, auth)
	if r.code != http.StatusOK || !strings.Contains(r.body, "goroutine profile: total") || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("goroutine?debug=1 = %d %q (%s), want the text profile", r.code, firstLine(r.body), r.header.Get("Content-Type"))
	}
	if r := h.do(t, http.MethodGet, "/debug/pprof/cmdline", nil, auth); r.code != http.StatusNotFound || r.apiError(t).Field != "name" {
		t.Errorf("cmdline = %d %s, want 404 naming the profiles served", r.code, r.body)
	}
	if r := h.do(t, http.MethodGet, "/debug/pprof/heap?debug=7", nil, auth); r.code != http.StatusBadRequest || r.apiError(t).Field != "debug" {
		t.Errorf("debug=7 = %d %s, want 400 on the debug parameter", r.code, r.body)
	}
	if r := h.do(t, http.MethodPost, "/debug/pprof/heap", nil, auth); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", r.code)
	}

	h.mu.Lock()
	h.token = ""
	h.mu.Unlock()
	if r := h.do(t, http.MethodGet, "/debug/pprof/heap", nil, auth); r.code != http.StatusForbidden {
		t.Errorf("heap with no token configured = %d, want 403", r.code)
	}
}

func firstLine(s string) string {
	line, _, _ := bytes.Cut([]byte(s), []byte("\n"))
	return string(line)
}
