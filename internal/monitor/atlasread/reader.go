// Package atlasread adapts the Atlas client to monitor.Reader and
// monitor.Lister: it lists a project's dedicated and flex clusters, and
// reads one cluster's snapshots, schedule and its project's compliance
// policy, translated into the monitor's own view (ATLAS_API_NOTES.md
// sections 9, 9c, 9d). It only reads.
package atlasread

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/monitor"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// Native is the part of the Atlas client a read needs;
// *atlas.NativeService satisfies it.
type Native interface {
	Schedule(ctx context.Context, projectID, cluster string) (*atlas.BackupSchedule, error)
	CompliancePolicy(ctx context.Context, projectID string) (atlas.ProjectCompliance, error)
	Snapshots(ctx context.Context, projectID, cluster string, typ atlas.ClusterType) ([]atlas.Snapshot, error)
	FlexSnapshots(ctx context.Context, projectID, name string) ([]atlas.FlexSnapshot, error)
}

// Reader is the Atlas adapter. Listing a project (Clusters) records each
// cluster's type and backupEnabled, which a read needs and which the
// snapshot endpoints do not say; a cluster is read only after it was listed.
type Reader struct {
	clusters policy.ClusterLister
	native   Native
	clk      clock.Clock
	// ttl is how long a project's compliance policy is reused: the
	// monitor's interval, so a project costs one call per interval
	// whatever its number of clusters.

	mu       sync.Mutex
	ttl      time.Duration
	known    map[run.Target]cluster
	projects map[string]*projectCompliance
}

// cluster is what a listing said of a cluster: one map entry of 64 bytes
// per watched cluster (at 10,000, the reader's whole state).
type cluster struct {
	typ           atlas.ClusterType // interned: a few values across a fleet
	firstSeen     int64             // Unix nanoseconds of the first listing that had it
	flex          bool
	backupEnabled bool
}

// projectCompliance is a project's cached compliance policy. Its own lock
// makes concurrent reads of a project's clusters wait for the one call in
// flight instead of each making it.
type projectCompliance struct {
	mu    sync.Mutex
	at    time.Time // when read; zero before the first success
	value *monitor.Compliance
}

// New returns a Reader on the given client parts; ttl is how long a
// project's compliance policy is reused (the monitor's interval).
func New(clusters policy.ClusterLister, native Native, clk clock.Clock, ttl time.Duration) *Reader {
	return &Reader{clusters: clusters, native: native, clk: clk, ttl: ttl,
		known: map[run.Target]cluster{}, projects: map[string]*projectCompliance{}}
}

// SetTTL changes how long a compliance policy is reused (on reload, to
// the new interval).
func (r *Reader) SetTTL(ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ttl = ttl
}

// Clusters lists projectID's dedicated and flex clusters. Both lists must
// answer: a partial listing would make the monitor forget clusters that
// still exist.
func (r *Reader) Clusters(ctx context.Context, projectID string) ([]run.Target, error) {
	ded, err := r.clusters.List(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("list clusters of project %s: %w", projectID, err)
	}
	flex, err := r.clusters.ListFlex(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("list flex clusters of project %s: %w", projectID, err)
	}
	now := r.clk.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []run.Target
	add := func(name string, c cluster) {
		t := run.Target{ProjectID: projectID, Cluster: name}.Interned()
		c.firstSeen = now.UnixNano()
		if old, ok := r.known[t]; ok {
			c.firstSeen = old.firstSeen
		}
		r.known[t] = c
		out = append(out, t)
	}
	for _, c := range ded {
		add(c.Name, cluster{typ: atlas.ClusterType(unique.Make(string(c.ClusterType)).Value()), backupEnabled: c.BackupEnabled})
	}
	for _, c := range flex {
		add(c.Name, cluster{flex: true})
	}
	return out, nil
}

// Forget drops what the reader knows of t (no longer watched), so a
// cluster recreated later starts owing snapshots from then.
func (r *Reader) Forget(t run.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.known, t)
}

