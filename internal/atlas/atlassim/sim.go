// Package atlassim is an in-process simulator of the part of the Atlas Admin
// API v2 that backupd uses: cloud backup snapshots, snapshot exports, export
// buckets, flex snapshots and flex restore jobs, cluster discovery, what Atlas
// backs up by itself (native backup schedules and their scheduled snapshots,
// Backup Compliance Policies), and the OAuth2 and HTTP Digest authentication
// in front of them.
//
// It exists so that every test, the demo and users' dry runs can exercise
// backupd against Atlas's documented behaviour (versioned media types, error
// codes, lifecycles, pagination, rate limits) without an Atlas account. It
// follows shared/atlas/ATLAS_API_NOTES.md and the OpenAPI subset, not what a
// client happens to send; choices made where Atlas is undocumented are listed
// in docs/simulator.md.
//
// All state lives in memory behind one mutex. Lifecycles are computed lazily
// from the injected clock.Clock whenever an object is read, so the simulator
// starts no goroutines and works with clock.Fake and testing/synctest.
package atlassim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// Timings are the lifecycle durations of simulated jobs, before Options.Speed
// divides them. A zero field takes its default; use a tiny value such as
// time.Nanosecond for a phase that should pass at once.
type Timings struct {
	SnapshotQueued     time.Duration `yaml:"snapshotQueued"`     // default 30s
	SnapshotInProgress time.Duration `yaml:"snapshotInProgress"` // default 2m
	ExportQueued       time.Duration `yaml:"exportQueued"`       // default 30s
	ExportInProgress   time.Duration `yaml:"exportInProgress"`   // default 5m
	RestorePending     time.Duration `yaml:"restorePending"`     // default 20s
	RestoreRunning     time.Duration `yaml:"restoreRunning"`     // default 2m
	// ClusterRestore is how long a dedicated cluster's restore job runs;
	// ClusterRestoreSettle how long its target stays UPDATING after.
	ClusterRestore       time.Duration `yaml:"clusterRestore"`       // default 4m
	ClusterRestoreSettle time.Duration `yaml:"clusterRestoreSettle"` // default 30s
	// TokenTTL is how long an OAuth2 access token stays valid. It is not a
	// lifecycle and Speed does not divide it. Default 1h, as in Atlas.
	TokenTTL time.Duration `yaml:"tokenTTL"`
}

// DefaultTimings are the lifecycle durations used for zero Timings fields.
var DefaultTimings = Timings{
	SnapshotQueued:       30 * time.Second,
	SnapshotInProgress:   2 * time.Minute,
	ExportQueued:         30 * time.Second,
	ExportInProgress:     5 * time.Minute,
	RestorePending:       20 * time.Second,
	RestoreRunning:       2 * time.Minute,
	ClusterRestore:       4 * time.Minute,
	ClusterRestoreSettle: 30 * time.Second,
	TokenTTL:             time.Hour,
}

func (t Timings) withDefaults() Timings {
	d := DefaultTimings
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	return Timings{
		SnapshotQueued:       pick(t.SnapshotQueued, d.SnapshotQueued),
		SnapshotInProgress:   pick(t.SnapshotInProgress, d.SnapshotInProgress),
		ExportQueued:         pick(t.ExportQueued, d.ExportQueued),
		ExportInProgress:     pick(t.ExportInProgress, d.ExportInProgress),
		RestorePending:       pick(t.RestorePending, d.RestorePending),
		RestoreRunning:       pick(t.RestoreRunning, d.RestoreRunning),
		ClusterRestore:       pick(t.ClusterRestore, d.ClusterRestore),
		ClusterRestoreSettle: pick(t.ClusterRestoreSettle, d.ClusterRestoreSettle),
		TokenTTL:             pick(t.TokenTTL, d.TokenTTL),
	}
}

// RateLimit is a per-project token bucket like Atlas's: every authenticated
// request to a project takes one token; tokens refill continuously at
// RefillPerMinute up to Capacity. A zero Capacity means unlimited; a zero
// RefillPerMinute refills Capacity tokens per minute.
type RateLimit struct {
	Capacity        int `yaml:"capacity"`
	RefillPerMinute int `yaml:"refillPerMinute"`
}

