package journal

import (
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Every durable write (Put, SetMark, DeleteMark) is a
// function applied in a bbolt write transaction, and a transaction costs
// one fsync whatever it holds. Writes that arrive while a commit is in
// flight queue up; when it finishes, the first of them becomes the leader
// and commits everything queued in one transaction, for everyone. A lone
// writer finds no commit in flight and commits at once: no timer, no
// waiting for company (bbolt's DB.Batch waits up to MaxBatchDelay for it,
// which made a lone writer ~25x slower and its timer does not belong to a
// testing/synctest bubble).

// commitOp is one queued write.
type commitOp struct {
	apply func(tx *bolt.Tx) error
	// done receives either a lead hand-over or the write's outcome; one
	// slot is enough because a leader has read its hand-over before it
	// commits (and so before its outcome is sent).
	done chan commitResult
}

type commitResult struct {
	lead bool  // this op's goroutine is the leader now
	err  error // the outcome, when lead is false
}

// maxCommitBatch caps the writes one transaction takes from the queue.
// Committing reads every page the writes touch again (bbolt copies the
// changed leaves out of its memory map), so the cap bounds the mapped
// pages a commit brings back (see pageReleaser). A commit of 16 mapped up
// to 16 MiB at once in a fleet run, a quarter of the 64 MiB target
// (docs/journal.md, BenchmarkFleetRSS). 4 writes per fsync at 20 ms an
// fsync (a busy disk) is still 200 writes a second, eight times what
// 10,000 hourly targets write at real time.
const maxCommitBatch = 4

// committer serialises writes into group commits on db.
type committer struct {
	db  *bolt.DB
	max int // writes per transaction at most (maxCommitBatch)
	// begin runs first in every transaction (the journal releases mapped
	// pages there); nil for nothing.
	begin func(tx *bolt.Tx)

	mu      sync.Mutex
	queue   []*commitOp
	leading bool // a leader is committing, or has been handed the queue
}

// write applies apply in a committed, synced transaction, usually shared
// with other writes, and returns once that transaction is durable. It
// returns apply's own error (the transaction is then retried without it,
// so one bad write does not fail the others) or the commit's error.
func (c *committer) write(apply func(tx *bolt.Tx) error) error {
	op := &commitOp{apply: apply, done: make(chan commitResult, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, op)
	if c.leading {
		c.mu.Unlock()
		res := <-op.done
		if !res.lead {
			return res.err
		}
		c.mu.Lock()
	}
	// The leader is the queue's oldest write, so it is in its own batch.
	c.leading = true
	n := min(len(c.queue), max(c.max, 1))
	batch := c.queue[:n:n]
	if c.queue = c.queue[n:]; len(c.queue) == 0 {
		c.queue = nil
	}
	c.mu.Unlock()

	c.commit(batch)

	c.mu.Lock()
	if len(c.queue) > 0 {
		// Hand the queue to its oldest writer; leading stays true so
		// writes arriving meanwhile queue behind it.
		next := c.queue[0]
		c.mu.Unlock()
		next.done <- commitResult{lead: true}
	} else {
		c.leading = false
		c.mu.Unlock()
	}
	return (<-op.done).err
}

// commit applies batch in one transaction and tells every op its outcome.
// When an op fails, the transaction is rolled back, that op gets its
// error, and the others are committed without it.
func (c *committer) commit(batch []*commitOp) {
	for len(batch) > 0 {
		failed := -1
		var opErr error
		err := c.db.Update(func(tx *bolt.Tx) error {
			if c.begin != nil {
				c.begin(tx)
			}
			for i, op := range batch {
				if err := op.apply(tx); err != nil {
					failed, opErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, op := range batch {
				op.done <- commitResult{err: err}
			}
			return
		}
		batch[failed].done <- commitResult{err: opErr}
		batch = slices.Delete(batch, failed, failed+1)
	}
}
