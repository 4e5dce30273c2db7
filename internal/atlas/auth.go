package atlas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/backupd/backupd/internal/clock"
)

// defaultTokenLifetime applies when the token endpoint omits expires_in;
// Atlas documents service-account tokens as valid for one hour.
const defaultTokenLifetime = time.Hour

// tokenCache holds one service-account token and renews it shortly before it
// expires. Expiry is tracked on the injected clock (x/oauth2's own expiry
// check reads time.Now, which tests cannot move). The grant itself is
// clientcredentials.Config.Token with HTTP Basic auth and OUR http.Client
// passed through oauth2.HTTPClient, so http.DefaultClient is never used.
// Each fetch runs under the requesting call's context: there is no captured
// long-lived context that could go stale, and cancelling a call interrupts
// its token fetch without poisoning the cache for other callers.
//
// The fetch holds sem, so every other caller waits for it: a fetch is
// therefore always bounded by timeout, whatever deadline (or none, as for
// Authenticate at start-up) its caller has. Otherwise one token request that
// never answers would hold sem for ever and block every later refresh even
// after Atlas recovered. Waiters select on their own context, so a caller's
// deadline is honoured while another caller's fetch is in flight.
type tokenCache struct {
	conf    clientcredentials.Config
	client  *http.Client
	clock   clock.Clock
	sem     chan struct{} // one fetch at a time; waiting is cancellable
	timeout time.Duration // bounds each fetch (atlas.timeout)

	mu      sync.Mutex
	tok     *oauth2.Token
	renewAt time.Time // on clock; the token is reused until then
	// issued are the last access tokens granted, newest last: an error
	// answer may echo one that was replaced meanwhile (a 401 drops the
	// token before the call returns), and each must still be scrubbed.
	issued []string
}

// maxIssued bounds issued: more than a handful of tokens replaced during
// one call would take as many token grants within it.
const maxIssued = 8

// recent returns the access tokens granted lately, for scrubbing.
func (tc *tokenCache) recent() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return slices.Clone(tc.issued)
}

func (tc *tokenCache) cached() *oauth2.Token {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tok != nil && tc.clock.Now().Before(tc.renewAt) {
		return tc.tok
	}
	return nil
}

// token returns a valid token, fetching a new one when the cached one is
// missing, invalidated or within its renewal margin.
func (tc *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	if t := tc.cached(); t != nil {
		return t, nil
	}
	select {
	case tc.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-tc.sem }()
	if t := tc.cached(); t != nil {
		return t, nil // another caller fetched while we waited
	}
	start := tc.clock.Now()
	fctx, cancel := context.WithTimeout(ctx, tc.timeout)
	defer cancel()
	tok, err := tc.conf.Token(context.WithValue(fctx, oauth2.HTTPClient, tc.client))
	if err != nil {
		if ctx.Err() == nil && errors.Is(fctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer from %s within %s: %w", TokenPath, tc.timeout, err)
		}
		return nil, err
	}
	life := tokenLifetime(tok)
	// Renew a minute early (or a quarter of the lifetime for short tokens) so
	// a request never leaves with a token that expires in flight.
	margin := min(time.Minute, life/4)
	tc.mu.Lock()
	tc.tok = tok
	tc.renewAt = start.Add(life - margin)
	tc.issued = append(tc.issued, tok.AccessToken)
	if len(tc.issued) > maxIssued {
		tc.issued = slices.Delete(tc.issued, 0, len(tc.issued)-maxIssued)
	}
	tc.mu.Unlock()
	return tok, nil
}

// invalidate drops tok if it is still the cached one (after Atlas rejected it).
func (tc *tokenCache) invalidate(tok *oauth2.Token) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tok == tok {
		tc.tok = nil
	}
}

// tokenLifetime reads expires_in from the raw token response; clientcredentials
// keeps it only in the token's extra fields.
func tokenLifetime(tok *oauth2.Token) time.Duration {
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case json.Number:
		secs, _ = v.Float64()
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs <= 0 || secs > (30*24*time.Hour).Seconds() {
		return defaultTokenLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

// tokenError marks a failure to obtain a token: the API request was never sent.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "obtaining service account token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// bearerTransport adds "Authorization: Bearer" from the token cache.
type bearerTransport struct {
	base   http.RoundTripper
	tokens *tokenCache
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.tokens.token(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, &tokenError{err: err}
	}
	if st := attemptFrom(req.Context()); st != nil {
		st.token = tok
	}
	r2 := req.Clone(req.Context())
	r2.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return t.base.RoundTrip(r2)
}

// tokenHookTransport reports token requests to the hook as "fetch_token".
// It also reports an absurd Retry-After from the token endpoint, which is
// capped like an API answer's (requestError decodes it).
type tokenHookTransport struct {
	base      http.RoundTripper
	clock     clock.Clock
	hook      RequestHook
	userAgent string
	log       *zap.Logger // carries the host
}

func (t *tokenHookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r2 := req.Clone(req.Context())
	r2.Header.Set("User-Agent", t.userAgent)
	start := t.clock.Now()
	resp, err := t.base.RoundTrip(r2)
	info := RequestInfo{Operation: OpFetchToken, Method: req.Method, Attempt: 1, Duration: t.clock.Now().Sub(start)}
	if err == nil {
		info.StatusCode = resp.StatusCode
		info.RateLimited = resp.StatusCode == http.StatusTooManyRequests
		warnRetryAfterCapped(t.log, "", resp.Header, t.clock.Now())
	}
	t.hook(info)
	return resp, err
}

// attemptState records, for one API attempt, facts the transports learn:
// whether any leg may have reached the server, and which token was used.
type attemptState struct {
	maybeSent atomic.Bool
	token     *oauth2.Token
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attemptState {
	st, _ := ctx.Value(attemptKey{}).(*attemptState)
	return st
}

// probeTransport sits directly above the base transport and decides, for each
// failed leg, whether the request could have reached Atlas. It counts a leg
// as certainly unsent only when the failure is a dial error, or when the base
// is an *http.Transport whose trace shows no connection was ever obtained.
// Anything else (reset, EOF, timeout after connecting) may have been processed.
type probeTransport struct {
	base   http.RoundTripper
	traced bool // base is *http.Transport, so httptrace callbacks are reliable
}

func (p *probeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := attemptFrom(req.Context())
	if st == nil {
		return p.base.RoundTrip(req)
	}
	var gotConn atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := p.base.RoundTrip(req)
	if err != nil && !isDialError(err) && (!p.traced || gotConn.Load()) {
		st.maybeSent.Store(true)
	}
	return resp, err
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
