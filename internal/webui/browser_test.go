package webui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Browser tests: the page in a real headless Chromium, driven over the
// DevTools protocol (cdp_test.go). They skip without chromium (see
// chromiumPath). BACKUPD_UPDATE_SCREENSHOTS=1 rewrites the screenshots in
// docs/img from the fixture fleet.

const (
	desktopWidth = 1280
	phoneWidth   = 390
)

func browserSetup(t *testing.T) (context.Context, *page, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b := startBrowser(t, ctx)
	srv := httptest.NewServer(server(t, newFixture()))
	t.Cleanup(srv.Close)
	return ctx, b.newPage(t, ctx), srv.URL
}

func noProblems(t *testing.T, p *page, from int, what string) {
	t.Helper()
	for _, pr := range p.b.problems(p.session, from) {
		t.Errorf("%s: %s", what, pr)
	}
}

func TestBrowserFleetPage(t *testing.T) {
	ctx, p, base := browserSetup(t)
	p.viewport(t, ctx, desktopWidth, 900, false)
	mark := p.open(t, ctx, base+"/")
	noProblems(t, p, mark, "GET /")

	// The failed run shows as failed, with its reason and Atlas's words,
	// both among the recent failures and in its target's row.
	var failure struct{ Found, Row bool }
	p.eval(t, ctx, `(() => {
		const link = document.querySelector('a[href="/ui/runs/`+idFailed+`"]');
		const tr = link && link.closest("tr");
		const row = [...document.querySelectorAll("#targets ~ div tbody tr, section[aria-labelledby=targets] tbody tr")]
			.find(r => r.querySelector("td").textContent.includes("prod-b"));
		return {
			Found: !!tr && tr.textContent.includes("failure") && tr.textContent.includes("export_failed") && tr.textContent.includes(`+jsString(detailFailed)+`),
			Row: !!row && row.querySelector('td[data-label="Last run"] .badge.bad').textContent === "failed: export_failed",
		};
	})()`, &failure)
	if !failure.Found || !failure.Row {
		t.Errorf("the failed run is not shown as failed with its reason: %+v", failure)
	}

	// The script loaded under the CSP and ran.
	var note string
	p.eval(t, ctx, `document.getElementById("refresh-note").textContent`, &note)
	if note != "It refreshes every 30 s while visible." {
		t.Errorf("refresh note = %q: the script did not run", note)
	}
	checkAccessible(t, ctx, p, "/")
	shoot(t, ctx, p, desktopWidth, false, "status-page.png")
}

func TestBrowserRunPage(t *testing.T) {
	ctx, p, base := browserSetup(t)
	p.viewport(t, ctx, desktopWidth, 900, false)
	mark := p.open(t, ctx, base+"/ui/runs/"+idFailed)
	noProblems(t, p, mark, "GET the run page")
	var got struct {
		Result, Reason, Detail string
		IDs                    []string
	}
	p.eval(t, ctx, `({
		Result: document.getElementById("run-result").textContent,
		Reason: document.getElementById("run-reason").textContent,
		Detail: document.getElementById("run-detail").textContent,
		IDs: [...document.querySelectorAll("#atlas-ids tbody tr")].map(r => r.querySelector("th").textContent + "=" + r.querySelector("td").textContent),
	})`, &got)
	if got.Result != "failed: export_failed" || got.Reason != "export_failed" || got.Detail != detailFailed {
		t.Errorf("run page says %q, %q, %q", got.Result, got.Reason, got.Detail)
	}
	for _, want := range []string{"snapshot=65f1a0000000000000000002", "export bucket=65f1a0000000000000000007", "export job=65f1a0000000000000000009", "export state=Failed"} {
		if !slices.Contains(got.IDs, want) {
			t.Errorf("run page Atlas ids = %q, want them to include %q", got.IDs, want)
		}
	}
	checkAccessible(t, ctx, p, "the run page")
	shoot(t, ctx, p, desktopWidth, false, "status-run.png")

	mark = p.open(t, ctx, base+"/ui/runs/ffffffffffffffffffff")
	var h1 string
	p.eval(t, ctx, `document.querySelector("h1").textContent`, &h1)
	if h1 != "404 Not Found" {
		t.Errorf("unknown run: h1 %q", h1)
	}
	// The 404 itself is the only problem the browser may report.
	for _, pr := range p.b.problems(p.session, mark) {
		if !strings.Contains(pr, "404") {
			t.Errorf("unknown run page: %s", pr)
		}
	}
}

