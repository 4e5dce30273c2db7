package atlas

import (
	"crypto/md5"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

func TestServiceAccountTokenIsFetchedOnceForManyCalls(t *testing.T) {
	var bearer sync.Map
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer.Store(r.Header.Get("Authorization"), true)
		okSnapshot().ServeHTTP(w, r)
	})
	fa := newFakeAtlas(t, api)
	var transportCalls atomic.Int32
	base := handlerTransport{fa}
	c := newTestClient(t, fa, func(cfg *Config) {
		cfg.Transport = rtFunc(func(r *http.Request) (*http.Response, error) {
			transportCalls.Add(1)
			return base.RoundTrip(r)
		})
	})
	const n = 25
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindReplicaSet); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g := fa.grants.Load(); g != 1 {
		t.Errorf("%d token grants for %d calls, want 1", g, n)
	}
	// The token request went through the configured transport, not http.DefaultClient
	// (which could not resolve atlas.test anyway).
	if got := transportCalls.Load(); got != n+1 {
		t.Errorf("configured transport saw %d requests, want %d API calls + 1 token request", got, n)
	}
	count := 0
	bearer.Range(func(k, _ any) bool {
		count++
		if k != "Bearer tok-1" {
			t.Errorf("API request carried %q", k)
		}
		return true
	})
	if count != 1 {
		t.Errorf("%d distinct Authorization headers", count)
	}
}

func TestServiceAccountTokenRenewedBeforeExpiry(t *testing.T) {
	fa := newFakeAtlas(t, okSnapshot())
	fa.expiresIn = 3600
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newTestClient(t, fa, func(cfg *Config) { cfg.Clock = fc })
	call := func() {
		t.Helper()
		if _, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, ""); err != nil {
			t.Fatal(err)
		}
	}
	call()
	fc.Advance(58 * time.Minute)
	call()
	if g := fa.grants.Load(); g != 1 {
		t.Fatalf("grants after 58m = %d, want 1 (token still valid)", g)
	}
	fc.Advance(90 * time.Second) // 59m30s: inside the one-minute renewal margin
	call()
	if g := fa.grants.Load(); g != 2 {
		t.Fatalf("grants after 59m30s = %d, want 2 (renewed before expiry)", g)
	}
	fc.Advance(30 * time.Minute)
	call()
	if g := fa.grants.Load(); g != 2 {
		t.Errorf("grants = %d, want 2 (renewed token reused)", g)
	}
}

func TestShortLivedTokenRenewal(t *testing.T) {
	fa := newFakeAtlas(t, okSnapshot())
	fa.expiresIn = 40 // margin is a quarter: renew after 30s
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newTestClient(t, fa, func(cfg *Config) { cfg.Clock = fc })
	for i, step := range []time.Duration{0, 29 * time.Second, 2 * time.Second} {
		fc.Advance(step)
		if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
			t.Fatal(err)
		}
		want := int32(1)
		if i == 2 {
			want = 2
		}
		if g := fa.grants.Load(); g != want {
			t.Errorf("step %d: grants %d, want %d", i, g, want)
		}
	}
}

func TestRejectedTokenIsReplacedOnce(t *testing.T) {
	var executed atomic.Int32
	fa := newFakeAtlas(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		executed.Add(1)
		okSnapshot().ServeHTTP(w, r)
	}))
	c := newTestClient(t, fa)
	if _, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{}); err != nil {
		t.Fatal(err)
	}
	fa.revoked.Store("tok-1", true)
	if _, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{}); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if g, e := fa.grants.Load(), executed.Load(); g != 2 || e != 2 {
		t.Errorf("grants %d executed %d, want 2 and 2", g, e)
	}
	// A token that is rejected again is not retried in a loop.
	fa.revoked.Store("tok-2", true)
	fa.revoked.Store("tok-3", true)
	_, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{})
	if e, ok := AsError(err); !ok || e.StatusCode != http.StatusUnauthorized || e.OutcomeUnknown {
		t.Fatalf("err = %v, want a definite 401", err)
	}
	if g := fa.grants.Load(); g != 3 {
		t.Errorf("grants %d, want 3", g)
	}
}

func TestTokenEndpointRejectsCredentials(t *testing.T) {
	var executed atomic.Int32
	fa := newFakeAtlas(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { executed.Add(1) }))
	var hooks []RequestInfo
	c := newTestClient(t, fa, func(cfg *Config) {
		cfg.ServiceAccount.ClientSecret = "wrong-" + testSecret
		cfg.Hook = func(i RequestInfo) { hooks = append(hooks, i) }
	})
	_, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{})
	e, ok := AsError(err)
	if !ok {
		t.Fatalf("err %v is not *Error", err)
	}
	if e.StatusCode != http.StatusUnauthorized || e.ErrorCode != "UNAUTHORIZED" || e.OutcomeUnknown || e.Operation != OpTakeSnapshot {
		t.Errorf("error = %+v", e)
	}
	if !strings.Contains(err.Error(), "obtaining service account token") || strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text %q", err)
	}
	if executed.Load() != 0 {
		t.Error("API request sent without a token")
	}
	if len(hooks) != 2 || hooks[0].Operation != OpFetchToken || hooks[0].StatusCode != 401 || hooks[1].Operation != OpTakeSnapshot || hooks[1].StatusCode != 0 {
		t.Errorf("hooks = %+v, want one fetch_token 401 then one take_snapshot attempt without status", hooks)
	}
	if err := c.Authenticate(t.Context()); !IsCode(err, "UNAUTHORIZED") {
		t.Errorf("Authenticate = %v, want UNAUTHORIZED", err)
	}
	if !c.LastAuthenticated().IsZero() {
		t.Error("LastAuthenticated set although nothing succeeded")
	}
}

