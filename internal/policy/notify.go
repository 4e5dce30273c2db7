package policy

import (
	"net/url"
	"strings"
	"time"
)

// Defaults of the notify: section (docs/configuration.md, "notify"; change
// both together).
const (
	// DefaultNotifyQueueSize bounds the deliveries waiting to be sent (in
	// memory and in the notify store); a full queue drops the oldest. A
	// delivery is one small JSON body, so 1,000 is well under a megabyte
	// and holds a day of failures of a large fleet while a receiver is down.
	DefaultNotifyQueueSize = 1000
	// DefaultNotifyAttempts is how often one delivery is tried before it is
	// given up: with the default backoff (30s doubling up to 30m) eight
	// attempts span about an hour.
	DefaultNotifyAttempts   = 8
	DefaultNotifyTimeout    = 10 * time.Second
	DefaultNotifyBackoff    = 30 * time.Second
	DefaultNotifyMaxBackoff = 30 * time.Minute
	// MaxNotifyQueueSize and MaxNotifyAttempts keep the bounds bounded.
	MaxNotifyQueueSize = 100000
	MaxNotifyAttempts  = 100
)

// Run events a webhook can subscribe to: a run's terminal stages.
const (
	EventSucceeded = "succeeded"
	EventFailed    = "failed"
	EventSkipped   = "skipped"
)

// Webhook payload formats.
const (
	FormatJSON  = "json"  // backupd's versioned payload (docs/configuration.md)
	FormatSlack = "slack" // {"text": ...}, for Slack and compatible receivers
)

// Notify is the notify: section: webhooks on run events and dead-man's
// switch pings per policy, with the bounds of their delivery.
type Notify struct {
	Webhooks   []Webhook
	Pings      []Ping
	QueueSize  int
	Attempts   int           // tries per delivery, the first included
	Timeout    time.Duration // per request
	Backoff    time.Duration // wait before the second attempt; doubles after each
	MaxBackoff time.Duration // the longest wait between two attempts
	Pos        Position
}

// Webhook posts a payload on the run events it subscribes to.
type Webhook struct {
	Name string
	// URL is read from URLFile: webhook URLs carry their token in the path
	// (Slack's do), so they are secrets and never appear in a message.
	URL      Secret
	URLFile  string
	Format   string   // FormatJSON or FormatSlack
	Events   []string // EventSucceeded, EventFailed, EventSkipped
	Policies []string // the policies whose runs it reports; empty: every one
}

// Ping signals a policy's runs to a dead-man's switch (healthchecks.io and
// the like): a request when a run starts, when it succeeds, when it fails.
// The receiver raises the alarm when the pings stop, which also catches a
// daemon that stopped altogether.
type Ping struct {
	Policy  string
	URL     Secret // the check's base URL, read from URLFile
	URLFile string
	// Paths are appended to the URL's path for each signal ("/start", "",
	// "/fail" by default, healthchecks.io's convention); a signal not in
	// Send is not sent.
	Start, Success, Fail string
	Send                 []string // PingStart, PingSuccess, PingFail
	Method               string   // POST (default) or GET
}

// Ping signals.
const (
	PingStart   = "start"
	PingSuccess = "success"
	PingFail    = "fail"
)

// Wants reports whether the webhook reports event for policy.
func (w Webhook) Wants(event, policy string) bool {
	return contains(w.Events, event) && (len(w.Policies) == 0 || contains(w.Policies, policy))
}

// Path returns the path suffix of a ping signal and whether it is sent.
func (p Ping) Path(signal string) (string, bool) {
	if !contains(p.Send, signal) {
		return "", false
	}
	switch signal {
	case PingStart:
		return p.Start, true
	case PingSuccess:
		return p.Success, true
	case PingFail:
		return p.Fail, true
	}
	return "", false
}

