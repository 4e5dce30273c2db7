// Package run is the vocabulary shared by the engine, the journal, metrics,
// logs and the status API: what a run is, the stages it moves through and
// the events it emits. It holds data and pure helpers only, so every
// consumer can import it without importing the engine.
package run

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
	"unique"
)

// Stage is where a run is in the run model of DESIGN.md. Each stage is
// written to the journal before the engine acts on it.
type Stage string

// Stages. Succeeded, Failed and Skipped are terminal.
const (
	StagePending      Stage = "pending"
	StageWaiting      Stage = "waiting"
	StageSnapshotting Stage = "snapshotting"
	StageExporting    Stage = "exporting"
	StageRestoring    Stage = "restoring"
	// StageVerifying runs a restore drill's verify command on the restored target.
	StageVerifying Stage = "verifying"
	StageSucceeded Stage = "succeeded"
	StageFailed    Stage = "failed"
	StageSkipped   Stage = "skipped"
)

// Terminal reports whether the run has ended.
func (s Stage) Terminal() bool {
	return s == StageSucceeded || s == StageFailed || s == StageSkipped
}

// Action is what a policy asks for.
type Action string

// Actions, one per policy.
const (
	ActionSnapshot    Action = "snapshot"    // on-demand snapshot, optionally chained to an export
	ActionExport      Action = "export"      // export of the newest completed snapshot (source: latest)
	ActionFlexRestore Action = "flexRestore" // restore the newest flex snapshot into a target
	// ActionRestoreDrill restores a dedicated cluster's snapshot into a
	// scratch cluster, waits it out and optionally verifies it.
	ActionRestoreDrill Action = "restoreDrill"
)

// Reasons a run ends failed or skipped. They are metric label values, so the
// set is closed.
const (
	ReasonTimeout          = "timeout"           // a stage exceeded its timeout
	ReasonSnapshotFailed   = "snapshot_failed"   // Atlas marked the snapshot failed
	ReasonExportFailed     = "export_failed"     // Atlas marked the export Failed
	ReasonExportCancelled  = "export_cancelled"  // Atlas marked the export Cancelled
	ReasonRestoreFailed    = "restore_failed"    // Atlas marked the restore FAILED (or failed: true)
	ReasonRestoreCancelled = "restore_cancelled" // a drill's restore job ended cancelled: true
	ReasonRestoreExpired   = "restore_expired"   // a drill's restore job ended expired: true
	ReasonVerifyFailed     = "verify_failed"     // a drill's verify command failed or timed out
	ReasonNoSnapshot       = "no_snapshot"       // nothing completed to export or restore
	ReasonNotFound         = "not_found"         // cluster, bucket or snapshot vanished
	ReasonAtlasError       = "atlas_error"       // Atlas refused the request for good
	ReasonOverlap          = "overlap"           // skipped: the previous run is still in flight
	ReasonMissed           = "missed"            // skipped: slot passed while the daemon was down
	ReasonNotSupported     = "not_supported"     // skipped: paused, no backup, below M10, flex
	ReasonShutdown         = "shutdown"          // skipped: the daemon stopped before it started
	ReasonNoNewSnapshot    = "no_new_snapshot"   // skipped: the newest snapshot already has an export to the bucket
)

// ID identifies a run. It is derived from the policy, the target and the
// slot, so the same slot can never produce two runs.
type ID string

