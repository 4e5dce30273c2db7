package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// connServer starts a real server with a small connection cap. /metrics
// blocks while block is open, so a test can hold connections busy.
func connServer(t *testing.T, maxConns int, block <-chan struct{}) (*Server, string) {
	t.Helper()
	s := New(Config{
		Listen: "127.0.0.1:0",
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-block
			_, _ = io.WriteString(w, "backupd_up 1\n")
		}),
		Clock:    clock.Real(),
		MaxConns: maxConns,
	})
	addr, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, addr.String()
}

// waitStates waits until the limiter's held connections satisfy ok. The
// deadline only bounds a failing test; the wait itself is on the limiter's
// change notifications.
func waitStates(t *testing.T, s *Server, what string, ok func(map[http.ConnState]int) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		n, changed := s.conns.states()
		if ok(n) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("connections never reached %s: %v", what, n)
		}
	}
}

// rawGet sends one keep-alive request on c and reads the response.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) int {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: backupd\r\n\r\n", path); err != nil {
		t.Fatalf("write request: %v", err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

func TestIdleConnectionsCannotLockOutProbes(t *testing.T) {
	const maxConns = 8
	s, addr := connServer(t, maxConns, nil)
	// Fill the cap several times over: keep-alive connections left idle
	// after one request, and connections that never send anything.
	var held []net.Conn
	for i := range 3 * maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if i%2 == 0 {
			if code := rawGet(t, c, bufio.NewReader(c), "/healthz"); code != http.StatusOK {
				t.Fatalf("keep-alive request %d: %d", i, code)
			}
		}
	}
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	waitStates(t, s, "the cap", func(n map[http.ConnState]int) bool { return n[http.StateIdle]+n[http.StateNew] == maxConns })

	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for i := range 20 {
		res, err := probe.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("probe %d with %d idle connections open: %v", i, len(held), err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("probe %d: %d", i, res.StatusCode)
		}
	}
	st := s.ConnStats()
	if st.Open > maxConns || st.Max != maxConns {
		t.Errorf("stats %+v: more than %d connections held", st, maxConns)
	}
	if st.Evicted < uint64(2*maxConns) {
		t.Errorf("evicted %d idle connections, want at least %d", st.Evicted, 2*maxConns)
	}
	if st.Refused != 0 {
		t.Errorf("refused %d connections although idle ones could be closed", st.Refused)
	}
}

func TestConnectionCapRefusesWhenEveryConnectionIsBusy(t *testing.T) {
	const maxConns = 2
	block := make(chan struct{})
	s, addr := connServer(t, maxConns, block)
	results := make(chan error, maxConns)
	for range maxConns {
		go func() {
			res, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				_ = res.Body.Close()
			}
			results <- err
		}()
	}
	waitStates(t, s, "every connection busy", func(n map[http.ConnState]int) bool { return n[http.StateActive] == maxConns })

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: backupd\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Fatal("a connection over the cap was served while every held one was busy")
	}
	if st := s.ConnStats(); st.Refused != 1 || st.Open != maxConns {
		t.Errorf("stats %+v, want 1 refused and %d open", st, maxConns)
	}

	close(block)
	for range maxConns {
		if err := <-results; err != nil {
			t.Errorf("busy request: %v", err)
		}
	}
}
