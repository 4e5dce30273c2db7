package journal

import (
	"bytes"
	"fmt"
	"reflect"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

// updateRollup keeps the rollup equal to the report views of the stored
// terminal runs, in the caller's transaction (putTx's): a run that ends
// is added to its day's record, a terminal run put again replaces its own
// entry (never a second one), a run that is no longer terminal leaves it.
// A stage change of a run in flight reads nothing here.
//
// A run put without a stored version may have been pruned after it ended
// (its outcome outlives it): put again in flight (a run recreated from its
// markers), its old outcome is dropped, so it counts as in flight once.
// A run's policy, target and slot are its identity (its ID derives from
// them): a pruned run put again under others would leave its old outcome.
func updateRollup(tx *bolt.Tx, rel *pageReleaser, old *run.Run, r run.Run) error {
	wasIn := old != nil && old.Stage.Terminal()
	isIn := r.Stage.Terminal()
	if old == nil && !isIn {
		old, wasIn = &r, true
	}
	if !wasIn && !isIn {
		return nil
	}
	var oldView, view run.Run
	var oldKey, key []byte
	if wasIn {
		oldView = ReportView(*old)
		oldKey = rollupKey(old.Target, old.Policy, dayOf(ReportTime(*old)))
	}
	if isIn {
		view = ReportView(r)
		key = rollupKey(r.Target, r.Policy, dayOf(ReportTime(r)))
		if wasIn && bytes.Equal(oldKey, key) && reflect.DeepEqual(oldView, view) {
			return nil
		}
	}
	bk, days := tx.Bucket(bucketRollup), tx.Bucket(bucketRollupDays)
	if wasIn && !bytes.Equal(oldKey, key) {
		rel.note(1)
		rec, err := readDayRecord(bk, oldKey)
		if err != nil {
			return err
		}
		if rec.remove(old.ID) {
			if err := writeDayRecord(bk, days, oldKey, rec, rel); err != nil {
				return err
			}
		}
	}
	if !isIn {
		return nil
	}
	rel.note(1)
	rec, err := readDayRecord(bk, key)
	if err != nil {
		return err
	}
	if rec == nil {
		rel.note(1)
		dk := rollupDayKey(key)
		if err := days.Put(dk, seal(dk, nil)); err != nil {
			return fmt.Errorf("index the rollup's day: %w", err)
		}
	}
	rec.upsert(view)
	return writeDayRecord(bk, days, key, rec, rel)
}

// readDayRecord reads the record under key; nil when there is none.
func readDayRecord(bk *bolt.Bucket, key []byte) (dayRecord, error) {
	v := bk.Get(key)
	if v == nil {
		return nil, nil
	}
	p, err := unseal(bucketRollup, key, v)
	if err != nil {
		return nil, err
	}
	t, policy, d, err := parseRollupKey(key)
	if err != nil {
		return nil, err
	}
	return decodeDayRecord(t, policy, d, p)
}

// writeDayRecord stores rec under key, or deletes the record and its day
// entry when rec is empty.
func writeDayRecord(bk, days *bolt.Bucket, key []byte, rec dayRecord, rel *pageReleaser) error {
	if len(rec) == 0 {
		rel.note(1)
		if err := days.Delete(rollupDayKey(key)); err != nil {
			return fmt.Errorf("unindex the rollup's day: %w", err)
		}
		if err := bk.Delete(key); err != nil {
			return fmt.Errorf("delete a rollup record: %w", err)
		}
		return nil
	}
	if err := bk.Put(key, seal(key, encodeDayRecord(binaryDay(key), rec))); err != nil {
		return fmt.Errorf("store the rollup record: %w", err)
	}
	return nil
}

func binaryDay(key []byte) uint32 {
	k := key[len(key)-4:]
	return uint32(k[0])<<24 | uint32(k[1])<<16 | uint32(k[2])<<8 | uint32(k[3])
}

// Outcomes implements Journal: it walks the rollup in key order (target,
// policy, day), seeking past every (policy, target) q.Keep refuses and
// every day outside the period, so a report of 30 days reads 30 records a
// pair whatever the horizon holds.
func (b *Bolt) Outcomes(q OutcomeQuery, fn func(run.Run) error) error {
	if !q.From.Before(q.To) {
		return nil
	}
	h, err := b.Horizon()
	if err != nil {
		return err
	}
	fromDay, toDay := dayOf(q.From), dayOf(q.To.Add(-time.Nanosecond))
	err = b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRollup).Cursor()
		n := 0
		for k, v := c.First(); k != nil; {
			if n++; n%4 == 0 { // records of a cluster are ~2 KB: a release per few pages
				b.rel.touch(tx, 1)
			}
			t, policy, d, err := parseRollupKey(k)
			if err != nil {
				return err
			}
			prefix := rollupPrefix(t, policy)
			switch {
			case q.Keep != nil && !q.Keep(policy, t), d > toDay:
				k, v = c.Seek(prefixEnd(prefix))
				continue
			case d < fromDay:
				k, v = c.Seek(rollupKey(t, policy, fromDay))
				continue
			}
			p, err := unseal(bucketRollup, k, v)
			if err != nil {
				return err
			}
			rec, err := decodeDayRecord(t, policy, d, p)
			if err != nil {
				return err
			}
			for _, r := range rec {
				at := ReportTime(r)
				if at.Before(q.From) || !at.Before(q.To) || r.CreatedAt.Before(h.Since) {
					continue
				}
				if err := fn(r); err != nil {
					return err
				}
			}
			k, v = c.Next()
		}
		return nil
	})
	return b.wrap("read the rollup", err)
}

