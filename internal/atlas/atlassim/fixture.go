package atlassim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// Fixture is a simulated fleet: projects with clusters, flex clusters,
// export buckets and seeded snapshots, plus credentials, a rate limit and
// timings. It is what `backupd atlas-sim -fixture FILE` loads; the format is
// documented in docs/simulator.md and testdata/fixture.yaml.
type Fixture struct {
	Projects        []FixtureProject        `yaml:"projects"`
	ServiceAccounts []FixtureServiceAccount `yaml:"serviceAccounts"`
	APIKeys         []FixtureAPIKey         `yaml:"apiKeys"`
	RateLimit       *RateLimit              `yaml:"rateLimit"`
	Timings         *Timings                `yaml:"timings"`
	// Failures makes the next jobs end badly, as POST /_sim/fail does.
	Failures *FixtureFailures `yaml:"failures"`
	// Spread varies the durations per cluster (see Spread).
	Spread *Spread `yaml:"spread"`

	file string     // source file, for located errors
	root *yaml.Node // parsed document, for line numbers
}

// FixtureProject is one Atlas project (group) of a fixture.
type FixtureProject struct {
	ID                string                `yaml:"id"`
	Name              string                `yaml:"name"` // default "project-<id>"
	Clusters          []FixtureCluster      `yaml:"clusters"`
	FlexClusters      []FixtureFlexCluster  `yaml:"flexClusters"`
	Buckets           []FixtureBucket       `yaml:"buckets"`
	SeedSnapshots     []FixtureSnapshot     `yaml:"seedSnapshots"`
	SeedFlexSnapshots []FixtureFlexSnapshot `yaml:"seedFlexSnapshots"`
	// CompliancePolicy is the project's Backup Compliance Policy; none when omitted.
	CompliancePolicy *FixtureCompliancePolicy `yaml:"compliancePolicy"`
}

// FixtureCluster is a dedicated cluster; see ClusterSpec for defaults.
// BackupEnabled defaults to true in fixtures.
type FixtureCluster struct {
	Name           string `yaml:"name"`
	Type           string `yaml:"type"`
	Tier           string `yaml:"tier"`
	State          string `yaml:"state"`
	Paused         bool   `yaml:"paused"`
	BackupEnabled  *bool  `yaml:"backupEnabled"`
	Shards         int    `yaml:"shards"`
	MongoDBVersion string `yaml:"mongoDBVersion"`
	Provider       string `yaml:"provider"`
	Region         string `yaml:"region"`
	// Schedule is the cluster's native backup schedule; none when omitted.
	Schedule *FixtureSchedule `yaml:"schedule"`
}

// FixtureFlexCluster is a flex cluster.
type FixtureFlexCluster struct {
	Name string `yaml:"name"`
}

// FixtureBucket is an export bucket (fields as in the 2024-05-30 API).
type FixtureBucket struct {
	ID                       string `yaml:"id"`
	BucketName               string `yaml:"bucketName"`
	CloudProvider            string `yaml:"cloudProvider"`
	IAMRoleID                string `yaml:"iamRoleId"`
	Region                   string `yaml:"region"`
	RequirePrivateNetworking bool   `yaml:"requirePrivateNetworking"`
	RoleID                   string `yaml:"roleId"`
	ServiceURL               string `yaml:"serviceUrl"`
	TenantID                 string `yaml:"tenantId"`
}

// FixtureSnapshot seeds a cluster snapshot; see SeedSnapshot.
type FixtureSnapshot struct {
	Cluster          string        `yaml:"cluster"`
	ID               string        `yaml:"id"`
	Type             string        `yaml:"type"`
	Status           string        `yaml:"status"`
	FrequencyType    string        `yaml:"frequencyType"`
	Description      string        `yaml:"description"`
	Age              time.Duration `yaml:"age"`
	CreatedAt        time.Time     `yaml:"createdAt"`
	RetentionInDays  int           `yaml:"retentionInDays"`
	StorageSizeBytes int64         `yaml:"storageSizeBytes"`
}

// FixtureFlexSnapshot seeds a flex cluster snapshot; see SeedFlexSnapshot.
type FixtureFlexSnapshot struct {
	FlexCluster    string        `yaml:"flexCluster"`
	ID             string        `yaml:"id"`
	Status         string        `yaml:"status"`
	Age            time.Duration `yaml:"age"`
	FinishedAt     time.Time     `yaml:"finishedAt"`
	MongoDBVersion string        `yaml:"mongoDBVersion"`
}

