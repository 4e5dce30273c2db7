package atlassim

import (
	"bytes"
	"crypto/md5" //nolint:gosec // HTTP Digest (RFC 7616) MD5 is what Atlas and the digest client speak.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

const (
	digestRealm    = "MMS Public API"
	nonceLifetime  = 5 * time.Minute
	maxNonces      = 4096
	tokenRateLimit = 50 // requests per minute per client, as Atlas documents
)

type accessToken struct {
	clientID  string
	expiresAt time.Time
}

type nonceState struct {
	issued time.Time
	lastNC uint64
}

// tokenResponse is the OAuth2 client-credentials answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// oauthError is the RFC 6749 §5.2 error body the token endpoint answers with.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// serveToken implements POST /api/oauth/token (client credentials, HTTP Basic).
func (s *Sim) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now := s.clk.Now()
	status, body, hdr := s.tokenLocked(r, now)
	s.recordLocked(Call{At: now, Op: "token", Method: r.Method, Path: r.URL.Path, Status: status}, true)
	s.mu.Unlock()
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, "application/json", body, false)
}

func (s *Sim) tokenLocked(r *http.Request, now time.Time) (int, any, http.Header) {
	if r.Method != http.MethodPost {
		e := errMethodNotAllowed(r.Method, r.URL.Path)
		return e.status, e.body(), http.Header{"Allow": {http.MethodPost}}
	}
	user, pass, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: credentials are form-urlencoded before Basic
		// encoding; golang.org/x/oauth2 does exactly that.
		var err1, err2 error
		user, err1 = url.QueryUnescape(user)
		pass, err2 = url.QueryUnescape(pass)
		ok = err1 == nil && err2 == nil
	}
	secret, known := s.serviceAccounts[user]
	if !ok || !known || subtle.ConstantTimeCompare([]byte(secret), []byte(pass)) != 1 {
		return http.StatusUnauthorized, oauthError{"invalid_client", "Client authentication failed: send the service account's client ID and secret with HTTP Basic."},
			http.Header{"Www-Authenticate": {`Basic realm="Atlas"`}}
	}
	b := s.clientBuckets[user]
	if b == nil {
		b = newTokenBucket(tokenRateLimit, tokenRateLimit, now)
		s.clientBuckets[user] = b
	}
	if _, wait, ok := b.take(now); !ok {
		e := &apiError{
			status: http.StatusTooManyRequests,
			code:   atlas.CodeRateLimited,
			detail: fmt.Sprintf("Resource %s is limited to %d requests every 1 minutes.", atlas.TokenPath, tokenRateLimit),
			params: []any{atlas.TokenPath, tokenRateLimit, 1},
		}
		return e.status, e.body(), http.Header{"Retry-After": {strconv.Itoa(int(wait / time.Second))}}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return http.StatusBadRequest, oauthError{"invalid_request", "Content-Type must be application/x-www-form-urlencoded."}, nil
	}
	if err := r.ParseForm(); err != nil {
		return http.StatusBadRequest, oauthError{"invalid_request", "The form body could not be parsed."}, nil
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		return http.StatusBadRequest, oauthError{"unsupported_grant_type", "grant_type must be client_credentials."}, nil
	}
	tok := "atlassim_" + s.randomHex(24)
	ttl := s.timings.TokenTTL
	s.tokens[tok] = accessToken{clientID: user, expiresAt: now.Add(ttl)}
	s.pruneTokensLocked(now)
	return http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(ttl / time.Second)}, nil
}

func (s *Sim) pruneTokensLocked(now time.Time) {
	if len(s.tokens) < 1024 {
		return
	}
	for k, t := range s.tokens {
		if !now.Before(t.expiresAt) {
			delete(s.tokens, k)
		}
	}
}

func (s *Sim) randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.authRNG.Uint32())
	}
	return hex.EncodeToString(b)
}

// authResult says who a request authenticated as, or why it did not.
type authResult struct {
	ok    bool
	stale bool   // digest nonce expired: the client may retry with a fresh one
	who   string // client id or public key, for logs
}

// authenticateLocked checks a Bearer token or an HTTP Digest response.
func (s *Sim) authenticateLocked(r *http.Request, now time.Time) authResult {
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		t, ok := s.tokens[strings.TrimSpace(rest)]
		if !ok || !now.Before(t.expiresAt) {
			return authResult{}
		}
		return authResult{ok: true, who: t.clientID}
	case "digest":
		return s.checkDigestLocked(r, parseAuthParams(rest), now)
	}
	return authResult{}
}

func (s *Sim) checkDigestLocked(r *http.Request, p map[string]string, now time.Time) authResult {
	secret, known := s.apiKeys[p["username"]]
	if !known || p["realm"] != digestRealm || p["uri"] != r.URL.RequestURI() {
		return authResult{}
	}
	var newHash func() hash.Hash
	switch strings.ToUpper(p["algorithm"]) {
	case "", "MD5":
		newHash = md5.New
	case "SHA-256":
		newHash = sha256.New
	default:
		return authResult{}
	}
	if p["qop"] != "auth" {
		return authResult{}
	}
	ns, ok := s.nonces[p["nonce"]]
	if !ok {
		return authResult{}
	}
	if now.Sub(ns.issued) > nonceLifetime {
		delete(s.nonces, p["nonce"])
		return authResult{stale: true}
	}
	nc, err := strconv.ParseUint(p["nc"], 16, 64)
	if err != nil || nc <= ns.lastNC {
		return authResult{} // replayed or malformed nonce count
	}
	hexHash := func(v string) string {
		h := newHash()
		_, _ = h.Write([]byte(v))
		return hex.EncodeToString(h.Sum(nil))
	}
	ha1 := hexHash(p["username"] + ":" + digestRealm + ":" + secret)
	ha2 := hexHash(r.Method + ":" + p["uri"])
	want := hexHash(strings.Join([]string{ha1, p["nonce"], p["nc"], p["cnonce"], p["qop"], ha2}, ":"))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(p["response"]))) != 1 {
		return authResult{}
	}
	ns.lastNC = nc
	return authResult{ok: true, who: p["username"]}
}

// digestChallengeLocked issues a fresh nonce. The header's layout matches
// what github.com/mongodb-forks/digest parses (", "-separated, no unknown keys).
func (s *Sim) digestChallengeLocked(now time.Time, stale bool) string {
	if len(s.nonces) >= maxNonces {
		for k, n := range s.nonces {
			if now.Sub(n.issued) > nonceLifetime {
				delete(s.nonces, k)
			}
		}
		if len(s.nonces) >= maxNonces {
			s.nonces = map[string]*nonceState{}
		}
	}
	nonce := s.randomHex(16)
	s.nonces[nonce] = &nonceState{issued: now}
	return fmt.Sprintf(`Digest realm=%q, domain="", nonce=%q, algorithm=MD5, qop="auth", stale=%t`, digestRealm, nonce, stale)
}

// parseAuthParams parses RFC 7235 auth-params: k=v or k="quoted, value".
func parseAuthParams(s string) map[string]string {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return out
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			val = b.String()
			s = s[min(i+1, len(s)):]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		out[key] = val
	}
}

// writeJSON writes v as JSON with the given status and content type. HTML
// escaping is off so "&" in links and "<" in descriptions travel as Atlas
// sends them.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any, pretty bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		contentType = atlas.MediaError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(atlas.ErrorBody{Error: status, ErrorCode: atlas.CodeUnexpectedError, Reason: http.StatusText(status), Detail: "atlassim could not encode the response"})
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
