package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
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
// Both lists are sorted by project, then cluster. Failed lists the projects
// whose clusters could not be listed: nothing of theirs is in Targets or
// Skipped, so the caller decides what it keeps for them.
type Resolution struct {
	Policy  string
	Targets []run.Target
	Skipped []run.SkippedTarget
	Failed  []ProjectFailure
}

// ProjectFailure is one project whose cluster lists Atlas did not give.
type ProjectFailure struct {
	ProjectID string
	Err       error
}

// Err joins the project failures, or is nil when every project answered.
func (r Resolution) Err() error {
	var errs []error
	for _, f := range r.Failed {
		errs = append(errs, fmt.Errorf("resolve targets of policy %s: %w", r.Policy, f.Err))
	}
	return errors.Join(errs...)
}

// ResolveOptions bound the listing of each project.
type ResolveOptions struct {
	// Clock times ProjectTimeout (default clock.Real()).
	Clock clock.Clock
	// ProjectTimeout bounds listing one project's dedicated and flex
	// clusters, every page and retry included, so one project that stalls
	// cannot hold up the others (default: ProjectTimeout of the default
	// atlas settings).
	ProjectTimeout time.Duration
}

// ProjectTimeout is how long one project's cluster lists may take: four
// HTTP attempts' worth of atlas.timeout (2m with the default 30s), room for
// a retried request or two, short enough that a project which stalls
// delays the rest of a discovery by minutes, not by every retry of every
// request.
func ProjectTimeout(a Atlas) time.Duration {
	return 4 * cmp.Or(a.Timeout, DefaultTimeout)
}

// Resolve matches policy p against the clusters Atlas lists. Snapshot and
// export policies act on dedicated clusters that are running, have cloud
// backup enabled and are M10 or larger; other matches are Skipped with
// reason not_supported, and a literal (non-glob) cluster name that matches
// nothing is Skipped with reason not_found, so a typo is visible. A
// flexRestore policy's target is its source flex cluster; it is Skipped if
// the source is not a flex cluster or the restore target does not exist.
// A project Atlas cannot list (an error, an undecodable answer, no answer
// within o.ProjectTimeout) is in Failed; the other projects resolve.
func Resolve(ctx context.Context, p Policy, l ClusterLister, o ResolveOptions) Resolution {
	return ResolveAll(ctx, []Policy{p}, l, o)[0]
}

// ResolveAll resolves every policy, listing each project once for all of
// them: a project named by several policies is asked once, and one that
// fails costs its deadline once, not once per policy.
func ResolveAll(ctx context.Context, ps []Policy, l ClusterLister, o ResolveOptions) []Resolution {
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.ProjectTimeout <= 0 {
		o.ProjectTimeout = ProjectTimeout(Atlas{})
	}
	pl := &projectLister{l: l, o: o, listed: map[string]listing{}}
	out := make([]Resolution, 0, len(ps))
	for _, p := range ps {
		res := Resolution{Policy: p.Name}
		if p.FlexRestore != nil {
			resolveFlexRestore(ctx, p.FlexRestore, pl, &res)
		} else if p.RestoreDrill != nil {
			resolveRestoreDrill(ctx, p.RestoreDrill, pl, &res)
		} else {
			resolveSelectors(ctx, p, pl, &res)
		}
		slices.SortFunc(res.Targets, compareTargets)
		slices.SortFunc(res.Skipped, func(a, b run.SkippedTarget) int { return compareTargets(a.Target, b.Target) })
		slices.SortFunc(res.Failed, func(a, b ProjectFailure) int { return cmp.Compare(a.ProjectID, b.ProjectID) })
		out = append(out, res)
	}
	return out
}

