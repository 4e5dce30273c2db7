package journal

import (
	"fmt"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Watched is a Journal that remembers whether its writes succeed. A journal
// that cannot be written (a full disk, an I/O error) stalls every run at
// its next transition, so it must show: readiness asks Health, and onError
// (metrics) hears of every failed write.
type Watched struct {
	Journal
	onError func(error)

	mu      sync.Mutex
	lastErr error // the last write's error; nil once a write succeeded
	failing int   // failed writes since the last success
}

// Watch wraps j. onError, if not nil, is called after every failed write.
func Watch(j Journal, onError func(error)) *Watched {
	return &Watched{Journal: j, onError: onError}
}

// Health is nil unless the last write failed: then it says how many writes
// have failed since the last success, and the last error.
func (w *Watched) Health() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastErr == nil {
		return nil
	}
	return fmt.Errorf("the journal cannot be written (%d writes failed since the last success): %w", w.failing, w.lastErr)
}

func (w *Watched) note(err error) error {
	w.mu.Lock()
	if err == nil {
		w.lastErr, w.failing = nil, 0
	} else {
		w.lastErr = err
		w.failing++
	}
	w.mu.Unlock()
	if err != nil && w.onError != nil {
		w.onError(err)
	}
	return err
}

// Put is Journal.Put, watched.
func (w *Watched) Put(r run.Run) error { return w.note(w.Journal.Put(r)) }

// SetMark is Journal.SetMark, watched.
func (w *Watched) SetMark(key string, m Mark) error { return w.note(w.Journal.SetMark(key, m)) }

// DeleteMark is Journal.DeleteMark, watched.
func (w *Watched) DeleteMark(key string) error { return w.note(w.Journal.DeleteMark(key)) }

// Prune is Journal.Prune, watched.
func (w *Watched) Prune(now time.Time, keepRuns int, maxAge time.Duration) (int, error) {
	n, err := w.Journal.Prune(now, keepRuns, maxAge)
	return n, w.note(err)
}
