package daemon_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// echoingProxy stands in front of the simulator like a misbehaving proxy:
// it answers every snapshot POST 403 with a body that echoes the request's
// Authorization header, and records the bearer tokens it saw.
type echoingProxy struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	tokens map[string]bool
}

func (p *echoingProxy) RoundTrip(r *http.Request) (*http.Response, error) {
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
		p.mu.Lock()
		p.tokens[tok] = true
		p.mu.Unlock()
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/backup/snapshots") {
		return p.rt.RoundTrip(r)
	}
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	rec.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(rec, `{"error":403,"errorCode":"PROXY_DENIED","reason":"Forbidden","detail":"proxy denied request with Authorization: `+auth+` (token `+strings.TrimPrefix(auth, "Bearer ")+`)"}`)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func (p *echoingProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for t := range p.tokens {
		out = append(out, t)
	}
	return out
}

// TestEchoedTokenReachesNoOutput: a run whose snapshot request is answered
// with the live bearer token echoed in the error body fails, and the token
// appears neither in /api/v1/status, nor in /api/v1/runs, nor in the logs
// (issue 11 item 2).
func TestEchoedTokenReachesNoOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		proxy := &echoingProxy{rt: sim.Transport(), tokens: map[string]bool{}}
		e := launchWith(t, dir, sim, proxy)
		defer e.stop()
		synctest.Wait()

		e.trigger(t, "hourly")
		time.Sleep(10 * time.Minute)
		synctest.Wait()

		_, status := e.get(t, "/api/v1/status")
		_, runs := e.get(t, "/api/v1/runs?policy=hourly")
		if !strings.Contains(runs, "PROXY_DENIED") {
			t.Fatalf("runs do not show the 403: %s", runs)
		}
		tokens := proxy.seen()
		if len(tokens) == 0 {
			t.Fatal("no bearer token went through the proxy")
		}
		for where, text := range map[string]string{"status": status, "runs": runs, "logs": e.logs.String()} {
			for _, tok := range tokens {
				if strings.Contains(text, tok) {
					t.Errorf("%s contain the live token %q", where, tok)
				}
			}
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the client secret", where)
			}
		}
		if !strings.Contains(runs, "Authorization: Bearer [REDACTED]") {
			t.Errorf("runs do not show where the credential was scrubbed: %s", runs)
		}
	})
}