// Read implements monitor.Reader.
func (r *Reader) Read(ctx context.Context, t run.Target) (monitor.Reading, error) {
	r.mu.Lock()
	c, ok := r.known[t]
	r.mu.Unlock()
	if !ok {
		return monitor.Reading{}, fmt.Errorf("read cluster %s: not listed yet", t)
	}
	rd := monitor.Reading{Target: t, Flex: c.flex, BackupEnabled: c.backupEnabled, Since: time.Unix(0, c.firstSeen)}
	comp, err := r.compliance(ctx, t.ProjectID)
	if err != nil {
		return monitor.Reading{}, err
	}
	rd.Compliance = comp
	if c.flex {
		snaps, err := r.native.FlexSnapshots(ctx, t.ProjectID, t.Cluster)
		if err != nil {
			return monitor.Reading{}, fmt.Errorf("read flex snapshots of %s: %w", t, err)
		}
		for _, s := range snaps {
			rd.Snapshots = append(rd.Snapshots, flexSnapshot(s))
		}
		return rd, nil
	}
	snaps, err := r.native.Snapshots(ctx, t.ProjectID, t.Cluster, c.typ)
	if err != nil {
		return monitor.Reading{}, fmt.Errorf("read snapshots of %s: %w", t, err)
	}
	for _, s := range snaps {
		rd.Snapshots = append(rd.Snapshots, snapshot(s))
	}
	if c.backupEnabled {
		s, err := r.native.Schedule(ctx, t.ProjectID, t.Cluster)
		if err != nil {
			return monitor.Reading{}, fmt.Errorf("read backup schedule of %s: %w", t, err)
		}
		rd.Schedule = schedule(s)
	}
	return rd, nil
}

// compliance is the project's policy, read at most once per ttl.
func (r *Reader) compliance(ctx context.Context, projectID string) (*monitor.Compliance, error) {
	r.mu.Lock()
	pc, ok := r.projects[projectID]
	if !ok {
		pc = &projectCompliance{}
		r.projects[projectID] = pc
	}
	ttl := r.ttl
	r.mu.Unlock()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.at.IsZero() && r.clk.Now().Sub(pc.at) < ttl {
		return pc.value, nil
	}
	p, err := r.native.CompliancePolicy(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("read backup compliance policy of project %s: %w", projectID, err)
	}
	pc.at, pc.value = r.clk.Now(), compliance(p)
	return pc.value, nil
}

func snapshot(s atlas.Snapshot) monitor.Snapshot {
	kind := string(s.SnapshotType)
	if s.SnapshotType == atlas.SnapshotScheduled {
		kind = string(s.FrequencyType)
	}
	return monitor.Snapshot{Kind: kind, Status: string(s.Status), CreatedAt: s.CreatedAt, SizeBytes: s.StorageSizeBytes}
}

func flexSnapshot(s atlas.FlexSnapshot) monitor.Snapshot {
	status := strings.ToLower(string(s.Status))
	switch s.Status {
	case atlas.FlexPending, atlas.FlexQueued:
		status = monitor.StatusQueued
	case atlas.FlexRunning:
		status = monitor.StatusInProgress
	}
	created := s.StartTime
	if created.IsZero() {
		created = s.ScheduledTime
	}
	return monitor.Snapshot{Kind: monitor.KindFlex, Status: status, CreatedAt: created}
}

func schedule(s *atlas.BackupSchedule) *monitor.Schedule {
	out := &monitor.Schedule{ReferenceHour: s.ReferenceHourOfDay, ReferenceMinute: s.ReferenceMinuteOfHour, NextSnapshot: s.NextSnapshot}
	for _, it := range s.PolicyItems() {
		out.Items = append(out.Items, item(it))
	}
	return out
}

func compliance(p atlas.ProjectCompliance) *monitor.Compliance {
	if !p.InForce {
		return nil
	}
	out := &monitor.Compliance{}
	for _, it := range p.Policy.ScheduledPolicyItems {
		out.ScheduledItems = append(out.ScheduledItems, item(it))
	}
	if od := p.Policy.OnDemandPolicyItem; od != nil {
		it := item(*od)
		out.OnDemandItem = &it
	}
	return out
}

// item copies frequencyInterval as Atlas sends it: the monitor counts an
// hourly interval below 1 as every hour, where atlas.PolicyItem.Interval
// would say 0, so the raw value is what both agree on.
func item(it atlas.PolicyItem) monitor.PolicyItem {
	return monitor.PolicyItem{Frequency: string(it.FrequencyType), Interval: it.FrequencyInterval,
		RetentionUnit: string(it.RetentionUnit), RetentionValue: it.RetentionValue}
}
