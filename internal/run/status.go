package run

import "time"

// Status is the daemon's answer to "what is backupd doing?", served by
// /api/v1/status and printed by `backupd status`. It carries no secrets.
type Status struct {
	Version   string         `json:"version"`
	StartedAt time.Time      `json:"startedAt"`
	Now       time.Time      `json:"now"`
	Ready     bool           `json:"ready"`
	Policies  []PolicyStatus `json:"policies"`
	// Monitor is nil when the configuration has no monitor: section.
	Monitor *MonitorStatus `json:"monitor,omitempty"`
	// HA is nil when the configuration has no ha: section.
	HA *HAStatus `json:"ha,omitempty"`
}

// HAStatus is this replica's part in the leader election.
type HAStatus struct {
	Identity string `json:"identity"` // this replica's name in the Lease
	Lease    string `json:"lease"`    // namespace/name
	// Role is "leader" (holds the lease and acts), "acquiring" (holds it
	// and is re-attaching the runs in flight), or "standby".
	Role   string `json:"role"`
	Leader string `json:"leader,omitempty"` // the leader's identity; "" when none is known
}

// HA roles.
const (
	RoleLeader    = "leader"
	RoleAcquiring = "acquiring"
	RoleStandby   = "standby"
)

// String is the one-line summary status prints: "leader", "standby, leader
// is X".
func (h HAStatus) String() string {
	switch h.Role {
	case RoleLeader:
		return "leader (" + h.Identity + ")"
	case RoleAcquiring:
		return "acquiring (" + h.Identity + " holds the lease and is re-attaching the runs in flight)"
	}
	if h.Leader == "" {
		return "standby (" + h.Identity + "), no leader is known"
	}
	return "standby (" + h.Identity + "), leader is " + h.Leader
}

// PolicyStatus is one policy and everything it currently resolves to.
type PolicyStatus struct {
	Name     string `json:"name"`
	Action   Action `json:"action"`
	Schedule string `json:"schedule"`
	Timezone string `json:"timezone"`
	// Interval is the nominal time between two slots of the schedule
	// (policy.Policy.Interval), what the age of a last success is judged
	// against; left out when unknown.
	Interval Duration       `json:"interval,omitzero"`
	Targets  []TargetStatus `json:"targets"`
	// Unresolved lists clusters a selector matched but the policy cannot act
	// on (paused, backup disabled, below M10, flex for snapshots), with why.
	Unresolved []SkippedTarget `json:"unresolved,omitempty"`
	// ResolutionErrors lists the projects whose clusters Atlas did not list
	// at the last resolution: their targets are the last known ones.
	ResolutionErrors []ResolutionError `json:"resolutionErrors,omitempty"`
}

// ResolutionError is one project of a policy that could not be resolved.
type ResolutionError struct {
	ProjectID string `json:"projectID"`
	// Error says why: Atlas's error, an undecodable answer, or no answer
	// within the project's deadline.
	Error string `json:"error"`
	// Since is when this run of failures began.
	Since time.Time `json:"since"`
	// KeptFrom says where the project's targets come from meanwhile:
	// "resolution" (the last one that listed the project), "journal" (the
	// targets the journal has runs of, when the project has not been
	// listed since the start), or "" when nothing is known of it.
	KeptFrom string `json:"keptFrom,omitempty"`
}

// TargetStatus is one policy on one target.
type TargetStatus struct {
	Target      Target    `json:"target"`
	NextRun     time.Time `json:"nextRun,omitzero"`
	LastRun     *Run      `json:"lastRun,omitempty"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	InFlight    *Run      `json:"inFlight,omitempty"`
}

// SkippedTarget is a matched cluster the policy will not act on.
type SkippedTarget struct {
	Target Target `json:"target"`
	Reason string `json:"reason"` // a Reason* constant, usually not_supported
	Detail string `json:"detail"` // e.g. "cluster is paused"
}

// MonitorStatus is the monitor of Atlas's native backups: every watched
// cluster and what its last successful read said.
type MonitorStatus struct {
	// Interval is the time between two reads of a cluster.
	Interval Duration         `json:"interval"`
	Clusters []MonitorCluster `json:"clusters"`
	// ListErrors are the projects whose clusters could not be listed at
	// the last discovery: their watched clusters are the last known ones.
	ListErrors []ResolutionError `json:"listErrors,omitempty"`
}

// MonitorCluster is one watched cluster.
type MonitorCluster struct {
	Target       Target    `json:"target"`
	Flex         bool      `json:"flex,omitempty"`
	WatchedSince time.Time `json:"watchedSince"`
	// LastRead is the last successful read; zero before the first.
	LastRead    time.Time `json:"lastRead,omitzero"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	// LastError is why the last attempt failed; empty when it succeeded.
	LastError    string    `json:"lastError,omitempty"`
	ReadFailures int       `json:"readFailures"`
	NextRead     time.Time `json:"nextRead"`
	// Newest is the newest completed snapshot per kind (hourly … yearly,
	// onDemand, fallback, flex), as of LastRead.
	Newest map[string]time.Time `json:"newest,omitempty"`
	// Due is the earliest time a kind's next snapshot is overdue (the
	// schedule's promises, or a flex cluster's 36 h); zero when overdue
	// since ever or nothing was read yet.
	Due time.Time `json:"due,omitzero"`
	// Overdue lists the kinds overdue now.
	Overdue []string `json:"overdue,omitempty"`
	// Problems are what the last read found wrong, in words.
	Problems []string `json:"problems,omitempty"`
	// Schedule is the cluster's native backup schedule as of LastRead:
	// one item per scheduled frequency, in rank order; empty for flex
	// clusters, a schedule that could not be read, and before the first read.
	Schedule []NativeItem `json:"schedule,omitempty"`
	// Compliance is the project's Backup Compliance Policy as of
	// LastRead; nil when the project has none.
	Compliance *NativeCompliance `json:"compliance,omitempty"`
}

// NativeItem is one scheduled frequency of a native schedule or of a
// compliance policy, in numbers.
type NativeItem struct {
	Frequency string `json:"frequency"` // hourly, daily, weekly, monthly, yearly
	// MaxGap is the longest time it lets pass between two snapshots
	// (hourly every 6: "6h0m0s").
	MaxGap Duration `json:"maxGap"`
	// Retention is how long it keeps them (months of 30 days, years of
	// 365).
	Retention Duration `json:"retention"`
}

// NativeCompliance is a project's Backup Compliance Policy and how the
// cluster's schedule measures up to it.
type NativeCompliance struct {
	Required []NativeItem `json:"required"`
	// Shortfalls are the ways the schedule is weaker, in words; empty
	// when it keeps the policy.
	Shortfalls []string `json:"shortfalls,omitempty"`
}
