package ha

import (
	"time"

	"github.com/backupd/backupd/internal/leader"
)

// DefaultSkewRate is the fraction of the lease duration kept as a margin in
// fence deadlines. Another replica measures the lease on its own clock; if
// that clock runs up to this much faster than ours, its lease duration ends
// this much sooner in our time. 10% is far beyond the drift of any working
// clock (NTP bounds it to 500 ppm) and still leaves 13.5 s of a 15 s lease.
const DefaultSkewRate = 0.1

// The errors are internal/leader's, so the daemon recognises them without
// linking this package.
var (
	ErrNotLeader    = leader.ErrNotLeader
	ErrFenceExpired = leader.ErrFenceExpired
	ErrLeaseLost    = leader.ErrLeaseLost
)

// NotLeaderError names the leader as last observed ("" when none is known).
type NotLeaderError = leader.NotLeaderError

// effectiveLease is the lease duration other replicas actually apply: the
// Lease object stores whole seconds (leaseDurationSeconds), and client-go
// candidates expire the lease by the value stored there, not by their own
// configuration.
func effectiveLease(d time.Duration) time.Duration {
	return d.Truncate(time.Second)
}

// fenceDeadline is the last instant this replica may still be sending to
// Atlas on the strength of a renewal it began at renewedAt.
//
// No other candidate can take the lease before it has seen the record
// unchanged for the lease duration on its own clock, and it can only see
// our renewal after the write landed, which is after renewedAt (the time we
// started the write). So takeover happens no earlier than renewedAt + lease
// measured on the other clock; the margin absorbs that clock running faster
// than ours by up to skewRate.
func fenceDeadline(renewedAt time.Time, lease time.Duration, skewRate float64) time.Time {
	l := effectiveLease(lease)
	margin := time.Duration(float64(l) * skewRate)
	return renewedAt.Add(l - margin)
}

// beforeDeadline reports whether now is before deadline on both the
// monotonic and the wall clock. The monotonic clock does not advance while
// the machine is suspended (a frozen VM), the wall clock does; a replica that
// wakes from either must not trust a renewal the others have long expired.
func beforeDeadline(now, deadline time.Time) bool {
	return now.Before(deadline) && now.Round(0).Before(deadline.Round(0))
}