// FixtureFailures are failures on demand: ClusterRestores of the next
// restore jobs of dedicated clusters end ClusterRestoreEnd (failed, the
// default, cancelled or expired).
type FixtureFailures struct {
	ClusterRestores   int    `yaml:"clusterRestores"`
	ClusterRestoreEnd string `yaml:"clusterRestoreEnd"`
}

// FixtureServiceAccount is an OAuth2 client. Its String masks the secret.
type FixtureServiceAccount struct {
	ClientID     string `yaml:"clientID"`
	ClientSecret string `yaml:"clientSecret"`
}

// String names the client and hides the secret.
func (a FixtureServiceAccount) String() string {
	return fmt.Sprintf("service account %s (secret %s)", a.ClientID, mask(a.ClientSecret))
}

// GoString keeps %#v from printing the secret.
func (a FixtureServiceAccount) GoString() string { return a.String() }

// FixtureAPIKey is a digest API key. Its String masks the private key.
type FixtureAPIKey struct {
	PublicKey  string `yaml:"publicKey"`
	PrivateKey string `yaml:"privateKey"`
}

// String names the key and hides the private part.
func (k FixtureAPIKey) String() string {
	return fmt.Sprintf("API key %s (private key %s)", k.PublicKey, mask(k.PrivateKey))
}

// GoString keeps %#v from printing the private key.
func (k FixtureAPIKey) GoString() string { return k.String() }

func mask(secret string) string {
	if secret == "" {
		return "<empty>"
	}
	return fmt.Sprintf("<%d chars, masked>", len(secret))
}

var yamlLine = regexp.MustCompile(`(?:yaml: )?line (\d+): `)

// LoadFixture reads a fixture strictly (unknown keys are errors) and checks
// it by applying it to a scratch simulator. Errors name file:line.
func LoadFixture(path string) (*Fixture, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load fixture: %w", err)
	}
	return parseFixture(path, data)
}

// parseFixture is LoadFixture on data already read from path, so the
// fuzzer can feed it without a file per input.
func parseFixture(path string, data []byte) (*Fixture, error) {
	var f Fixture
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("load fixture %s: the file is empty", path)
		}
		return nil, fmt.Errorf("load fixture: %s", locateYAMLError(path, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load fixture: %s:%d: only one YAML document is allowed", path, extra.Line)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("load fixture: %s", locateYAMLError(path, err))
	}
	f.file, f.root = path, &root
	scratch := New(Options{Clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err := f.Apply(scratch); err != nil {
		return nil, fmt.Errorf("load fixture: %w", err)
	}
	return &f, nil
}

// locateYAMLError rewrites yaml.v3's "line N: msg" into "file:N: msg", one
// line per problem.
func locateYAMLError(path string, err error) string {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if loc := yamlLine.FindStringSubmatchIndex(m); loc != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s", path, m[loc[2]:loc[3]], m[loc[1]:]))
		} else {
			out = append(out, path+": "+strings.TrimPrefix(m, "yaml: "))
		}
	}
	return strings.Join(out, "\n")
}

// where prefixes an error with the fixture location of the element at path
// (keys and indexes), e.g. "fixture.yaml:12: projects[0].clusters[1]: ...".
func (f *Fixture) where(err error, path ...any) error {
	var name strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case int:
			fmt.Fprintf(&name, "[%d]", v)
		case string:
			if name.Len() > 0 {
				name.WriteByte('.')
			}
			name.WriteString(v)
		}
	}
	if f.root == nil {
		return fmt.Errorf("fixture %s: %w", name.String(), err)
	}
	return fmt.Errorf("%s:%d: %s: %w", f.file, lineOf(f.root, path), name.String(), err)
}

