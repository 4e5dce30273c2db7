// Package httpapi is backupd's HTTP server: Prometheus metrics, liveness
// and readiness probes, and the small JSON admin API (status, run history,
// manual triggers) that `backupd status` and `backupd trigger` talk to.
//
// The server owns transport concerns only — routing, validation, bearer
// authentication, body limits, timeouts, access logs. What a status is and
// what a trigger does belong to the Backend, so the engine can be tested
// without HTTP and this package without an engine.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// Backend answers the API's questions. The engine implements it.
type Backend interface {
	// Status reports policies, targets, last/next runs and in-flight runs.
	Status(ctx context.Context) run.Status
	// Runs returns up to q.Limit runs matching q (see RunQuery.Match), newest
	// first — by CreatedAt, then by ID, descending — starting after q.After.
	// An unknown q.Policy wraps ErrUnknownPolicy.
	Runs(ctx context.Context, q RunQuery) ([]run.Run, error)
	// Run returns the run with the given id and whether it exists.
	Run(ctx context.Context, id run.ID) (run.Run, bool, error)
	// Trigger starts a manual run of policy on target, or on all its targets
	// when target is nil, and returns the runs created (or skipped). It must
	// not tie the runs' lifetime to ctx, which ends with the HTTP request.
	// An unknown policy wraps ErrUnknownPolicy; a target the policy does not
	// resolve to wraps ErrUnknownTarget.
	Trigger(ctx context.Context, policy string, target *run.Target) ([]run.Run, error)
}

// Errors a Backend wraps so the API can answer 404 instead of 500.
var (
	ErrUnknownPolicy = errors.New("unknown policy")
	ErrUnknownTarget = errors.New("unknown target")
)

// StandbyError is a Backend's answer to a trigger sent to a replica that
// does not lead (ha:): only the leader starts runs. The API answers 503 with
// the leader's identity, so the caller knows where to send it.
type StandbyError struct {
	Leader string // "" when no leader is known
	Reason string // why this replica does not act, for the message
}

func (e *StandbyError) Error() string {
	where := "no leader is known right now; try again in a few seconds"
	if e.Leader != "" {
		where = "send the trigger to the leader, " + e.Leader
	}
	return fmt.Sprintf("this replica does not act (%s): %s", e.Reason, where)
}

// Limits and timeouts of the server. They are generous for an admin API on
// localhost and strict enough that a slow or hostile client cannot hold a
// connection or memory for long.
const (
	maxBodyBytes      = 64 << 10
	maxHeaderBytes    = 32 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	defaultRunsLimit  = 50
	maxRunsLimit      = 1000
)

// Config is everything the server needs; functions rather than values where
// a config reload may change the answer.
type Config struct {
	// Listen is the TCP address, e.g. "127.0.0.1:9469" (":0" picks a port).
	Listen string
	// AdminToken returns the current admin token; "" means none is
	// configured and mutating endpoints answer 403. Nil behaves as "".
	AdminToken func() string
	// Metrics serves GET /metrics; nil leaves the path unrouted (404).
	Metrics http.Handler
	// Backend serves the /api/v1 endpoints; nil makes them answer 503.
	Backend Backend
	// Reporter serves GET /api/v1/report; nil makes it answer 503.
	Reporter Reporter
	// Page serves the read-only status page: "/" exactly and everything
	// under "/ui/" (every method: it answers 405 and 404 itself). Nil
	// leaves those paths to the API's JSON 404.
	Page http.Handler
	// Healthy reports liveness (the scheduler loop is alive); nil error or
	// a nil func means healthy.
	Healthy func() error
	// Ready reports readiness (config valid, journal open, Atlas
	// authenticated recently); the error text is shown to the caller, so it
	// must not contain secrets. A nil func means ready.
	Ready func() error
	// Logger receives access logs (debug level) and server errors; nil
	// discards them.
	Logger *zap.Logger
	// Clock times requests for the access log; nil means clock.Real().
	Clock clock.Clock
	// MaxConns caps the client connections held at once (0 means
	// DefaultMaxConns); see connLimiter for what happens at the cap.
	MaxConns int
}

// Server is the daemon's HTTP server. Create it with New; it serves after
// Start and stops with Shutdown.
type Server struct {
	cfg     Config
	log     *zap.Logger
	clk     clock.Clock
	handler http.Handler
	conns   *connLimiter

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// New builds the server and its routes. It does not listen yet.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger, clk: cfg.Clock}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.clk == nil {
		s.clk = clock.Real()
	}
	s.handler = s.accessLog(s.routes())
	s.conns = newConnLimiter(cfg.MaxConns, s.clk)
	return s
}

// ConnStats reports the connections held and what the cap has done.
func (s *Server) ConnStats() ConnStats { return s.conns.stats() }

// Handler returns the complete handler (routes, limits, access log), for
// tests and for embedding in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Config.Listen and serves in the background. It returns
// the bound address, so ":0" can be used in tests. ctx bounds only the
// listen; serving goes on until Shutdown.
func (s *Server) Start(ctx context.Context) (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil, errors.New("start HTTP server: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("start HTTP server: listen on %q: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         s.conns.track,
		ErrorLog:          zap.NewStdLog(s.log.Named("http").WithOptions(zap.IncreaseLevel(zap.WarnLevel))),
	}
	done := make(chan struct{})
	s.srv, s.done = srv, done
	addr := ln.Addr()
	go func() {
		defer close(done)
		if err := srv.Serve(limitListener{Listener: ln, lim: s.conns}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", zap.String("addr", addr.String()), zap.Error(err))
		}
	}()
	s.log.Info("HTTP server listening", zap.String("addr", addr.String()))
	return addr, nil
}

// Shutdown stops accepting connections and waits, within ctx, for requests
// in progress to finish; when ctx ends first, remaining connections are
// closed. Shutdown without Start does nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
		<-done
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	<-done
	return nil
}

// accessLog logs every request at debug level: method, path, status, size
// and duration. It never logs headers (Authorization) or the query string.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.clk.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(rec, r)
		if ce := s.log.Check(zap.DebugLevel, "http request"); ce != nil {
			ce.Write(
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.Int("status", rec.status),
				zap.Int64("bytes", rec.bytes),
				zap.Duration("duration", s.clk.Now().Sub(start)),
				zap.String("remote", r.RemoteAddr),
			)
		}
	})
}

// statusRecorder captures the status and size of a response for the access
// log.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
