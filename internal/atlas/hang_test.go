package atlas

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// hungTokenEndpoint wraps an in-memory Atlas whose token endpoint never
// answers the first `hang` token requests: like a real transport to such a
// server, RoundTrip returns only when the request's context ends. The
// abandoned handlers stay blocked until the test releases them.
type hungTokenEndpoint struct {
	next    http.RoundTripper
	hang    int32
	seen    atomic.Int32
	release chan struct{}
	entered chan struct{} // one send per hung request, once it is waiting
}

func newHungTokenEndpoint(t *testing.T, next http.RoundTripper, hang int32) *hungTokenEndpoint {
	h := &hungTokenEndpoint{next: next, hang: hang, release: make(chan struct{}), entered: make(chan struct{}, 16)}
	t.Cleanup(func() { close(h.release) })
	return h
}

func (h *hungTokenEndpoint) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != TokenPath || h.seen.Add(1) > h.hang {
		return h.next.RoundTrip(r)
	}
	served := make(chan struct{})
	go func() { // the server that never answers
		defer close(served)
		<-h.release
	}()
	h.entered <- struct{}{}
	select {
	case <-served:
		return nil, errors.New("connection closed by the test")
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// TestHungTokenRequestIsBounded: a token request that never answers ends
// after the configured timeout even when the caller (Authenticate at
// start-up, with the daemon's long-lived context) set no deadline.
func TestHungTokenRequestIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fa := newFakeAtlas(t, okSnapshot())
		hung := newHungTokenEndpoint(t, handlerTransport{fa}, 1)
		c := newTestClient(t, fa, func(cfg *Config) {
			cfg.Transport = hung
			cfg.Timeout = 20 * time.Second
		})
		start := time.Now()
		err := c.Authenticate(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Authenticate = %v, want a deadline error", err)
		}
		if waited := time.Since(start); waited != 20*time.Second {
			t.Errorf("Authenticate waited %s, want the 20s timeout", waited)
		}
		if e, ok := AsError(err); !ok || e.Operation != OpAuthenticate {
			t.Errorf("err = %#v, want an *Error for authenticate", err)
		}
	})
}

// TestHungTokenRequestDoesNotBlockLaterRefreshes: while one token request
// hangs, another caller's own deadline is honoured; once the hung request
// has timed out, the next caller gets a token from the recovered endpoint.
func TestHungTokenRequestDoesNotBlockLaterRefreshes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fa := newFakeAtlas(t, okSnapshot())
		hung := newHungTokenEndpoint(t, handlerTransport{fa}, 1)
		c := newTestClient(t, fa, func(cfg *Config) { cfg.Transport = hung })
		first := make(chan error, 1)
		go func() { first <- c.Authenticate(context.Background()) }()
		<-hung.entered // the first caller holds the fetch

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := c.Authenticate(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting caller: %v, want its own deadline", err)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("waiting caller waited %s, want its 5s deadline", waited)
		}

		if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("hung caller: %v, want the token request's deadline", err)
		}
		if waited := time.Since(start); waited != DefaultTimeout {
			t.Errorf("hung request ended after %s, want the default %s", waited, DefaultTimeout)
		}
		if _, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet); err != nil {
			t.Fatalf("call after the hung token request: %v", err)
		}
		if g := fa.grants.Load(); g != 1 {
			t.Errorf("grants = %d, want 1", g)
		}
	})
}

// TestHungTokenEndpointOverRealSockets: the same over a real connection to
// an httptest server that accepts the token request and never answers:
// the token client's deadline ends it, and the next request, answered,
// gets its token. The handler is released when the test ends.
func TestHungTokenEndpointOverRealSockets(t *testing.T) {
	fa := newFakeAtlas(t, okSnapshot())
	release := make(chan struct{})
	var tokenCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == TokenPath && tokenCalls.Add(1) == 1 {
			<-release // never answers on its own
			return
		}
		fa.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	c, err := New(Config{
		BaseURL:        srv.URL,
		ServiceAccount: &ServiceAccount{ClientID: testClientID, ClientSecret: testSecret},
		Timeout:        300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Authenticate(context.Background())
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Authenticate = %v, want a timeout", err)
	}
	if err := c.Authenticate(context.Background()); err != nil {
		t.Fatalf("Authenticate after the hung request: %v", err)
	}
	if n := tokenCalls.Load(); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}
}