// notifySection decodes notify:, or returns nil when it is absent. The
// policies named in it must exist, so it is checked after policies:.
func (d *decoder) notifySection(top fields, env Env, policies []Policy) *Notify {
	f, ok := top.get("notify")
	if !ok {
		return nil
	}
	m, ok := d.mapping(f.val, f.path, "webhooks", "pings", "queueSize", "attempts", "timeout", "backoff", "maxBackoff")
	if !ok {
		return nil
	}
	n := &Notify{QueueSize: DefaultNotifyQueueSize, Attempts: DefaultNotifyAttempts, Timeout: DefaultNotifyTimeout,
		Backoff: DefaultNotifyBackoff, MaxBackoff: DefaultNotifyMaxBackoff, Pos: Position{File: d.file, Line: f.key.Line, Column: f.key.Column}}
	names := map[string]bool{}
	for _, p := range policies {
		names[p.Name] = true
	}
	d.boundedInt(m, "queueSize", 1, MaxNotifyQueueSize, &n.QueueSize)
	d.boundedInt(m, "attempts", 1, MaxNotifyAttempts, &n.Attempts)
	for key, dst := range map[string]*time.Duration{"timeout": &n.Timeout, "backoff": &n.Backoff, "maxBackoff": &n.MaxBackoff} {
		if kf, ok := m.get(key); ok {
			if v, ok := d.duration(kf, true); ok {
				*dst = v
			}
		}
	}
	if n.MaxBackoff < n.Backoff {
		at, p := m.node, join(m.path, "maxBackoff")
		if kf, ok := m.get("maxBackoff"); ok {
			at = kf.val
		}
		d.errorAt(at, p, "must be at least backoff (%s)", FormatDuration(n.Backoff))
	}
	if wf, ok := m.get("webhooks"); ok {
		n.Webhooks = d.webhooks(wf, env, names)
	}
	if pf, ok := m.get("pings"); ok {
		n.Pings = d.pings(pf, env, names)
	}
	return n
}

func (d *decoder) boundedInt(m fields, key string, lo, hi int, dst *int) {
	f, ok := m.get(key)
	if !ok {
		return
	}
	if v, ok := d.integer(f); ok {
		if v < lo || v > hi {
			d.errorAt(f.val, f.path, "must be from %d to %d", lo, hi)
		} else {
			*dst = v
		}
	}
}

func (d *decoder) webhooks(f field, env Env, policies map[string]bool) []Webhook {
	items, ok := d.list(f)
	if !ok {
		return nil
	}
	seen := map[string]int{}
	var out []Webhook
	for i, it := range items {
		ip := index(f.path, i)
		m, ok := d.mapping(it, ip, "name", "urlFile", "url", "format", "events", "policies")
		if !ok {
			continue
		}
		before := len(d.issues)
		w := Webhook{Format: FormatJSON, Events: []string{EventFailed}}
		if nf, ok := m.get("name"); ok {
			if v, ok := d.matching(nf, namePattern); ok {
				if line, dup := seen[v]; dup {
					d.errorAt(nf.val, nf.path, "duplicate webhook name %q (first used at line %d)", v, line)
				} else {
					seen[v] = nf.val.Line
					w.Name = v
				}
			}
		} else {
			d.errorAt(m.node, join(ip, "name"), "required: a unique name matching %s (it labels the metrics and logs)", namePattern)
		}
		w.URL, w.URLFile = d.notifyURL(m, ip, env)
		if ff, ok := m.get("format"); ok {
			if v, ok := d.oneOf(ff, FormatJSON, FormatSlack); ok {
				w.Format = v
			}
		}
		if ef, ok := m.get("events"); ok {
			w.Events = d.choices(ef, false, EventSucceeded, EventFailed, EventSkipped)
		}
		if pf, ok := m.get("policies"); ok {
			w.Policies = d.policyNames(pf, policies)
		}
		if len(d.issues) == before {
			out = append(out, w)
		}
	}
	return out
}

