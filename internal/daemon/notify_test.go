package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/daemon"
)

const (
	hookToken   = "SECRET-hook-T0K3N"
	pingToken   = "SECRET-ping-uuid"
	notifyExtra = `notify:
  webhooks:
    - {name: ops, urlFile: hook-url, events: [succeeded, failed]}
  pings:
    - {policy: hourly, urlFile: ping-url}
`
)

// receiverRT is a notification receiver in the bubble: it records every
// request and, while hold is open, holds it until the request is
// cancelled (a receiver that accepts connections and never answers).
type receiverRT struct {
	mu   sync.Mutex
	hold chan struct{} // nil: answer 200 at once
	got  []string      // "METHOD URL BODY"
}

func (r *receiverRT) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	r.mu.Lock()
	r.got = append(r.got, req.Method+" "+req.URL.String()+" "+string(body))
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func (r *receiverRT) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// TestNotificationsNeverHoldARunAndSurviveARestart: with a receiver that
// holds every request, a run goes through to success all the same; what
// could not be delivered is delivered after a restart, once, and no URL
// reaches logs, metrics or status.
func TestNotificationsNeverHoldARunAndSurviveARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, notifyExtra)
		for name, url := range map[string]string{"hook-url": "https://hooks.example.com/services/" + hookToken, "ping-url": "https://hc-ping.example.com/" + pingToken} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(url+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		held := &receiverRT{hold: make(chan struct{})}
		e := launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), NotifyTransport: held})
		synctest.Wait()
		e.trigger(t, "hourly")
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		_, runs := e.get(t, "/api/v1/runs?policy=hourly")
		if !strings.Contains(runs, `"stage":"succeeded"`) {
			t.Fatalf("the run did not finish while the receiver held its requests: %s", runs)
		}
		var page struct {
			Runs []struct {
				ID string `json:"id"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(runs), &page); err != nil || len(page.Runs) != 1 {
			t.Fatalf("runs page %s: %v", runs, err)
		}
		id := page.Runs[0].ID
		if len(held.requests()) == 0 {
			t.Fatal("the held receiver saw no request")
		}
		_, metricsText := e.get(t, "/metrics")
		_, status := e.get(t, "/api/v1/status")
		e.stop() // with the deliveries still pending

		ok := &receiverRT{}
		e = launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), NotifyTransport: ok})
		defer e.stop()
		// The held requests timed out and wait out their backoff (the
		// seventh attempt falls due at 32.5m); the next slot is at 1h.
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		got := ok.requests()
		want := map[string]bool{
			"POST https://hc-ping.example.com/" + pingToken + "/start": false,
			"POST https://hc-ping.example.com/" + pingToken + " ":      false,
			"POST https://hooks.example.com/services/" + hookToken:     false,
		}
		for _, g := range got {
			for w := range want {
				if strings.HasPrefix(g, w) && strings.Contains(g, id) {
					if want[w] {
						t.Errorf("delivered twice: %s", w)
					}
					want[w] = true
				}
			}
		}
		for w, seen := range want {
			if !seen {
				t.Errorf("after the restart, no %q for run %s; got %q", w, id, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("got %d deliveries, want %d: %q", len(got), len(want), got)
		}
		for _, line := range []string{
			`backupd_notify_delivered_total{kind="webhook",sink="ops"} 1`,
			`backupd_notify_delivered_total{kind="ping",sink="hourly"} 2`,
			`backupd_notify_queue_depth 0`,
		} {
			if !e.metric(t, line) {
				_, body := e.get(t, "/metrics")
				t.Errorf("metrics lack %q:\n%s", line, grep(body, "backupd_notify"))
			}
		}
		_, metricsAfter := e.get(t, "/metrics")
		for where, text := range map[string]string{"logs": e.logs.String(), "metrics": metricsText + metricsAfter, "status": status} {
			for _, s := range []string{hookToken, pingToken} {
				if strings.Contains(text, s) {
					t.Errorf("%s contain the URL secret %q", where, s)
				}
			}
		}
	})
}

// TestNotifyStoreOnlyWhenConfigured: a daemon without a notify: section
// leaves no state.db.notify next to its journal, even after runs; a
// reload that adds the section gets its store and delivers.
func TestNotifyStoreOnlyWhenConfigured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		ok := &receiverRT{}
		e := launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), NotifyTransport: ok})
		defer e.stop()
		synctest.Wait()
		storePath := filepath.Join(dir, "state.db.notify")
		e.trigger(t, "hourly")
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if _, err := os.Stat(storePath); !os.IsNotExist(err) {
			t.Fatalf("without notify: the store %s exists (stat: %v)", storePath, err)
		}

		for name, url := range map[string]string{"hook-url": "https://hooks.example.com/services/" + hookToken, "ping-url": "https://hc-ping.example.com/" + pingToken} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(url+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		writeConfig(t, dir, notifyExtra)
		if err := e.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.trigger(t, "hourly")
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if _, err := os.Stat(storePath); err != nil {
			t.Fatalf("after a reload added notify: %v", err)
		}
		hooks := 0
		for _, g := range ok.requests() {
			if strings.HasPrefix(g, "POST https://hooks.example.com/services/"+hookToken) {
				hooks++
			}
		}
		if hooks != 1 {
			t.Fatalf("after the reload, %d webhooks, want 1: %q", hooks, ok.requests())
		}
	})
}
