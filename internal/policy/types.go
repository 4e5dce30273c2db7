package policy

import (
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
	"github.com/robfig/cron/v3"
)

// Defaults applied when a key is absent. They are the documented defaults
// of docs/configuration.md; change both together.
const (
	DefaultBaseURL           = atlas.DefaultBaseURL
	DefaultRequestsPerMinute = 100
	DefaultTimeout           = 30 * time.Second
	DefaultDiscoveryInterval = 10 * time.Minute
	DefaultListen            = "127.0.0.1:9469"
	DefaultStatePath         = "/var/lib/backupd/state.db"
	// The journal keeps what the evidence report needs for 400 days (a
	// year's audit period and its month of slack), up to a million finished
	// runs (~3.3 GB at the measured 3.3 KB a run; docs/journal.md).
	DefaultHistoryRuns     = 1_000_000
	DefaultHistoryAge      = 400 * 24 * time.Hour
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "json"
	DefaultTimezone        = "UTC"
	DefaultMissed          = MissedOnce
	DefaultOverlap         = OverlapSkip
	DefaultWaitTimeout     = 2 * time.Hour
	DefaultSnapshotTimeout = 4 * time.Hour
	DefaultExportTimeout   = 24 * time.Hour
	DefaultRestoreTimeout  = 6 * time.Hour
	// Lease timings of Kubernetes' own components (kube-controller-manager,
	// kube-scheduler), so a cluster's operators find familiar behaviour.
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	// MaxDescriptionLength bounds snapshot.description; backupd appends its
	// run marker (" backupd:<20 hex>") to it.
	MaxDescriptionLength = 200
)

// Values of Policy.Missed and Policy.Overlap.
const (
	MissedOnce  = "once" // slots missed while down collapse into one catch-up run
	MissedSkip  = "skip" // slots missed while down are skipped
	OverlapSkip = "skip" // a slot whose previous run is still in flight is skipped
)

// Environment variables read for credentials: the Atlas CLI's names, so
// one set of variables serves both tools.
const (
	EnvClientID      = "MONGODB_ATLAS_CLIENT_ID"
	EnvClientSecret  = "MONGODB_ATLAS_CLIENT_SECRET"
	EnvPublicKey     = "MONGODB_ATLAS_PUBLIC_API_KEY"
	EnvPrivateKey    = "MONGODB_ATLAS_PRIVATE_API_KEY"
	EnvCredentialDir = "CREDENTIALS_DIRECTORY" // systemd LoadCredential=
)

// Config is a loaded, validated configuration. Every field is filled in
// (defaults applied); Warnings lists what is allowed but probably unwise.
type Config struct {
	Source   string   // the file it was read from
	Atlas    Atlas    // how to reach and authenticate to Atlas
	Server   Server   // the HTTP listener
	State    State    // the journal
	Log      Log      // logging
	HA       *HA      // leader election among replicas; nil when ha: is absent
	Defaults Defaults // what policies inherit (kept for display)
	Policies []Policy
	Monitor  *Monitor // the monitor: section; nil when absent
	Notify   *Notify  // the notify: section; nil when absent
	Warnings []Issue
}

// Atlas is the atlas: section. Exactly one of ServiceAccount and APIKey is set.
type Atlas struct {
	BaseURL           string
	ServiceAccount    *ServiceAccount
	APIKey            *APIKey
	RequestsPerMinute int
	Timeout           time.Duration // per HTTP request
	DiscoveryInterval time.Duration // how often targets are re-resolved
}

// ServiceAccount is OAuth2 client-credentials authentication (recommended by Atlas).
type ServiceAccount struct {
	ClientID     string
	ClientSecret Secret
}

// APIKey is legacy HTTP digest authentication with a programmatic API key.
type APIKey struct {
	PublicKey  string
	PrivateKey Secret
}

// Server is the server: section.
type Server struct {
	Listen string
	// AdminToken guards mutating endpoints; zero when not configured, in
	// which case those endpoints answer 403.
	AdminToken Secret
	// AdminTokenFile is the resolved path the token was read from ("" if none).
	AdminTokenFile string
}

// State is the state: section.
type State struct {
	Path        string // "" keeps state in memory only
	HistoryRuns int    // finished runs kept in the journal
	HistoryAge  time.Duration
}

// Log is the log: section.
type Log struct {
	Level  string `json:"level"`  // debug | info | warn | error
	Format string `json:"format"` // json | console
}

