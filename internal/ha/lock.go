package ha

import (
	"context"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// trackedLock is the Lease lock with a record of when this replica last
// wrote the lease as its holder. client-go keeps its own observation time
// private (and takes it after the write returns); the fence needs the
// earlier, safe instant: when the successful write was started.
type trackedLock struct {
	resourcelock.Interface
	clock clock.Clock

	mu        sync.Mutex
	renewedAt time.Time // zero: no write of ours to rely on
}

func (l *trackedLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	start := l.clock.Now()
	err := l.Interface.Create(ctx, r)
	l.record(start, r, err)
	return err
}

func (l *trackedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	start := l.clock.Now()
	err := l.Interface.Update(ctx, r)
	l.record(start, r, err)
	return err
}

// record keeps start after a successful write naming us, and forgets it
// after a successful write naming anyone else (a release). A failed write
// changes nothing: it may or may not have landed, and an older start is the
// safe one either way.
func (l *trackedLock) record(start time.Time, r resourcelock.LeaderElectionRecord, err error) {
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.HolderIdentity == l.Identity() {
		l.renewedAt = start
	} else {
		l.renewedAt = time.Time{}
	}
}

// deadline is the fence deadline of the last renewal, if there is one.
func (l *trackedLock) deadline(lease time.Duration, skewRate float64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.renewedAt.IsZero() {
		return time.Time{}, false
	}
	return fenceDeadline(l.renewedAt, lease, skewRate), true
}