func TestTokenEndpointOutageIsRetriedEvenForPost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var executed, tokenCalls atomic.Int32
		fa := newFakeAtlas(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			executed.Add(1)
			okSnapshot().ServeHTTP(w, r)
		}))
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == TokenPath && tokenCalls.Add(1) <= 2 {
				writeAPIError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "try later")
				return
			}
			fa.ServeHTTP(w, r)
		})
		c := newTestClient(t, h)
		if _, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{}); err != nil {
			t.Fatal(err)
		}
		if tokenCalls.Load() != 3 || executed.Load() != 1 {
			t.Errorf("token calls %d, executions %d; want 3 and 1", tokenCalls.Load(), executed.Load())
		}
	})
}

func TestAuthenticateServiceAccount(t *testing.T) {
	fa := newFakeAtlas(t, okSnapshot())
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := clock.NewFake(start)
	c := newTestClient(t, fa, func(cfg *Config) { cfg.Clock = fc })
	if !c.LastAuthenticated().IsZero() {
		t.Fatal("LastAuthenticated before any call")
	}
	if err := c.Authenticate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !c.LastAuthenticated().Equal(start) || fa.grants.Load() != 1 {
		t.Errorf("LastAuthenticated %v grants %d", c.LastAuthenticated(), fa.grants.Load())
	}
	fc.Advance(time.Minute)
	if _, err := c.Clusters.Get(t.Context(), testProject, "prod"); err != nil {
		t.Fatal(err)
	}
	if !c.LastAuthenticated().Equal(start.Add(time.Minute)) {
		t.Errorf("LastAuthenticated %v after a 200, want %v", c.LastAuthenticated(), start.Add(time.Minute))
	}
	if err := c.Authenticate(t.Context()); err != nil || fa.grants.Load() != 1 {
		t.Errorf("second Authenticate: %v, grants %d (want the cached token)", err, fa.grants.Load())
	}
}

// digestServer implements RFC 7616 digest (MD5, qop=auth) in front of next.
type digestServer struct {
	user, pass string
	next       http.Handler
	challenges atomic.Int32
	leaked     atomic.Bool
}

func md5hex(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }

func (d *digestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, d.pass) {
				d.leaked.Store(true)
			}
		}
	}
	const realm, nonce = "MMS Public API", "nonce123"
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Digest ")
	if !ok {
		d.challenges.Add(1)
		w.Header().Set("WWW-Authenticate", `Digest realm="`+realm+`", domain="", nonce="`+nonce+`", algorithm=MD5, qop="auth", stale=false`)
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "digest required")
		return
	}
	p := map[string]string{}
	for _, kv := range strings.Split(auth, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		p[k] = strings.Trim(v, `"`)
	}
	ha1 := md5hex(d.user + ":" + realm + ":" + d.pass)
	ha2 := md5hex(r.Method + ":" + p["uri"])
	want := md5hex(ha1 + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	if p["username"] != d.user || p["response"] != want || p["uri"] != r.URL.RequestURI() {
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad digest")
		return
	}
	d.next.ServeHTTP(w, r)
}

func TestAPIKeyDigest(t *testing.T) {
	var executed atomic.Int32
	var lastPath, lastQuery string
	ds := &digestServer{user: "pubkey", pass: testPrivKey, next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		executed.Add(1)
		lastPath, lastQuery = r.URL.Path, r.URL.RawQuery
		okSnapshot().ServeHTTP(w, r)
	})}
	newKeyClient := func(priv string) *Client {
		return newTestClient(t, ds, func(cfg *Config) {
			cfg.ServiceAccount = nil
			cfg.APIKey = &APIKey{PublicKey: "pubkey", PrivateKey: priv}
		})
	}
	c := newKeyClient(testPrivKey)
	if err := c.Authenticate(t.Context()); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if lastPath != "/api/atlas/v2/groups" || lastQuery != "includeCount=false&itemsPerPage=1" || c.LastAuthenticated().IsZero() {
		t.Errorf("Authenticate probed %s?%s, LastAuthenticated %v", lastPath, lastQuery, c.LastAuthenticated())
	}
	executed.Store(0)
	snap, err := c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{Description: "x"})
	if err != nil || snap.ID != testSnapshot {
		t.Fatalf("Take = %v, %v", snap, err)
	}
	if executed.Load() != 1 {
		t.Errorf("POST executed %d times, want 1 (the challenge leg is rejected unexecuted)", executed.Load())
	}
	if ds.leaked.Load() {
		t.Error("private key sent in a header")
	}
	bad := newKeyClient("wrong")
	err = bad.Authenticate(t.Context())
	if e, ok := AsError(err); !ok || e.StatusCode != 401 || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong key: %v", err)
	}
}
