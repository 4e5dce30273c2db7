package policy

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/backupd/backupd/internal/atlas"
	"gopkg.in/yaml.v3"
)

// Patterns from DESIGN.md and the Atlas OpenAPI spec.
var (
	idPattern      = regexp.MustCompile(`^[a-f0-9]{24}$`)
	namePattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	clusterPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*$`)
	globPattern    = regexp.MustCompile(`^[a-zA-Z0-9*?\[\]^!-]+$`)
)

// reservedLabelPrefix marks the customData keys backupd writes itself.
const reservedLabelPrefix = "backupd."

// Load reads and parses the configuration file at path. On any problem it
// returns *Errors listing every issue with its file:line:column.
func Load(path string, env Env) (*Config, error) {
	data, err := env.readFile(path, MaxConfigSize)
	if err != nil {
		return nil, &Errors{List: []Issue{{File: path, Line: 1, Message: "cannot read the config file: " + fileError(err)}}}
	}
	return Parse(data, path, env)
}

// Parse parses and validates configuration text; filename is used in
// messages and to resolve relative secret file paths. On any problem it
// returns *Errors listing every issue; warnings of a valid file are in
// Config.Warnings.
func Parse(data []byte, filename string, env Env) (*Config, error) {
	d := &decoder{file: filename}
	root := d.document(data)
	var cfg *Config
	if root != nil {
		cfg = d.config(root, env)
	}
	if len(d.issues) > 0 || cfg == nil {
		sortIssues(d.issues)
		return nil, &Errors{List: d.issues}
	}
	sortIssues(d.warnings)
	cfg.Warnings = d.warnings
	return cfg, nil
}

func (d *decoder) config(root *yaml.Node, env Env) *Config {
	top, ok := d.mapping(root, "", "atlas", "server", "state", "log", "ha", "defaults", "policies", "monitor", "notify")
	if !ok {
		return nil
	}
	if isNull(top.node) {
		d.errorAt(top.node, "", "the file is empty: expected a mapping with atlas, server, state, log, defaults and policies")
		return nil
	}
	cfg := &Config{Source: d.file}
	d.atlasSection(top, env, &cfg.Atlas)
	d.serverSection(top, env, &cfg.Server)
	d.stateSection(top, &cfg.State)
	d.logSection(top, &cfg.Log)
	cfg.HA = d.haSection(top)
	defs := d.defaultsSection(top)
	cfg.Defaults = defs.Defaults
	cfg.Monitor = d.monitorSection(top)
	cfg.Policies = d.policiesSection(top, defs, cfg.Monitor != nil)
	cfg.Notify = d.notifySection(top, env, cfg.Policies)
	return cfg
}

// section returns the sub-mapping stored under key, or an empty one.
func (d *decoder) section(parent fields, key string, allowed ...string) (fields, field) {
	f, ok := parent.get(key)
	if !ok {
		return fields{node: parent.node, path: join(parent.path, key)}, field{key: parent.node, path: join(parent.path, key)}
	}
	m, _ := d.mapping(f.val, f.path, allowed...)
	return m, f
}

func (d *decoder) atlasSection(top fields, env Env, a *Atlas) {
	m, sec := d.section(top, "atlas", "baseURL", "auth", "requestsPerMinute", "timeout", "discoveryInterval")
	*a = Atlas{BaseURL: DefaultBaseURL, RequestsPerMinute: DefaultRequestsPerMinute, Timeout: DefaultTimeout, DiscoveryInterval: DefaultDiscoveryInterval}
	if f, ok := m.get("baseURL"); ok {
		if v, ok := d.str(f); ok {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				d.errorAt(f.val, f.path, "must be an http(s) URL such as https://cloud.mongodb.com")
			} else if u.User != nil {
				// The Atlas client refuses such a URL, so a run would fail
				// at start; and a password here would sit in a file that
				// is not treated as a secret.
				d.errorAt(f.val, f.path, "must not contain user information (user:password@): credentials come from atlas.auth")
			} else {
				a.BaseURL = strings.TrimRight(v, "/")
				if u.Scheme == "http" && !isLoopback(u.Hostname()) {
					d.warnAt(f.val, f.path, "plain http to a non-local host sends credentials unencrypted; use https")
				}
			}
		}
	}
	if f, ok := m.get("requestsPerMinute"); ok {
		if v, ok := d.integer(f); ok {
			if v < 1 {
				d.errorAt(f.val, f.path, "must be at least 1")
			} else {
				a.RequestsPerMinute = v
			}
		}
	}
	if f, ok := m.get("timeout"); ok {
		if v, ok := d.duration(f, true); ok {
			a.Timeout = v
		}
	}
	if f, ok := m.get("discoveryInterval"); ok {
		if v, ok := d.duration(f, true); ok {
			a.DiscoveryInterval = v
		}
	}
	if f, ok := m.get("auth"); ok {
		am, ok := d.mapping(f.val, f.path, "serviceAccount", "apiKey")
		if !ok {
			return
		}
		if len(am.m) > 0 {
			d.authBlock(am, env, a)
			return
		}
	}
	d.authFromEnv(sec.key, env, a)
}

func (d *decoder) authBlock(am fields, env Env, a *Atlas) {
	sa, hasSA := am.get("serviceAccount")
	ak, hasAK := am.get("apiKey")
	if hasSA && hasAK {
		d.errorAt(ak.key, am.path, "set only one of serviceAccount or apiKey")
		return
	}
	if hasSA {
		m, ok := d.mapping(sa.val, sa.path, "clientID", "clientSecretFile", "clientSecret")
		if !ok {
			return
		}
		id, idOK := d.credentialID(m, "clientID", env, EnvClientID)
		secret, secOK := d.credentialSecret(m, "clientSecretFile", "clientSecret", env, EnvClientSecret,
			"inline secrets are not accepted: write the secret to a file and set clientSecretFile, or set "+EnvClientSecret,
			"required: name a file holding the client secret, or set "+EnvClientSecret)
		if idOK && secOK {
			a.ServiceAccount = &ServiceAccount{ClientID: id, ClientSecret: secret}
		}
		return
	}
	m, ok := d.mapping(ak.val, ak.path, "publicKey", "privateKeyFile", "privateKey")
	if !ok {
		return
	}
	id, idOK := d.credentialID(m, "publicKey", env, EnvPublicKey)
	secret, secOK := d.credentialSecret(m, "privateKeyFile", "privateKey", env, EnvPrivateKey,
		"inline secrets are not accepted: write the private key to a file and set privateKeyFile, or set "+EnvPrivateKey,
		"required: name a file holding the private key, or set "+EnvPrivateKey)
	if idOK && secOK {
		a.APIKey = &APIKey{PublicKey: id, PrivateKey: secret}
	}
}

// credentialID reads a non-secret identifier from the config, else the environment.
func (d *decoder) credentialID(m fields, key string, env Env, envName string) (string, bool) {
	if f, ok := m.get(key); ok {
		v, ok := d.str(f)
		if ok && strings.TrimSpace(v) == "" {
			d.errorAt(f.val, f.path, "must not be empty")
			return "", false
		}
		return v, ok
	}
	if v := env.getenv(envName); v != "" {
		return v, true
	}
	d.errorAt(m.node, join(m.path, key), "required (or set %s)", envName)
	return "", false
}

// credentialSecret reads a secret from its *File key, else the environment;
// an inline value is refused with directions.
func (d *decoder) credentialSecret(m fields, fileKey, inlineKey string, env Env, envName, inlineMsg, missingMsg string) (Secret, bool) {
	if f, ok := m.get(inlineKey); ok {
		d.errorAt(f.key, f.path, "%s", inlineMsg)
		return Secret{}, false
	}
	if f, ok := m.get(fileKey); ok {
		s, _, ok := d.loadSecretFile(env, f)
		return s, ok
	}
	if v := env.getenv(envName); v != "" {
		return NewSecret(v), true
	}
	d.errorAt(m.node, join(m.path, fileKey), "%s", missingMsg)
	return Secret{}, false
}

// authFromEnv fills credentials from the Atlas CLI variables when the
// config has no auth block.
func (d *decoder) authFromEnv(at *yaml.Node, env Env, a *Atlas) {
	id, secret := env.getenv(EnvClientID), env.getenv(EnvClientSecret)
	pub, priv := env.getenv(EnvPublicKey), env.getenv(EnvPrivateKey)
	sa, ak := id != "" || secret != "", pub != "" || priv != ""
	const p = "atlas.auth"
	switch {
	case sa && ak:
		d.errorAt(at, p, "both service account (%s) and API key (%s) credentials are set in the environment: unset one pair or configure atlas.auth", EnvClientID, EnvPublicKey)
	case sa && id == "":
		d.errorAt(at, p, "%s is set but %s is not", EnvClientSecret, EnvClientID)
	case sa && secret == "":
		d.errorAt(at, p, "%s is set but %s is not", EnvClientID, EnvClientSecret)
	case sa:
		a.ServiceAccount = &ServiceAccount{ClientID: id, ClientSecret: NewSecret(secret)}
	case ak && pub == "":
		d.errorAt(at, p, "%s is set but %s is not", EnvPrivateKey, EnvPublicKey)
	case ak && priv == "":
		d.errorAt(at, p, "%s is set but %s is not", EnvPublicKey, EnvPrivateKey)
	case ak:
		a.APIKey = &APIKey{PublicKey: pub, PrivateKey: NewSecret(priv)}
	default:
		d.errorAt(at, p, "required: configure atlas.auth.serviceAccount or atlas.auth.apiKey, or set %s and %s (or %s and %s)",
			EnvClientID, EnvClientSecret, EnvPublicKey, EnvPrivateKey)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *decoder) serverSection(top fields, env Env, s *Server) {
	m, _ := d.section(top, "server", "listen", "adminTokenFile", "adminToken")
	s.Listen = DefaultListen
	if f, ok := m.get("listen"); ok {
		if v, ok := d.str(f); ok {
			if err := checkListen(v); err != nil {
				d.errorAt(f.val, f.path, "%v", err)
			} else {
				s.Listen = v
			}
		}
	}
	if f, ok := m.get("adminToken"); ok {
		d.errorAt(f.key, f.path, "inline secrets are not accepted: write the token to a file and set adminTokenFile")
	}
	if f, ok := m.get("adminTokenFile"); ok {
		if secret, full, ok := d.loadSecretFile(env, f); ok {
			s.AdminToken, s.AdminTokenFile = secret, full
		}
	}
}

func checkListen(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("must be host:port such as 127.0.0.1:9469 or :9469")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535")
	}
	return nil
}

func (d *decoder) stateSection(top fields, s *State) {
	m, _ := d.section(top, "state", "path", "historyRuns", "historyAge")
	*s = State{Path: DefaultStatePath, HistoryRuns: DefaultHistoryRuns, HistoryAge: DefaultHistoryAge}
	if f, ok := m.get("path"); ok {
		if v, ok := d.str(f); ok {
			s.Path = v // "" is valid: memory only
		}
	}
	if f, ok := m.get("historyRuns"); ok {
		if v, ok := d.integer(f); ok {
			if v < 1 {
				d.errorAt(f.val, f.path, "must be at least 1")
			} else {
				s.HistoryRuns = v
			}
		}
	}
	if f, ok := m.get("historyAge"); ok {
		if v, ok := d.duration(f, true); ok {
			s.HistoryAge = v
		}
	}
}

func (d *decoder) logSection(top fields, l *Log) {
	m, _ := d.section(top, "log", "level", "format")
	*l = Log{Level: DefaultLogLevel, Format: DefaultLogFormat}
	if f, ok := m.get("level"); ok {
		if v, ok := d.oneOf(f, "debug", "info", "warn", "error"); ok {
			l.Level = v
		}
	}
	if f, ok := m.get("format"); ok {
		if v, ok := d.oneOf(f, "json", "console"); ok {
			l.Format = v
		}
	}
}

// scheduling is the set of keys a policy can inherit from defaults.
var scheduling = []string{"schedule", "timezone", "jitter", "missed", "overlap", "timeouts", "targets"}

// defaults is the parsed defaults: section plus what policies need to
// inherit from it and to point at it in messages.
type defaults struct {
	Defaults
	location   *time.Location
	schedule   *field // set when defaults.schedule is present and valid
	jitterNode *yaml.Node
	targets    []TargetSelector
	hasTargets bool
}

func (d *decoder) defaultsSection(top fields) defaults {
	m, _ := d.section(top, "defaults", scheduling...)
	out := defaults{Defaults: Defaults{
		Timezone: DefaultTimezone, Missed: DefaultMissed, Overlap: DefaultOverlap,
		Timeouts: Timeouts{Wait: DefaultWaitTimeout, Snapshot: DefaultSnapshotTimeout, Export: DefaultExportTimeout, Restore: DefaultRestoreTimeout},
	}, location: time.UTC}
	if f, ok := m.get("timezone"); ok {
		if name, loc, ok := d.timezone(f); ok {
			out.Timezone, out.location = name, loc
		}
	}
	if f, ok := m.get("schedule"); ok {
		if v, ok := d.str(f); ok {
			if _, err := parseSchedule(v, out.location); err != nil {
				d.errorAt(f.val, f.path, "%v", err)
			} else {
				out.schedule = &f
			}
		}
	}
	if f, ok := m.get("jitter"); ok {
		if v, ok := d.duration(f, false); ok {
			out.Jitter, out.jitterNode = v, f.val
		}
	}
	if f, ok := m.get("missed"); ok {
		if v, ok := d.oneOf(f, MissedOnce, MissedSkip); ok {
			out.Missed = v
		}
	}
	if f, ok := m.get("overlap"); ok {
		if v, ok := d.oneOf(f, OverlapSkip); ok {
			out.Overlap = v
		}
	}
	if f, ok := m.get("timeouts"); ok {
		out.Timeouts = d.timeouts(f, out.Timeouts)
	}
	if f, ok := m.get("targets"); ok {
		out.targets, out.hasTargets = d.targets(f)
	}
	return out
}

func (d *decoder) timezone(f field) (string, *time.Location, bool) {
	v, ok := d.str(f)
	if !ok {
		return "", nil, false
	}
	switch v {
	case "":
		d.errorAt(f.val, f.path, "must name an IANA time zone such as Europe/Berlin or UTC")
		return "", nil, false
	case "Local":
		d.errorAt(f.val, f.path, "Local is not allowed (it depends on the host): name an IANA time zone such as Europe/Berlin or UTC")
		return "", nil, false
	}
	loc, err := time.LoadLocation(v)
	if err != nil {
		d.errorAt(f.val, f.path, "unknown time zone %q: use an IANA name such as Europe/Berlin or UTC", v)
		return "", nil, false
	}
	return v, loc, true
}

func (d *decoder) timeouts(f field, base Timeouts) Timeouts {
	m, _ := d.mapping(f.val, f.path, "wait", "snapshot", "export", "restore")
	for key, dst := range map[string]*time.Duration{"wait": &base.Wait, "snapshot": &base.Snapshot, "export": &base.Export, "restore": &base.Restore} {
		if kf, ok := m.get(key); ok {
			if v, ok := d.duration(kf, true); ok {
				*dst = v
			}
		}
	}
	return base
}

func (d *decoder) targets(f field) ([]TargetSelector, bool) {
	items, ok := d.list(f)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		d.errorAt(f.val, f.path, "must list at least one project")
		return nil, false
	}
	var out []TargetSelector
	valid := true
	for i, it := range items {
		ip := index(f.path, i)
		m, ok := d.mapping(it, ip, "projectID", "clusters", "exclude")
		if !ok {
			valid = false
			continue
		}
		sel := TargetSelector{Clusters: []string{"*"}}
		if pf, ok := m.get("projectID"); ok {
			if v, ok := d.matching(pf, idPattern); ok {
				sel.ProjectID = v
			} else {
				valid = false
			}
		} else {
			d.errorAt(m.node, join(ip, "projectID"), "required: the 24-hex id of the Atlas project")
			valid = false
		}
		if cf, ok := m.get("clusters"); ok {
			pats, ok := d.patterns(cf, false)
			valid = valid && ok
			sel.Clusters = pats
		}
		if ef, ok := m.get("exclude"); ok {
			pats, ok := d.patterns(ef, true)
			valid = valid && ok
			sel.Exclude = pats
		}
		out = append(out, sel)
	}
	return out, valid
}

// patterns decodes a list of cluster names or path.Match globs.
func (d *decoder) patterns(f field, emptyOK bool) ([]string, bool) {
	items, ok := d.list(f)
	if !ok {
		return nil, false
	}
	if len(items) == 0 && !emptyOK {
		d.errorAt(f.val, f.path, "must not be empty (omit clusters to select every cluster)")
		return nil, false
	}
	out := make([]string, 0, len(items))
	valid := true
	for i, it := range items {
		pf := field{val: it, path: index(f.path, i)}
		v, ok := d.str(pf)
		if !ok {
			valid = false
			continue
		}
		if err := checkPattern(v); err != nil {
			d.errorAt(it, pf.path, "%v", err)
			valid = false
			continue
		}
		out = append(out, v)
	}
	return out, valid
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

func checkPattern(v string) error {
	if !isGlob(v) {
		if !clusterPattern.MatchString(v) {
			return fmt.Errorf("must match %s (globs may use * ? and [...])", clusterPattern)
		}
		return nil
	}
	if !globPattern.MatchString(v) {
		return fmt.Errorf("glob may contain only letters, digits, - and the glob characters ! * ? [ ] ^")
	}
	if _, err := path.Match(v, ""); err != nil {
		return fmt.Errorf("malformed glob: %v", err)
	}
	return nil
}

// policiesSection decodes policies:. A file with a monitor: section may
// have none: a team may run backupd only to watch Atlas's own backups.
func (d *decoder) policiesSection(top fields, defs defaults, monitor bool) []Policy {
	f, ok := top.get("policies")
	if !ok {
		if !monitor {
			d.errorAt(top.node, "policies", "required: list at least one policy, or a monitor: section")
		}
		return nil
	}
	items, ok := d.list(f)
	if !ok {
		return nil
	}
	if len(items) == 0 && !monitor {
		d.warnAt(f.val, f.path, "no policies: the daemon will take no backups")
	}
	names := map[string]*yaml.Node{}
	var out []Policy
	for i, it := range items {
		p, ok := d.policy(it, index("policies", i), defs, names)
		if ok {
			out = append(out, p)
		}
	}
	d.checkDrillTargets(out)
	return out
}

func (d *decoder) policy(n *yaml.Node, pp string, defs defaults, names map[string]*yaml.Node) (Policy, bool) {
	keys := append([]string{"name", "snapshot", "export", "flexRestore", "restoreDrill"}, scheduling...)
	m, ok := d.mapping(n, pp, keys...)
	if !ok {
		return Policy{}, false
	}
	before := len(d.issues)
	p := Policy{
		Timezone: defs.Timezone, Location: defs.location, Jitter: defs.Jitter,
		Missed: defs.Missed, Overlap: defs.Overlap, Timeouts: defs.Timeouts,
	}
	if m.node != nil {
		p.Pos = Position{File: d.file, Line: m.node.Line, Column: m.node.Column}
	}
	if isNull(m.node) {
		d.errorAt(m.node, pp, "must be a mapping with name, schedule, targets and an action")
		return Policy{}, false
	}

	if f, ok := m.get("name"); ok {
		if v, ok := d.matching(f, namePattern); ok {
			if first, dup := names[v]; dup {
				d.errorAt(f.val, f.path, "duplicate policy name %q (first used at line %d)", v, first.Line)
			} else {
				names[v] = f.val
				p.Name = v
			}
		}
	} else {
		d.errorAt(m.node, join(pp, "name"), "required: a unique name matching %s", namePattern)
	}

	tzOK := true
	if f, ok := m.get("timezone"); ok {
		var name string
		var loc *time.Location
		if name, loc, tzOK = d.timezone(f); tzOK {
			p.Timezone, p.Location = name, loc
		}
	}

	// The schedule is checked against the final time zone; its node is
	// where interval messages point.
	schedNode, schedPath := m.node, join(pp, "schedule")
	if f, ok := m.get("schedule"); ok {
		schedNode = f.val
		if v, ok := d.str(f); ok {
			p.Schedule = v
			if c, err := parseSchedule(v, p.Location); err != nil {
				d.errorAt(f.val, f.path, "%v", err)
			} else {
				p.Cron = c
			}
		}
	} else if defs.schedule != nil {
		p.Schedule = defs.schedule.val.Value
		p.Cron, _ = parseSchedule(p.Schedule, p.Location)
	} else {
		d.errorAt(m.node, schedPath, "required: a 5-field cron expression such as \"0 2 * * *\", or @daily, @every 6h")
	}

	jitterNode, jitterInherited := defs.jitterNode, true
	if f, ok := m.get("jitter"); ok {
		if v, ok := d.duration(f, false); ok {
			p.Jitter, jitterNode, jitterInherited = v, f.val, false
		}
	}
	if f, ok := m.get("missed"); ok {
		if v, ok := d.oneOf(f, MissedOnce, MissedSkip); ok {
			p.Missed = v
		}
	}
	if f, ok := m.get("overlap"); ok {
		if v, ok := d.oneOf(f, OverlapSkip); ok {
			p.Overlap = v
		}
	}
	if f, ok := m.get("timeouts"); ok {
		p.Timeouts = d.timeouts(f, p.Timeouts)
	}

	d.actions(m, pp, &p, defs)

	if len(d.issues) > before || !tzOK {
		return Policy{}, false
	}
	if iv := p.Interval(); iv > 0 {
		if p.Jitter >= iv {
			msg := fmt.Sprintf("must be shorter than the schedule's interval (%s), got %s", iv, p.Jitter)
			if jitterInherited {
				msg += " (inherited from defaults.jitter)"
			}
			at := jitterNode
			if at == nil {
				at = m.node
			}
			d.errorAt(at, join(pp, "jitter"), "%s", msg)
			return Policy{}, false
		}
		if run := p.MaxRunDuration(); run > iv {
			d.warnAt(schedNode, schedPath, "fires every %s but a run may take up to %s; overlapping slots will be skipped", iv, run)
		}
	}
	return p, true
}

// actions decodes snapshot, export, flexRestore and restoreDrill and
// enforces "exactly one action" (snapshot may chain an export).
func (d *decoder) actions(m fields, pp string, p *Policy, defs defaults) {
	sf, hasSnap := m.get("snapshot")
	ef, hasExport := m.get("export")
	ff, hasFlex := m.get("flexRestore")
	rf, hasDrill := m.get("restoreDrill")
	tf, hasTargets := m.get("targets")

	if hasSnap {
		p.Snapshot = d.snapshot(sf)
	}
	sourceGiven := false
	if hasExport {
		p.Export, sourceGiven = d.export(ef)
	}
	if hasFlex {
		p.FlexRestore = d.flexRestore(ff)
	}
	if hasDrill {
		p.RestoreDrill = d.restoreDrill(rf)
	}
	switch {
	case hasFlex && (hasSnap || hasExport || hasDrill):
		d.errorAt(ff.key, ff.path, "a policy has exactly one action: flexRestore cannot be combined with snapshot, export or restoreDrill; split it into two policies")
		return
	case hasDrill && (hasSnap || hasExport):
		d.errorAt(rf.key, rf.path, "a policy has exactly one action: restoreDrill cannot be combined with snapshot or export; split it into two policies")
		return
	case !hasSnap && !hasExport && !hasFlex && !hasDrill:
		d.errorAt(m.node, pp, "no action: add snapshot (optionally with export), export with source: latest, flexRestore or restoreDrill")
		return
	case hasFlex:
		if hasTargets {
			d.errorAt(tf.key, tf.path, "does not apply to flexRestore: the source is flexRestore.projectID and flexRestore.cluster")
		}
		return
	case hasDrill:
		if hasTargets {
			d.errorAt(tf.key, tf.path, "does not apply to restoreDrill: the source is restoreDrill.projectID and restoreDrill.cluster")
		}
		return
	}
	if p.Export != nil {
		switch {
		case hasSnap && p.Export.Source == ExportSourceLatest:
			sp := join(ef.path, "source")
			d.errorAt(ef.key, sp, "must be omitted when the policy takes a snapshot (the export uses that snapshot); source: latest is for export-only policies")
		case !hasSnap && !sourceGiven:
			d.errorAt(ef.key, join(ef.path, "source"), "required for an export-only policy: set source: latest to export the newest completed snapshot, or add snapshot to take one")
		}
	}
	switch {
	case hasTargets:
		if t, ok := d.targets(tf); ok {
			p.Targets = t
		}
	case defs.hasTargets:
		p.Targets = defs.targets
	default:
		d.errorAt(m.node, join(pp, "targets"), "required: list the projects (and cluster names or globs) to act on")
	}
}

func (d *decoder) snapshot(f field) *SnapshotAction {
	m, ok := d.mapping(f.val, f.path, "retentionInDays", "description")
	if !ok {
		return nil
	}
	s := &SnapshotAction{}
	if rf, ok := m.get("retentionInDays"); ok {
		if v, ok := d.integer(rf); ok {
			if v < 1 {
				d.errorAt(rf.val, rf.path, "must be at least 1")
			}
			s.RetentionInDays = v
		}
	} else {
		d.errorAt(m.node, join(f.path, "retentionInDays"), "required: how many days Atlas keeps the snapshot (at least 1)")
	}
	if df, ok := m.get("description"); ok {
		if v, ok := d.str(df); ok {
			switch {
			case utf8.RuneCountInString(v) > MaxDescriptionLength:
				d.errorAt(df.val, df.path, "must be at most %d characters (backupd appends its run marker)", MaxDescriptionLength)
			case strings.Contains(v, "backupd:"):
				d.errorAt(df.val, df.path, "must not contain \"backupd:\", which marks backupd's own runs")
			default:
				s.Description = v
			}
		}
	}
	return s
}

// export decodes an export block; sourceGiven reports whether source was
// written at all (an invalid value is reported where it is).
func (d *decoder) export(f field) (e *ExportAction, sourceGiven bool) {
	m, ok := d.mapping(f.val, f.path, "bucketID", "source", "customData")
	if !ok {
		return nil, false
	}
	e = &ExportAction{}
	if bf, ok := m.get("bucketID"); ok {
		if v, ok := d.matching(bf, idPattern); ok {
			e.BucketID = v
		}
	} else {
		d.errorAt(m.node, join(f.path, "bucketID"), "required: the 24-hex id of the export bucket")
	}
	if sf, ok := m.get("source"); ok {
		sourceGiven = true
		if v, ok := d.oneOf(sf, ExportSourceLatest); ok {
			e.Source = v
		}
	}
	if cf, ok := m.get("customData"); ok {
		e.CustomData = d.customData(cf)
	}
	return e, sourceGiven
}

// customData decodes a string→string mapping, keeping the user's order.
func (d *decoder) customData(f field) []atlas.Label {
	n := d.resolve(f.val, f.path)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, f.path, "must be a mapping of labels (key: value), got %s", describe(n))
		return nil
	}
	seen := map[string]int{}
	var out []atlas.Label
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i], f.path)
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorAt(k, f.path, "label keys must be plain names, got %s", describe(k))
			continue
		}
		kp := join(f.path, k.Value)
		switch {
		case k.Value == "":
			d.errorAt(k, f.path, "label keys must not be empty")
			continue
		case strings.HasPrefix(k.Value, reservedLabelPrefix):
			d.errorAt(k, kp, "keys starting with %q are reserved: backupd sets backupd.policy, backupd.run and backupd.scheduledAt itself", reservedLabelPrefix)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorAt(k, kp, "duplicate key (first defined at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if v, ok := d.str(field{key: k, val: n.Content[i+1], path: kp}); ok {
			out = append(out, atlas.Label{Key: k.Value, Value: v})
		}
	}
	return out
}

// confirmOverwrite decodes the confirmOverwrite key of an action that
// replaces a cluster's data (flexRestore, restoreDrill): it is required and
// must be true, so nobody wipes a cluster by a typo, and its errors say what
// would be lost (consequence, e.g. "the restore replaces all data in X").
func (d *decoder) confirmOverwrite(m fields, path, consequence string) bool {
	cf, ok := m.get("confirmOverwrite")
	if !ok {
		d.errorAt(m.node, join(path, "confirmOverwrite"), "required: set confirmOverwrite: true to acknowledge that %s", consequence)
		return false
	}
	v, ok := d.boolean(cf)
	if ok && !v {
		d.errorAt(cf.val, cf.path, "must be true: %s", consequence)
	}
	return ok && v
}

func (d *decoder) flexRestore(f field) *FlexRestoreAction {
	m, ok := d.mapping(f.val, f.path, "projectID", "cluster", "snapshot", "targetProjectID", "targetCluster", "confirmOverwrite")
	if !ok {
		return nil
	}
	r := &FlexRestoreAction{Snapshot: "latest"}
	required := func(key, what string) (field, bool) {
		kf, ok := m.get(key)
		if !ok {
			d.errorAt(m.node, join(f.path, key), "required: %s", what)
		}
		return kf, ok
	}
	if pf, ok := required("projectID", "the 24-hex id of the flex cluster's project"); ok {
		r.ProjectID, _ = d.matching(pf, idPattern)
	}
	if cf, ok := required("cluster", "the name of the flex cluster whose snapshots are restored"); ok {
		r.Cluster, _ = d.matching(cf, clusterPattern)
	}
	if sf, ok := m.get("snapshot"); ok {
		if v, ok := d.oneOf(sf, "latest"); ok {
			r.Snapshot = v
		}
	}
	r.TargetProjectID = r.ProjectID
	if tf, ok := m.get("targetProjectID"); ok {
		r.TargetProjectID, _ = d.matching(tf, idPattern)
	}
	tc, hasTC := required("targetCluster", "the cluster whose data the restore replaces")
	if hasTC {
		r.TargetCluster, _ = d.matching(tc, restoreTargetPattern())
	}
	target := r.TargetCluster
	if target == "" {
		target = "the target cluster"
	}
	r.ConfirmOverwrite = d.confirmOverwrite(m, f.path, "the restore replaces all data in "+target)
	if hasTC && r.TargetCluster != "" && r.TargetCluster == r.Cluster && r.TargetProjectID == r.ProjectID && r.ProjectID != "" {
		d.errorAt(tc.val, tc.path, "must differ from the source cluster: a cluster cannot be restored onto itself")
	}
	return r
}

// restoreTargetPattern is compiled on first use: its Unicode classes cost ~1.3 MB of heap,
// which a daemon without flex restore policies should not carry.
var restoreTargetPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[\p{L}\p{N}\-_.(),:&@+']{1,64}$`)
})