func (d *decoder) pings(f field, env Env, policies map[string]bool) []Ping {
	items, ok := d.list(f)
	if !ok {
		return nil
	}
	seen := map[string]int{}
	var out []Ping
	for i, it := range items {
		ip := index(f.path, i)
		m, ok := d.mapping(it, ip, "policy", "urlFile", "url", "start", "success", "fail", "send", "method")
		if !ok {
			continue
		}
		before := len(d.issues)
		p := Ping{Start: "/start", Success: "", Fail: "/fail", Send: []string{PingStart, PingSuccess, PingFail}, Method: "POST"}
		if pf, ok := m.get("policy"); ok {
			if v, ok := d.str(pf); ok {
				switch {
				case !policies[v]:
					d.errorAt(pf.val, pf.path, "no policy is named %q", v)
				case seen[v] != 0:
					d.errorAt(pf.val, pf.path, "policy %q already has a ping (line %d): one check per policy", v, seen[v])
				default:
					seen[v] = pf.val.Line
					p.Policy = v
				}
			}
		} else {
			d.errorAt(m.node, join(ip, "policy"), "required: the policy whose runs ping this check")
		}
		p.URL, p.URLFile = d.notifyURL(m, ip, env)
		for key, dst := range map[string]*string{"start": &p.Start, "success": &p.Success, "fail": &p.Fail} {
			if kf, ok := m.get(key); ok {
				if v, ok := d.str(kf); ok {
					if v != "" && (!strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?#")) {
						d.errorAt(kf.val, kf.path, "must be empty or a path starting with / (appended to the URL's path), without ? or #")
					} else {
						*dst = v
					}
				}
			}
		}
		if sf, ok := m.get("send"); ok {
			p.Send = d.choices(sf, true, PingStart, PingSuccess, PingFail)
		}
		if mf, ok := m.get("method"); ok {
			if v, ok := d.oneOf(mf, "POST", "GET"); ok {
				p.Method = v
			}
		}
		if len(d.issues) == before {
			out = append(out, p)
		}
	}
	return out
}

// notifyURL reads a webhook's or ping's URL from its urlFile. Neither the
// URL nor what is wrong in it is ever quoted: it carries a token.
func (d *decoder) notifyURL(m fields, ip string, env Env) (Secret, string) {
	if f, ok := m.get("url"); ok {
		d.errorAt(f.key, f.path, "inline URLs are not accepted (they carry tokens): write the URL to a file and set urlFile")
		return Secret{}, ""
	}
	f, ok := m.get("urlFile")
	if !ok {
		d.errorAt(m.node, join(ip, "urlFile"), "required: name a file holding the URL")
		return Secret{}, ""
	}
	s, full, ok := d.loadSecretFile(env, f)
	if !ok || s.IsZero() {
		return s, full
	}
	u, err := url.Parse(strings.TrimSpace(s.Reveal()))
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		d.errorAt(f.val, f.path, "secret file %q does not hold an http(s) URL", full)
		return Secret{}, full
	case u.Fragment != "":
		d.errorAt(f.val, f.path, "the URL in %q must not have a #fragment", full)
		return Secret{}, full
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		d.warnAt(f.val, f.path, "the URL in %q is plain http to a non-local host: its token travels unencrypted; use https", full)
	}
	return NewSecret(u.String()), full
}

// choices decodes a list of distinct values out of allowed.
func (d *decoder) choices(f field, emptyOK bool, allowed ...string) []string {
	items, ok := d.list(f)
	if !ok {
		return nil
	}
	if len(items) == 0 && !emptyOK {
		d.errorAt(f.val, f.path, "must list at least one of %s", strings.Join(allowed, ", "))
		return nil
	}
	out := []string{}
	for i, it := range items {
		if v, ok := d.oneOf(field{val: it, path: index(f.path, i)}, allowed...); ok {
			if contains(out, v) {
				d.errorAt(it, index(f.path, i), "%q is listed twice", v)
				continue
			}
			out = append(out, v)
		}
	}
	return out
}

// policyNames decodes a list of existing policy names.
func (d *decoder) policyNames(f field, policies map[string]bool) []string {
	items, ok := d.list(f)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorAt(f.val, f.path, "must not be empty (omit policies to report every policy)")
		return nil
	}
	var out []string
	for i, it := range items {
		pf := field{val: it, path: index(f.path, i)}
		if v, ok := d.str(pf); ok {
			if !policies[v] {
				d.errorAt(it, pf.path, "no policy is named %q", v)
				continue
			}
			out = append(out, v)
		}
	}
	return out
}
