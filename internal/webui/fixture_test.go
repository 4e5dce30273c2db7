package webui

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/httpapi"
	"github.com/backupd/backupd/internal/run"
)

// fixture is a Source with a small fleet in every state the page shows:
// a success, a failed export with Atlas's message, a timeout, a run in
// flight with its Atlas ids, an unsupported cluster, a project that could
// not be listed and the monitor's view of native backups. Its clock is
// fixed, so the page (and its screenshots) are the same on every run.
type fixture struct {
	st   run.Status
	runs []run.Run
	err  error // returned by Runs and Run when set
}

var fixtureNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	projProd   = "65f1a0c2d4e6f8a0b2c4d6e8"
	projOrders = "65f1a0c2d4e6f8a0b2c4d6f1"
	idFailed   = "3f1c0a9b7e5d2c4a6b8e"
	idTimeout  = "9a0e5d3c1b7f2e4a6c8d"
	idFlight   = "c41d2e3f4a5b6c7d8e9f"
	idOK       = "0b1c2d3e4f5a6b7c8d9e"
	idOrders   = "7e6d5c4b3a2f1e0d9c8b"
	// detailFailed is Atlas's own words for the failed export.
	detailFailed = "Atlas reports export Failed: the export bucket's IAM role cannot write to s3://acme-backups/atlas (AccessDenied)"
)

func ago(d time.Duration) time.Time { return fixtureNow.Add(-d) }

func stages(start time.Time, steps ...any) []run.StageEntry {
	var out []run.StageEntry
	at := start
	for i := 0; i < len(steps); i += 2 {
		out = append(out, run.StageEntry{Stage: steps[i].(run.Stage), At: at})
		if i+1 < len(steps) {
			at = at.Add(steps[i+1].(time.Duration))
		}
	}
	return out
}