// Patterns Kubernetes applies to the Lease's namespace (a DNS-1123 label) and
// name (a DNS-1123 subdomain), checked here so a typo is a located error at
// startup, not a 422 from the API server on every retry.
var (
	namespacePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	leaseNamePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// haSection parses ha:. Absent, it returns nil: a single replica that acts
// without asking anyone.
func (d *decoder) haSection(top fields) *HA {
	f, ok := top.get("ha")
	if !ok {
		return nil
	}
	m, ok := d.mapping(f.val, f.path, "lease", "identity", "leaseDuration", "renewDeadline", "retryPeriod", "kubeconfig")
	if !ok {
		return nil
	}
	h := &HA{LeaseDuration: DefaultLeaseDuration, RenewDeadline: DefaultRenewDeadline, RetryPeriod: DefaultRetryPeriod, Pos: Position{File: d.file, Line: f.key.Line, Column: f.key.Column}}
	valid := true
	if lf, ok := m.get("lease"); ok {
		lm, ok := d.mapping(lf.val, lf.path, "namespace", "name")
		valid = ok && valid
		if ok {
			h.Namespace, ok = d.haName(lm, "namespace", namespacePattern, 63, "a DNS-1123 label such as backupd (lowercase letters, digits and '-')")
			valid = ok && valid
			h.LeaseName, ok = d.haName(lm, "name", leaseNamePattern, 253, "a DNS-1123 subdomain such as backupd-leader (lowercase letters, digits, '-' and '.')")
			valid = ok && valid
		}
	} else {
		d.errorAt(f.key, join(f.path, "lease"), "required: name the Lease with lease.namespace and lease.name")
		valid = false
	}
	id, ok := d.optionalNonEmpty(m, "identity", "must not be empty (leave it out to use POD_NAME, else the hostname)")
	valid = ok && valid
	h.Identity = id
	for key, dst := range map[string]*time.Duration{"leaseDuration": &h.LeaseDuration, "renewDeadline": &h.RenewDeadline, "retryPeriod": &h.RetryPeriod} {
		if tf, ok := m.get(key); ok {
			v, ok := d.duration(tf, true)
			valid = ok && valid
			if ok {
				*dst = v
			}
		}
	}
	if valid && !d.haTimings(m, f, h) {
		valid = false
	}
	kc, ok := d.optionalNonEmpty(m, "kubeconfig", "must name a kubeconfig file (leave it out for in-cluster credentials)")
	valid = ok && valid
	if kc != "" && !filepath.IsAbs(kc) {
		kc = filepath.Join(filepath.Dir(d.file), kc)
	}
	h.Kubeconfig = kc
	if !valid {
		return nil
	}
	return h
}

// optionalNonEmpty reads an optional string that, when present, must not be blank.
func (d *decoder) optionalNonEmpty(m fields, key, msg string) (string, bool) {
	f, ok := m.get(key)
	if !ok {
		return "", true
	}
	v, ok := d.str(f)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(v) == "" {
		d.errorAt(f.val, f.path, "%s", msg)
		return "", false
	}
	return v, true
}

func (d *decoder) haName(m fields, key string, re *regexp.Regexp, max int, rule string) (string, bool) {
	f, ok := m.get(key)
	if !ok {
		d.errorAt(m.node, join(m.path, key), "required: %s", rule)
		return "", false
	}
	v, ok := d.str(f)
	if !ok {
		return "", false
	}
	if len(v) > max || !re.MatchString(v) {
		d.errorAt(f.val, f.path, "%q is not a valid name: must be %s, at most %d characters", v, rule, max)
		return "", false
	}
	return v, true
}

// haTimings applies client-go's rules to the lease timings (it refuses to
// start otherwise) and the Lease's own: it stores the duration in whole
// seconds, which is what other replicas go by.
func (d *decoder) haTimings(m fields, sec field, h *HA) bool {
	at := func(key string) (*yaml.Node, string) {
		if f, ok := m.get(key); ok {
			return f.val, f.path
		}
		return sec.key, join(sec.path, key)
	}
	if h.LeaseDuration%time.Second != 0 {
		n, p := at("leaseDuration")
		d.errorAt(n, p, "must be a whole number of seconds (the Lease stores seconds)")
		return false
	}
	if h.LeaseDuration <= h.RenewDeadline {
		n, p := at("renewDeadline")
		d.errorAt(n, p, "must be shorter than leaseDuration (%s): the leader must give up before the others take over", FormatDuration(h.LeaseDuration))
		return false
	}
	if h.RenewDeadline*5 <= h.RetryPeriod*6 {
		n, p := at("retryPeriod")
		d.errorAt(n, p, "must be shorter than renewDeadline (%s) divided by 1.2 (client-go's retry jitter), so the leader retries at least once before giving up", FormatDuration(h.RenewDeadline))
		return false
	}
	// The fence ends each POST at the last renewal plus the lease less its
	// clock-skew margin (internal/ha: 10%), whatever atlas.timeout is. A
	// leader still retrying its renewal near renewDeadline has only what is
	// left of that: too little and its POSTs are cut and parked.
	if w := h.LeaseDuration - h.LeaseDuration/10 - h.RenewDeadline; w < time.Second {
		n, p := at("renewDeadline")
		d.warnAt(n, p, "a POST to Atlas sent while the leader is still retrying its renewal may get only %s before another replica could take over (leaseDuration %s less 10%% for clock skew, less renewDeadline); such POSTs are cut and retried: keep renewDeadline at least 1s below 90%% of leaseDuration",
			FormatDuration(max(w, 0)), FormatDuration(h.LeaseDuration))
	}
	return true
}
