package monitor

import (
	"context"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Reader reads what the monitor needs about one cluster. It makes only
// read-only calls; an error means the reading is unusable as a whole (the
// monitor then keeps the previous reading and does not move the cluster's
// last-success time), so a partial answer must be an error, not a Reading
// with gaps.
type Reader interface {
	Read(ctx context.Context, t run.Target) (Reading, error)
}

// Reading is one read of a cluster: every snapshot Atlas lists for it, its
// backup schedule and its project's Backup Compliance Policy.
type Reading struct {
	Target run.Target
	// Flex is true for a flex cluster: Snapshots come from the flex
	// endpoint (no kind or frequency; Atlas keeps a daily one) and Schedule
	// and BackupEnabled do not apply.
	Flex bool
	// BackupEnabled is the cluster's backupEnabled (dedicated clusters).
	BackupEnabled bool
	// Since is when the cluster started owing snapshots: its creation time
	// if known, else when the monitor first saw it. A schedule frequency
	// that never produced a snapshot is due one slot after Since; zero
	// means unknown, and then it is overdue at once (a monitor that cannot
	// tell must not report a cluster without snapshots as fine).
	Since time.Time
	// Snapshots are every snapshot listed, all pages, in any order.
	Snapshots []Snapshot
	// Schedule is the cluster's backup schedule; nil for flex clusters and
	// for dedicated clusters whose schedule could not be found (backup
	// disabled).
	Schedule *Schedule
	// Compliance is the project's Backup Compliance Policy; nil when the
	// project has none (Atlas answers 404).
	Compliance *Compliance
}

// Snapshot kinds: Atlas's snapshotType, with scheduled snapshots split by
// their frequencyType, and flex snapshots apart. They are the values of the
// kind label.
const (
	KindHourly   = "hourly"
	KindDaily    = "daily"
	KindWeekly   = "weekly"
	KindMonthly  = "monthly"
	KindYearly   = "yearly"
	KindOnDemand = "onDemand"
	KindFallback = "fallback"
	KindFlex     = "flex"
)

// Snapshot statuses as Atlas spells them for dedicated clusters (flex
// clusters use upper case; the adapter lower-cases them, and maps PENDING
// and RUNNING to queued and inProgress).
const (
	StatusQueued     = "queued"
	StatusInProgress = "inProgress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
)

// Snapshot is one snapshot of the listing. Kind is one of the Kind
// constants: for a dedicated cluster KindOnDemand, KindFallback, or the
// frequencyType of a scheduled snapshot; KindFlex for every flex snapshot.
// A snapshot of any other kind is ignored (the kind is a metric label, a
// closed set).
type Snapshot struct {
	Kind      string
	Status    string
	CreatedAt time.Time // createdAt; for flex snapshots, their startTime (or scheduledTime)
	SizeBytes int64     // storageSizeBytes; 0 when Atlas does not say
}

// Frequency types of a policy item (frequencyType).
const (
	FrequencyHourly   = "hourly"
	FrequencyDaily    = "daily"
	FrequencyWeekly   = "weekly"
	FrequencyMonthly  = "monthly"
	FrequencyYearly   = "yearly"
	FrequencyOnDemand = "ondemand"
)

// Retention units of a policy item (retentionUnit).
const (
	RetentionDays   = "days"
	RetentionWeeks  = "weeks"
	RetentionMonths = "months"
	RetentionYears  = "years"
)

// LastDayOfMonth is the frequencyInterval of a monthly item taken on the
// last day of each month.
const LastDayOfMonth = 40

// PolicyItem is one DiskBackupApiPolicyItem (a schedule's or a compliance
// policy's).
type PolicyItem struct {
	Frequency string // frequencyType, a Frequency constant
	// Interval is frequencyInterval: hours between snapshots for hourly
	// (1, 2, 4, 6, 8, 12); 1 for daily; the day of the week for weekly
	// (1 = Monday … 7 = Sunday); the day of the month for monthly (1–28,
	// or LastDayOfMonth); for yearly, the month (1–12).
	Interval       int
	RetentionUnit  string // a Retention constant
	RetentionValue int
}

// Schedule is a cluster's backup schedule (GET …/backup/schedule): the
// policy items of its one policy and the UTC anchor of the slots.
type Schedule struct {
	Items []PolicyItem
	// ReferenceHour and ReferenceMinute (referenceHourOfDay,
	// referenceMinuteOfHour) anchor the slots, in UTC.
	ReferenceHour, ReferenceMinute int
	NextSnapshot                   time.Time // nextSnapshot; zero if not given
}

// Compliance is a project's Backup Compliance Policy: the minimum every
// cluster's schedule must keep.
type Compliance struct {
	ScheduledItems []PolicyItem
	OnDemandItem   *PolicyItem // nil if the policy has none
}