func newFixture() *fixture {
	to := run.Timeouts{Wait: 30 * time.Minute, Snapshot: 2 * time.Hour, Export: 6 * time.Hour}
	prodA := run.Target{ProjectID: projProd, Cluster: "prod-a"}
	prodB := run.Target{ProjectID: projProd, Cluster: "prod-b"}
	prodC := run.Target{ProjectID: projProd, Cluster: "prod-c"}
	ord1 := run.Target{ProjectID: projOrders, Cluster: "orders-1"}
	ord2 := run.Target{ProjectID: projOrders, Cluster: "orders-2"}

	okStart := ago(10*time.Hour + 40*time.Minute)
	ok := run.Run{ID: idOK, Policy: "nightly-prod", Action: run.ActionSnapshot, Target: prodA, Slot: okStart, ScheduledAt: okStart,
		Spec: run.Spec{RetentionInDays: 7, ExportBucketID: "65f1a0000000000000000007", Timeouts: to}, Stage: run.StageSucceeded,
		SnapshotID: "65f1a0000000000000000011", SnapshotKind: "replicaSet", SnapshotStatus: "completed", SnapshotBytes: 18 << 30,
		ExportBucketID: "65f1a0000000000000000007", ExportJobID: "65f1a0000000000000000012", ExportState: "Successful", ExportProgress: "40/40",
		CreatedAt: okStart, StageStartedAt: ago(10 * time.Hour), UpdatedAt: ago(10 * time.Hour), FinishedAt: ago(10 * time.Hour),
		Stages: stages(okStart, run.StagePending, time.Duration(0), run.StageWaiting, time.Second, run.StageSnapshotting, 12*time.Minute, run.StageExporting, 28*time.Minute-time.Second, run.StageSucceeded)}

	failStart := ago(9*time.Hour + 50*time.Minute)
	failed := run.Run{ID: idFailed, Policy: "nightly-prod", Action: run.ActionSnapshot, Target: prodB, Slot: failStart, ScheduledAt: failStart,
		Spec: run.Spec{RetentionInDays: 7, ExportBucketID: "65f1a0000000000000000007", Timeouts: to}, Stage: run.StageFailed,
		Reason: run.ReasonExportFailed, Detail: detailFailed,
		SnapshotID: "65f1a0000000000000000002", SnapshotKind: "replicaSet", SnapshotStatus: "completed", SnapshotBytes: 7 << 30,
		ExportBucketID: "65f1a0000000000000000007", ExportJobID: "65f1a0000000000000000009", ExportState: "Failed", ExportProgress: "3/40",
		CreatedAt: failStart, StageStartedAt: ago(9 * time.Hour), UpdatedAt: ago(9 * time.Hour), FinishedAt: ago(9 * time.Hour),
		Stages: stages(failStart, run.StagePending, time.Duration(0), run.StageWaiting, time.Second, run.StageSnapshotting, 9*time.Minute-time.Second, run.StageExporting, 41*time.Minute, run.StageFailed)}

	flightStart := ago(35 * time.Minute)
	flight := run.Run{ID: idFlight, Policy: "nightly-prod", Action: run.ActionSnapshot, Target: prodC, Manual: true, Slot: flightStart, ScheduledAt: flightStart,
		Spec: run.Spec{RetentionInDays: 7, ExportBucketID: "65f1a0000000000000000007", Timeouts: to}, Stage: run.StageExporting,
		SnapshotID: "65f1a0000000000000000021", SnapshotKind: "shardedCluster", SnapshotStatus: "completed",
		ExportBucketID: "65f1a0000000000000000007", ExportJobID: "65f1a0000000000000000022", ExportState: "InProgress", ExportProgress: "12/40",
		CreatedAt: flightStart, StageStartedAt: ago(20 * time.Minute), UpdatedAt: ago(time.Minute),
		Stages: stages(flightStart, run.StagePending, time.Duration(0), run.StageWaiting, time.Second, run.StageSnapshotting, 15*time.Minute-time.Second, run.StageExporting)}

	ordStart := ago(20 * time.Minute)
	orders := run.Run{ID: idOrders, Policy: "hourly-orders", Action: run.ActionSnapshot, Target: ord1, Slot: ordStart, ScheduledAt: ordStart,
		Spec: run.Spec{RetentionInDays: 2, Timeouts: to}, Stage: run.StageSucceeded,
		SnapshotID: "65f1a0000000000000000031", SnapshotStatus: "completed", SnapshotBytes: 900 << 20,
		CreatedAt: ordStart, StageStartedAt: ago(14 * time.Minute), UpdatedAt: ago(14 * time.Minute), FinishedAt: ago(14 * time.Minute),
		Stages: stages(ordStart, run.StagePending, time.Duration(0), run.StageSnapshotting, 6*time.Minute, run.StageSucceeded)}

	toStart := ago(3 * time.Hour)
	timeout := run.Run{ID: idTimeout, Policy: "hourly-orders", Action: run.ActionSnapshot, Target: ord2, Slot: toStart, ScheduledAt: toStart,
		Spec: run.Spec{RetentionInDays: 2, Timeouts: to}, Stage: run.StageFailed, Reason: run.ReasonTimeout,
		Detail:     "snapshot 65f1a0000000000000000041 still queued after the snapshot timeout of 2h0m0s",
		SnapshotID: "65f1a0000000000000000041", SnapshotStatus: "queued",
		CreatedAt: toStart, StageStartedAt: ago(time.Hour), UpdatedAt: ago(time.Hour), FinishedAt: ago(time.Hour),
		Stages: stages(toStart, run.StagePending, time.Duration(0), run.StageSnapshotting, 2*time.Hour, run.StageFailed)}

	f := &fixture{runs: []run.Run{ok, failed, flight, orders, timeout}}
	f.st = run.Status{
		Version: "v1.4.0", StartedAt: ago(26 * time.Hour), Now: fixtureNow, Ready: true,
		Policies: []run.PolicyStatus{
			{Name: "hourly-orders", Action: run.ActionSnapshot, Schedule: "0 * * * *", Timezone: "UTC", Interval: run.Duration(time.Hour),
				Targets: []run.TargetStatus{
					{Target: ord1, NextRun: fixtureNow.Add(time.Hour), LastRun: &orders, LastSuccess: ago(14 * time.Minute)},
					{Target: ord2, NextRun: fixtureNow.Add(time.Hour + 2*time.Minute), LastRun: &timeout, LastSuccess: ago(5*time.Hour + 10*time.Minute)},
				},
				ResolutionErrors: []run.ResolutionError{{ProjectID: "65f1a0c2d4e6f8a0b2c4d6f9", Error: "list clusters of project 65f1a0c2d4e6f8a0b2c4d6f9: 403 Forbidden: the API key has no access", Since: ago(2 * time.Hour), KeptFrom: "journal"}},
			},
			{Name: "nightly-prod", Action: run.ActionSnapshot, Schedule: "0 2 * * *", Timezone: "Europe/Berlin", Interval: run.Duration(24 * time.Hour),
				Targets: []run.TargetStatus{
					{Target: prodA, NextRun: fixtureNow.Add(13*time.Hour + 7*time.Minute), LastRun: &ok, LastSuccess: ago(10 * time.Hour)},
					{Target: prodB, NextRun: fixtureNow.Add(13*time.Hour + 21*time.Minute), LastRun: &failed, LastSuccess: ago(33 * time.Hour)},
					{Target: prodC, NextRun: fixtureNow.Add(13*time.Hour + 2*time.Minute), LastRun: &ok, LastSuccess: ago(58 * time.Hour), InFlight: &flight},
				},
				Unresolved: []run.SkippedTarget{{Target: run.Target{ProjectID: projProd, Cluster: "prod-paused"}, Reason: run.ReasonNotSupported, Detail: "cluster is paused"}},
			},
		},
		Monitor: &run.MonitorStatus{Interval: run.Duration(time.Hour), Clusters: []run.MonitorCluster{
			{Target: prodA, WatchedSince: ago(26 * time.Hour), LastRead: ago(18 * time.Minute), LastAttempt: ago(18 * time.Minute), NextRead: fixtureNow.Add(42 * time.Minute),
				Newest: map[string]time.Time{"hourly": ago(time.Hour), "daily": ago(10 * time.Hour), "weekly": ago(4 * 24 * time.Hour)}, Due: fixtureNow.Add(time.Hour)},
			{Target: run.Target{ProjectID: projProd, Cluster: "legacy"}, WatchedSince: ago(26 * time.Hour), LastRead: ago(70 * time.Minute), LastAttempt: ago(10 * time.Minute),
				LastError: "read snapshots of " + projProd + "/legacy: 503 Service Unavailable", ReadFailures: 1, NextRead: fixtureNow.Add(50 * time.Minute),
				Newest: map[string]time.Time{"daily": ago(58 * time.Hour)}, Due: ago(22 * time.Hour), Overdue: []string{"daily"},
				Problems: []string{"daily snapshot overdue since 2026-02-28T14:00:00Z"}},
		}},
	}
	return f
}

func (f *fixture) Status(context.Context) run.Status { return f.st }

func (f *fixture) Runs(_ context.Context, q httpapi.RunQuery) ([]run.Run, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []run.Run
	for _, r := range f.runs {
		if q.Match(r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b run.Run) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(string(b.ID), string(a.ID))
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (f *fixture) Run(_ context.Context, id run.ID) (run.Run, bool, error) {
	if f.err != nil {
		return run.Run{}, false, f.err
	}
	for _, r := range f.runs {
		if r.ID == id {
			return r, true, nil
		}
	}
	return run.Run{}, false, nil
}
