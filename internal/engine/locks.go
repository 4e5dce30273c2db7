package engine

import (
	"errors"
	"slices"
	"sync"

	"github.com/backupd/backupd/internal/run"
)

// errDeadline means a wait ran past its stage deadline.
var errDeadline = errors.New("deadline passed")

// clusterLocks gives one run at a time each cluster, across all policies:
// Atlas allows one on-demand snapshot in flight per cluster and one export
// per snapshot, so two of our own runs must never race for a cluster.
// Nobody blocks on a lock: a run that finds its cluster taken parks, and the
// release wakes it.
type clusterLocks struct {
	mu      sync.Mutex
	held    map[run.Target]run.ID
	waiters map[run.Target][]*task // runs to wake when the key is released
	wake    func(*task)
}

func newClusterLocks(wake func(*task)) *clusterLocks {
	return &clusterLocks{held: map[run.Target]run.ID{}, waiters: map[run.Target][]*task{}, wake: wake}
}

// tryAcquire takes every key for id if none is held by another run, and
// otherwise takes none. When it fails and w is not nil, w is woken once the
// key that stood in the way is released.
func (l *clusterLocks) tryAcquire(keys []run.Target, id run.ID, w *task) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if h, ok := l.held[k]; ok && h != id {
			if w != nil && !slices.Contains(l.waiters[k], w) {
				l.waiters[k] = append(l.waiters[k], w)
			}
			return false
		}
	}
	for _, k := range keys {
		l.held[k] = id
	}
	return true
}

// release frees the keys id holds and wakes the runs waiting for them.
func (l *clusterLocks) release(keys []run.Target, id run.ID) {
	l.mu.Lock()
	var wake []*task
	for _, k := range keys {
		if l.held[k] == id {
			delete(l.held, k)
			wake = append(wake, l.waiters[k]...)
			delete(l.waiters, k)
		}
	}
	l.mu.Unlock()
	for _, t := range wake {
		l.wake(t)
	}
}

// holder reports which run holds a cluster, for status.
func (l *clusterLocks) holder(key run.Target) (run.ID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.held[key]
	return id, ok
}
