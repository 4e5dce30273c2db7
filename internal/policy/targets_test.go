package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

const (
	projA = "32b6e34b3d91647abb20e7b8"
	projB = "32b6e34b3d91647abb20e7b9"
)

// fakeLister serves clusters per project and counts calls.
type fakeLister struct {
	dedicated map[string][]atlas.Cluster
	flex      map[string][]atlas.FlexCluster
	err       error
	calls     int
}

func (f *fakeLister) List(_ context.Context, p string) ([]atlas.Cluster, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.dedicated[p], nil
}

func (f *fakeLister) ListFlex(_ context.Context, p string) ([]atlas.FlexCluster, error) {
	f.calls++
	return f.flex[p], nil
}

func dedicated(name, size, provider string, mods ...func(*atlas.Cluster)) atlas.Cluster {
	c := atlas.Cluster{Name: name, BackupEnabled: true, StateName: atlas.ClusterIdle, ReplicationSpecs: []atlas.ReplicationSpec{{
		RegionConfigs: []atlas.RegionConfig{{ProviderName: provider, ElectableSpecs: &atlas.HardwareSpec{InstanceSize: size}}},
	}}}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func fleet() *fakeLister {
	return &fakeLister{
		dedicated: map[string][]atlas.Cluster{
			projA: {
				dedicated("prod-2", "M30", "AWS"),
				dedicated("prod-1", "M10", "AWS"),
				dedicated("prod-paused", "M10", "AWS", func(c *atlas.Cluster) { c.Paused = true }),
				dedicated("prod-nobackup", "M10", "GCP", func(c *atlas.Cluster) { c.BackupEnabled = false }),
				dedicated("prod-tiny", "M5", "TENANT"),
				dedicated("prod-shared", "", "TENANT"),
				dedicated("prod-scratch", "M10", "AWS"),
				dedicated("analytics", "M40", "AZURE"),
			},
			projB: {dedicated("staging", "M10", "AWS"), dedicated("sleepy", "M10", "AWS", func(c *atlas.Cluster) { c.Paused = true })},
		},
		flex: map[string][]atlas.FlexCluster{
			projA: {{Name: "prod-flex"}, {Name: "flex-src"}},
			projB: {{Name: "flex-target"}},
		},
	}
}

func TestResolveSelectors(t *testing.T) {
	p := Policy{Name: "nightly", Snapshot: &SnapshotAction{RetentionInDays: 1}, Targets: []TargetSelector{
		{ProjectID: projA, Clusters: []string{"prod-*", "billing", "analytics"}, Exclude: []string{"prod-scratch"}},
		{ProjectID: projA, Clusters: []string{"prod-1"}}, // listed twice: one target, one listing
	}}
	l := fleet()
	res, err := Resolve(context.Background(), p, l)
	if err != nil {
		t.Fatal(err)
	}
	if res.Policy != "nightly" {
		t.Errorf("Policy = %q", res.Policy)
	}
	wantTargets := []run.Target{{ProjectID: projA, Cluster: "analytics"}, {ProjectID: projA, Cluster: "prod-1"}, {ProjectID: projA, Cluster: "prod-2"}}
	if !slices.Equal(res.Targets, wantTargets) {
		t.Errorf("Targets = %v, want %v", res.Targets, wantTargets)
	}
	wantSkipped := []run.SkippedTarget{
		{Target: run.Target{ProjectID: projA, Cluster: "billing"}, Reason: run.ReasonNotFound, Detail: "no cluster named billing in project " + projA},
		{Target: run.Target{ProjectID: projA, Cluster: "prod-flex"}, Reason: run.ReasonNotSupported, Detail: "flex cluster: Atlas takes no on-demand snapshots of flex clusters and cannot export them"},
		{Target: run.Target{ProjectID: projA, Cluster: "prod-nobackup"}, Reason: run.ReasonNotSupported, Detail: "cloud backup is disabled on this cluster (backupEnabled: false)"},
		{Target: run.Target{ProjectID: projA, Cluster: "prod-paused"}, Reason: run.ReasonNotSupported, Detail: "cluster is paused"},
		{Target: run.Target{ProjectID: projA, Cluster: "prod-shared"}, Reason: run.ReasonNotSupported, Detail: "TENANT cluster is below M10: on-demand snapshots and exports need a dedicated M10+ cluster"},
		{Target: run.Target{ProjectID: projA, Cluster: "prod-tiny"}, Reason: run.ReasonNotSupported, Detail: "instance size M5 is below M10: on-demand snapshots and exports need a dedicated M10+ cluster"},
	}
	if !slices.Equal(res.Skipped, wantSkipped) {
		t.Errorf("Skipped:\n got %v\nwant %v", res.Skipped, wantSkipped)
	}
	if l.calls != 2 {
		t.Errorf("Atlas asked %d times, want 2 (one List and one ListFlex for the project)", l.calls)
	}
}

func TestResolveDefaultSelectsEverything(t *testing.T) {
	p := Policy{Name: "all", Export: &ExportAction{Source: ExportSourceLatest}, Targets: []TargetSelector{{ProjectID: projB, Clusters: []string{"*"}}}}
	res, err := Resolve(context.Background(), p, fleet())
	if err != nil {
		t.Fatal(err)
	}
	if want := []run.Target{{ProjectID: projB, Cluster: "staging"}}; !slices.Equal(res.Targets, want) {
		t.Errorf("Targets = %v, want %v", res.Targets, want)
	}
	if len(res.Skipped) != 2 || res.Skipped[0].Target.Cluster != "flex-target" || res.Skipped[1].Target.Cluster != "sleepy" {
		t.Errorf("Skipped = %v", res.Skipped)
	}
}

func TestResolveFlexRestore(t *testing.T) {
	cases := []struct {
		name       string
		fr         FlexRestoreAction
		wantTarget bool
		reason     string
		detail     string
	}{
		{"dedicated target in another project", FlexRestoreAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "staging"}, true, "", ""},
		{"flex target", FlexRestoreAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "flex-target"}, true, "", ""},
		{"source missing", FlexRestoreAction{ProjectID: projA, Cluster: "nope", TargetProjectID: projB, TargetCluster: "staging"}, false, run.ReasonNotFound, "no flex cluster named nope in project " + projA},
		{"source dedicated", FlexRestoreAction{ProjectID: projA, Cluster: "prod-1", TargetProjectID: projB, TargetCluster: "staging"}, false, run.ReasonNotSupported, "prod-1 is a dedicated cluster, not a flex cluster: flexRestore restores flex snapshots"},
		{"target missing", FlexRestoreAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "gone"}, false, run.ReasonNotFound, "restore target: no cluster named gone in project " + projB},
		{"target paused", FlexRestoreAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "sleepy"}, false, run.ReasonNotSupported, "restore target sleepy is paused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fr := tc.fr
			src := run.Target{ProjectID: fr.ProjectID, Cluster: fr.Cluster}
			res, err := Resolve(context.Background(), Policy{Name: "r", FlexRestore: &fr}, fleet())
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantTarget {
				if !slices.Equal(res.Targets, []run.Target{src}) || len(res.Skipped) != 0 {
					t.Fatalf("got %+v, want target %v", res, src)
				}
				return
			}
			want := []run.SkippedTarget{{Target: src, Reason: tc.reason, Detail: tc.detail}}
			if len(res.Targets) != 0 || !slices.Equal(res.Skipped, want) {
				t.Fatalf("got %+v, want skipped %v", res, want)
			}
		})
	}
}

func TestResolveListError(t *testing.T) {
	boom := errors.New("atlas unavailable")
	l := fleet()
	l.err = boom
	p := Policy{Name: "nightly", Snapshot: &SnapshotAction{}, Targets: []TargetSelector{{ProjectID: projA, Clusters: []string{"*"}}}}
	res, err := Resolve(context.Background(), p, l)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v does not wrap the lister's", err)
	}
	if !strings.Contains(err.Error(), "policy nightly") || !strings.Contains(err.Error(), projA) {
		t.Fatalf("error %q does not say what was being done", err)
	}
	if len(res.Targets) != 0 || len(res.Skipped) != 0 {
		t.Fatalf("partial resolution returned with an error: %+v", res)
	}
}
