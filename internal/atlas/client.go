// Package atlas is backupd's typed client for the MongoDB Atlas Administration
// API v2: the cloud-backup, export, export-bucket, flex-restore and cluster
// endpoints backupd uses, each pinned to its versioned media type.
//
// The client owns the rules every caller would otherwise get wrong: it
// authenticates (service-account OAuth2 or digest API key), keeps to a
// client-side request budget and to Atlas's per-project Retry-After holds,
// retries reads with backoff, never blindly repeats a POST whose outcome is
// unknown (see OutcomeUnknown), pages through lists, and turns every failure
// into an *Error that names the operation.
package atlas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mongodb-forks/digest"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/backupd/backupd/internal/clock"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultRequestsPerMinute = 100
	DefaultTimeout           = 30 * time.Second
	DefaultMaxAttempts       = 6
)

// redacted replaces every secret in printed values.
const redacted = "[REDACTED]"

// ServiceAccount holds OAuth2 client credentials (the recommended Atlas auth).
// Its printed, logged and JSON forms never show ClientSecret.
type ServiceAccount struct {
	ClientID     string
	ClientSecret string
}

// String shows the client id only.
func (s ServiceAccount) String() string {
	return fmt.Sprintf("ServiceAccount{ClientID:%s ClientSecret:%s}", s.ClientID, redacted)
}

// GoString keeps %#v from printing the secret.
func (s ServiceAccount) GoString() string { return s.String() }

// Format makes every fmt verb (including %d, %x, %+v) print the redacted form.
func (s ServiceAccount) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue keeps slog from logging the secret.
func (s ServiceAccount) LogValue() slog.Value {
	return slog.GroupValue(slog.String("clientID", s.ClientID), slog.String("clientSecret", redacted))
}

// MarshalJSON keeps reflection-based loggers (e.g. zap.Any) from emitting the secret.
func (s ServiceAccount) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"clientID":%q,"clientSecret":%q}`, s.ClientID, redacted), nil
}

// APIKey holds a legacy programmatic API key used with HTTP Digest.
// Its printed, logged and JSON forms never show PrivateKey.
type APIKey struct {
	PublicKey  string
	PrivateKey string
}

// String shows the public key only.
func (k APIKey) String() string {
	return fmt.Sprintf("APIKey{PublicKey:%s PrivateKey:%s}", k.PublicKey, redacted)
}

// GoString keeps %#v from printing the secret.
func (k APIKey) GoString() string { return k.String() }

// Format makes every fmt verb print the redacted form.
func (k APIKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue keeps slog from logging the secret.
func (k APIKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("publicKey", k.PublicKey), slog.String("privateKey", redacted))
}

// MarshalJSON keeps reflection-based loggers from emitting the secret.
func (k APIKey) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"publicKey":%q,"privateKey":%q}`, k.PublicKey, redacted), nil
}

// RequestInfo describes one HTTP attempt, for metrics and debug logs.
type RequestInfo struct {
	Operation   string        // e.g. "take_snapshot"; "fetch_token" for OAuth2 token requests
	Method      string        // HTTP method
	StatusCode  int           // 0 when no response arrived (transport error)
	ErrorCode   string        // Atlas errorCode of an error response
	Duration    time.Duration // measured on the injected clock
	Attempt     int           // 1 for the first try of a call
	RateLimited bool          // Atlas answered 429
	ProjectID   string        // "" for calls not scoped to a project
	// Undecodable is set for a 2xx answer whose body could not be read or
	// decoded, or that carries a malformed id: the call failed although
	// StatusCode says 2xx.
	Undecodable bool
	// Priority is the call's priority in its project's request budget and
	// BudgetWait how long this attempt waited for the budget before it was
	// sent; both zero for token requests, which the budget does not count.
	Priority   Priority
	BudgetWait time.Duration
}

// RequestHook observes every HTTP attempt. It lets metrics plug in without
// this package importing Prometheus. It must be fast and safe for concurrent use.
type RequestHook func(RequestInfo)