// HA is the ha: section: the Kubernetes Lease the replicas elect their one
// acting leader on, and its timings.
type HA struct {
	Namespace string // the Lease's namespace
	LeaseName string // the Lease's name
	// Identity is this replica's name in the Lease; "" means the POD_NAME
	// environment variable, else the hostname (see ha.ResolveIdentity).
	Identity      string
	LeaseDuration time.Duration // how long a lease lasts without renewal (whole seconds)
	RenewDeadline time.Duration // how long the leader retries renewing before it steps down
	RetryPeriod   time.Duration // how often candidates try, and the leader renews
	// Kubeconfig is the kubeconfig file to use (resolved against the config
	// file's directory); "" means in-cluster credentials.
	Kubeconfig string
	Pos        Position // where ha: starts, for messages
}

// Defaults is the defaults: section: scheduling keys every policy inherits
// unless it sets them itself.
type Defaults struct {
	Timezone string
	Jitter   time.Duration
	Missed   string
	Overlap  string
	Timeouts Timeouts
}

// Timeouts bound each stage of a run; a stage that exceeds its timeout ends
// the run failed{timeout} (nothing in Atlas is deleted).
type Timeouts struct {
	Wait     time.Duration // waiting for the cluster to be free
	Snapshot time.Duration // the snapshot to complete
	Export   time.Duration // the export to finish
	Restore  time.Duration // the flex restore or the drill's restore to finish
}

// Policy is one entry of policies:, with defaults applied and schedule and
// time zone already parsed.
type Policy struct {
	Name     string
	Schedule string // as written
	Timezone string // IANA name
	// Cron yields the policy's slots. It implements backupd's DST promise
	// (see docs/configuration.md): a slot whose wall-clock time is skipped
	// by a spring-forward change fires when the clocks jump; a fixed-hour
	// slot in a repeated fall-back hour fires once, at its first occurrence.
	// "@every D" slots are multiples of D since the Unix epoch.
	Cron     cron.Schedule
	Location *time.Location
	Jitter   time.Duration
	Missed   string // once | skip
	Overlap  string // skip
	Timeouts Timeouts

	Targets     []TargetSelector // snapshot and export policies
	Snapshot    *SnapshotAction
	Export      *ExportAction
	FlexRestore *FlexRestoreAction
	// RestoreDrill restores a dedicated cluster's snapshot into a scratch
	// cluster (drill.go).
	RestoreDrill *RestoreDrillAction

	Pos Position // where the policy starts, for messages
}

// TargetSelector picks clusters of one project by name.
type TargetSelector struct {
	ProjectID string
	Clusters  []string // path.Match globs or literal names; default ["*"]
	Exclude   []string // globs or names removed from the match
}

// SnapshotAction takes an on-demand snapshot.
type SnapshotAction struct {
	RetentionInDays int    `json:"retentionInDays"`
	Description     string `json:"description,omitempty"`
}

// Export sources.
const (
	ExportSourceTaken  = ""       // export the snapshot this policy just took
	ExportSourceLatest = "latest" // export the newest completed, non-fallback snapshot
)

// ExportAction exports a snapshot to a registered export bucket.
type ExportAction struct {
	BucketID   string
	Source     string        // ExportSourceTaken or ExportSourceLatest
	CustomData []atlas.Label // in the user's order; backupd adds backupd.* labels
}

// FlexRestoreAction restores the newest flex snapshot into a target.
type FlexRestoreAction struct {
	ProjectID        string `json:"projectID"`
	Cluster          string `json:"cluster"`
	Snapshot         string `json:"snapshot"` // "latest"
	TargetProjectID  string `json:"targetProjectID"`
	TargetCluster    string `json:"targetCluster"`
	ConfirmOverwrite bool   `json:"confirmOverwrite"`
}

// Action tells which of the actions the policy performs.
func (p Policy) Action() run.Action {
	switch {
	case p.RestoreDrill != nil:
		return run.ActionRestoreDrill
	case p.FlexRestore != nil:
		return run.ActionFlexRestore
	case p.Snapshot != nil:
		return run.ActionSnapshot
	default:
		return run.ActionExport
	}
}

// MaxRunDuration is the longest a run of this policy can take before its
// stage timeouts fail it: wait plus the stages its action goes through.
func (p Policy) MaxRunDuration() time.Duration {
	d := p.Timeouts.Wait
	switch p.Action() {
	case run.ActionFlexRestore:
		d += p.Timeouts.Restore
	case run.ActionRestoreDrill:
		d += p.Timeouts.Restore
		if v := p.RestoreDrill.Verify; v != nil {
			d += v.Timeout
		}
	case run.ActionSnapshot:
		d += p.Timeouts.Snapshot
		if p.Export != nil {
			d += p.Timeouts.Export
		}
	case run.ActionExport:
		d += p.Timeouts.Export
	}
	return d
}

// Policy returns the named policy, or false.
func (c *Config) Policy(name string) (Policy, bool) {
	for _, p := range c.Policies {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}