// Options configure a simulator. The zero value is usable.
type Options struct {
	Clock     clock.Clock // default clock.Real()
	Speed     float64     // lifecycle durations are divided by Speed; <= 0 means 1
	Timings   Timings     // zero fields take DefaultTimings
	RateLimit RateLimit   // zero = unlimited
	Seed      int64       // seeds ids and fault injection, so runs repeat
	// Logf, when set, receives one line per request and per fleet change.
	Logf func(format string, args ...any)
}

// Sim is a simulated Atlas Admin API. It implements http.Handler and is safe
// for concurrent use.
type Sim struct {
	clk   clock.Clock
	speed float64
	logf  func(format string, args ...any)

	mu      sync.Mutex
	timings Timings
	spread  Spread
	rate    RateLimit
	idRNG   *rand.Rand // ids and generated sizes
	authRNG *rand.Rand // nonces and tokens
	faultRN *rand.Rand // fault decisions
	orgID   string

	projects     map[string]*project
	projectOrder []string

	serviceAccounts map[string]string // clientID -> secret
	apiKeys         map[string]string // public -> private
	tokens          map[string]accessToken
	nonces          map[string]*nonceState
	projectBuckets  map[string]*tokenBucket
	clientBuckets   map[string]*tokenBucket

	faults          Faults
	burst429        int
	burstRetryAfter time.Duration
	failSnapshots   int
	failExports     int
	cancelExports   bool
	failRestores    int
	// failClusterRestores of the next dedicated restores end with clusterRestoreEnd.
	failClusterRestores int
	clusterRestoreEnd   atlas.RestoreState
	// restoresInto indexes dedicated restores by target (restoreKey), for
	// the target's state and the conflict check.
	restoresInto map[string][]*clusterRestore

	calls   map[string]int
	callLog []Call
}

type project struct {
	id           string
	name         string
	created      time.Time
	clusters     map[string]*cluster
	clusterOrder []string
	flex         map[string]*flexCluster
	flexOrder    []string
	buckets      map[string]*atlas.ExportBucket
	bucketOrder  []string
	compliance   *atlas.CompliancePolicy // nil: none (GET answers 404)
}

type cluster struct {
	id        string
	spec      ClusterSpec
	createdAt time.Time
	specIDs   []string // one replicationSpec id per shard
	snapshots []*snapshot
	exports   []*exportJob
	restores  []*clusterRestore // restore jobs of its snapshots (it is their source)
	schedule  *schedule         // nil: no native policy items
}

type flexCluster struct {
	id        string
	name      string
	createdAt time.Time
	snapshots []*flexSnapshot
	restores  []*restoreJob
}

// phases is the timeline of a job: it is in its first phase until queuedUntil,
// in its second until doneAt, and in its final state from doneAt on.
type phases struct {
	queuedUntil time.Time
	doneAt      time.Time
}

func (p phases) at(now time.Time) int {
	switch {
	case now.Before(p.queuedUntil):
		return 0
	case now.Before(p.doneAt):
		return 1
	default:
		return 2
	}
}

type snapshot struct {
	id            string
	kind          atlas.SnapshotKind
	snapType      atlas.SnapshotType
	frequency     atlas.FrequencyType
	createdAt     time.Time
	expiresAt     time.Time
	description   string
	timeline      phases
	final         atlas.SnapshotStatus
	size          int64
	mongodVersion string
	policyItems   []string
	members       []atlas.SnapshotMember
}

type exportJob struct {
	id         string
	snapshotID string
	bucketID   string
	createdAt  time.Time
	timeline   phases
	final      atlas.ExportState
	total      int
	customData []atlas.Label
	prefix     string
	components []atlas.ExportMember
}

type flexSnapshot struct {
	id             string
	status         atlas.FlexStatus
	scheduled      time.Time
	started        time.Time
	finished       time.Time
	expiration     time.Time
	mongoDBVersion string
}

type restoreJob struct {
	id            string
	snapshotID    string
	snapshotDone  time.Time
	targetName    string
	targetProject string
	projectID     string
	instanceName  string
	scheduled     time.Time
	timeline      phases
	final         atlas.FlexStatus
}

