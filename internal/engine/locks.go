package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// errDeadline means a wait ran past its stage deadline.
var errDeadline = errors.New("deadline passed")

// clusterLocks gives one run at a time each cluster, across all policies:
// Atlas allows one on-demand snapshot in flight per cluster and one export
// per snapshot, so two of our own runs must never race for a cluster.
type clusterLocks struct {
	mu      sync.Mutex
	held    map[string]run.ID
	changed chan struct{} // closed and replaced on every release
}

func newClusterLocks() *clusterLocks {
	return &clusterLocks{held: map[string]run.ID{}, changed: make(chan struct{})}
}

// acquire takes every key at once for id, waiting until all are free, the
// deadline passes (errDeadline) or ctx ends. A zero deadline waits forever.
func (l *clusterLocks) acquire(ctx context.Context, c clock.Clock, keys []string, id run.ID, deadline time.Time) error {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	var timer clock.Timer
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := deadline.Sub(c.Now())
		if d <= 0 {
			d = 0
		}
		timer = c.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C()
	}
	for {
		l.mu.Lock()
		free := true
		for _, k := range keys {
			if h, ok := l.held[k]; ok && h != id {
				free = false
				break
			}
		}
		if free {
			for _, k := range keys {
				l.held[k] = id
			}
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return errDeadline
		case <-ch:
		}
	}
}

// release frees the keys id holds.
func (l *clusterLocks) release(keys []string, id run.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if l.held[k] == id {
			delete(l.held, k)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// holder reports which run holds a cluster, for status.
func (l *clusterLocks) holder(key string) (run.ID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.held[key]
	return id, ok
}
