package atlassim

import (
	"context"
	"crypto/md5" //nolint:gosec // digest test vectors
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mongodb-forks/digest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/backupd/backupd/internal/atlas"
)

func TestTokenEndpoint(t *testing.T) {
	h := newHarness(t, Options{})
	cases := []struct {
		name   string
		id     string
		secret string
		form   string
		edit   func(*http.Request)
		status int
		errStr string
	}{
		{"wrong secret", DemoClientID, "nope", "grant_type=client_credentials", nil, http.StatusUnauthorized, "invalid_client"},
		{"unknown client", "mdb_sa_id_other", DemoClientSecret, "grant_type=client_credentials", nil, http.StatusUnauthorized, "invalid_client"},
		{"no Basic auth", DemoClientID, DemoClientSecret, "grant_type=client_credentials", func(r *http.Request) { r.Header.Del("Authorization") }, http.StatusUnauthorized, "invalid_client"},
		{"wrong grant", DemoClientID, DemoClientSecret, "grant_type=password", nil, http.StatusBadRequest, "unsupported_grant_type"},
		{"no grant", DemoClientID, DemoClientSecret, "", nil, http.StatusBadRequest, "unsupported_grant_type"},
		{"JSON body", DemoClientID, DemoClientSecret, `{"grant_type":"client_credentials"}`, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, http.StatusBadRequest, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, atlas.TokenPath, strings.NewReader(tc.form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(tc.id, tc.secret)
			if tc.edit != nil {
				tc.edit(req)
			}
			rec := httptest.NewRecorder()
			h.sim.ServeHTTP(rec, req)
			var body oauthError
			if rec.Code != tc.status || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error != tc.errStr {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.errStr)
			}
			if strings.Contains(rec.Body.String(), DemoClientSecret) {
				t.Error("the answer echoes the secret")
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, atlas.TokenPath, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("status %d", rec.Code)
		}
	})
	t.Run("success", func(t *testing.T) {
		rec := h.tokenRequest(DemoClientID, DemoClientSecret, "grant_type=client_credentials")
		var tr tokenResponse
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &tr) != nil || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.AccessToken == "" {
			t.Errorf("token answer %d %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("headers %v", rec.Header())
		}
	})
}

func TestTokenRateLimit(t *testing.T) {
	h := newHarness(t, Options{}) // the harness already fetched one token
	for i := 1; i < tokenRateLimit; i++ {
		if rec := h.tokenRequest(DemoClientID, DemoClientSecret, "grant_type=client_credentials"); rec.Code != http.StatusOK {
			t.Fatalf("token %d: %d", i+1, rec.Code)
		}
	}
	rec := h.tokenRequest(DemoClientID, DemoClientSecret, "grant_type=client_credentials")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("token 51: %d %v", rec.Code, rec.Header())
	}
	r := resp{code: rec.Code, hdr: rec.Header(), raw: rec.Body.Bytes()}
	e := expectError(t, r, http.StatusTooManyRequests, atlas.CodeRateLimited)
	if e.Detail != "Resource /api/oauth/token is limited to 50 requests every 1 minutes." {
		t.Errorf("detail %q", e.Detail)
	}
	h.clk.Advance(2 * time.Second) // 50/min refills one token in 1.2s
	if rec := h.tokenRequest(DemoClientID, DemoClientSecret, "grant_type=client_credentials"); rec.Code != http.StatusOK {
		t.Errorf("after refill: %d", rec.Code)
	}
}