// Config configures a Client. Exactly one of ServiceAccount and APIKey is set.
type Config struct {
	BaseURL           string          // default DefaultBaseURL; the simulator's URL in tests
	ServiceAccount    *ServiceAccount // OAuth2 client credentials
	APIKey            *APIKey         // HTTP Digest
	RequestsPerMinute int             // client-side budget of each project (token bucket); default 100
	Timeout           time.Duration   // per HTTP attempt, body included; default 30s
	// Transport is the base transport under authentication; default a fresh
	// clone of http.DefaultTransport (which is never modified) keeping up to 64
	// idle connections per host.
	Transport   http.RoundTripper
	Clock       clock.Clock    // backoff, Retry-After, budget and token expiry; default clock.Real()
	Hook        RequestHook    // optional per-attempt observer
	UserAgent   string         // default DefaultUserAgent
	MaxAttempts int            // attempts for retriable calls; default 6
	Rand        func() float64 // jitter in [0,1); default math/rand/v2; must be concurrency-safe
	// Logger receives the client's own warnings (an absurd Retry-After that
	// was capped); default none. Errors are returned, never logged here.
	Logger *zap.Logger
}

// String describes the config without secrets, so configs can be logged.
func (c Config) String() string {
	auth := "none"
	switch {
	case c.ServiceAccount != nil:
		auth = c.ServiceAccount.String()
	case c.APIKey != nil:
		auth = c.APIKey.String()
	}
	return fmt.Sprintf("atlas.Config{BaseURL:%s Auth:%s RequestsPerMinute:%d Timeout:%s MaxAttempts:%d}",
		redactURL(c.BaseURL), auth, c.RequestsPerMinute, c.Timeout, c.MaxAttempts)
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

// Format makes every fmt verb print the redacted form.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue keeps slog from logging secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

// Client talks to one Atlas API endpoint with one identity. It is safe for
// concurrent use; create one per daemon and share it.
type Client struct {
	Snapshots *SnapshotsService
	Exports   *ExportsService
	Buckets   *BucketsService
	Flex      *FlexService
	Restores  *RestoresService
	Clusters  *ClustersService
	// Native reads what Atlas backs up by itself (schedules, compliance
	// policies, snapshots of either topology), for monitoring.
	Native *NativeService

	baseURL     string // scheme://host[/prefix], no trailing slash
	http        *http.Client
	tokens      *tokenCache // nil with API keys
	clock       clock.Clock
	hook        RequestHook
	userAgent   string
	maxAttempts int
	rand        func() float64
	timeout     time.Duration
	budgets     *budgets // per project (ratelimit.go)
	caps        caps     // answer and listing bounds (bounds.go)
	static      []string // configured secrets, scrubbed from errors (scrub.go)

	authMu   sync.Mutex
	lastAuth time.Time
}

// New validates cfg and builds a Client. Errors name the offending field and
// never include secrets.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.ServiceAccount != nil && cfg.APIKey != nil:
		return nil, errors.New("atlas: config: set exactly one of serviceAccount and apiKey, not both")
	case cfg.ServiceAccount == nil && cfg.APIKey == nil:
		return nil, errors.New("atlas: config: set exactly one of serviceAccount and apiKey")
	case cfg.ServiceAccount != nil && cfg.ServiceAccount.ClientID == "":
		return nil, errors.New("atlas: config: serviceAccount.clientID is empty")
	case cfg.ServiceAccount != nil && cfg.ServiceAccount.ClientSecret == "":
		return nil, errors.New("atlas: config: serviceAccount.clientSecret is empty")
	case cfg.APIKey != nil && cfg.APIKey.PublicKey == "":
		return nil, errors.New("atlas: config: apiKey.publicKey is empty")
	case cfg.APIKey != nil && cfg.APIKey.PrivateKey == "":
		return nil, errors.New("atlas: config: apiKey.privateKey is empty")
	}
	if cfg.RequestsPerMinute < 0 {
		return nil, fmt.Errorf("atlas: config: requestsPerMinute %d must not be negative", cfg.RequestsPerMinute)
	}
	if cfg.RequestsPerMinute == 0 {
		cfg.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("atlas: config: timeout %s must not be negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("atlas: config: maxAttempts %d must not be negative", cfg.MaxAttempts)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Hook == nil {
		cfg.Hook = func(RequestInfo) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	log := cfg.Logger.With(zap.String("host", hostOf(base)))
	transport := cfg.Transport
	traced := false
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Many runs poll at once; the default of 2 idle connections per
		// host makes the rest dial (and, over HTTP/1.1, handshake) again
		// for every poll (docs/benchmarks.md, finding 5).
		t.MaxIdleConnsPerHost = 64
		transport = t
	}
	if _, ok := transport.(*http.Transport); ok {
		traced = true
	}

	c := &Client{
		baseURL:     base,
		clock:       cfg.Clock,
		hook:        cfg.Hook,
		userAgent:   cfg.UserAgent,
		maxAttempts: cfg.MaxAttempts,
		rand:        cfg.Rand,
		timeout:     cfg.Timeout,
		budgets:     newBudgets(cfg.Clock, cfg.RequestsPerMinute, log),
		caps:        defaultCaps(),
		static:      staticSecrets(cfg),
	}
	// The hook's errorCode comes from an answer too.
	c.hook = func(i RequestInfo) {
		if i.ErrorCode != "" {
			i.ErrorCode = scrub(i.ErrorCode, c.secrets())
		}
		cfg.Hook(i)
	}
	probe := &probeTransport{base: transport, traced: traced}
	var auth http.RoundTripper
	if sa := cfg.ServiceAccount; sa != nil {
		c.tokens = &tokenCache{
			conf: clientcredentials.Config{
				ClientID:     sa.ClientID,
				ClientSecret: sa.ClientSecret,
				TokenURL:     base + TokenPath,
				AuthStyle:    oauth2.AuthStyleInHeader,
			},
			client: &http.Client{
				Transport:     &tokenHookTransport{base: transport, clock: cfg.Clock, hook: cfg.Hook, userAgent: cfg.UserAgent, log: log},
				CheckRedirect: noRedirects,
				// A backstop to the per-fetch context deadline: no token
				// request can outlive atlas.timeout, body included.
				Timeout: cfg.Timeout,
			},
			clock:   cfg.Clock,
			sem:     make(chan struct{}, 1),
			timeout: cfg.Timeout,
		}
		auth = &bearerTransport{base: probe, tokens: c.tokens}
	} else {
		auth = digest.NewTransportWithHTTPRoundTripper(cfg.APIKey.PublicKey, cfg.APIKey.PrivateKey, probe)
	}
	c.http = &http.Client{Transport: auth, CheckRedirect: noRedirects}
	c.Snapshots = &SnapshotsService{c: c}
	c.Exports = &ExportsService{c: c}
	c.Buckets = &BucketsService{c: c}
	c.Flex = &FlexService{c: c}
	c.Restores = &RestoresService{c: c}
	c.Native = &NativeService{c: c}
	c.Clusters = &ClustersService{c: c}
	return c, nil
}