// NewID derives the run id for one slot of one policy on one target. Manual
// triggers pass their trigger time as the slot and manual=true.
func NewID(policy, projectID, cluster string, slot time.Time, manual bool) ID {
	kind := "s"
	if manual {
		kind = "m"
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%d", kind, policy, projectID, cluster, slot.UTC().UnixNano()))
	// The first 20 hex digits: encoding only the 10 bytes they show keeps
	// the id's own 24 bytes, not the 48 of the whole sum's digits (the id
	// of each run in flight is kept as long as it is).
	return ID(hex.EncodeToString(sum[:10]))
}

// Marker is the text stamped into the snapshot description and the export's
// customData so a run can find its own objects in Atlas after a crash.
func (id ID) Marker() string { return "backupd:" + string(id) }

// Target is one cluster a policy acts on.
type Target struct {
	ProjectID string `json:"projectID"`
	Cluster   string `json:"cluster"`
}

func (t Target) String() string { return t.ProjectID + "/" + t.Cluster }

// Interned is t with its strings interned (unique.Make): the engine's
// resolution and the monitor list the same clusters each on its own, every
// few minutes, and each decoded listing has new copies of the names. At
// 10,000 clusters the holders that keep a target (the scheduler, the
// metrics, the monitor) then share one copy of each name, whichever
// listing they kept it from.
func (t Target) Interned() Target {
	return Target{ProjectID: unique.Make(t.ProjectID).Value(), Cluster: unique.Make(t.Cluster).Value()}
}

// Run is one policy on one target for one slot. It is the journal's record
// and the payload of every event.
type Run struct {
	ID          ID        `json:"id"`
	Policy      string    `json:"policy"`
	Action      Action    `json:"action"`
	Target      Target    `json:"target"`
	Slot        time.Time `json:"slot"`        // the cron slot (or trigger time)
	ScheduledAt time.Time `json:"scheduledAt"` // slot plus jitter: when it was due to start
	Manual      bool      `json:"manual,omitempty"`
	CatchUp     bool      `json:"catchUp,omitempty"` // fired late for a slot missed while down
	// Spec is the policy as it was when the run was created: a run finishes
	// what it started even if a reload changes or removes its policy.
	Spec Spec `json:"spec"`

	Stage  Stage  `json:"stage"`
	Reason string `json:"reason,omitempty"` // for failed and skipped
	Detail string `json:"detail,omitempty"` // human explanation (Atlas's message, ...)

	// Atlas ids, recorded as soon as they are known.
	SnapshotID     string `json:"snapshotID,omitempty"`
	SnapshotKind   string `json:"snapshotKind,omitempty"` // replicaSet | shardedCluster
	SnapshotStatus string `json:"snapshotStatus,omitempty"`
	SnapshotBytes  int64  `json:"snapshotBytes,omitempty"`
	ExportBucketID string `json:"exportBucketID,omitempty"`
	ExportJobID    string `json:"exportJobID,omitempty"`
	ExportState    string `json:"exportState,omitempty"`
	ExportProgress string `json:"exportProgress,omitempty"` // "12/40" collections
	FlexSnapshotID string `json:"flexSnapshotID,omitempty"`
	RestoreJobID   string `json:"restoreJobID,omitempty"`
	RestoreStatus  string `json:"restoreStatus,omitempty"`

	// Intents: set and persisted before a POST is sent. A run that restarts
	// with an intent but no id must look for its marker before posting again.
	SnapshotRequested bool `json:"snapshotRequested,omitempty"`
	ExportRequested   bool `json:"exportRequested,omitempty"`
	RestoreRequested  bool `json:"restoreRequested,omitempty"`
	// RestoreBaseline is what Atlas held before the restore was first
	// requested. Restore jobs carry no marker, so after an unknown outcome
	// the run adopts only a job Atlas dated after it.
	RestoreBaseline RestoreBaseline `json:"restoreBaseline,omitzero"`
	// Drill is what a restore recorded: a restore drill's whole record,
	// and for a flex restore the snapshot's time and the job's (its
	// restoreScheduledDate and restoreFinishedDate), so both report the
	// snapshot's age and the restore time on Atlas's clock.
	Drill Drill `json:"drill,omitzero"`

	// SnapshotRanFor, ExportRanFor and RestoreRanFor are how long after
	// its create request the stage's Atlas job was last seen still running,
	// set when the job succeeded (zero: failed, not seen running, or a job
	// the process that saw it end did not create: re-attached after a
	// restart or adopted by its marker, its request time unknown). They
	// are the history from which the engine learns when the cluster's next
	// job of that kind is likely to end (internal/pollplan): a lower bound,
	// so a plan built on them reads before completion, not after.
	SnapshotRanFor time.Duration `json:"snapshotRanFor,omitempty"`
	ExportRanFor   time.Duration `json:"exportRanFor,omitempty"`
	RestoreRanFor  time.Duration `json:"restoreRanFor,omitempty"`
	// SnapshotDoneBy, ExportDoneBy and RestoreDoneBy are, counted the same
	// way, when the job was first seen done: the upper bound. The two
	// bounds together place the duration in a window a plan can narrow
	// (internal/pollplan); zero in journals written before they existed,
	// whose runs the plans leave out.
	SnapshotDoneBy time.Duration `json:"snapshotDoneBy,omitempty"`
	ExportDoneBy   time.Duration `json:"exportDoneBy,omitempty"`
	RestoreDoneBy  time.Duration `json:"restoreDoneBy,omitempty"`

	CreatedAt      time.Time `json:"createdAt"`
	StageStartedAt time.Time `json:"stageStartedAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
	FinishedAt     time.Time `json:"finishedAt,omitzero"`

	// Stages is every stage the run entered, with when, oldest first. The
	// journal keeps it (see StageHistory), so whatever a caller puts here
	// is replaced by the stored history; a record written before it existed
	// has none until its next Put, which starts it at its then stage.
	Stages []StageEntry `json:"stages,omitempty"`
}

// StageEntry is one stage a run entered, at StageStartedAt's time.
type StageEntry struct {
	Stage Stage     `json:"stage"`
	At    time.Time `json:"at"`
}

// MaxStages bounds Run.Stages. A run enters five stages at most on its
// way; a bound keeps a record small even if one went back and forth.
const MaxStages = 16

// StageHistory is the history r has once stored over prev (nil when r is
// new): prev's history (r's own when prev has none; prev's current stage
// when neither has one, as for a record older than the history), plus r's
// stage when r entered it since. Beyond MaxStages the oldest entries but the first
// are dropped. It never modifies its arguments' slices.
func StageHistory(prev *Run, r Run) []StageEntry {
	h := r.Stages
	switch {
	case prev != nil && len(prev.Stages) > 0:
		h = prev.Stages
	case prev != nil && len(h) == 0 && !prev.StageStartedAt.IsZero():
		// A record from before the history existed: its current stage and
		// when it began are all that is known of its past.
		h = []StageEntry{{Stage: prev.Stage, At: prev.StageStartedAt}}
	}
	at := r.StageStartedAt
	if n := len(h); n > 0 && h[n-1].Stage == r.Stage && (at.IsZero() || h[n-1].At.Equal(at)) {
		return h
	}
	if at.IsZero() {
		at = r.UpdatedAt
	}
	out := make([]StageEntry, 0, min(len(h)+1, MaxStages))
	if len(h)+1 > MaxStages {
		out = append(append(out, h[0]), h[len(h)+2-MaxStages:]...)
	} else {
		out = append(out, h...)
	}
	return append(out, StageEntry{Stage: r.Stage, At: at})
}

// SameStages reports whether a and b hold the same entries.
func SameStages(a, b []StageEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Stage != b[i].Stage || !a[i].At.Equal(b[i].At) {
			return false
		}
	}
	return true
}

// RestoreBaseline is taken, before a run's first flex restore request, from
// the restore jobs of the same snapshot into the same target.
type RestoreBaseline struct {
	Taken bool `json:"taken"`
	// NewestJob is the latest restoreScheduledDate among those jobs, on
	// Atlas's clock (zero: there were none). Comparing Atlas's dates with
	// each other keeps the match true whatever the local clock says. For a
	// drill it is the newest creation time read from the jobs' ids.
	NewestJob time.Time `json:"newestJob,omitzero"`
	// JobIDs are a drill's matching jobs: all of them when AllJobs is set
	// (adoption then needs no time, only fields the spec documents),
	// otherwise those created in NewestJob's second, which a time
	// comparison alone cannot tell from the run's own.
	JobIDs  []string `json:"jobIDs,omitempty"`
	AllJobs bool     `json:"allJobs,omitempty"`
}

// Verification outcomes of a drill (Drill.Verification).
const (
	VerifiedByCommand = "verified"   // the verify command exited 0
	VerifiedAtlasOnly = "atlas_only" // no verify command: Atlas reported the restore succeeded
	VerifyFailed      = "failed"     // the verify command failed or timed out
)

// MaxVerifyOutput bounds the verify command's output kept in the journal.
const MaxVerifyOutput = 4 << 10

// Drill is a restore drill's record (a flex restore fills SnapshotAt and
// the Job* times only). Times named Job* and SnapshotAt are Atlas's own, so
// durations between them are free of local clock skew.
type Drill struct {
	// SnapshotAt is when Atlas took the restored snapshot (a flex
	// snapshot's finishTime).
	SnapshotAt time.Time `json:"snapshotAt,omitzero"`
	// SourceExportID is the export whose snapshot was chosen (snapshot: exported).
	SourceExportID string `json:"sourceExportID,omitempty"`
	// JobCreatedAt is when Atlas created the restore job (a flex job's
	// restoreScheduledDate); JobFinishedAt its finishedAt (a flex job's
	// restoreFinishedDate).
	JobCreatedAt  time.Time `json:"jobCreatedAt,omitzero"`
	JobFinishedAt time.Time `json:"jobFinishedAt,omitzero"`
	// RestoreDone is set once the job succeeded; the run then waits for the
	// target to be IDLE again, and TargetIdleAt is when it saw that.
	RestoreDone  bool      `json:"restoreDone,omitempty"`
	TargetIdleAt time.Time `json:"targetIdleAt,omitzero"`
	// Verification is VerifiedByCommand, VerifiedAtlasOnly or VerifyFailed
	// ("" until decided); the rest describe the verify command's run.
	Verification   string   `json:"verification,omitempty"`
	VerifyExitCode int      `json:"verifyExitCode,omitempty"`
	VerifyOutput   string   `json:"verifyOutput,omitempty"` // at most MaxVerifyOutput bytes
	VerifyDuration Duration `json:"verifyDuration,omitempty"`
	// VerifyAttempts counts the verify commands started, each journaled
	// before it starts (VerifyStartedAt the last one's start): a count
	// above one says a restart cut an earlier one off and it ran again.
	VerifyAttempts  int       `json:"verifyAttempts,omitempty"`
	VerifyStartedAt time.Time `json:"verifyStartedAt,omitzero"`
}

// RestoreDuration is the restore's time from request to finished, on
// Atlas's clock (zero when unknown).
func (d Drill) RestoreDuration() time.Duration {
	if d.JobCreatedAt.IsZero() || d.JobFinishedAt.IsZero() || d.JobFinishedAt.Before(d.JobCreatedAt) {
		return 0
	}
	return d.JobFinishedAt.Sub(d.JobCreatedAt)
}

// SnapshotAge is how old the snapshot was when the restore began, on
// Atlas's clock (zero when unknown).
func (d Drill) SnapshotAge() time.Duration {
	if d.SnapshotAt.IsZero() || d.JobCreatedAt.IsZero() || d.JobCreatedAt.Before(d.SnapshotAt) {
		return 0
	}
	return d.JobCreatedAt.Sub(d.SnapshotAt)
}

// Result maps a terminal run to the result label of backupd_runs_total:
// success, failure or timeout. Skipped and unfinished runs return "".
func (r Run) Result() string {
	switch {
	case r.Stage == StageSucceeded:
		return "success"
	case r.Stage == StageFailed && r.Reason == ReasonTimeout:
		return "timeout"
	case r.Stage == StageFailed:
		return "failure"
	}
	return ""
}

// Event is one transition of a run, emitted after the journal has it.
type Event struct {
	Run  Run       `json:"run"`
	From Stage     `json:"from"` // "" for a run's first event
	At   time.Time `json:"at"`
	// StageDuration is how long the run spent in From (zero for the first event).
	StageDuration time.Duration `json:"stageDuration"`
	// Note is set for events that are not stage changes: progress of a
	// poll ("snapshot inProgress", "export 12/40") so live views can show it.
	Note string `json:"note,omitempty"`
}

// Observer receives run events. Implementations must not block for long: the
// engine calls them synchronously, in order, from the run's goroutine.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// Observers fans one event out to several observers in order.
type Observers []Observer

// Observe calls every observer in order.
func (os Observers) Observe(e Event) {
	for _, o := range os {
		if o != nil {
			o.Observe(e)
		}
	}
}

// Spec is everything a run needs from its policy, copied into the run.
type Spec struct {
	// snapshot action
	RetentionInDays int    `json:"retentionInDays,omitempty"`
	Description     string `json:"description,omitempty"`
	// export (chained after a snapshot, or alone with Source "latest")
	ExportBucketID string  `json:"exportBucketID,omitempty"`
	ExportSource   string  `json:"exportSource,omitempty"`
	CustomData     []Label `json:"customData,omitempty"`
	// flexRestore action; the run's Target is the flex source cluster
	FlexSnapshot    string `json:"flexSnapshot,omitempty"` // "latest"
	TargetProjectID string `json:"targetProjectID,omitempty"`
	TargetCluster   string `json:"targetCluster,omitempty"`
	// restoreDrill action; the run's Target is the source dedicated
	// cluster, TargetProjectID and TargetCluster the scratch cluster.
	DrillSnapshot string   `json:"drillSnapshot,omitempty"` // latest | exported
	VerifyCommand []string `json:"verifyCommand,omitempty"` // argv; empty: verified at the Atlas level only

	Timeouts Timeouts `json:"timeouts"`
}

// Label is one user key/value for an export's customData.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Timeouts bound each stage, measured from the moment the stage was entered
// (persisted, so a restart does not reset them).
type Timeouts struct {
	Wait     time.Duration `json:"wait"`
	Snapshot time.Duration `json:"snapshot"`
	Export   time.Duration `json:"export"`
	Restore  time.Duration `json:"restore"`
	Verify   time.Duration `json:"verify,omitempty"` // a drill's verify command
}

// For returns the timeout of a stage, or 0 for stages without one.
func (t Timeouts) For(s Stage) time.Duration {
	switch s {
	case StagePending, StageWaiting:
		return t.Wait
	case StageSnapshotting:
		return t.Snapshot
	case StageExporting:
		return t.Export
	case StageRestoring:
		return t.Restore
	case StageVerifying:
		return t.Verify
	}
	return 0
}