// lineOf walks a YAML document along mapping keys and sequence indexes and
// returns the line of the deepest node found.
func lineOf(root *yaml.Node, path []any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch v := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == v {
						next = n.Content[i+1]
						line = n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && v < len(n.Content) {
				next = n.Content[v]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}

// Apply adds the fixture's fleet, credentials, rate limit and timings to s.
func (f *Fixture) Apply(s *Sim) error {
	if rl := f.RateLimit; rl != nil {
		if rl.Capacity < 0 || rl.RefillPerMinute < 0 {
			return f.where(fmt.Errorf("capacity and refillPerMinute must not be negative: %w", ErrInvalid), "rateLimit")
		}
		s.SetRateLimit(*rl)
	}
	if t := f.Timings; t != nil {
		for _, d := range []time.Duration{t.SnapshotQueued, t.SnapshotInProgress, t.ExportQueued, t.ExportInProgress, t.RestorePending, t.RestoreRunning, t.ClusterRestore, t.ClusterRestoreSettle, t.TokenTTL} {
			if d < 0 {
				return f.where(fmt.Errorf("durations must not be negative: %w", ErrInvalid), "timings")
			}
		}
		s.SetTimings(*t)
	}
	if fl := f.Failures; fl != nil {
		end := atlas.RestoreState(fl.ClusterRestoreEnd)
		if end == "" {
			end = atlas.RestoreFailed
		}
		if fl.ClusterRestores < 0 {
			return f.where(fmt.Errorf("clusterRestores %d must not be negative: %w", fl.ClusterRestores, ErrInvalid), "failures", "clusterRestores")
		}
		if err := s.FailNextClusterRestores(fl.ClusterRestores, end); err != nil {
			return f.where(err, "failures", "clusterRestoreEnd")
		}
	}
	if sp := f.Spread; sp != nil {
		if err := s.SetSpread(*sp); err != nil {
			return f.where(err, "spread")
		}
	}
	for i, a := range f.ServiceAccounts {
		if a.ClientID == "" || a.ClientSecret == "" {
			return f.where(fmt.Errorf("clientID and clientSecret are required: %w", ErrInvalid), "serviceAccounts", i)
		}
		s.AddServiceAccount(a.ClientID, a.ClientSecret)
	}
	for i, k := range f.APIKeys {
		if k.PublicKey == "" || k.PrivateKey == "" {
			return f.where(fmt.Errorf("publicKey and privateKey are required: %w", ErrInvalid), "apiKeys", i)
		}
		s.AddAPIKey(k.PublicKey, k.PrivateKey)
	}
	for pi, p := range f.Projects {
		if err := f.applyProject(s, pi, p); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fixture) applyProject(s *Sim, pi int, p FixtureProject) error {
	if err := s.addProject(p.ID, p.Name); err != nil {
		return f.where(err, "projects", pi, "id")
	}
	for i, c := range p.Clusters {
		backup := true
		if c.BackupEnabled != nil {
			backup = *c.BackupEnabled
		}
		spec := ClusterSpec{
			Name: c.Name, Type: atlas.ClusterType(c.Type), Tier: c.Tier, State: atlas.ClusterState(c.State),
			Paused: c.Paused, BackupEnabled: backup, Shards: c.Shards,
			MongoDBVersion: c.MongoDBVersion, Provider: c.Provider, Region: c.Region,
		}
		if err := s.AddCluster(p.ID, spec); err != nil {
			return f.where(err, "projects", pi, "clusters", i)
		}
		if err := f.applySchedule(s, p.ID, pi, i, c); err != nil {
			return err
		}
	}
	if cp := p.CompliancePolicy; cp != nil {
		if err := s.SetCompliancePolicy(p.ID, cp.spec()); err != nil {
			return f.where(err, "projects", pi, "compliancePolicy")
		}
	}
	for i, fc := range p.FlexClusters {
		if err := s.AddFlexCluster(p.ID, fc.Name); err != nil {
			return f.where(err, "projects", pi, "flexClusters", i)
		}
	}
	for i, b := range p.Buckets {
		_, err := s.AddBucket(p.ID, atlas.ExportBucket{
			ID: b.ID, BucketName: b.BucketName, CloudProvider: b.CloudProvider, IAMRoleID: b.IAMRoleID,
			Region: b.Region, RequirePrivateNetworking: b.RequirePrivateNetworking,
			RoleID: b.RoleID, ServiceURL: b.ServiceURL, TenantID: b.TenantID,
		})
		if err != nil {
			return f.where(err, "projects", pi, "buckets", i)
		}
	}
	for i, sn := range p.SeedSnapshots {
		if sn.Age < 0 {
			return f.where(fmt.Errorf("age must not be negative: %w", ErrInvalid), "projects", pi, "seedSnapshots", i)
		}
		_, err := s.SeedSnapshot(p.ID, sn.Cluster, SeedSnapshot{
			ID: sn.ID, Type: atlas.SnapshotType(sn.Type), Status: atlas.SnapshotStatus(sn.Status),
			FrequencyType: atlas.FrequencyType(sn.FrequencyType), Description: sn.Description,
			CreatedAt: sn.CreatedAt, Age: sn.Age, RetentionInDays: sn.RetentionInDays, StorageSizeBytes: sn.StorageSizeBytes,
		})
		if err != nil {
			return f.where(err, "projects", pi, "seedSnapshots", i)
		}
	}
	for i, fs := range p.SeedFlexSnapshots {
		if fs.Age < 0 {
			return f.where(fmt.Errorf("age must not be negative: %w", ErrInvalid), "projects", pi, "seedFlexSnapshots", i)
		}
		_, err := s.SeedFlexSnapshot(p.ID, fs.FlexCluster, SeedFlexSnapshot{
			ID: fs.ID, Status: atlas.FlexStatus(fs.Status), FinishedAt: fs.FinishedAt, Age: fs.Age, MongoDBVersion: fs.MongoDBVersion,
		})
		if err != nil {
			return f.where(err, "projects", pi, "seedFlexSnapshots", i)
		}
	}
	return nil
}

// Ids of the built-in demo fleet (DemoFixture), fixed so configs can name them.
const (
	DemoProjectID    = "32b6e34b3d91647abb20e7b8"
	DemoBucketID     = "32b6e34b3d91647abb20e7b9"
	DemoClientID     = "mdb_sa_id_backupd_demo"
	DemoClientSecret = "mdb_sa_sk_backupd_demo_secret" // demo only; never a real credential
	DemoPublicKey    = "backupddemo"
	DemoPrivateKey   = "backupd-demo-private-key" // demo only; never a real credential
)

// DemoFixture is the built-in fleet of `backupd demo` and of `backupd
// atlas-sim` without -fixture: one project holding a replica set M10
// (prod-main), a sharded M30 (prod-shards), a paused M10 (prod-archive), an
// M10 with seeded scheduled and fallback snapshots (analytics), an M0
// (sandbox), an M10 that exists only as a restore drill's scratch target
// (drill-scratch), a flex cluster with three daily snapshots (flex-prod), a
// flex restore target (staging), one AWS bucket, one service account and one API
// key. testdata/fixture.yaml is the same fleet written as YAML.
func DemoFixture() *Fixture {
	off := false
	return &Fixture{
		Projects: []FixtureProject{{
			ID:   DemoProjectID,
			Name: "backupd-demo",
			Clusters: []FixtureCluster{
				{Name: "prod-main", Type: "REPLICASET", Tier: "M10"},
				{Name: "prod-shards", Type: "SHARDED", Tier: "M30", Shards: 2},
				{Name: "prod-archive", Type: "REPLICASET", Tier: "M10", Paused: true},
				{Name: "analytics", Type: "REPLICASET", Tier: "M10"},
				{Name: "sandbox", Type: "REPLICASET", Tier: "M0", BackupEnabled: &off},
				{Name: "drill-scratch", Type: "REPLICASET", Tier: "M10"},
			},
			FlexClusters: []FixtureFlexCluster{{Name: "flex-prod"}, {Name: "staging"}},
			Buckets: []FixtureBucket{{
				ID: DemoBucketID, BucketName: "backupd-demo-exports", CloudProvider: "AWS",
				IAMRoleID: "668c5f0ed436263134491592", Region: "us-east-1",
			}},
			SeedSnapshots: []FixtureSnapshot{
				{Cluster: "analytics", ID: "65f1a0000000000000000001", Type: "fallback", Status: "completed", Age: time.Hour},
				{Cluster: "analytics", ID: "65f1a0000000000000000002", Type: "scheduled", Status: "completed", FrequencyType: "daily", Age: 2 * time.Hour},
				{Cluster: "analytics", ID: "65f1a0000000000000000003", Type: "scheduled", Status: "completed", FrequencyType: "daily", Age: 26 * time.Hour},
				{Cluster: "analytics", ID: "65f1a0000000000000000004", Type: "scheduled", Status: "completed", FrequencyType: "weekly", Age: 50 * time.Hour},
				{Cluster: "prod-main", ID: "65f1a0000000000000000005", Type: "scheduled", Status: "completed", FrequencyType: "daily", Age: 20 * time.Hour},
			},
			SeedFlexSnapshots: []FixtureFlexSnapshot{
				{FlexCluster: "flex-prod", ID: "65f1b0000000000000000001", Status: "COMPLETED", Age: 4 * time.Hour},
				{FlexCluster: "flex-prod", ID: "65f1b0000000000000000002", Status: "COMPLETED", Age: 28 * time.Hour},
				{FlexCluster: "flex-prod", ID: "65f1b0000000000000000003", Status: "COMPLETED", Age: 52 * time.Hour},
			},
		}},
		ServiceAccounts: []FixtureServiceAccount{{ClientID: DemoClientID, ClientSecret: DemoClientSecret}},
		APIKeys:         []FixtureAPIKey{{PublicKey: DemoPublicKey, PrivateKey: DemoPrivateKey}},
		RateLimit:       &RateLimit{Capacity: 100, RefillPerMinute: 100},
	}
}

// Describe summarises the fleet, timings and credentials for the standalone
// server's startup banner. Secrets are masked.
func (s *Sim) Describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	t := s.timings
	fmt.Fprintf(&b, "atlassim: simulated Atlas Admin API v2 (org %s), speed %sx\n", s.orgID, strconv.FormatFloat(s.speed, 'g', -1, 64))
	fmt.Fprintf(&b, "  lifecycles: snapshot queued %s, inProgress %s; export Queued %s, InProgress %s; flex restore PENDING %s, RUNNING %s (before speed); token TTL %s\n",
		t.SnapshotQueued, t.SnapshotInProgress, t.ExportQueued, t.ExportInProgress, t.RestorePending, t.RestoreRunning, t.TokenTTL)
	if s.rate.Capacity > 0 {
		refill := s.rate.RefillPerMinute
		if refill <= 0 {
			refill = s.rate.Capacity
		}
		fmt.Fprintf(&b, "  rate limit: %d requests per project, refilling %d per minute\n", s.rate.Capacity, refill)
	} else {
		b.WriteString("  rate limit: none\n")
	}
	now := s.clk.Now()
	for _, pid := range s.projectOrder {
		p := s.projects[pid]
		fmt.Fprintf(&b, "  project %s (%s)\n", pid, p.name)
		if p.compliance != nil {
			fmt.Fprintf(&b, "    backup compliance policy: %d scheduled items\n", len(p.compliance.ScheduledPolicyItems))
		}
		for _, name := range p.clusterOrder {
			c := p.clusters[name]
			flags := ""
			if c.spec.Paused {
				flags += " paused"
			}
			if !c.spec.BackupEnabled {
				flags += " backup-disabled"
			}
			if c.spec.Type != atlas.ClusterReplicaSet {
				flags += fmt.Sprintf(" shards=%d", c.spec.Shards)
			}
			if c.schedule != nil {
				flags += fmt.Sprintf(" schedule=%d-items", len(c.schedule.items))
				if c.schedule.stalled {
					flags += "(stalled)"
				}
			}
			s.produceLocked(c, now)
			fmt.Fprintf(&b, "    cluster %-16s %-10s %-4s %-9s snapshots=%d%s\n", name, c.spec.Type, c.spec.Tier, c.spec.State, len(c.liveSnapshots(now)), flags)
		}
		for _, name := range p.flexOrder {
			fmt.Fprintf(&b, "    flex    %-16s snapshots=%d\n", name, len(p.flex[name].snapshots))
		}
		for _, id := range p.bucketOrder {
			bk := p.buckets[id]
			fmt.Fprintf(&b, "    bucket  %s %s %s\n", id, bk.CloudProvider, bk.BucketName)
		}
	}
	ids := make([]string, 0, len(s.serviceAccounts))
	for id := range s.serviceAccounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "  %s\n", FixtureServiceAccount{ClientID: id, ClientSecret: s.serviceAccounts[id]})
	}
	keys := make([]string, 0, len(s.apiKeys))
	for k := range s.apiKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s\n", FixtureAPIKey{PublicKey: k, PrivateKey: s.apiKeys[k]})
	}
	return b.String()
}
