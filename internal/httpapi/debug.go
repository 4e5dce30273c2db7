package httpapi

import (
	"fmt"
	"net/http"
	"runtime/pprof"
	"slices"

	"go.uber.org/zap"
)

// debugProfiles are the runtime profiles GET /debug/pprof/{name} serves.
// A CPU profile is not among them: it holds the request for its whole
// duration, longer than the server's write timeout; `perf` or a heap
// profile answers most questions about a daemon that uses too much.
var debugProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// profile serves a runtime profile (runtime/pprof; net/http/pprof is not
// imported, as it registers itself on the global mux at init), to holders
// of the admin token only: a profile tells the code's shape and the heap's
// sizes, not data, but it costs a stop of the world and is no one else's
// business. ?debug=1 (or 2 for goroutines) gives text instead of the
// protobuf `go tool pprof` reads.
func (s *Server) profile(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	name := r.PathValue("name")
	p := pprof.Lookup(name)
	if p == nil || !slices.Contains(debugProfiles, name) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no profile %q; the profiles are %v", name, debugProfiles), "name")
		return
	}
	debug := 0
	switch v := r.URL.Query().Get("debug"); v {
	case "", "0":
	case "1":
		debug = 1
	case "2":
		debug = 2
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("debug %q: must be 0, 1 or 2", v), "debug")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if debug == 0 {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".pb.gz"))
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	if err := p.WriteTo(w, debug); err != nil {
		s.log.Warn("writing a debug profile failed", zap.String("profile", name), zap.Error(err))
	}
}
