// Package journal is backupd's durable record of runs. The engine writes
// every stage transition of a run here before it acts on it, so a crash
// never loses a run in flight and never starts the same slot twice; the
// scheduler keeps its per-target bookkeeping (marks) here; metrics and the
// status API read history and per-target summaries from it.
//
// Two implementations share one behaviour: Bolt, a single bbolt file (the
// state.path of the configuration), and Memory, for state.path "" where
// nothing survives a restart and recovery relies on the markers backupd
// leaves in Atlas.
package journal

import (
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Journal is the durable store of runs, summaries and scheduler marks.
// Implementations are safe for concurrent use and never hand out memory
// they keep: every value returned is the caller's to modify.
type Journal interface {
	// Put inserts r, or replaces the run with the same ID. When it returns
	// nil the run is durable (committed and, for Bolt, fsync'd), so the
	// caller may act on the stage it records.
	Put(r run.Run) error
	// Get returns the run with the given id and whether it exists.
	Get(id run.ID) (run.Run, bool, error)
	// Active returns every run that has not reached a terminal stage,
	// oldest first (by CreatedAt, then ID). It reads an index of active
	// runs, not the whole history, so start-up stays fast.
	Active() ([]run.Run, error)
	// History returns runs matching q, newest first: descending by
	// CreatedAt, runs created at the same instant by descending ID.
	History(q Query) ([]run.Run, error)
	// Summaries returns one Summary per (policy, target) that has ended a
	// run or completed a stage, ordered by policy, project and cluster. They
	// are maintained on Put, so reading them does not scan history.
	Summaries() ([]Summary, error)
	// Mark returns the scheduler's bookkeeping stored under key.
	Mark(key string) (Mark, bool, error)
	// SetMark stores m under key, durably.
	SetMark(key string, m Mark) error
	// DeleteMark removes key; removing a missing key is not an error.
	DeleteMark(key string) error
	// Prune deletes terminal runs: all but the keepRuns newest (keepRuns
	// <= 0: no count limit) and every one created before now-maxAge
	// (maxAge <= 0: no age limit). Active runs and summaries are never
	// touched. It also deletes the rollup's records (Outcomes) of the days
	// wholly older than now-maxAge, never by keepRuns. It returns how many
	// runs it deleted.
	Prune(now time.Time, keepRuns int, maxAge time.Duration) (removed int, err error)
	// PrunedThrough is the creation time of the newest run Prune ever
	// deleted (zero if it never deleted one): every run created after it
	// is still held. The evidence report judges only the slots after it,
	// so a pruned run never reads as a missed slot.
	PrunedThrough() (time.Time, error)
	// Outcomes calls fn with the ReportView of every ended run whose
	// report time lies in q's period and that Horizon says it holds, in
	// the order of target (project, cluster), policy, then report time and
	// ID. It reads the rollup, not the runs: Prune's count limit never
	// shortens it, its age limit deletes whole days. fn runs inside the
	// read and must not call the journal; its error ends the walk and is
	// returned.
	Outcomes(q OutcomeQuery, fn func(run.Run) error) error
	// Horizon says which ended runs Outcomes holds.
	Horizon() (Horizon, error)
	// Close releases the journal; for Bolt it unlocks the file.
	Close() error
}

// Query selects runs from History. The zero Query returns every run.
type Query struct {
	// Policy keeps only runs of this policy ("" = any).
	Policy string
	// Target keeps only runs on this target (nil = any).
	Target *run.Target
	// Limit caps the number of runs returned (<= 0 = no cap).
	Limit int
	// Before keeps only runs created strictly before it (zero = no bound);
	// pass the CreatedAt of the last run of a page to get the next page.
	Before time.Time
	// BeforeID, with Before, also keeps the runs created exactly at Before
	// whose ID sorts before it: pass the last run's CreatedAt and ID and
	// runs created at the same instant are neither skipped nor repeated.
	BeforeID run.ID
	// Since keeps only runs created at or after it (zero = no bound). The
	// walk stops at the first older run, so it bounds the work too.
	Since time.Time
	// Keep, when set, keeps only the runs it returns true for, for the
	// filters no index serves (a project or a cluster alone, a stage). It
	// runs inside the read and must not block or call the journal.
	Keep func(run.Run) bool
}

// Stage keys of Summary.LastSuccess. They are the stage label values of
// backupd_last_success_timestamp_seconds.
const (
	// SuccessSnapshot: a snapshot backupd requested reached "completed".
	SuccessSnapshot = "snapshot"
	// SuccessExport: a run that exported a snapshot succeeded.
	SuccessExport = "export"
	// SuccessRestore: a flex restore job reached COMPLETED.
	SuccessRestore = "restore"
)

// Summary is what metrics need about one policy on one target without
// reading history: it is updated by every Put and survives Prune, so the
// gauges can be rebuilt at start from a handful of records.
type Summary struct {
	Policy string     `json:"policy"`
	Target run.Target `json:"target"`
	// Last is the terminal run that ended most recently (by FinishedAt,
	// or UpdatedAt when FinishedAt is unset); nil until a run has ended.
	Last *run.Run `json:"last,omitempty"`
	// LastSuccess maps SuccessSnapshot, SuccessExport and SuccessRestore
	// to when that stage last completed successfully (the UpdatedAt of the
	// Put that first recorded the success). Stages never completed are
	// absent.
	LastSuccess map[string]time.Time `json:"lastSuccess,omitempty"`
	// LastSnapshotBytes is the size of the newest completed snapshot whose
	// size is known (0 until one is).
	LastSnapshotBytes int64 `json:"lastSnapshotBytes,omitempty"`
}

// Mark is the scheduler's bookkeeping for one (policy, target) key: which
// slot it last fired and under which schedule, so missed slots can be
// detected after a restart and a schedule change resets the count.
type Mark struct {
	LastSlot time.Time `json:"lastSlot"`
	Since    time.Time `json:"since"`
	Schedule string    `json:"schedule"`
}
