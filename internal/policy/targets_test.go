package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
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
	// failing projects answer their error; stalled ones block until the
	// caller gives up, announcing each stall on stalls.
	failing map[string]error
	stalled map[string]bool
	stalls  chan string
	calls   int
}

func (f *fakeLister) List(ctx context.Context, p string) ([]atlas.Cluster, error) {
	f.calls++
	if f.stalled[p] {
		f.stalls <- p
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := f.failing[p]; err != nil {
		return nil, err
	}
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
	res := Resolve(context.Background(), p, l, ResolveOptions{})
	if err := res.Err(); err != nil {
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
	res := Resolve(context.Background(), p, fleet(), ResolveOptions{})
	if err := res.Err(); err != nil {
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
			res := Resolve(context.Background(), Policy{Name: "r", FlexRestore: &fr}, fleet(), ResolveOptions{})
			if err := res.Err(); err != nil {
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
	res := Resolve(context.Background(), p, l, ResolveOptions{})
	err := res.Err()
	if !errors.Is(err, boom) {
		t.Fatalf("error %v does not wrap the lister's", err)
	}
	if !strings.Contains(err.Error(), "policy nightly") || !strings.Contains(err.Error(), projA) {
		t.Fatalf("error %q does not say what was being done", err)
	}
	if len(res.Targets) != 0 || len(res.Skipped) != 0 || len(res.Failed) != 1 || res.Failed[0].ProjectID != projA {
		t.Fatalf("resolution of a project that failed: %+v", res)
	}
}

// TestResolveOneBadProjectLeavesTheOthers: a project that stalls past its
// deadline and one whose answer cannot be decoded are each reported in
// Failed with why; the healthy project's clusters resolve, and each project
// is asked once for all policies.
func TestResolveOneBadProjectLeavesTheOthers(t *testing.T) {
	const projC = "32b6e34b3d91647abb20e7c0"
	l := fleet()
	l.dedicated[projC] = []atlas.Cluster{dedicated("c-1", "M10", "AWS")}
	undecodable := errors.New("decoding the cluster list: unexpected EOF")
	l.failing = map[string]error{projB: undecodable}
	l.stalled = map[string]bool{projA: true}
	l.stalls = make(chan string, 1)
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	sel := []TargetSelector{{ProjectID: projA, Clusters: []string{"*"}}, {ProjectID: projB, Clusters: []string{"*"}}, {ProjectID: projC, Clusters: []string{"*"}}}
	ps := []Policy{{Name: "one", Snapshot: &SnapshotAction{}, Targets: sel}, {Name: "two", Snapshot: &SnapshotAction{}, Targets: sel}}
	done := make(chan []Resolution)
	go func() {
		done <- ResolveAll(context.Background(), ps, l, ResolveOptions{Clock: clk, ProjectTimeout: time.Minute})
	}()
	<-l.stalls
	if err := clk.WaitForTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	got := <-done
	if l.calls != 4 {
		t.Errorf("Atlas asked %d times, want 4: projA's List once (it stalled), projB's List once, projC's List and ListFlex once", l.calls)
	}
	for _, res := range got {
		if want := []run.Target{{ProjectID: projC, Cluster: "c-1"}}; !slices.Equal(res.Targets, want) || len(res.Skipped) != 0 {
			t.Errorf("%s: targets %v skipped %v, want the healthy project's %v", res.Policy, res.Targets, res.Skipped, want)
		}
		if len(res.Failed) != 2 || res.Failed[0].ProjectID != projA || res.Failed[1].ProjectID != projB {
			t.Fatalf("%s: failed = %+v, want projA and projB", res.Policy, res.Failed)
		}
		if msg := res.Failed[0].Err.Error(); !strings.Contains(msg, "no answer within 1m0s") || !strings.Contains(msg, projA) {
			t.Errorf("%s: stalled project's error %q does not say it did not answer in time", res.Policy, msg)
		}
		if !errors.Is(res.Failed[1].Err, undecodable) {
			t.Errorf("%s: undecodable project's error %v does not wrap the lister's", res.Policy, res.Failed[1].Err)
		}
		if err := res.Err(); err == nil || !strings.Contains(err.Error(), "policy "+res.Policy) {
			t.Errorf("%s: Err() = %v, want it to name the policy", res.Policy, err)
		}
	}
}

// TestResolveFlexRestoreTargetProjectFails: a flexRestore whose restore
// target's project cannot be listed is neither a target nor skipped: it
// failed, so the caller keeps what it knew.
func TestResolveFlexRestoreTargetProjectFails(t *testing.T) {
	l := fleet()
	l.failing = map[string]error{projB: errors.New("503")}
	fr := FlexRestoreAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "staging"}
	res := Resolve(context.Background(), Policy{Name: "r", FlexRestore: &fr}, l, ResolveOptions{})
	if len(res.Targets) != 0 || len(res.Skipped) != 0 || len(res.Failed) != 1 || res.Failed[0].ProjectID != projB {
		t.Fatalf("got %+v, want only projB failed", res)
	}
}

func TestSelects(t *testing.T) {
	p := Policy{Name: "p", Targets: []TargetSelector{{ProjectID: projA, Clusters: []string{"prod-*"}, Exclude: []string{"prod-scratch"}}}}
	for tgt, want := range map[run.Target]bool{
		{ProjectID: projA, Cluster: "prod-1"}:       true,
		{ProjectID: projA, Cluster: "prod-scratch"}: false,
		{ProjectID: projA, Cluster: "staging"}:      false,
		{ProjectID: projB, Cluster: "prod-1"}:       false,
	} {
		if got := Selects(p, tgt); got != want {
			t.Errorf("Selects(%v) = %v, want %v", tgt, got, want)
		}
	}
	fr := Policy{Name: "r", FlexRestore: &FlexRestoreAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "staging"}}
	if !Selects(fr, run.Target{ProjectID: projA, Cluster: "flex-src"}) || Selects(fr, run.Target{ProjectID: projB, Cluster: "staging"}) {
		t.Error("a flexRestore selects its source only")
	}
}

func TestResolveRestoreDrill(t *testing.T) {
	cases := []struct {
		name       string
		rd         RestoreDrillAction
		wantTarget bool
		reason     string
		detail     string
	}{
		{"scratch in another project", RestoreDrillAction{ProjectID: projA, Cluster: "prod-1", TargetProjectID: projB, TargetCluster: "staging"}, true, "", ""},
		{"scratch in the same project", RestoreDrillAction{ProjectID: projA, Cluster: "prod-1", TargetProjectID: projA, TargetCluster: "prod-scratch"}, true, "", ""},
		{"source missing", RestoreDrillAction{ProjectID: projA, Cluster: "nope", TargetProjectID: projB, TargetCluster: "staging"}, false, run.ReasonNotFound, "no cluster named nope in project " + projA},
		{"source flex", RestoreDrillAction{ProjectID: projA, Cluster: "flex-src", TargetProjectID: projB, TargetCluster: "staging"}, false, run.ReasonNotSupported, "flex-src is a flex cluster: restoreDrill restores dedicated clusters' snapshots (use flexRestore)"},
		{"source without backup", RestoreDrillAction{ProjectID: projA, Cluster: "prod-nobackup", TargetProjectID: projB, TargetCluster: "staging"}, false, run.ReasonNotSupported, "cloud backup is disabled on this cluster (backupEnabled: false)"},
		{"target missing", RestoreDrillAction{ProjectID: projA, Cluster: "prod-1", TargetProjectID: projB, TargetCluster: "gone"}, false, run.ReasonNotFound, "drill target: no cluster named gone in project " + projB},
		{"target paused", RestoreDrillAction{ProjectID: projA, Cluster: "prod-1", TargetProjectID: projB, TargetCluster: "sleepy"}, false, run.ReasonNotSupported, "drill target sleepy is paused"},
		{"target flex", RestoreDrillAction{ProjectID: projA, Cluster: "prod-1", TargetProjectID: projB, TargetCluster: "flex-target"}, false, run.ReasonNotSupported, "drill target flex-target is a flex cluster: a dedicated cluster's snapshot restores into a dedicated cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rd := tc.rd
			src := run.Target{ProjectID: rd.ProjectID, Cluster: rd.Cluster}
			res := Resolve(context.Background(), Policy{Name: "d", RestoreDrill: &rd}, fleet(), ResolveOptions{})
			if err := res.Err(); err != nil {
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
