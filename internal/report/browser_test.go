package report_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
)

// TestHTMLInARealBrowser loads the page in chromium (BACKUPD_CHROMIUM, set
// by .ci/run; skipped without it), served with the API's
// Content-Security-Policy: the browser asks for nothing but the page, and
// the hostile names it shows are text, not elements.
func TestHTMLInARealBrowser(t *testing.T) {
	bin := os.Getenv("BACKUPD_CHROMIUM")
	if bin == "" {
		t.Skip("BACKUPD_CHROMIUM is not set (the path of a chromium binary)")
	}
	in := month(t)
	r := nightlyRun("nightly", run.Target{ProjectID: project, Cluster: `<img src=x onerror=alert(1)>`}, at(3, 0), run.StageFailed, run.ReasonAtlasError)
	r.Detail = `<script>document.title="pwned"</script><link rel=stylesheet href=https://example.com/x.css>`
	in.Runs = append(in.Runs, r)
	var page bytes.Buffer
	if err := report.Render(&page, build(t, in, report.Query{From: at(0, 0), To: at(10, 0)}), report.FormatHTML); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		asked = append(asked, req.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", report.ContentType(report.FormatHTML))
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = w.Write(page.Bytes())
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--dump-dom", srv.URL+"/report.html")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	got := string(dom)
	for _, want := range []string{"<title>backupd evidence report", "1 of 3 clusters met their policies",
		"&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;document.title=\"pwned\"&lt;/script&gt;"} {
		if !strings.Contains(got, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<img", "pwned</title>", "<link rel=\"stylesheet\""} {
		if strings.Contains(got, bad) {
			t.Errorf("the rendered page has %q: a name became markup", bad)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != "/report.html" {
		t.Errorf("the browser asked for %v, want the page alone", asked)
	}
}