// TestBrowserPhoneWidth: at a phone's width nothing is wider than the
// screen (no sideways scrolling), on both pages.
func TestBrowserPhoneWidth(t *testing.T) {
	ctx, p, base := browserSetup(t)
	p.viewport(t, ctx, phoneWidth, 844, true)
	for _, path := range []string{"/", "/ui/runs/" + idFailed, "/ui/runs/" + idFlight} {
		mark := p.open(t, ctx, base+path)
		noProblems(t, p, mark, path)
		var m struct {
			Inner, Scroll int
			Wide          []string
		}
		p.eval(t, ctx, `({
			Inner: window.innerWidth,
			Scroll: document.documentElement.scrollWidth,
			Wide: [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
				.map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + "px"),
		})`, &m)
		if m.Inner != phoneWidth || m.Scroll > m.Inner || len(m.Wide) > 0 {
			t.Errorf("%s at %d px: innerWidth %d, scrollWidth %d, wider elements %q", path, phoneWidth, m.Inner, m.Scroll, m.Wide)
		}
		if path == "/" {
			// the card layout labels each cell
			var label string
			p.eval(t, ctx, `getComputedStyle(document.querySelector("td[data-label]"), "::before").content`, &label)
			if label != `"Policy: "` && !strings.HasSuffix(label, `: "`) {
				t.Errorf("phone layout: cell label %q", label)
			}
			shoot(t, ctx, p, phoneWidth, true, "status-page-phone.png")
		}
	}
}

// TestBrowserWithoutJavaScript: the page says everything with scripts off.
func TestBrowserWithoutJavaScript(t *testing.T) {
	ctx, p, base := browserSetup(t)
	if _, err := p.b.call(ctx, p.session, "Emulation.setScriptExecutionDisabled", map[string]any{"value": true}); err != nil {
		t.Fatal(err)
	}
	mark := p.open(t, ctx, base+"/")
	noProblems(t, p, mark, "GET / without JavaScript")
	var got struct {
		Note   string
		Failed bool
	}
	// Runtime.evaluate still runs with page scripts disabled.
	p.eval(t, ctx, `({Note: document.getElementById("refresh-note").textContent,
		Failed: document.body.textContent.includes("failed: export_failed")})`, &got)
	if got.Note != "Reload the page to update it." || !got.Failed {
		t.Errorf("without JavaScript: %+v", got)
	}
}

// TestBrowserReportsCSPViolations proves the harness: a page that breaks
// the page's CSP (inline script and style) is reported, so an empty
// problem list above means something.
func TestBrowserReportsCSPViolations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := startBrowser(t, ctx)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><title>t</title><link rel="icon" href="data:,">` +
			`<style>body{color:red}</style></head><body><p>x</p><script>document.title="ran"</script></body></html>`))
	}))
	defer srv.Close()
	p := b.newPage(t, ctx)
	mark := p.open(t, ctx, srv.URL+"/")
	probs := strings.Join(p.b.problems(p.session, mark), "\n")
	if !strings.Contains(probs, "script-src") || !strings.Contains(probs, "style-src") {
		t.Errorf("the inline script and style were not reported as CSP violations; problems:\n%s", probs)
	}
	var title string
	p.eval(t, ctx, `document.title`, &title)
	if title != "t" {
		t.Errorf("the inline script ran under the CSP (title %q)", title)
	}
}

// checkAccessible checks the document's structure and colour contrast.
func checkAccessible(t *testing.T, ctx context.Context, p *page, what string) {
	t.Helper()
	var a struct {
		Lang                                      string
		Title                                     string
		H1                                        int
		TablesWithoutCaption, HeadersWithoutScope int
		Controls                                  int
		LowContrast                               []string
	}
	p.eval(t, ctx, `(() => {
		const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
		const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
			return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
		const bg = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0) return c; } return [255, 255, 255]; };
		const low = [];
		for (const e of document.querySelectorAll("body *")) {
			if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
			const fg = rgb(getComputedStyle(e).color), b = bg(e);
			const [l1, l2] = [lum(fg), lum(b)].sort((x, y) => y - x);
			const ratio = (l1 + 0.05) / (l2 + 0.05);
			if (ratio < 4.5 && getComputedStyle(e).display !== "none" && e.getClientRects().length) low.push(e.tagName + "." + e.className + " " + ratio.toFixed(2));
		}
		return {
			Lang: document.documentElement.lang,
			Title: document.title,
			H1: document.querySelectorAll("h1").length,
			TablesWithoutCaption: [...document.querySelectorAll("table")].filter(t => !t.caption || !t.caption.textContent.trim()).length,
			HeadersWithoutScope: [...document.querySelectorAll("th")].filter(th => !["col", "row"].includes(th.getAttribute("scope"))).length,
			Controls: document.querySelectorAll("form, input, button, select, textarea").length,
			LowContrast: low,
		};
	})()`, &a)
	if a.Lang != "en" || a.Title == "" || a.H1 != 1 || a.TablesWithoutCaption != 0 || a.HeadersWithoutScope != 0 || a.Controls != 0 || len(a.LowContrast) > 0 {
		t.Errorf("%s: accessibility: %+v", what, a)
	}
}

// shoot writes a screenshot into docs/img when BACKUPD_UPDATE_SCREENSHOTS
// is set.
func shoot(t *testing.T, ctx context.Context, p *page, width int, mobile bool, name string) {
	t.Helper()
	if os.Getenv("BACKUPD_UPDATE_SCREENSHOTS") == "" {
		return
	}
	png := p.screenshot(t, ctx, width, mobile)
	dst := filepath.Join("..", "..", "docs", "img", name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", dst, len(png))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
