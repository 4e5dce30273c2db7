package webui

// A minimal Chrome DevTools Protocol client over --remote-debugging-pipe,
// standard library only: Chromium reads NUL-terminated JSON commands on
// its fd 3 and writes NUL-terminated answers and events on its fd 4.
// Enough to open a page, collect what its console and the browser's log
// say (CSP violations, failed loads, exceptions), evaluate DOM queries and
// take screenshots.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromiumPath finds the browser: $BACKUPD_CHROMIUM, else chromium on
// $PATH. The browser tests skip without one, unless
// $BACKUPD_REQUIRE_BROWSER is set (CI), where they fail instead.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BACKUPD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("BACKUPD_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium found ($BACKUPD_CHROMIUM, chromium on $PATH) and $BACKUPD_REQUIRE_BROWSER is set")
	}
	t.Skip("no chromium: set $BACKUPD_CHROMIUM or install chromium to run the browser tests")
	return ""
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// browser is one headless Chromium process.
type browser struct {
	cmd    *exec.Cmd
	in     *os.File // our end of its fd 3
	exited chan struct{}
	stderr bytes.Buffer

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpMessage
	events  []cdpMessage
	changed chan struct{} // closed and replaced when events grow
	readErr error
}

func startBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	path := chromiumPath(t)
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--headless", "--remote-debugging-pipe", "--user-data-dir=" + t.TempDir(),
		"--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb",
		"--font-render-hinting=none", "about:blank",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // Chromium refuses to run its sandbox as root
	}
	b := &browser{in: cmdW, exited: make(chan struct{}), pending: map[int]chan cdpMessage{}, changed: make(chan struct{})}
	b.cmd = exec.Command(path, args...)
	b.cmd.ExtraFiles = []*os.File{cmdR, outW} // fds 3 and 4 in the child
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	_ = cmdR.Close()
	_ = outW.Close()
	go func() { _ = b.cmd.Wait(); close(b.exited) }()
	go b.read(outR)
	t.Cleanup(func() { b.close(t) })
	// The first command proves the pipe works.
	if _, err := b.call(ctx, "", "Browser.getVersion", nil); err != nil {
		t.Fatalf("talk to chromium over the pipe: %v\n%s", err, b.stderr.String())
	}
	return b
}

func (b *browser) read(r *os.File) {
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		frame, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("read from chromium: %w", err)
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(frame[:len(frame)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else {
			b.events = append(b.events, m)
			close(b.changed)
			b.changed = make(chan struct{})
		}
		b.mu.Unlock()
	}
}

// call sends one command (to a page's session when session is set) and
// waits, within ctx, for its answer.
func (b *browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return nil, b.readErr
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	frame, err := json.Marshal(cdpMessage{ID: id, SessionID: session, Method: method, Params: p})
	if err != nil {
		return nil, err
	}
	if _, err := b.in.Write(append(frame, 0)); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: chromium went away", method)
		case m.Error != nil:
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no answer: %w", method, ctx.Err())
	}
}

// waitEvent waits, within ctx, for an event of a session at or after
// index from of the event log, and returns its index.
func (b *browser) waitEvent(ctx context.Context, session, method string, from int) (int, error) {
	for {
		b.mu.Lock()
		for i := from; i < len(b.events); i++ {
			if e := b.events[i]; e.Method == method && e.SessionID == session {
				b.mu.Unlock()
				return i, nil
			}
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for %s: %w", method, ctx.Err())
		}
	}
}

func (b *browser) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

