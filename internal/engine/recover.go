package engine

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

// markerRE parses the marker snapshotDescription writes.
var markerRE = regexp.MustCompile(`backupd:([0-9a-f]{20}) policy=([a-z0-9][a-z0-9-]{0,62}) slot=(\S+?)( manual)?\]`)

// recoverFromMarkers rebuilds the runs in flight from what Atlas shows when
// there is no journal to read them from (state.path: ""): snapshots carrying
// a backupd marker that are still running, completed snapshots of export
// policies whose marked export is missing or running, and restore jobs
// running into a policy's target. It is only used when MarkerRecovery is set.
func (e *Engine) recoverFromMarkers(ctx context.Context) ([]run.Run, error) {
	if !e.cfg.MarkerRecovery {
		return nil, nil
	}
	e.mu.Lock()
	policies := make([]Policy, 0, len(e.policies))
	for _, p := range e.policies {
		policies = append(policies, p)
	}
	e.mu.Unlock()
	sort.Slice(policies, func(i, k int) bool { return policies[i].Name < policies[k].Name })

	now := e.clk.Now()
	var out []run.Run
	for _, p := range policies {
		for _, t := range p.Targets {
			rs, err := e.recoverTarget(ctx, p, t, now)
			if err != nil {
				return nil, fmt.Errorf("recovering runs of %s on %s from Atlas markers: %w", p.Name, t, err)
			}
			for _, r := range rs {
				if err := e.j.Put(r); err != nil {
					return nil, fmt.Errorf("recording recovered run %s: %w", r.ID, err)
				}
				e.log.Info("recovered run from Atlas markers", runFields(r)...)
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (e *Engine) recoverTarget(ctx context.Context, p Policy, t run.Target, now time.Time) ([]run.Run, error) {
	base := func(id run.ID, slot time.Time, manual bool) run.Run {
		r := e.newRun(p, t, slot, slot, manual)
		r.ID = id
		r.StageStartedAt = now
		return r
	}
	switch p.Action {
	case run.ActionFlexRestore:
		jobs, err := e.atlas.ListFlexRestores(ctx, t.ProjectID, t.Cluster)
		if err != nil {
			return nil, err
		}
		var out []run.Run
		for _, j := range jobs {
			if j.Status.Terminal() || j.TargetDeploymentItemName != p.Spec.TargetCluster {
				continue
			}
			slot := j.RestoreScheduledDate
			r := base(run.NewID(p.Name, t.ProjectID, t.Cluster, slot, false), slot, false)
			r.Stage = run.StageRestoring
			r.FlexSnapshotID, r.RestoreJobID, r.RestoreStatus, r.RestoreRequested = j.SnapshotID, j.ID, string(j.Status), true
			out = append(out, r)
		}
		return out, nil
	}

	c, err := e.atlas.GetCluster(ctx, t.ProjectID, t.Cluster)
	if atlas.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	kind := atlas.KindReplicaSet
	if c.ClusterType == atlas.ClusterSharded || c.ClusterType == atlas.ClusterGeoSharded {
		kind = atlas.KindShardedCluster
	}
	var exports []atlas.ExportJob
	if p.Spec.ExportBucketID != "" {
		if exports, err = e.atlas.ListExports(ctx, t.ProjectID, t.Cluster); err != nil {
			return nil, err
		}
	}
	var out []run.Run
	if p.Action == run.ActionExport {
		for _, j := range exports {
			if label(j, "backupd.policy") != p.Name {
				continue
			}
			if j.State.Terminal() {
				slot, _ := time.Parse(time.RFC3339, label(j, "backupd.scheduledAt"))
				e.noteRecovered(base(run.ID(label(j, "backupd.run")), slot, false))
				continue
			}
			slot, _ := time.Parse(time.RFC3339, label(j, "backupd.scheduledAt"))
			r := base(run.ID(label(j, "backupd.run")), slot, false)
			e.noteRecovered(r)
			r.Stage, r.SnapshotKind = run.StageExporting, string(kind)
			r.SnapshotID, r.ExportBucketID, r.ExportJobID, r.ExportState, r.ExportRequested = j.SnapshotID, j.ExportBucketID, j.ID, string(j.State), true
			out = append(out, r)
		}
		return out, nil
	}

	snaps, err := e.atlas.ListSnapshots(ctx, t.ProjectID, t.Cluster, kind)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		m := markerRE.FindStringSubmatch(s.Description)
		if m == nil || m[2] != p.Name || now.Sub(s.CreatedAt) > e.cfg.RecoveryWindow {
			continue
		}
		slot, err := time.Parse(time.RFC3339, m[3])
		if err != nil {
			continue
		}
		r := base(run.ID(m[1]), slot, m[4] != "")
		e.noteRecovered(r)
		r = adoptSnapshot(r, &s)
		r.SnapshotRequested = true
		switch {
		case !s.Status.Terminal():
			r.Stage = run.StageSnapshotting
		case s.Status == atlas.SnapshotCompleted && p.Spec.ExportBucketID != "":
			j := findExport(exports, r.ID)
			if j != nil && j.State.Terminal() {
				continue // the run finished
			}
			r.Stage = run.StageExporting
			if j != nil {
				r.ExportJobID, r.ExportState, r.ExportRequested = j.ID, string(j.State), true
			}
		default:
			continue // finished: completed without export, or failed
		}
		e.log.Debug("marker found", zap.String("snapshotID", s.ID), zap.String("run", m[1]))
		out = append(out, r)
	}
	return out, nil
}

func label(j atlas.ExportJob, k string) string {
	for _, l := range j.CustomData {
		if l.Key == k {
			return l.Value
		}
	}
	return ""
}

// noteRecovered remembers a run Atlas's markers show was started, finished
// or not, so Fire never starts its slot again and the scheduler can resume
// from the newest slot Atlas has seen (RecoveredSlots).
func (e *Engine) noteRecovered(r run.Run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen[r.ID] = true
	if r.Manual {
		return
	}
	k := key(r.Policy, r.Target)
	if r.Slot.After(e.lastSlots[k]) {
		e.lastSlots[k] = r.Slot
	}
}

// RecoveredSlots returns, per policy and target, the newest scheduled slot
// whose marker Start found in Atlas. Without a journal the daemon seeds the
// scheduler's marks from it, so a slot that fired before a crash but never
// reached Atlas is caught up, and one that did is not fired again.
func (e *Engine) RecoveredSlots() map[string]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]time.Time, len(e.lastSlots))
	for k, v := range e.lastSlots {
		out[k] = v
	}
	return out
}

// Key is the scheduler and RecoveredSlots key of a policy on a target.
func Key(policy string, t run.Target) string { return key(policy, t) }