// New returns a simulator with an empty fleet.
func New(opts Options) *Sim {
	clk := opts.Clock
	if clk == nil {
		clk = clock.Real()
	}
	speed := opts.Speed
	if speed <= 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		speed = 1
	}
	seed := uint64(opts.Seed)
	s := &Sim{
		clk:             clk,
		speed:           speed,
		logf:            opts.Logf,
		timings:         opts.Timings.withDefaults(),
		rate:            opts.RateLimit,
		idRNG:           rand.New(rand.NewPCG(seed, 0x6174_6c61_7369_6d31)),
		authRNG:         rand.New(rand.NewPCG(seed, 0x6174_6c61_7369_6d32)),
		faultRN:         rand.New(rand.NewPCG(seed, 0x6174_6c61_7369_6d33)),
		projects:        map[string]*project{},
		serviceAccounts: map[string]string{},
		apiKeys:         map[string]string{},
		tokens:          map[string]accessToken{},
		nonces:          map[string]*nonceState{},
		projectBuckets:  map[string]*tokenBucket{},
		clientBuckets:   map[string]*tokenBucket{},
		calls:           map[string]int{},
		restoresInto:    map[string][]*clusterRestore{},
	}
	s.orgID = s.newID()
	return s
}

// SetTimings replaces the lifecycle durations for jobs created from now on.
func (s *Sim) SetTimings(t Timings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timings = t.withDefaults()
}

// SetRateLimit replaces the per-project token bucket; existing buckets start full.
func (s *Sim) SetRateLimit(r RateLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate = r
	s.projectBuckets = map[string]*tokenBucket{}
}