// Selects reports whether p's selectors pick t (by name, whatever the
// cluster's state): what a caller may keep for a project that could not be
// listed.
func Selects(p Policy, t run.Target) bool {
	if fr := p.FlexRestore; fr != nil {
		return t == run.Target{ProjectID: fr.ProjectID, Cluster: fr.Cluster}
	}
	if rd := p.RestoreDrill; rd != nil {
		return t == run.Target{ProjectID: rd.ProjectID, Cluster: rd.Cluster}
	}
	return slices.ContainsFunc(p.Targets, func(sel TargetSelector) bool {
		return sel.ProjectID == t.ProjectID && matchesAny(sel.Clusters, t.Cluster) && !matchesAny(sel.Exclude, t.Cluster)
	})
}

func compareTargets(a, b run.Target) int {
	return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), cmp.Compare(a.Cluster, b.Cluster))
}

// projectClusters is one project's dedicated and flex clusters, listed once
// however many selectors name the project. It keeps only what resolution
// reads of each, not Atlas's whole description: a discovery holds every
// project's listing until the last policy is resolved, and at 10,000
// clusters the decoded descriptions were a transient of megabytes.
type projectClusters struct {
	dedicated []listedCluster
	flex      []string
}

// listedCluster is what resolution needs of a dedicated cluster.
type listedCluster struct {
	name   string
	paused bool
	// reason and detail are dedicatedEligibility's answer, "" when the
	// cluster can be snapshotted and exported.
	reason, detail string
}

func (pc projectClusters) dedicatedIndex(name string) int {
	return slices.IndexFunc(pc.dedicated, func(c listedCluster) bool { return c.name == name })
}

type listing struct {
	pc  projectClusters
	err error
}

// projectLister lists each project once, within its own deadline.
type projectLister struct {
	l      ClusterLister
	o      ResolveOptions
	listed map[string]listing
}

func (pl *projectLister) get(ctx context.Context, projectID string) (projectClusters, error) {
	if got, ok := pl.listed[projectID]; ok {
		return got.pc, got.err
	}
	pctx, cancel := clock.WithTimeout(ctx, pl.o.Clock, pl.o.ProjectTimeout)
	defer cancel()
	pc, err := listProject(pctx, pl.l, projectID)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), context.DeadlineExceeded) {
		err = fmt.Errorf("list clusters of project %s: no answer within %s: %w", projectID, pl.o.ProjectTimeout, err)
	}
	if ctx.Err() == nil { // a shutdown is no answer about the project
		pl.listed[projectID] = listing{pc: pc, err: err}
	}
	return pc, err
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
	pc := projectClusters{dedicated: make([]listedCluster, len(ded)), flex: make([]string, len(flex))}
	for i, c := range ded {
		reason, detail := dedicatedEligibility(c)
		pc.dedicated[i] = listedCluster{name: c.Name, paused: c.Paused, reason: reason, detail: detail}
	}
	for i, f := range flex {
		pc.flex[i] = f.Name
	}
	return pc, nil
}

// fail records projectID as failed once per policy.
func (r *Resolution) fail(projectID string, err error) {
	if !slices.ContainsFunc(r.Failed, func(f ProjectFailure) bool { return f.ProjectID == projectID }) {
		r.Failed = append(r.Failed, ProjectFailure{ProjectID: projectID, Err: err})
	}
}

