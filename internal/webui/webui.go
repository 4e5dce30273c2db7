// Package webui is backupd's read-only status page: the fleet at a glance,
// recent failures, one page per run and the monitor's native freshness,
// rendered on the server with html/template from the same Source the JSON
// API reads.
//
// It is a separate package so the page can only ever read: its Source has
// no trigger, the page carries no form, and nothing it shows needs the
// admin token. Everything it serves is embedded in the binary (no external
// fetch), under a Content-Security-Policy that allows only its own
// stylesheet, script and icon, so an injected string can neither run nor
// restyle the page. It reads fine without JavaScript; the one small script
// only reloads the page while it is visible.
package webui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/run"
)

// Source is what the page reads: the read half of httpapi.Backend, so the
// daemon's API backend serves both and the page cannot trigger anything.
type Source interface {
	Status(ctx context.Context) run.Status
	Runs(ctx context.Context, q httpapi.RunQuery) ([]run.Run, error)
	Run(ctx context.Context, id run.ID) (run.Run, bool, error)
}

// Paths the page serves; httpapi mounts "/" and everything under "/ui/".
const (
	PathFleet  = "/"
	PathRuns   = "/ui/runs/"
	PathAssets = "/ui/assets/"
)

// RefreshSeconds is how often the refresh script reloads a visible page.
const RefreshSeconds = 30

// recentFailures is how many failed runs the fleet page lists.
const recentFailures = 10

// readTimeout bounds what one page may spend reading the Source (the
// journal), well within the server's write timeout.
const readTimeout = 10 * time.Second

// CSP is the Content-Security-Policy of every answer: nothing but the
// page's own stylesheet, script and icon; no inline script or style, no
// framing, no form target, no plugin, no base rewrite.
const CSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// runIDRE is the shape of every run id (run.NewID); other run paths are 404.
var runIDRE = regexp.MustCompile(`^[0-9a-f]{20}$`)

//go:embed assets templates
var files embed.FS

// Options configure the handler.
type Options struct {
	// Clock dates the run page and error pages; nil means clock.Real().
	// The fleet page uses the Status's own Now.
	Clock clock.Clock
	// Logger receives failures to read the Source; nil discards them.
	Logger *zap.Logger
}

// Handler serves the page. Create it with New.
type Handler struct {
	src    Source
	clk    clock.Clock
	log    *zap.Logger
	tmpl   map[string]*template.Template
	assets map[string]asset
}

// asset is one embedded file with what its answer needs.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// New parses the embedded templates and assets; it fails only when they
// are broken, which the package's tests catch.
func New(src Source, o Options) (*Handler, error) {
	h := &Handler{src: src, clk: o.Clock, log: o.Logger, tmpl: map[string]*template.Template{}, assets: map[string]asset{}}
	if h.clk == nil {
		h.clk = clock.Real()
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	for _, page := range []string{"fleet", "run", "error"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("parse the %s page template: %w", page, err)
		}
		h.tmpl[page] = t
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.assets[path.Base(p)] = asset{body: body, ctype: types[path.Ext(p)], etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded assets: %w", err)
	}
	return h, nil
}

// ServeHTTP routes "/", "/ui/runs/{id}" and "/ui/assets/{name}"; other
// paths are 404 and other methods than GET and HEAD 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.errorPage(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("This page only reads: method %s is not allowed here (use GET or HEAD).", r.Method))
		return
	}
	p := r.URL.Path
	switch {
	case p == PathFleet:
		h.fleet(w, r)
	case strings.HasPrefix(p, PathRuns) && runIDRE.MatchString(strings.TrimPrefix(p, PathRuns)):
		h.run(w, r, run.ID(strings.TrimPrefix(p, PathRuns)))
	case strings.HasPrefix(p, PathAssets):
		h.asset(w, r, strings.TrimPrefix(p, PathAssets))
	default:
		h.errorPage(w, r, http.StatusNotFound, "There is no page at this address.")
	}
}

// securityHeaders are set on every answer, errors included.
func securityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

func (h *Handler) fleet(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	st := h.src.Status(ctx)
	failed, err := h.src.Runs(ctx, httpapi.RunQuery{Stages: []run.Stage{run.StageFailed}, Limit: recentFailures})
	var readErr string
	if err != nil {
		h.log.Warn("status page: read recent failures", zap.Error(err))
		readErr = "The recent failures could not be read from the journal: " + err.Error()
	}
	h.render(w, r, http.StatusOK, "fleet", buildFleet(st, failed, readErr))
}

func (h *Handler) run(w http.ResponseWriter, r *http.Request, id run.ID) {
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	rn, ok, err := h.src.Run(ctx, id)
	switch {
	case err != nil:
		h.log.Warn("status page: read run", zap.String("run", string(id)), zap.Error(err))
		h.errorPage(w, r, http.StatusInternalServerError, "The run could not be read from the journal: "+err.Error())
	case !ok:
		h.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("The journal holds no run %s: it never existed, or it was pruned (state.historyRuns, state.historyAge).", id))
	default:
		h.render(w, r, http.StatusOK, "run", buildRun(rn, h.clk.Now()))
	}
}

func (h *Handler) asset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.assets[name]
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "There is no such file.")
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("ETag", a.etag)
	// Revalidate each time (a 304 while unchanged), so an upgraded daemon's
	// stylesheet is used at once.
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", errorView{Title: fmt.Sprintf("%d %s", status, http.StatusText(status)), Message: msg, Now: h.clk.Now()})
}

// render executes the page into memory first, so a template error is a
// clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.Error("status page: render", zap.String("page", page), zap.Error(err))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintln(w, "render the page failed; see the daemon's log")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
