package journal

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/backupd/backupd/internal/run"
)

// commitDB is a bbolt file with one bucket "k", closed at the end of t.
func commitDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("k"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// holdLeader starts a write that stays inside its transaction until the
// returned function is called, and waits until it is there: writes made
// meanwhile queue up behind it. Must run in a synctest bubble.
func holdLeader(t *testing.T, c *committer, wg *sync.WaitGroup) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	wg.Go(func() {
		if err := c.write(func(*bolt.Tx) error { <-gate; return nil }); err != nil {
			t.Errorf("held write: %v", err)
		}
	})
	synctest.Wait()
	return func() { close(gate) }
}

// put is a write storing key=value in bucket "k" that records the id of
// the transaction it ran in (the last one, if it was retried).
func put(key string, txID *int) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		*txID = tx.ID()
		return tx.Bucket([]byte("k")).Put([]byte(key), []byte("v"))
	}
}

// queued is how many writes wait in c's queue.
func queued(c *committer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func keys(t *testing.T, db *bolt.DB) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("k")).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLoneWriteCommitsAtOnce: with no commit in flight a write is its own
// leader; nothing waits for company (a timer here would never fire in a
// synctest bubble, whose clock stands still while goroutines run).
func TestLoneWriteCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := commitDB(t)
		c := &committer{db: db, max: maxCommitBatch}
		var first, second int
		if err := c.write(put("a", &first)); err != nil {
			t.Fatal(err)
		}
		if err := c.write(put("b", &second)); err != nil {
			t.Fatal(err)
		}
		if first == second {
			t.Fatalf("two sequential writes shared transaction %d", first)
		}
		if got := keys(t, db); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("keys = %v", got)
		}
	})
}

// TestWritesQueuedDuringACommitShareTheNext: writes that arrive while a
// commit is in flight are committed together in one transaction, at most
// max at a time, each returning once its own transaction is committed.
func TestWritesQueuedDuringACommitShareTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := commitDB(t)
		c := &committer{db: db, max: 16}
		var wg sync.WaitGroup
		release := holdLeader(t, c, &wg)

		const n = 40
		txOf := make([]int, n)
		for i := range n {
			wg.Go(func() {
				if err := c.write(put(fmt.Sprintf("k%02d", i), &txOf[i])); err != nil {
					t.Errorf("write %d: %v", i, err)
				}
			})
		}
		synctest.Wait() // all 40 are queued behind the held commit
		if q := queued(c); q != n {
			t.Fatalf("%d writes queued; want %d", q, n)
		}
		release()
		wg.Wait()

		sizes := map[int]int{}
		for _, id := range txOf {
			sizes[id]++
		}
		var got []int
		for _, s := range sizes {
			got = append(got, s)
		}
		slices.Sort(got)
		if !slices.Equal(got, []int{8, 16, 16}) {
			t.Fatalf("40 queued writes were committed in transactions of %v writes; want [8 16 16]", got)
		}
		if k := keys(t, db); len(k) != n {
			t.Fatalf("%d keys committed; want %d", len(k), n)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.leading || len(c.queue) != 0 {
			t.Fatalf("after the last commit: leading=%v, %d queued", c.leading, len(c.queue))
		}
	})
}

// TestFailingWriteFailsAlone: a write whose function fails gets its own
// error and leaves no trace; the writes batched with it are committed.
func TestFailingWriteFailsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := commitDB(t)
		c := &committer{db: db, max: maxCommitBatch}
		var wg sync.WaitGroup
		release := holdLeader(t, c, &wg)

		errBad := errors.New("bad record")
		var txA, txC, txB int
		errs := make([]error, 3)
		wg.Go(func() { errs[0] = c.write(put("a", &txA)) })
		synctest.Wait()
		wg.Go(func() {
			errs[1] = c.write(func(tx *bolt.Tx) error {
				if err := put("b", &txB)(tx); err != nil {
					return err
				}
				return errBad
			})
		})
		synctest.Wait()
		wg.Go(func() { errs[2] = c.write(put("c", &txC)) })
		synctest.Wait()
		release()
		wg.Wait()

		if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], errBad) {
			t.Fatalf("errors = %v; want nil, %v, nil", errs, errBad)
		}
		if txA != txC {
			t.Fatalf("a and c were committed in transactions %d and %d; want one", txA, txC)
		}
		if got := keys(t, db); !slices.Equal(got, []string{"a", "c"}) {
			t.Fatalf("keys = %v; want [a c] (b's write rolled back)", got)
		}
	})
}

// TestCommitErrorReachesEveryWrite: when the transaction itself fails,
// every write in it returns that error.
func TestCommitErrorReachesEveryWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &committer{db: db, max: maxCommitBatch}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = c.write(func(*bolt.Tx) error { return nil }) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, bolterrors.ErrDatabaseReadOnly) {
			t.Fatalf("write %d: err = %v; want the transaction's error", i, err)
		}
	}
}

// TestDamagedRunFailsOnlyItsOwnPut: a Put that finds the stored version
// of its run damaged fails with CorruptError; Puts of other runs committed
// in the same group are not affected. The rollup is written in each run's
// own transaction: the failed Put's end adds no outcome, the others' add
// theirs, once.
func TestDamagedRunFailsOnlyItsOwnPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := openBoltAt(t, filepath.Join(t.TempDir(), "state.db"))
		bad := mk("bad", "nightly", tgtA, at(0), run.StagePending)
		bad.Detail = "needle-in-the-file"
		mustPut(t, j, bad)
		damageAt(t, j.Path(), bad.Detail)

		var wg sync.WaitGroup
		release := holdLeader(t, &j.w, &wg)
		good := []run.Run{
			mk("good-1", "nightly", tgtB, at(1), run.StagePending),
			mk("good-2", "nightly", tgtC, at(2), run.StageSucceeded),
		}
		errs := make([]error, 3)
		wg.Go(func() { errs[0] = j.Put(good[0]) })
		synctest.Wait()
		bad.Stage = run.StageSucceeded
		wg.Go(func() { errs[1] = j.Put(bad) })
		synctest.Wait()
		wg.Go(func() { errs[2] = j.Put(good[1]) })
		synctest.Wait()
		if q := queued(&j.w); q != 3 {
			t.Fatalf("%d Puts queued; want 3 in one group", q)
		}
		release()
		wg.Wait()

		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("Puts of undamaged runs failed: %v, %v", errs[0], errs[2])
		}
		if !errors.Is(errs[1], ErrCorrupt) || !strings.Contains(errs[1].Error(), "checksum mismatch") {
			t.Fatalf("Put of the damaged run: err = %v; want CorruptError", errs[1])
		}
		for _, r := range good {
			if got, found, err := j.Get(r.ID); err != nil || !found || got.Stage != r.Stage {
				t.Fatalf("Get(%s) = %v, %v, %v", r.ID, got.Stage, found, err)
			}
		}
		if got, err := allOutcomes(j); err != nil || !slices.Equal(ids(got), []string{"good-2"}) {
			t.Fatalf("outcomes = %v, %v; want good-2's alone", ids(got), err)
		}
	})
}