func resolveSelectors(ctx context.Context, p Policy, pl *projectLister, res *Resolution) {
	seen := map[run.Target]bool{}
	add := func(t run.Target, reason, detail string) {
		if seen[t] {
			return
		}
		t = t.Interned()
		seen[t] = true
		if reason == "" {
			res.Targets = append(res.Targets, t)
			return
		}
		res.Skipped = append(res.Skipped, run.SkippedTarget{Target: t, Reason: reason, Detail: detail})
	}
	for _, sel := range p.Targets {
		pc, err := pl.get(ctx, sel.ProjectID)
		if err != nil {
			res.fail(sel.ProjectID, err)
			continue
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
			if consider(c.name) {
				add(run.Target{ProjectID: sel.ProjectID, Cluster: c.name}, c.reason, c.detail)
			}
		}
		for _, name := range pc.flex {
			if consider(name) {
				add(run.Target{ProjectID: sel.ProjectID, Cluster: name}, run.ReasonNotSupported,
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

func resolveFlexRestore(ctx context.Context, fr *FlexRestoreAction, pl *projectLister, res *Resolution) {
	src := run.Target{ProjectID: fr.ProjectID, Cluster: fr.Cluster}
	pc, err := pl.get(ctx, fr.ProjectID)
	if err != nil {
		res.fail(fr.ProjectID, err)
		return
	}
	skip := func(reason, detail string) {
		res.Skipped = append(res.Skipped, run.SkippedTarget{Target: src, Reason: reason, Detail: detail})
	}
	if !slices.Contains(pc.flex, fr.Cluster) {
		if pc.dedicatedIndex(fr.Cluster) >= 0 {
			skip(run.ReasonNotSupported, fmt.Sprintf("%s is a dedicated cluster, not a flex cluster: flexRestore restores flex snapshots", fr.Cluster))
			return
		}
		skip(run.ReasonNotFound, fmt.Sprintf("no flex cluster named %s in project %s", fr.Cluster, fr.ProjectID))
		return
	}
	tc, err := pl.get(ctx, fr.TargetProjectID)
	if err != nil {
		res.fail(fr.TargetProjectID, err)
		return
	}
	if i := tc.dedicatedIndex(fr.TargetCluster); i >= 0 {
		if tc.dedicated[i].paused {
			skip(run.ReasonNotSupported, fmt.Sprintf("restore target %s is paused", fr.TargetCluster))
			return
		}
	} else if !slices.Contains(tc.flex, fr.TargetCluster) {
		skip(run.ReasonNotFound, fmt.Sprintf("restore target: no cluster named %s in project %s", fr.TargetCluster, fr.TargetProjectID))
		return
	}
	res.Targets = append(res.Targets, src)
}

// resolveRestoreDrill makes a drill's source its target. It is Skipped
// not_found when the source or the scratch target does not exist, and
// not_supported when either is a flex cluster, the source cannot take cloud
// backups or the target is paused.
func resolveRestoreDrill(ctx context.Context, rd *RestoreDrillAction, pl *projectLister, res *Resolution) {
	src := run.Target{ProjectID: rd.ProjectID, Cluster: rd.Cluster}
	pc, err := pl.get(ctx, rd.ProjectID)
	if err != nil {
		res.fail(rd.ProjectID, err)
		return
	}
	skip := func(reason, detail string) {
		res.Skipped = append(res.Skipped, run.SkippedTarget{Target: src, Reason: reason, Detail: detail})
	}
	i := pc.dedicatedIndex(rd.Cluster)
	if i < 0 {
		if slices.Contains(pc.flex, rd.Cluster) {
			skip(run.ReasonNotSupported, fmt.Sprintf("%s is a flex cluster: restoreDrill restores dedicated clusters' snapshots (use flexRestore)", rd.Cluster))
			return
		}
		skip(run.ReasonNotFound, fmt.Sprintf("no cluster named %s in project %s", rd.Cluster, rd.ProjectID))
		return
	}
	if c := pc.dedicated[i]; c.reason != "" {
		skip(c.reason, c.detail)
		return
	}
	tc, err := pl.get(ctx, rd.TargetProjectID)
	if err != nil {
		res.fail(rd.TargetProjectID, err)
		return
	}
	j := tc.dedicatedIndex(rd.TargetCluster)
	switch {
	case j >= 0 && tc.dedicated[j].paused:
		skip(run.ReasonNotSupported, fmt.Sprintf("drill target %s is paused", rd.TargetCluster))
		return
	case j < 0 && slices.Contains(tc.flex, rd.TargetCluster):
		skip(run.ReasonNotSupported, fmt.Sprintf("drill target %s is a flex cluster: a dedicated cluster's snapshot restores into a dedicated cluster", rd.TargetCluster))
		return
	case j < 0:
		skip(run.ReasonNotFound, fmt.Sprintf("drill target: no cluster named %s in project %s", rd.TargetCluster, rd.TargetProjectID))
		return
	}
	res.Targets = append(res.Targets, src)
}
