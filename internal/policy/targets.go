package policy

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

// ClusterLister is the part of the Atlas client target resolution needs;
// *atlas.ClustersService satisfies it.
type ClusterLister interface {
	List(ctx context.Context, projectID string) ([]atlas.Cluster, error)
	ListFlex(ctx context.Context, projectID string) ([]atlas.FlexCluster, error)
}

// Resolution is what a policy's selectors match right now: the targets it
// acts on, and the matched or named clusters it cannot act on, with why.
// Both lists are sorted by project, then cluster.
type Resolution struct {
	Policy  string
	Targets []run.Target
	Skipped []run.SkippedTarget
}

// Resolve matches policy p against the clusters Atlas lists. Snapshot and
// export policies act on dedicated clusters that are running, have cloud
// backup enabled and are M10 or larger; other matches are Skipped with
// reason not_supported, and a literal (non-glob) cluster name that matches
// nothing is Skipped with reason not_found, so a typo is visible. A
// flexRestore policy's target is its source flex cluster; it is Skipped if
// the source is not a flex cluster or the restore target does not exist.
// An error means Atlas could not be asked; nothing is resolved then.
func Resolve(ctx context.Context, p Policy, l ClusterLister) (Resolution, error) {
	res := Resolution{Policy: p.Name}
	var err error
	if p.FlexRestore != nil {
		err = resolveFlexRestore(ctx, p.FlexRestore, l, &res)
	} else {
		err = resolveSelectors(ctx, p, l, &res)
	}
	if err != nil {
		return Resolution{Policy: p.Name}, fmt.Errorf("resolve targets of policy %s: %w", p.Name, err)
	}
	slices.SortFunc(res.Targets, compareTargets)
	slices.SortFunc(res.Skipped, func(a, b run.SkippedTarget) int { return compareTargets(a.Target, b.Target) })
	return res, nil
}

func compareTargets(a, b run.Target) int {
	return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), cmp.Compare(a.Cluster, b.Cluster))
}

// projectClusters is one project's dedicated and flex clusters, listed once
// however many selectors name the project.
type projectClusters struct {
	dedicated []atlas.Cluster
	flex      []atlas.FlexCluster
}

func listProject(ctx context.Context, l ClusterLister, projectID string) (projectClusters, error) {
	ded, err := l.List(ctx, projectID)
	if err != nil {
		return projectClusters{}, fmt.Errorf("list clusters of project %s: %w", projectID, err)
	}
	flex, err := l.ListFlex(ctx, projectID)
	if err != nil {
		return projectClusters{}, fmt.Errorf("list flex clusters of project %s: %w", projectID, err)
	}
	return projectClusters{dedicated: ded, flex: flex}, nil
}

func resolveSelectors(ctx context.Context, p Policy, l ClusterLister, res *Resolution) error {
	listed := map[string]projectClusters{}
	seen := map[run.Target]bool{}
	add := func(t run.Target, reason, detail string) {
		if seen[t] {
			return
		}
		seen[t] = true
		if reason == "" {
			res.Targets = append(res.Targets, t)
			return
		}
		res.Skipped = append(res.Skipped, run.SkippedTarget{Target: t, Reason: reason, Detail: detail})
	}
	for _, sel := range p.Targets {
		pc, ok := listed[sel.ProjectID]
		if !ok {
			var err error
			if pc, err = listProject(ctx, l, sel.ProjectID); err != nil {
				return err
			}
			listed[sel.ProjectID] = pc
		}
		matchedLiteral := map[string]bool{}
		consider := func(name string) bool {
			if !matchesAny(sel.Clusters, name) || matchesAny(sel.Exclude, name) {
				return false
			}
			for _, pat := range sel.Clusters {
				if pat == name {
					matchedLiteral[pat] = true
				}
			}
			return true
		}
		for _, c := range pc.dedicated {
			if consider(c.Name) {
				reason, detail := dedicatedEligibility(c)
				add(run.Target{ProjectID: sel.ProjectID, Cluster: c.Name}, reason, detail)
			}
		}
		for _, f := range pc.flex {
			if consider(f.Name) {
				add(run.Target{ProjectID: sel.ProjectID, Cluster: f.Name}, run.ReasonNotSupported,
					"flex cluster: Atlas takes no on-demand snapshots of flex clusters and cannot export them")
			}
		}
		for _, pat := range sel.Clusters {
			if !isGlob(pat) && !matchedLiteral[pat] && !matchesAny(sel.Exclude, pat) {
				add(run.Target{ProjectID: sel.ProjectID, Cluster: pat}, run.ReasonNotFound,
					fmt.Sprintf("no cluster named %s in project %s", pat, sel.ProjectID))
			}
		}
	}
	return nil
}

