package policy

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Restore drill snapshot choices.
const (
	// DrillSnapshotLatest restores the newest completed, non-fallback snapshot.
	DrillSnapshotLatest = "latest"
	// DrillSnapshotExported restores the newest snapshot that backupd itself
	// exported successfully (an export carrying its backupd.run marker), so
	// the drill proves the copy that left Atlas.
	DrillSnapshotExported = "exported"
)

// DefaultVerifyTimeout bounds a drill's verify command when it sets none.
const DefaultVerifyTimeout = 10 * time.Minute

// RestoreDrillAction restores a dedicated cluster's snapshot into a scratch
// cluster and waits it out, proving the backup restorable. An automated
// restore deletes every byte on its target (ATLAS_API_NOTES.md 9b), so the
// target must be confirmed, differ from the source, and be selected by no
// snapshot or export policy of the same config.
type RestoreDrillAction struct {
	ProjectID        string         `json:"projectID"`
	Cluster          string         `json:"cluster"`
	Snapshot         string         `json:"snapshot"` // DrillSnapshotLatest | DrillSnapshotExported
	TargetProjectID  string         `json:"targetProjectID"`
	TargetCluster    string         `json:"targetCluster"`
	ConfirmOverwrite bool           `json:"confirmOverwrite"`
	Verify           *VerifyCommand `json:"verify,omitempty"`
}

// VerifyCommand is the user's check of a restored target. It runs without a
// shell; its exit code decides verified (0) or failed.
type VerifyCommand struct {
	Command []string      `json:"command"`
	Timeout time.Duration `json:"timeout"`
}

// drillRef remembers where a drill's target was written, for the check
// against the other policies once all are parsed.
type drillRef struct {
	action *RestoreDrillAction
	node   *yaml.Node
	path   string
}

func (d *decoder) restoreDrill(f field) *RestoreDrillAction {
	m, ok := d.mapping(f.val, f.path, "projectID", "cluster", "snapshot", "targetProjectID", "targetCluster", "confirmOverwrite", "verify")
	if !ok {
		return nil
	}
	r := &RestoreDrillAction{Snapshot: DrillSnapshotLatest}
	required := func(key, what string) (field, bool) {
		kf, ok := m.get(key)
		if !ok {
			d.errorAt(m.node, join(f.path, key), "required: %s", what)
		}
		return kf, ok
	}
	if pf, ok := required("projectID", "the 24-hex id of the source cluster's project"); ok {
		r.ProjectID, _ = d.matching(pf, idPattern)
	}
	if cf, ok := required("cluster", "the name of the dedicated cluster whose snapshot is restored"); ok {
		r.Cluster, _ = d.matching(cf, clusterPattern)
	}
	if sf, ok := m.get("snapshot"); ok {
		if v, ok := d.oneOf(sf, DrillSnapshotLatest, DrillSnapshotExported); ok {
			r.Snapshot = v
		}
	}
	r.TargetProjectID = r.ProjectID
	if tf, ok := m.get("targetProjectID"); ok {
		r.TargetProjectID, _ = d.matching(tf, idPattern)
	}
	tc, hasTC := required("targetCluster", "the scratch cluster whose data every drill replaces")
	if hasTC {
		r.TargetCluster, _ = d.matching(tc, clusterPattern)
	}
	target := r.TargetCluster
	if target == "" {
		target = "the target cluster"
	}
	r.ConfirmOverwrite = d.confirmOverwrite(m, f.path, "every drill deletes all data in "+target)
	if hasTC && r.TargetCluster != "" && r.TargetCluster == r.Cluster && r.TargetProjectID == r.ProjectID && r.ProjectID != "" {
		d.errorAt(tc.val, tc.path, "must differ from the source cluster: the drill would delete the data it restores")
	}
	if vf, ok := m.get("verify"); ok {
		r.Verify = d.verify(vf)
	}
	if hasTC {
		d.drillTargets = append(d.drillTargets, drillRef{action: r, node: tc.val, path: tc.path})
	}
	return r
}

func (d *decoder) verify(f field) *VerifyCommand {
	m, ok := d.mapping(f.val, f.path, "command", "timeout")
	if !ok {
		return nil
	}
	v := &VerifyCommand{Timeout: DefaultVerifyTimeout}
	if cf, ok := m.get("command"); ok {
		items, ok := d.list(cf)
		if ok && len(items) == 0 {
			d.errorAt(cf.val, cf.path, "must name the program to run and its arguments, e.g. [/usr/local/bin/check-restore, --quick]")
		}
		for i, it := range items {
			ip := index(cf.path, i)
			if s, ok := d.str(field{val: it, path: ip}); ok {
				if i == 0 && strings.TrimSpace(s) == "" {
					d.errorAt(it, ip, "must name the program to run")
					continue
				}
				v.Command = append(v.Command, s)
			}
		}
	} else {
		d.errorAt(m.node, join(f.path, "command"), "required: the program to run and its arguments (no shell), e.g. [/usr/local/bin/check-restore, --quick]")
	}
	if tf, ok := m.get("timeout"); ok {
		if t, ok := d.duration(tf, true); ok {
			v.Timeout = t
		}
	}
	return v
}

// checkDrillTargets refuses a drill whose target any snapshot or export
// policy of the config selects (by name or glob, excludes applied): a drill
// must never be able to wipe a cluster that is being backed up.
func (d *decoder) checkDrillTargets(ps []Policy) {
	for _, ref := range d.drillTargets {
		r := ref.action
		if r.TargetProjectID == "" || r.TargetCluster == "" {
			continue
		}
		for _, p := range ps {
			if p.RestoreDrill != nil || p.FlexRestore != nil {
				continue
			}
			for _, sel := range p.Targets {
				if sel.ProjectID != r.TargetProjectID || matchesAny(sel.Exclude, r.TargetCluster) {
					continue
				}
				if g, ok := firstMatch(sel.Clusters, r.TargetCluster); ok {
					line := ""
					if p.Pos.Line > 0 {
						line = fmt.Sprintf(" (line %d)", p.Pos.Line)
					}
					d.errorAt(ref.node, ref.path, "%s/%s is backed up by policy %s%s, whose clusters %q select it: a drill deletes all data on its target, so it must be a scratch cluster no snapshot or export policy selects (exclude it there, or pick another target)",
						r.TargetProjectID, r.TargetCluster, p.Name, line, g)
					break
				}
			}
		}
	}
}

// firstMatch returns the first of globs that matches name.
func firstMatch(globs []string, name string) (string, bool) {
	for _, g := range globs {
		if matchesAny([]string{g}, name) {
			return g, true
		}
	}
	return "", false
}