func TestBearerTokens(t *testing.T) {
	h := newHarness(t, Options{})
	h.must(h.get(base+"/clusters"), http.StatusOK)
	h.clk.Advance(time.Hour - time.Second)
	h.must(h.get(base+"/clusters"), http.StatusOK)
	h.clk.Advance(time.Second)
	r := h.get(base + "/clusters")
	expectError(t, r, http.StatusUnauthorized, atlas.CodeUnauthorized)
	if !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Digest ") {
		t.Errorf("401 without a digest challenge: %v", r.hdr)
	}
	h.token = "atlassim_forged"
	expectError(t, h.get(base+"/clusters"), http.StatusUnauthorized, atlas.CodeUnauthorized)

	// Unauthenticated requests are logged but not counted, and apply nothing.
	before := h.sim.Calls("take_snapshot")
	expectError(t, h.post(base+"/clusters/prod-main/backup/snapshots", `{}`), http.StatusUnauthorized, atlas.CodeUnauthorized)
	if h.sim.Calls("take_snapshot") != before || len(h.sim.Snapshots(pid, "prod-main")) != 1 {
		t.Error("an unauthenticated POST was counted or applied")
	}
	log := h.sim.CallLog()
	if last := log[len(log)-1]; last.Op != "take_snapshot" || last.Status != http.StatusUnauthorized || last.ProjectID != pid {
		t.Errorf("last call %+v", last)
	}

	h.token = h.fetchToken(DemoClientID, DemoClientSecret)
	h.must(h.get(base+"/clusters"), http.StatusOK)
}

// TestOAuthClientLibrary has golang.org/x/oauth2's client-credentials flow,
// which backupd's client uses, fetch and use a token.
func TestOAuthClientLibrary(t *testing.T) {
	h := newHarness(t, Options{})
	cfg := clientcredentials.Config{ClientID: DemoClientID, ClientSecret: DemoClientSecret, TokenURL: "http://atlas.test" + atlas.TokenPath}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: h.sim.Transport()})
	client := cfg.Client(ctx)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://atlas.test"+base+"/flexClusters", nil)
	req.Header.Set("Accept", atlas.MediaFlex)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
}

func TestDigestWithClientLibrary(t *testing.T) {
	h := newHarness(t, Options{})
	client := &http.Client{Transport: digest.NewTransportWithHTTPRoundTripper(DemoPublicKey, DemoPrivateKey, h.sim.Transport())}
	send := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://atlas.test"+path, strings.NewReader(body))
		req.Header.Set("Accept", mediaFor(path))
		if method == http.MethodPost {
			req.Header.Set("Content-Type", mediaFor(path))
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	if res := send(http.MethodGet, base+"/clusters?itemsPerPage=2&pageNum=2", ""); res.StatusCode != http.StatusOK {
		t.Fatalf("digest GET: %d", res.StatusCode)
	}
	res := send(http.MethodPost, base+"/clusters/prod-main/backup/snapshots", `{"retentionInDays":1,"description":"digest"}`)
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("digest POST: %d %s", res.StatusCode, body)
	}
	// The challenge leg never applies the POST.
	if h.sim.Calls("take_snapshot") != 1 || len(h.sim.Snapshots(pid, "prod-main")) != 2 {
		t.Errorf("Calls(take_snapshot)=%d snapshots=%d", h.sim.Calls("take_snapshot"), len(h.sim.Snapshots(pid, "prod-main")))
	}
	var statuses []int
	for _, c := range h.sim.CallLog() {
		if c.Op == "take_snapshot" {
			statuses = append(statuses, c.Status)
		}
	}
	if fmt.Sprint(statuses) != "[401 200]" {
		t.Errorf("take_snapshot log statuses %v, want the challenge then the call", statuses)
	}

	wrong := &http.Client{Transport: digest.NewTransportWithHTTPRoundTripper(DemoPublicKey, "not-the-key", h.sim.Transport())}
	req, _ := http.NewRequest(http.MethodGet, "http://atlas.test"+base+"/clusters", nil)
	req.Header.Set("Accept", atlas.MediaClusters)
	res, err := wrong.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong private key: %d", res.StatusCode)
	}
}

