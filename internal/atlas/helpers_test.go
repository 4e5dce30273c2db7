package atlas

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
)

const (
	testProject  = "32b6e34b3d91647abb20e7b8"
	testProject2 = "32b6e34b3d91647abb20e7ff"
	testSnapshot = "5f1b2c3d4e5f60718293a4b5"
	testBucket   = "32b6e34b3d91647abb20e7b9"
	testBaseURL  = "https://atlas.test"
	testClientID = "mdb_sa_id_test"
	testSecret   = "mdb_sa_sk_TOPSECRET"
	testPrivKey  = "priv-TOPSECRET-key"
)

// handlerTransport serves requests in memory, so tests can run inside a
// synctest bubble (real sockets are not durably blocking) and need no port.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	r2 := req.Clone(req.Context())
	if r2.Body == nil {
		r2.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r2)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// rtFunc adapts a function to http.RoundTripper.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeAtlas serves the OAuth2 token endpoint and, behind bearer
// authentication, the api handler. It counts token grants.
type fakeAtlas struct {
	t         testing.TB
	api       http.Handler
	expiresIn int
	grants    atomic.Int32
	revoked   sync.Map // access tokens the API rejects
}

func newFakeAtlas(t testing.TB, api http.Handler) *fakeAtlas {
	return &fakeAtlas{t: t, api: api, expiresIn: 3600}
}

func (f *fakeAtlas) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == TokenPath {
		id, secret, ok := r.BasicAuth()
		if r.Method != http.MethodPost || !ok || id != testClientID || secret != testSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":401,"errorCode":"UNAUTHORIZED","detail":"bad client credentials","reason":"Unauthorized"}`)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			f.t.Errorf("token request form = %v (err %v), want grant_type=client_credentials", r.PostForm, err)
		}
		n := f.grants.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, f.expiresIn)
		return
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if _, bad := f.revoked.Load(tok); !ok || !strings.HasPrefix(tok, "tok-") || bad {
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad token")
		return
	}
	f.api.ServeHTTP(w, r)
}

func writeAPIError(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Error: status, ErrorCode: code, Detail: detail, Reason: http.StatusText(status)})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// newTestClient builds a service-account client whose transport serves h in memory.
func newTestClient(t testing.TB, h http.Handler, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL:           testBaseURL,
		ServiceAccount:    &ServiceAccount{ClientID: testClientID, ClientSecret: testSecret},
		Transport:         handlerTransport{h},
		RequestsPerMinute: 60000,
		Rand:              func() float64 { return 1 },
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// okSnapshot answers every request with one replica-set snapshot.
func okSnapshot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Snapshot{ID: testSnapshot, Status: SnapshotQueued, Type: KindReplicaSet})
	})
}

func testToken() *oauth2.Token { return &oauth2.Token{AccessToken: "tok-0", TokenType: "Bearer"} }