// noRedirects stops the client from following redirects: Atlas does not
// redirect API calls, and following one could replay a POST elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// hostOf is the host of a base URL that checkBaseURL accepted.
func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("atlas: config: baseURL is not a URL: %w", errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("atlas: config: baseURL %s: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return "", fmt.Errorf("atlas: config: baseURL %s: host is missing", u.Redacted())
	case u.User != nil:
		return "", fmt.Errorf("atlas: config: baseURL %s: must not carry credentials; use serviceAccount or apiKey", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("atlas: config: baseURL %s: must not have a query or fragment", u.Redacted())
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// Authenticate proves the credentials work; /readyz uses it.
//
// With a service account it obtains (or reuses a still-valid cached) OAuth2
// token; the token request is bounded by Config.Timeout even when ctx has no
// deadline, so a token endpoint that never answers cannot stall start-up. With an API key, whose digest handshake only happens on a real
// request, it sends GET /api/atlas/v2/groups?itemsPerPage=1 (listProjects,
// cheap and allowed for any key that can see a project) and requires a 2xx.
func (c *Client) Authenticate(ctx context.Context) error {
	if c.tokens != nil {
		if _, err := c.tokens.token(ctx); err != nil {
			return c.scrubError(c.requestError(&request{op: OpAuthenticate, method: http.MethodPost, path: TokenPath}, &tokenError{err: err}, false))
		}
		c.markAuthenticated()
		return nil
	}
	q := url.Values{"itemsPerPage": {"1"}, "includeCount": {"false"}}
	return c.do(ctx, &request{op: OpAuthenticate, method: http.MethodGet, path: APIPrefix + "/groups", query: q, media: MediaSnapshots}, nil)
}

// LastAuthenticated is when Atlas last accepted the credentials (any 2xx
// answer or a token grant); zero if never. /readyz compares it with now.
func (c *Client) LastAuthenticated() time.Time {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.lastAuth
}

func (c *Client) markAuthenticated() {
	now := c.clock.Now()
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if now.After(c.lastAuth) {
		c.lastAuth = now
	}
}

// RateLimit reports what the client last learned about projectID's Atlas
// rate-limit bucket, including any Retry-After hold in force.
func (c *Client) RateLimit(projectID string) RateInfo { return c.budgets.info(projectID) }
