package engine

import (
	"slices"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// taskRun is a run as a task keeps it while the run is in flight: the
// fields of run.Run, less the ones most runs never set. A run.Run is about
// 1,000 bytes, and at fleet size thousands wait at once (docs/benchmarks.md:
// the in-flight tasks were the largest item of the heap). The spec (the
// policy's, unchanged for the run's life) is held by reference and shared
// with the policy and every other run of it whose spec is the same; the
// restore fields (a flex restore's or a drill's ids, baseline and record)
// are held by reference and absent for a snapshot or export run, and so
// are the fields a run in flight seldom has (the reason and end of a
// terminal run, the stage history of one re-attached after a restart).
//
// Nothing is ever written through either pointer: set replaces them, so a
// copy read under Engine.mu (status, the worker's own) never sees another
// copy's change. get and set are exact inverses (TestTaskRunKeepsEveryField).
type taskRun struct {
	spec    *run.Spec
	restore *restoreFields
	rare    *rareFields

	ID          run.ID
	Policy      string
	Action      run.Action
	Target      run.Target
	Slot        time.Time
	ScheduledAt time.Time

	Stage  run.Stage
	Detail string

	SnapshotID     string
	SnapshotKind   string
	SnapshotStatus string
	SnapshotBytes  int64
	ExportBucketID string
	ExportJobID    string
	ExportState    string
	ExportProgress string

	SnapshotRanFor time.Duration
	ExportRanFor   time.Duration
	SnapshotDoneBy time.Duration
	ExportDoneBy   time.Duration

	CreatedAt      time.Time
	StageStartedAt time.Time
	UpdatedAt      time.Time

	Manual            bool
	CatchUp           bool
	SnapshotRequested bool
	ExportRequested   bool
}

// restoreFields are the fields of run.Run only restores set.
type restoreFields struct {
	FlexSnapshotID   string
	RestoreJobID     string
	RestoreStatus    string
	RestoreRequested bool
	RestoreRanFor    time.Duration
	RestoreDoneBy    time.Duration
	RestoreBaseline  run.RestoreBaseline
	Drill            run.Drill
}

// rareFields are the fields of run.Run a run in flight seldom sets.
type rareFields struct {
	Reason     string
	FinishedAt time.Time
	Stages     []run.StageEntry
}

// get returns the run kept.
func (k *taskRun) get() run.Run {
	r := run.Run{
		ID: k.ID, Policy: k.Policy, Action: k.Action, Target: k.Target, Slot: k.Slot, ScheduledAt: k.ScheduledAt,
		Manual: k.Manual, CatchUp: k.CatchUp,
		Stage: k.Stage, Detail: k.Detail,
		SnapshotID: k.SnapshotID, SnapshotKind: k.SnapshotKind, SnapshotStatus: k.SnapshotStatus, SnapshotBytes: k.SnapshotBytes,
		ExportBucketID: k.ExportBucketID, ExportJobID: k.ExportJobID, ExportState: k.ExportState, ExportProgress: k.ExportProgress,
		SnapshotRequested: k.SnapshotRequested, ExportRequested: k.ExportRequested,
		SnapshotRanFor: k.SnapshotRanFor, ExportRanFor: k.ExportRanFor, SnapshotDoneBy: k.SnapshotDoneBy, ExportDoneBy: k.ExportDoneBy,
		CreatedAt: k.CreatedAt, StageStartedAt: k.StageStartedAt, UpdatedAt: k.UpdatedAt,
	}
	if x := k.rare; x != nil {
		r.Reason, r.FinishedAt, r.Stages = x.Reason, x.FinishedAt, x.Stages
	}
	if k.spec != nil {
		r.Spec = *k.spec
	}
	if x := k.restore; x != nil {
		r.FlexSnapshotID, r.RestoreJobID, r.RestoreStatus = x.FlexSnapshotID, x.RestoreJobID, x.RestoreStatus
		r.RestoreRequested, r.RestoreRanFor, r.RestoreDoneBy = x.RestoreRequested, x.RestoreRanFor, x.RestoreDoneBy
		r.RestoreBaseline, r.Drill = x.RestoreBaseline, x.Drill
	}
	return r
}

// set keeps r. It reuses the spec and restore records already kept when r
// holds the same (a run's spec never changes; its restore fields change a
// few times in its life), else shared, the policy's spec, when it is r's.
func (k *taskRun) set(r run.Run, shared *run.Spec) {
	spec := k.spec
	switch {
	case spec != nil && sameSpec(spec, &r.Spec):
	case shared != nil && sameSpec(shared, &r.Spec):
		spec = shared
	case sameSpec(&run.Spec{}, &r.Spec):
		spec = nil
	default:
		spec = new(r.Spec)
	}
	x := restoreFields{FlexSnapshotID: r.FlexSnapshotID, RestoreJobID: r.RestoreJobID, RestoreStatus: r.RestoreStatus,
		RestoreRequested: r.RestoreRequested, RestoreRanFor: r.RestoreRanFor, RestoreDoneBy: r.RestoreDoneBy,
		RestoreBaseline: r.RestoreBaseline, Drill: r.Drill}
	restore := k.restore
	switch {
	case restore != nil && sameRestore(restore, &x):
	case sameRestore(&restoreFields{}, &x):
		restore = nil
	default:
		restore = new(x)
	}
	y := rareFields{Reason: r.Reason, FinishedAt: r.FinishedAt, Stages: r.Stages}
	rare := k.rare
	switch {
	case rare != nil && sameRare(rare, &y):
	case sameRare(&rareFields{}, &y):
		rare = nil
	default:
		rare = new(y)
	}
	*k = taskRun{
		spec: spec, restore: restore, rare: rare,
		ID: r.ID, Policy: r.Policy, Action: r.Action, Target: r.Target, Slot: r.Slot, ScheduledAt: r.ScheduledAt,
		Manual: r.Manual, CatchUp: r.CatchUp,
		Stage: r.Stage, Detail: r.Detail,
		SnapshotID: r.SnapshotID, SnapshotKind: r.SnapshotKind, SnapshotStatus: r.SnapshotStatus, SnapshotBytes: r.SnapshotBytes,
		ExportBucketID: r.ExportBucketID, ExportJobID: r.ExportJobID, ExportState: r.ExportState, ExportProgress: r.ExportProgress,
		SnapshotRequested: r.SnapshotRequested, ExportRequested: r.ExportRequested,
		SnapshotRanFor: r.SnapshotRanFor, ExportRanFor: r.ExportRanFor, SnapshotDoneBy: r.SnapshotDoneBy, ExportDoneBy: r.ExportDoneBy,
		CreatedAt: r.CreatedAt, StageStartedAt: r.StageStartedAt, UpdatedAt: r.UpdatedAt,
	}
}

// sameSpec reports whether a and b are the same spec, down to nil against
// empty slices, so that a run kept with either gets back exactly its own.
// It is written out, not reflect.DeepEqual, which would copy both to the
// heap at every set; TestTaskRunKeepsEveryField fails if a field is missed.
func sameSpec(a, b *run.Spec) bool {
	return a.RetentionInDays == b.RetentionInDays && a.Description == b.Description &&
		a.ExportBucketID == b.ExportBucketID && a.ExportSource == b.ExportSource && sameSlice(a.CustomData, b.CustomData) &&
		a.FlexSnapshot == b.FlexSnapshot && a.TargetProjectID == b.TargetProjectID && a.TargetCluster == b.TargetCluster &&
		a.DrillSnapshot == b.DrillSnapshot && sameSlice(a.VerifyCommand, b.VerifyCommand) && a.Timeouts == b.Timeouts
}

// sameRestore is sameSpec for restore fields.
func sameRestore(a, b *restoreFields) bool {
	ab, bb := &a.RestoreBaseline, &b.RestoreBaseline
	return a.FlexSnapshotID == b.FlexSnapshotID && a.RestoreJobID == b.RestoreJobID && a.RestoreStatus == b.RestoreStatus &&
		a.RestoreRequested == b.RestoreRequested && a.RestoreRanFor == b.RestoreRanFor && a.RestoreDoneBy == b.RestoreDoneBy &&
		ab.Taken == bb.Taken && ab.NewestJob == bb.NewestJob && sameSlice(ab.JobIDs, bb.JobIDs) && ab.AllJobs == bb.AllJobs &&
		a.Drill == b.Drill
}

// sameRare is sameSpec for the rare fields.
func sameRare(a, b *rareFields) bool {
	return a.Reason == b.Reason && a.FinishedAt == b.FinishedAt && sameSlice(a.Stages, b.Stages)
}

func sameSlice[E comparable](a, b []E) bool { return (a == nil) == (b == nil) && slices.Equal(a, b) }