// Horizon implements Journal.
func (b *Bolt) Horizon() (Horizon, error) {
	var h Horizon
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		if h.Since, err = metaTime(tx, keyRollupSince); err != nil {
			return err
		}
		h.PrunedBefore, err = metaTime(tx, keyRollupPruned)
		return err
	})
	if err != nil {
		return Horizon{}, b.wrap("read the rollup's horizon", err)
	}
	return h, nil
}

// metaTime reads an appendTime value of meta (zero when absent).
func metaTime(tx *bolt.Tx, key []byte) (time.Time, error) {
	raw := tx.Bucket(bucketMeta).Get(key)
	if raw == nil {
		return time.Time{}, nil
	}
	p, err := unseal(bucketMeta, key, raw)
	if err != nil {
		return time.Time{}, err
	}
	if len(p) != timeKeyLen {
		return time.Time{}, damagef("%s is %d bytes long, not %d", key, len(p), timeKeyLen)
	}
	return parseTimeKey(p), nil
}

// pruneRollupTx deletes up to limit rollup records of days before day,
// oldest first, and moves Horizon.PrunedBefore past them.
func pruneRollupTx(tx *bolt.Tx, day uint32, limit int, rel *pageReleaser) (int, error) {
	rel.maybeRelease(tx)
	bk, days := tx.Bucket(bucketRollup), tx.Bucket(bucketRollupDays)
	var keys [][]byte
	c := days.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
		if len(k) <= 4 {
			return 0, damagef("bucket %s has a malformed key %q", bucketRollupDays, k)
		}
		if binaryDay(k[:4]) >= day {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	var through uint32
	for _, dk := range keys {
		rel.note(2)
		rk := append(bytes.Clone(dk[4:]), dk[:4]...)
		if err := bk.Delete(rk); err != nil {
			return 0, fmt.Errorf("delete a rollup record: %w", err)
		}
		if err := days.Delete(dk); err != nil {
			return 0, fmt.Errorf("unindex the rollup's day: %w", err)
		}
		through = max(through, binaryDay(dk[:4]))
	}
	if len(keys) > 0 {
		prev, err := metaTime(tx, keyRollupPruned)
		if err != nil {
			return 0, err
		}
		if next := dayStart(through + 1); next.After(prev) {
			if err := tx.Bucket(bucketMeta).Put(keyRollupPruned, seal(keyRollupPruned, appendTime(nil, next))); err != nil {
				return 0, fmt.Errorf("record what was pruned of the rollup: %w", err)
			}
		}
	}
	return len(keys), nil
}