func (s *Sim) log(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

// scaled divides a lifecycle duration by the speed factor.
func (s *Sim) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

// newID returns a 24-hex id from the seeded generator. Callers hold s.mu
// (or own s exclusively, as New does).
func (s *Sim) newID() string {
	return fmt.Sprintf("%08x%016x", s.idRNG.Uint32(), s.idRNG.Uint64())
}

var (
	hexIDPattern       = regexp.MustCompile(`^[a-f0-9]{24}$`)
	clusterNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*$`)

	tierPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// ErrNotFound is wrapped by fleet methods when a project, cluster, flex
// cluster or bucket does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalid is wrapped by fleet methods when an argument breaks an Atlas rule.
var ErrInvalid = errors.New("invalid")

// ClusterSpec describes a dedicated (or free-tier) cluster in the fleet.
type ClusterSpec struct {
	Name string
	// Type is REPLICASET (default), SHARDED or GEOSHARDED.
	Type atlas.ClusterType
	// Tier is the instance size, e.g. "M10" (default), "M30", "M0".
	// M0, M2 and M5 cannot take cloud backups.
	Tier  string
	State atlas.ClusterState // default IDLE
	// Paused clusters reject snapshots and restores into them.
	Paused bool
	// BackupEnabled is Atlas's backupEnabled; like Atlas, the zero value is false.
	BackupEnabled bool
	// Shards is the shard count of a sharded cluster (default 2); ignored for
	// replica sets.
	Shards int
	// MongoDBVersion defaults to 8.0.4; Provider to AWS; Region to US_EAST_1.
	MongoDBVersion string
	Provider       string
	Region         string
}

func (c ClusterSpec) withDefaults() ClusterSpec {
	if c.Type == "" {
		c.Type = atlas.ClusterReplicaSet
	}
	if c.Tier == "" {
		c.Tier = "M10"
	}
	if c.State == "" {
		c.State = atlas.ClusterIdle
	}
	if c.Type == atlas.ClusterReplicaSet {
		c.Shards = 1
	} else if c.Shards == 0 {
		c.Shards = 2
	}
	if c.MongoDBVersion == "" {
		c.MongoDBVersion = "8.0.4"
	}
	if c.Provider == "" {
		c.Provider = "AWS"
	}
	if c.Region == "" {
		c.Region = "US_EAST_1"
	}
	return c
}

func (c ClusterSpec) validate() error {
	if !clusterNamePattern.MatchString(c.Name) {
		return fmt.Errorf("cluster name %q must match %s: %w", c.Name, clusterNamePattern, ErrInvalid)
	}
	switch c.Type {
	case atlas.ClusterReplicaSet, atlas.ClusterSharded, atlas.ClusterGeoSharded:
	default:
		return fmt.Errorf("cluster %s: type %q is not REPLICASET, SHARDED or GEOSHARDED: %w", c.Name, c.Type, ErrInvalid)
	}
	if !tierPattern.MatchString(c.Tier) {
		return fmt.Errorf("cluster %s: tier %q is not an instance size such as M10: %w", c.Name, c.Tier, ErrInvalid)
	}
	switch c.State {
	case atlas.ClusterIdle, atlas.ClusterCreating, atlas.ClusterUpdating, atlas.ClusterDeleting, atlas.ClusterRepairing:
	default:
		return fmt.Errorf("cluster %s: state %q is not IDLE, CREATING, UPDATING, DELETING or REPAIRING: %w", c.Name, c.State, ErrInvalid)
	}
	if c.Shards < 1 || c.Shards > 70 {
		return fmt.Errorf("cluster %s: shards %d out of range 1..70: %w", c.Name, c.Shards, ErrInvalid)
	}
	switch c.Provider {
	case "AWS", "AZURE", "GCP":
	default:
		return fmt.Errorf("cluster %s: provider %q is not AWS, AZURE or GCP: %w", c.Name, c.Provider, ErrInvalid)
	}
	return nil
}

// tenantTier reports whether a tier is a shared/free tier that cannot take
// cloud backups (Atlas requires M10 or larger).
func tenantTier(tier string) bool {
	switch tier {
	case "M0", "M2", "M5":
		return true
	}
	return false
}

// AddProject adds an empty project (Atlas "group") named "project-<id>".
func (s *Sim) AddProject(id string) error { return s.addProject(id, "") }

func (s *Sim) addProject(id, name string) error {
	if !hexIDPattern.MatchString(id) {
		return fmt.Errorf("add project %q: id must be 24 lowercase hex digits: %w", id, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[id]; ok {
		return fmt.Errorf("add project %s: already exists: %w", id, ErrInvalid)
	}
	if name == "" {
		name = "project-" + id
	}
	s.projects[id] = &project{
		id:       id,
		name:     name,
		created:  s.clk.Now(),
		clusters: map[string]*cluster{},
		flex:     map[string]*flexCluster{},
		buckets:  map[string]*atlas.ExportBucket{},
	}
	s.projectOrder = append(s.projectOrder, id)
	s.log("atlassim: added project %s", id)
	return nil
}

func (s *Sim) projectLocked(id string) (*project, error) {
	p, ok := s.projects[id]
	if !ok {
		return nil, fmt.Errorf("project %s: %w", id, ErrNotFound)
	}
	return p, nil
}

func (p *project) nameTaken(name string) bool {
	_, c := p.clusters[name]
	_, f := p.flex[name]
	return c || f
}

// AddCluster adds a dedicated cluster to a project.
func (s *Sim) AddCluster(projectID string, c ClusterSpec) error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return fmt.Errorf("add cluster to project %s: %w", projectID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.projectLocked(projectID)
	if err != nil {
		return fmt.Errorf("add cluster %s: %w", c.Name, err)
	}
	if p.nameTaken(c.Name) {
		return fmt.Errorf("add cluster %s to project %s: name already used: %w", c.Name, projectID, ErrInvalid)
	}
	cl := &cluster{id: s.newID(), spec: c, createdAt: s.clk.Now()}
	for range c.Shards {
		cl.specIDs = append(cl.specIDs, s.newID())
	}
	p.clusters[c.Name] = cl
	p.clusterOrder = append(p.clusterOrder, c.Name)
	s.log("atlassim: added cluster %s/%s (%s %s)", projectID, c.Name, c.Type, c.Tier)
	return nil
}

// AddFlexCluster adds a flex cluster to a project.
func (s *Sim) AddFlexCluster(projectID, name string) error {
	if !clusterNamePattern.MatchString(name) {
		return fmt.Errorf("add flex cluster %q to project %s: name must match %s: %w", name, projectID, clusterNamePattern, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.projectLocked(projectID)
	if err != nil {
		return fmt.Errorf("add flex cluster %s: %w", name, err)
	}
	if p.nameTaken(name) {
		return fmt.Errorf("add flex cluster %s to project %s: name already used: %w", name, projectID, ErrInvalid)
	}
	p.flex[name] = &flexCluster{id: s.newID(), name: name, createdAt: s.clk.Now()}
	p.flexOrder = append(p.flexOrder, name)
	s.log("atlassim: added flex cluster %s/%s", projectID, name)
	return nil
}

// AddBucket registers an export bucket in a project and returns its id (b.ID
// when set, otherwise a generated one). The provider's required fields are
// checked as the spec's DiskBackupSnapshot*ExportBucketResponse requires.
func (s *Sim) AddBucket(projectID string, b atlas.ExportBucket) (string, error) {
	if n := len(b.BucketName); n < 3 || n > 63 {
		return "", fmt.Errorf("add bucket to project %s: bucketName %q must be 3..63 characters: %w", projectID, b.BucketName, ErrInvalid)
	}
	switch b.CloudProvider {
	case "AWS":
		if !hexIDPattern.MatchString(b.IAMRoleID) {
			return "", fmt.Errorf("add bucket %s: AWS buckets need a 24-hex iamRoleId: %w", b.BucketName, ErrInvalid)
		}
		if b.Region == "" {
			b.Region = "us-east-1"
		}
	case "AZURE":
		if !hexIDPattern.MatchString(b.RoleID) || !strings.Contains(b.ServiceURL, "blob.core.windows.net") || b.TenantID == "" {
			return "", fmt.Errorf("add bucket %s: AZURE buckets need a 24-hex roleId, a blob.core.windows.net serviceUrl and a tenantId: %w", b.BucketName, ErrInvalid)
		}
	case "GCP":
		if !hexIDPattern.MatchString(b.RoleID) {
			return "", fmt.Errorf("add bucket %s: GCP buckets need a 24-hex roleId: %w", b.BucketName, ErrInvalid)
		}
	default:
		return "", fmt.Errorf("add bucket %s: cloudProvider %q is not AWS, AZURE or GCP: %w", b.BucketName, b.CloudProvider, ErrInvalid)
	}
	if b.ID != "" && !hexIDPattern.MatchString(b.ID) {
		return "", fmt.Errorf("add bucket %s: id %q must be 24 lowercase hex digits: %w", b.BucketName, b.ID, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.projectLocked(projectID)
	if err != nil {
		return "", fmt.Errorf("add bucket %s: %w", b.BucketName, err)
	}
	if b.ID == "" {
		b.ID = s.newID()
	}
	if _, ok := p.buckets[b.ID]; ok {
		return "", fmt.Errorf("add bucket %s to project %s: id %s already used: %w", b.BucketName, projectID, b.ID, ErrInvalid)
	}
	b.Links = nil
	p.buckets[b.ID] = &b
	p.bucketOrder = append(p.bucketOrder, b.ID)
	s.log("atlassim: added export bucket %s (%s %s) to project %s", b.ID, b.CloudProvider, b.BucketName, projectID)
	return b.ID, nil
}

// RemoveBucket deletes an export bucket; exports already running carry on.
func (s *Sim) RemoveBucket(projectID, bucketID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.projectLocked(projectID)
	if err != nil {
		return fmt.Errorf("remove bucket %s: %w", bucketID, err)
	}
	if _, ok := p.buckets[bucketID]; !ok {
		return fmt.Errorf("remove bucket %s from project %s: %w", bucketID, projectID, ErrNotFound)
	}
	delete(p.buckets, bucketID)
	p.bucketOrder = removeString(p.bucketOrder, bucketID)
	return nil
}

// AddServiceAccount registers OAuth2 client credentials for the token endpoint.
func (s *Sim) AddServiceAccount(clientID, clientSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serviceAccounts[clientID] = clientSecret
}

// AddAPIKey registers a programmatic API key for HTTP Digest authentication.
func (s *Sim) AddAPIKey(publicKey, privateKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys[publicKey] = privateKey
}

func (s *Sim) clusterLocked(projectID, name string) (*cluster, error) {
	p, err := s.projectLocked(projectID)
	if err != nil {
		return nil, err
	}
	c, ok := p.clusters[name]
	if !ok {
		return nil, fmt.Errorf("cluster %s in project %s: %w", name, projectID, ErrNotFound)
	}
	return c, nil
}

func (s *Sim) flexLocked(projectID, name string) (*flexCluster, error) {
	p, err := s.projectLocked(projectID)
	if err != nil {
		return nil, err
	}
	f, ok := p.flex[name]
	if !ok {
		return nil, fmt.Errorf("flex cluster %s in project %s: %w", name, projectID, ErrNotFound)
	}
	return f, nil
}

// SetClusterState sets a cluster's stateName (IDLE, UPDATING, ...).
func (s *Sim) SetClusterState(projectID, name string, st atlas.ClusterState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, name)
	if err != nil {
		return fmt.Errorf("set cluster state: %w", err)
	}
	s.produceLocked(c, s.clk.Now()) // what the schedule took under the old state
	spec := c.spec
	spec.State = st
	if err := spec.validate(); err != nil {
		return fmt.Errorf("set cluster state: %w", err)
	}
	c.spec = spec
	return nil
}

// PauseCluster pauses (true) or resumes (false) a cluster.
func (s *Sim) PauseCluster(projectID, name string, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, name)
	if err != nil {
		return fmt.Errorf("pause cluster: %w", err)
	}
	s.produceLocked(c, s.clk.Now()) // what the schedule took under the old state
	c.spec.Paused = paused
	return nil
}

// SetBackupEnabled turns a cluster's cloud backup on or off.
func (s *Sim) SetBackupEnabled(projectID, name string, enabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, name)
	if err != nil {
		return fmt.Errorf("set backup enabled: %w", err)
	}
	s.produceLocked(c, s.clk.Now()) // what the schedule took under the old state
	c.spec.BackupEnabled = enabled
	return nil
}

// DeleteCluster removes a dedicated cluster with its snapshots and exports.
func (s *Sim) DeleteCluster(projectID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.projectLocked(projectID)
	if err != nil {
		return fmt.Errorf("delete cluster %s: %w", name, err)
	}
	if _, ok := p.clusters[name]; !ok {
		return fmt.Errorf("delete cluster %s in project %s: %w", name, projectID, ErrNotFound)
	}
	delete(p.clusters, name)
	p.clusterOrder = removeString(p.clusterOrder, name)
	return nil
}

// DeleteFlexCluster removes a flex cluster with its snapshots and restore jobs.
func (s *Sim) DeleteFlexCluster(projectID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.projectLocked(projectID)
	if err != nil {
		return fmt.Errorf("delete flex cluster %s: %w", name, err)
	}
	if _, ok := p.flex[name]; !ok {
		return fmt.Errorf("delete flex cluster %s in project %s: %w", name, projectID, ErrNotFound)
	}
	delete(p.flex, name)
	p.flexOrder = removeString(p.flexOrder, name)
	return nil
}

func removeString(list []string, v string) []string {
	out := list[:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// SeedSnapshot describes a snapshot that exists before the test or demo
// starts: scheduled and fallback snapshots (which backupd cannot create) or
// an on-demand one already queued or in progress.
type SeedSnapshot struct {
	ID            string             // default generated
	Type          atlas.SnapshotType // default scheduled
	Status        atlas.SnapshotStatus
	FrequencyType atlas.FrequencyType // default daily for scheduled snapshots
	Description   string
	// CreatedAt, when zero, is now minus Age.
	CreatedAt time.Time
	Age       time.Duration
	// RetentionInDays sets expiresAt (default 7).
	RetentionInDays  int
	StorageSizeBytes int64 // default generated for completed snapshots
}

// SeedSnapshot adds a snapshot to a cluster and returns its id. Status
// defaults to completed; a queued or inProgress seed moves on through the
// rest of the lifecycle from now, as if Atlas were working on it.
func (s *Sim) SeedSnapshot(projectID, clusterName string, seed SeedSnapshot) (string, error) {
	if seed.Type == "" {
		seed.Type = atlas.SnapshotScheduled
	}
	if seed.Status == "" {
		seed.Status = atlas.SnapshotCompleted
	}
	if seed.RetentionInDays == 0 {
		seed.RetentionInDays = 7
	}
	switch seed.Type {
	case atlas.SnapshotOnDemand, atlas.SnapshotScheduled, atlas.SnapshotFallback:
	default:
		return "", fmt.Errorf("seed snapshot on %s: type %q is not onDemand, scheduled or fallback: %w", clusterName, seed.Type, ErrInvalid)
	}
	switch seed.Status {
	case atlas.SnapshotQueued, atlas.SnapshotInProgress, atlas.SnapshotCompleted, atlas.SnapshotFailed:
	default:
		return "", fmt.Errorf("seed snapshot on %s: status %q is not queued, inProgress, completed or failed: %w", clusterName, seed.Status, ErrInvalid)
	}
	switch seed.FrequencyType {
	case "", atlas.FrequencyHourly, atlas.FrequencyDaily, atlas.FrequencyWeekly, atlas.FrequencyMonthly, atlas.FrequencyYearly:
	default:
		return "", fmt.Errorf("seed snapshot on %s: frequencyType %q is not hourly, daily, weekly, monthly or yearly: %w", clusterName, seed.FrequencyType, ErrInvalid)
	}
	if seed.RetentionInDays < 1 {
		return "", fmt.Errorf("seed snapshot on %s: retentionInDays %d must be at least 1: %w", clusterName, seed.RetentionInDays, ErrInvalid)
	}
	if seed.ID != "" && !hexIDPattern.MatchString(seed.ID) {
		return "", fmt.Errorf("seed snapshot on %s: id %q must be 24 lowercase hex digits: %w", clusterName, seed.ID, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return "", fmt.Errorf("seed snapshot: %w", err)
	}
	now := s.clk.Now()
	created := seed.CreatedAt
	if created.IsZero() {
		created = now.Add(-seed.Age)
	}
	if seed.ID == "" {
		seed.ID = s.newID()
	} else if c.snapshotByID(seed.ID) != nil {
		return "", fmt.Errorf("seed snapshot on %s: id %s already used: %w", clusterName, seed.ID, ErrInvalid)
	}
	sn := s.newSnapshotLocked(c, seed.ID, seed.Type, created, seed.RetentionInDays, seed.Description)
	if seed.Type == atlas.SnapshotScheduled {
		sn.frequency = seed.FrequencyType
		if sn.frequency == "" {
			sn.frequency = atlas.FrequencyDaily
		}
		sn.policyItems = []string{s.newID()}
	}
	t := s.timings
	switch seed.Status {
	case atlas.SnapshotQueued:
		sn.timeline = phases{now.Add(s.scaled(t.SnapshotQueued)), now.Add(s.scaled(t.SnapshotQueued + t.SnapshotInProgress))}
		sn.final = atlas.SnapshotCompleted
	case atlas.SnapshotInProgress:
		sn.timeline = phases{now, now.Add(s.scaled(t.SnapshotInProgress))}
		sn.final = atlas.SnapshotCompleted
	default:
		sn.timeline = phases{created, created}
		sn.final = seed.Status
	}
	if seed.StorageSizeBytes > 0 {
		sn.size = seed.StorageSizeBytes
	}
	c.snapshots = append(c.snapshots, sn)
	return sn.id, nil
}

// newSnapshotLocked builds a snapshot with its shard members; the caller sets
// the timeline and final status.
func (s *Sim) newSnapshotLocked(c *cluster, id string, typ atlas.SnapshotType, created time.Time, retentionDays int, description string) *snapshot {
	sn := &snapshot{
		id:            id,
		kind:          atlas.KindReplicaSet,
		snapType:      typ,
		createdAt:     created,
		expiresAt:     created.Add(time.Duration(retentionDays) * 24 * time.Hour),
		description:   description,
		mongodVersion: c.spec.MongoDBVersion,
		size:          (1 + s.idRNG.Int64N(64)) << 26, // 64 MiB .. 4 GiB
	}
	if c.spec.Type != atlas.ClusterReplicaSet {
		sn.kind = atlas.KindShardedCluster
		for _, rs := range c.replicaSetNames() {
			sn.members = append(sn.members, atlas.SnapshotMember{CloudProvider: c.spec.Provider, ID: s.newID(), ReplicaSetName: rs})
		}
	}
	return sn
}

// replicaSetNames names the shards (and config server of sharded clusters).
func (c *cluster) replicaSetNames() []string {
	if c.spec.Type == atlas.ClusterReplicaSet {
		return []string{c.spec.Name + "-shard-0"}
	}
	names := make([]string, 0, c.spec.Shards+1)
	for i := range c.spec.Shards {
		names = append(names, fmt.Sprintf("%s-shard-%d", c.spec.Name, i))
	}
	return append(names, c.spec.Name+"-config-0")
}

func (c *cluster) snapshotByID(id string) *snapshot {
	for _, sn := range c.snapshots {
		if sn.id == id {
			return sn
		}
	}
	return nil
}

// SeedFlexSnapshot describes a daily flex snapshot taken before the test or
// demo starts. Flex snapshots have no on-demand API, so seeds are the only
// source; they keep the status given.
type SeedFlexSnapshot struct {
	ID     string           // default generated
	Status atlas.FlexStatus // default COMPLETED
	// FinishedAt, when zero, is now minus Age.
	FinishedAt     time.Time
	Age            time.Duration
	MongoDBVersion string // default 8.0.4
}

// SeedFlexSnapshot adds a snapshot to a flex cluster and returns its id.
func (s *Sim) SeedFlexSnapshot(projectID, flexName string, seed SeedFlexSnapshot) (string, error) {
	if seed.Status == "" {
		seed.Status = atlas.FlexCompleted
	}
	switch seed.Status {
	case atlas.FlexPending, atlas.FlexQueued, atlas.FlexRunning, atlas.FlexFailed, atlas.FlexCompleted:
	default:
		return "", fmt.Errorf("seed flex snapshot on %s: status %q is not PENDING, QUEUED, RUNNING, FAILED or COMPLETED: %w", flexName, seed.Status, ErrInvalid)
	}
	if seed.ID != "" && !hexIDPattern.MatchString(seed.ID) {
		return "", fmt.Errorf("seed flex snapshot on %s: id %q must be 24 lowercase hex digits: %w", flexName, seed.ID, ErrInvalid)
	}
	if seed.MongoDBVersion == "" {
		seed.MongoDBVersion = "8.0.4"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.flexLocked(projectID, flexName)
	if err != nil {
		return "", fmt.Errorf("seed flex snapshot: %w", err)
	}
	if seed.ID == "" {
		seed.ID = s.newID()
	} else if f.snapshotByID(seed.ID) != nil {
		return "", fmt.Errorf("seed flex snapshot on %s: id %s already used: %w", flexName, seed.ID, ErrInvalid)
	}
	finished := seed.FinishedAt
	if finished.IsZero() {
		finished = s.clk.Now().Add(-seed.Age)
	}
	fs := &flexSnapshot{
		id:             seed.ID,
		status:         seed.Status,
		scheduled:      finished.Add(-10 * time.Minute),
		started:        finished.Add(-5 * time.Minute),
		expiration:     finished.Add(8 * 24 * time.Hour),
		mongoDBVersion: seed.MongoDBVersion,
	}
	if seed.Status == atlas.FlexCompleted || seed.Status == atlas.FlexFailed {
		fs.finished = finished
	}
	if seed.Status == atlas.FlexPending || seed.Status == atlas.FlexQueued {
		fs.started = time.Time{}
	}
	f.snapshots = append(f.snapshots, fs)
	return fs.id, nil
}

func (f *flexCluster) snapshotByID(id string) *flexSnapshot {
	for _, fs := range f.snapshots {
		if fs.id == id {
			return fs
		}
	}
	return nil
}

// liveSnapshots returns the cluster's snapshots that have not expired at now,
// newest first, as Atlas lists them. Expired snapshots are dropped: Atlas
// deletes a snapshot at its expiresAt.
func (c *cluster) liveSnapshots(now time.Time) []*snapshot {
	kept := c.snapshots[:0]
	for _, sn := range c.snapshots {
		if now.Before(sn.expiresAt) {
			kept = append(kept, sn)
		}
	}
	for i := len(kept); i < len(c.snapshots); i++ {
		c.snapshots[i] = nil
	}
	c.snapshots = kept
	out := append([]*snapshot(nil), kept...)
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].createdAt.Equal(out[j].createdAt) {
			return out[i].createdAt.After(out[j].createdAt)
		}
		return out[i].id > out[j].id
	})
	return out
}

// targetNamePattern is compiled on first use: its Unicode classes cost ~1.3 MB of heap,
// which a daemon without flex restore policies should not carry.
var targetNamePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[\p{L}\p{N}\-_.(),:&@+']{1,64}$`)
})