// problems lists what the console and the log reported for a session
// since index from: console errors and warnings, uncaught exceptions and
// log entries at warning or error level (CSP violations and failed loads
// land there).
func (b *browser) problems(session string, from int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, e := range b.events[from:] {
		if e.SessionID != session {
			continue
		}
		switch e.Method {
		case "Runtime.consoleAPICalled":
			var p struct {
				Type string `json:"type"`
				Args []struct {
					Value       any    `json:"value"`
					Description string `json:"description"`
				} `json:"args"`
			}
			_ = json.Unmarshal(e.Params, &p)
			if p.Type == "error" || p.Type == "warning" || p.Type == "assert" {
				var words []string
				for _, a := range p.Args {
					words = append(words, fmt.Sprint(a.Value, a.Description))
				}
				out = append(out, "console."+p.Type+": "+strings.Join(words, " "))
			}
		case "Runtime.exceptionThrown":
			var p struct {
				Details struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			}
			_ = json.Unmarshal(e.Params, &p)
			out = append(out, "exception: "+p.Details.Text+" "+p.Details.Exception.Description)
		case "Log.entryAdded":
			var p struct {
				Entry struct {
					Source string `json:"source"`
					Level  string `json:"level"`
					Text   string `json:"text"`
					URL    string `json:"url"`
				} `json:"entry"`
			}
			_ = json.Unmarshal(e.Params, &p)
			if p.Entry.Level == "error" || p.Entry.Level == "warning" {
				out = append(out, fmt.Sprintf("log %s %s: %s %s", p.Entry.Source, p.Entry.Level, p.Entry.Text, p.Entry.URL))
			}
		}
	}
	return out
}

// page is one tab with its session.
type page struct {
	b       *browser
	session string
}

func (b *browser) newPage(t *testing.T, ctx context.Context) *page {
	t.Helper()
	res, err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		TargetID string `json:"targetId"`
	}
	_ = json.Unmarshal(res, &target)
	res, err = b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(res, &att)
	p := &page{b: b, session: att.SessionID}
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if _, err := b.call(ctx, p.session, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// viewport sets the page's size; mobile emulates a phone (meta viewport
// honoured, touch-sized layout).
func (p *page) viewport(t *testing.T, ctx context.Context, width, height int, mobile bool) {
	t.Helper()
	if _, err := p.b.call(ctx, p.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
	}); err != nil {
		t.Fatal(err)
	}
}

// open navigates to url, waits for its load event and returns the event
// log mark of the navigation, for problems.
func (p *page) open(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	mark := p.b.mark()
	res, err := p.b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url})
	if err != nil {
		t.Fatal(err)
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	_ = json.Unmarshal(res, &nav)
	if nav.ErrorText != "" {
		t.Fatalf("navigate to %s: %s", url, nav.ErrorText)
	}
	if _, err := p.b.waitEvent(ctx, p.session, "Page.loadEventFired", mark); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	// A round trip through the renderer after the load event, so every
	// message it sent before (console, log) has arrived.
	var state string
	p.eval(t, ctx, `document.readyState`, &state)
	if state != "complete" {
		t.Fatalf("%s: readyState %q after the load event", url, state)
	}
	return mark
}

// eval evaluates a JavaScript expression in the page (awaiting a
// promise) and decodes its value into out (when not nil).
func (p *page) eval(t *testing.T, ctx context.Context, expr string, out any) {
	t.Helper()
	res, err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	if r.ExceptionDetails != nil {
		t.Fatalf("evaluate %s: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			t.Fatalf("evaluate %s: decode %s: %v", expr, r.Result.Value, err)
		}
	}
}

// screenshot captures the whole page (not just the viewport) as PNG.
func (p *page) screenshot(t *testing.T, ctx context.Context, width int, mobile bool) []byte {
	t.Helper()
	var height int
	p.eval(t, ctx, `document.documentElement.scrollHeight`, &height)
	p.viewport(t, ctx, width, height, mobile)
	res, err := p.b.call(ctx, p.session, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		t.Fatal(err)
	}
	var shot struct {
		Data string `json:"data"`
	}
	_ = json.Unmarshal(res, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	return png
}

// close asks the browser to quit and kills it when it does not in time.
func (b *browser) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.call(ctx, "", "Browser.close", nil)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("close chromium: %v", err)
	}
	select {
	case <-b.exited:
	case <-ctx.Done():
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	_ = b.in.Close()
}