// digestHeader computes an RFC 7616 response by hand.
func digestHeader(newHash func() hash.Hash, alg, user, secret, method, uri, nonce, nc string) string {
	hx := func(s string) string {
		h := newHash()
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil))
	}
	ha1 := hx(user + ":" + digestRealm + ":" + secret)
	ha2 := hx(method + ":" + uri)
	resp := hx(strings.Join([]string{ha1, nonce, nc, "0a4f113b", "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, algorithm=%s, qop=auth, nc=%s, cnonce="0a4f113b", response=%q`,
		user, digestRealm, nonce, uri, alg, nc, resp)
}

func TestDigestVerification(t *testing.T) {
	h := newHarness(t, Options{})
	uri := base + "/clusters"
	challenge := func() string {
		t.Helper()
		r := h.do(http.MethodGet, uri, "", func(r *http.Request) { r.Header.Del("Authorization") })
		p := parseAuthParams(strings.TrimPrefix(r.hdr.Get("WWW-Authenticate"), "Digest "))
		if r.code != http.StatusUnauthorized || p["realm"] != digestRealm || p["qop"] != "auth" || p["algorithm"] != "MD5" || p["nonce"] == "" {
			t.Fatalf("challenge %d %q", r.code, r.hdr.Get("WWW-Authenticate"))
		}
		return p["nonce"]
	}
	withAuth := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}

	nonce := challenge()
	good := digestHeader(sha256.New, "SHA-256", DemoPublicKey, DemoPrivateKey, http.MethodGet, uri, nonce, "00000001")
	h.must(h.do(http.MethodGet, uri, "", withAuth(good)), http.StatusOK)
	// The same nonce count again is a replay.
	expectError(t, h.do(http.MethodGet, uri, "", withAuth(good)), http.StatusUnauthorized, atlas.CodeUnauthorized)
	// A higher count on the same nonce is fine.
	h.must(h.do(http.MethodGet, uri, "", withAuth(digestHeader(sha256.New, "SHA-256", DemoPublicKey, DemoPrivateKey, http.MethodGet, uri, nonce, "00000002"))), http.StatusOK)

	nonce = challenge()
	bad := []struct {
		name   string
		header string
		path   string
	}{
		{"response for another URI", digestHeader(md5.New, "MD5", DemoPublicKey, DemoPrivateKey, http.MethodGet, base+"/flexClusters", nonce, "00000001"), uri},
		{"response for another method", digestHeader(md5.New, "MD5", DemoPublicKey, DemoPrivateKey, http.MethodPost, uri, nonce, "00000001"), uri},
		{"unknown user", digestHeader(md5.New, "MD5", "someone", DemoPrivateKey, http.MethodGet, uri, nonce, "00000001"), uri},
		{"nonce never issued", digestHeader(md5.New, "MD5", DemoPublicKey, DemoPrivateKey, http.MethodGet, uri, "deadbeef", "00000001"), uri},
		{"unsupported algorithm", strings.Replace(digestHeader(md5.New, "MD5", DemoPublicKey, DemoPrivateKey, http.MethodGet, uri, nonce, "00000001"), "algorithm=MD5", "algorithm=SHA-512-256", 1), uri},
		{"basic auth", "Basic " + "YmFja3VwZGRlbW86YmFja3VwZC1kZW1vLXByaXZhdGUta2V5", uri},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, h.do(http.MethodGet, tc.path, "", withAuth(tc.header)), http.StatusUnauthorized, atlas.CodeUnauthorized)
		})
	}
	// A stale nonce earns a challenge with stale=true.
	h.clk.Advance(nonceLifetime + time.Second)
	r := h.do(http.MethodGet, uri, "", withAuth(digestHeader(md5.New, "MD5", DemoPublicKey, DemoPrivateKey, http.MethodGet, uri, nonce, "00000001")))
	if r.code != http.StatusUnauthorized || !strings.Contains(r.hdr.Get("WWW-Authenticate"), "stale=true") {
		t.Errorf("stale nonce: %d %q", r.code, r.hdr.Get("WWW-Authenticate"))
	}
}

func TestParseAuthParams(t *testing.T) {
	got := parseAuthParams(`username="a\"b", realm="x, y", nc=00000001, qop=auth,cnonce="c"`)
	want := map[string]string{"username": `a"b`, "realm": "x, y", "nc": "00000001", "qop": "auth", "cnonce": "c"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseAuthParams = %v, want %v", got, want)
	}
}