func matchesAny(patterns []string, name string) bool {
	for _, pat := range patterns {
		if ok, err := path.Match(pat, name); err == nil && ok {
			return true
		}
	}
	return false
}

// belowM10 lists instance sizes that cannot take cloud backup snapshots.
var belowM10 = map[string]bool{"M0": true, "M2": true, "M5": true}

// dedicatedEligibility says why a dedicated cluster cannot be snapshotted
// or exported, or returns "" when it can.
func dedicatedEligibility(c atlas.Cluster) (reason, detail string) {
	switch size := c.InstanceSize(); {
	case c.Paused:
		return run.ReasonNotSupported, "cluster is paused"
	case !c.BackupEnabled:
		return run.ReasonNotSupported, "cloud backup is disabled on this cluster (backupEnabled: false)"
	case belowM10[strings.ToUpper(size)]:
		return run.ReasonNotSupported, fmt.Sprintf("instance size %s is below M10: on-demand snapshots and exports need a dedicated M10+ cluster", size)
	case sharedProvider(c) != "":
		return run.ReasonNotSupported, fmt.Sprintf("%s cluster is below M10: on-demand snapshots and exports need a dedicated M10+ cluster", sharedProvider(c))
	}
	return "", ""
}

// sharedProvider returns TENANT or FLEX when the cluster runs on shared
// infrastructure, else "".
func sharedProvider(c atlas.Cluster) string {
	for _, rs := range c.ReplicationSpecs {
		for _, rc := range rs.RegionConfigs {
			if p := strings.ToUpper(rc.ProviderName); p == "TENANT" || p == "FLEX" {
				return p
			}
		}
	}
	return ""
}

func resolveFlexRestore(ctx context.Context, fr *FlexRestoreAction, l ClusterLister, res *Resolution) error {
	src := run.Target{ProjectID: fr.ProjectID, Cluster: fr.Cluster}
	pc, err := listProject(ctx, l, fr.ProjectID)
	if err != nil {
		return err
	}
	skip := func(reason, detail string) {
		res.Skipped = append(res.Skipped, run.SkippedTarget{Target: src, Reason: reason, Detail: detail})
	}
	if !slices.ContainsFunc(pc.flex, func(f atlas.FlexCluster) bool { return f.Name == fr.Cluster }) {
		if slices.ContainsFunc(pc.dedicated, func(c atlas.Cluster) bool { return c.Name == fr.Cluster }) {
			skip(run.ReasonNotSupported, fmt.Sprintf("%s is a dedicated cluster, not a flex cluster: flexRestore restores flex snapshots", fr.Cluster))
			return nil
		}
		skip(run.ReasonNotFound, fmt.Sprintf("no flex cluster named %s in project %s", fr.Cluster, fr.ProjectID))
		return nil
	}
	tc := pc
	if fr.TargetProjectID != fr.ProjectID {
		if tc, err = listProject(ctx, l, fr.TargetProjectID); err != nil {
			return err
		}
	}
	if i := slices.IndexFunc(tc.dedicated, func(c atlas.Cluster) bool { return c.Name == fr.TargetCluster }); i >= 0 {
		if tc.dedicated[i].Paused {
			skip(run.ReasonNotSupported, fmt.Sprintf("restore target %s is paused", fr.TargetCluster))
			return nil
		}
	} else if !slices.ContainsFunc(tc.flex, func(f atlas.FlexCluster) bool { return f.Name == fr.TargetCluster }) {
		skip(run.ReasonNotFound, fmt.Sprintf("restore target: no cluster named %s in project %s", fr.TargetCluster, fr.TargetProjectID))
		return nil
	}
	res.Targets = append(res.Targets, src)
	return nil
}
