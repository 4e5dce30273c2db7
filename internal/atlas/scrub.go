package atlas

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Everything backupd takes from an Atlas answer into an error ends up in the
// journal, the status API, pages and logs. An upstream (Atlas, or a proxy in
// front of it) may echo the request's Authorization header into an error
// body, which would publish the live bearer token. So text derived from an
// answer is scrubbed twice: of anything shaped like a credential, as soon as
// it is read (sanitize), and of the exact secrets the client holds, before
// an error leaves the client (Client.scrubError).

// withheld replaces a whole message in which a secret survived scrubbing
// (only possible for secrets made of the marker's own characters).
const withheld = "(message withheld: it contained a credential)"

// minSecret is the shortest secret scrubbed by value: a shorter one protects
// nothing, and replacing it everywhere would garble every message.
const minSecret = 4

var (
	// bearer, basic: the scheme and its token68 credential, also URL-encoded.
	// A repeated scheme word ("Bearer Bearer x") is part of the credential;
	// a leading "+" is a URL-encoded space, so "Bearer +" alone stays.
	schemeRe = regexp.MustCompile(`(?i)\b(bearer|basic)((?:\s|%20|\+)+)(?:(?:bearer|basic)(?:\s|%20|\+)+)*[A-Za-z0-9\-._~/%][A-Za-z0-9\-._~+/%]*=*`)
	// digest: the scheme and its auth-param list (username, response, ...).
	digestRe = regexp.MustCompile(`(?i)\b(digest)(\s+)(?:[\w-]+\s*=\s*(?:\\?"[^"]*\\?"|[^\s,"]*)\s*,?\s*)+`)
	// An Authorization header however it is echoed: "Authorization: x",
	// "authorization=x", JSON {"Authorization":["x"]}; an already scrubbed
	// scheme credential is left as it is.
	authHeaderRe = regexp.MustCompile(`(?i)(authorization(?:\\?["'])?\s*[:=]\s*(?:\[\s*)?(?:\\?["'])?)((?:bearer|basic|digest)\s+)?([^\s"'\\,;\]}]+)`)
	// userinfo in a URL: scheme://user:password@host.
	userinfoRe = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@"'?#]+@`)
)

// scrubPatterns replaces every credential-shaped part of s with redacted.
func scrubPatterns(s string) string {
	if s == "" {
		return s
	}
	s = schemeRe.ReplaceAllString(s, "${1}${2}"+redacted)
	s = digestRe.ReplaceAllString(s, "${1}${2}"+redacted+" ")
	s = authHeaderRe.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, redacted[:len(redacted)-1]) {
			return m // already scrubbed by value or as a scheme credential
		}
		sub := authHeaderRe.FindStringSubmatch(m)
		return sub[1] + sub[2] + redacted
	})
	return userinfoRe.ReplaceAllString(s, "${1}"+redacted+"@")
}

// scrub replaces in s every one of secrets and everything shaped like a
// credential. A message cut short by sanitize ("…") also loses a trailing
// beginning of a secret. The result contains none of secrets.
func scrub(s string, secrets []string) string {
	if s == "" {
		return s
	}
	var live []string
	for _, v := range secrets {
		if len(v) >= minSecret {
			live = append(live, v)
		}
	}
	slices.SortFunc(live, func(a, b string) int { return len(b) - len(a) }) // longest first
	if len(live) > 0 {
		pairs := make([]string, 0, 2*len(live))
		for _, v := range live {
			pairs = append(pairs, v, redacted)
		}
		s = strings.NewReplacer(pairs...).Replace(s)
		if head, ok := strings.CutSuffix(s, "…"); ok {
			s = cutSecretPrefix(head, live) + "…"
		}
	}
	s = scrubPatterns(s)
	for _, v := range live {
		if strings.Contains(s, v) {
			return withheld
		}
	}
	return s
}

// cutSecretPrefix replaces a tail of s that begins one of secrets (what is
// left of a secret that a length bound cut).
func cutSecretPrefix(s string, secrets []string) string {
	for _, v := range secrets {
		for n := min(len(v)-1, len(s)); n >= minSecret; n-- {
			if strings.HasSuffix(s, v[:n]) {
				return s[:len(s)-n] + redacted
			}
		}
	}
	return s
}

// secretForms are the ways secret v can appear in an answer: as is,
// JSON-escaped and URL-encoded.
func secretForms(v string) []string {
	if v == "" {
		return nil
	}
	out := []string{v}
	if q := url.QueryEscape(v); q != v {
		out = append(out, q)
	}
	if j, err := json.Marshal(v); err == nil {
		if u := string(j[1 : len(j)-1]); u != v {
			out = append(out, u)
		}
	}
	return out
}

// staticSecrets are the configured credentials' forms: the client secret,
// the Basic credential x/oauth2 builds from it for the token request, and
// the digest private key.
func staticSecrets(cfg Config) []string {
	var out []string
	if sa := cfg.ServiceAccount; sa != nil {
		out = append(out, secretForms(sa.ClientSecret)...)
		basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(sa.ClientID) + ":" + url.QueryEscape(sa.ClientSecret)))
		out = append(out, basic)
	}
	if k := cfg.APIKey; k != nil {
		out = append(out, secretForms(k.PrivateKey)...)
	}
	return out
}

// secrets are every credential the client holds now: the configured ones
// and the access tokens it was recently issued.
func (c *Client) secrets() []string {
	out := slices.Clone(c.static)
	if c.tokens != nil {
		for _, t := range c.tokens.recent() {
			out = append(out, secretForms(t)...)
		}
	}
	return out
}

// scrubError scrubs every text of err that may come from an answer (or from
// a transport error quoting one) of the client's secrets.
func (c *Client) scrubError(err error) error {
	if err == nil {
		return nil
	}
	secrets := c.secrets()
	e, ok := err.(*Error)
	if !ok {
		return scrubCause(err, secrets)
	}
	cp := *e
	cp.ErrorCode = scrub(cp.ErrorCode, secrets)
	cp.Detail = scrub(cp.Detail, secrets)
	cp.Reason = scrub(cp.Reason, secrets)
	if cp.Fields != nil {
		cp.Fields = slices.Clone(cp.Fields)
		for i := range cp.Fields {
			cp.Fields[i].Field = scrub(cp.Fields[i].Field, secrets)
			cp.Fields[i].Description = scrub(cp.Fields[i].Description, secrets)
		}
	}
	if cp.Parameters != nil {
		cp.Parameters = scrubValue(cp.Parameters, secrets).([]any)
	}
	if cp.Err != nil {
		cp.Err = scrubCause(cp.Err, secrets)
	}
	return &cp
}

// scrubValue scrubs the strings of a decoded JSON value.
func scrubValue(v any, secrets []string) any {
	switch x := v.(type) {
	case string:
		return scrub(x, secrets)
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = scrubValue(item, secrets)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[scrub(k, secrets)] = scrubValue(item, secrets)
		}
		return out
	default:
		return v
	}
}

// scrubCause keeps err when its text is clean, and otherwise wraps it with
// the scrubbed text (errors.Is and errors.As still see the cause).
func scrubCause(err error, secrets []string) error {
	msg := err.Error()
	if s := scrub(msg, secrets); s != msg {
		return &scrubbedError{msg: s, err: err}
	}
	return err
}

// scrubbedError shows a cause's scrubbed text.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
