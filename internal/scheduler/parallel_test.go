package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// TestParallelFiresEntriesTogetherEachInOrder: with Parallel, the entries
// due in one pass are fired at once (the first firing of every entry waits
// until all are in flight: fired one at a time, the loop would wait
// forever), an entry's own firings (its missed slot, recorded as skipped,
// then the slot on time) go
// one after the other in order, and an entry whose firing failed fires
// nothing more and keeps its mark while the others advance.
func TestParallelFiresEntriesTogetherEachInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := clock.NewFake(ts(t, "2026-01-10T10:00:10Z"))
		mem := newMemStore()
		keys := []string{"a", "b", "c", "fails"}
		var entries []Entry
		for _, k := range keys {
			mem.marks[k] = Mark{LastSlot: ts(t, "2026-01-10T08:00:00Z"), Spec: "0 * * * *"}
			entries = append(entries, keyed(t, k, "0 * * * *", 0, MissedSkip))
		}
		var (
			mu       sync.Mutex
			inFlight = map[string]bool{}
			got      = map[string][]Firing{}
			arrived  int
			all      = make(chan struct{})
		)
		fire := func(ctx context.Context, f Firing) error {
			k := f.Entry.Key
			mu.Lock()
			if inFlight[k] {
				t.Errorf("two firings of %s at once", k)
			}
			inFlight[k] = true
			got[k] = append(got[k], f)
			if arrived++; arrived == len(keys) {
				close(all)
			}
			mu.Unlock()
			<-all
			mu.Lock()
			inFlight[k] = false
			mu.Unlock()
			if k == "fails" {
				return errors.New("journal unavailable")
			}
			return nil
		}
		s := New(fake, mem, fire, Options{Parallel: 8})
		s.Set(entries)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		synctest.Wait()

		mu.Lock()
		if arrived < len(keys) {
			close(all) // let the loop go, so the bubble can end
		}
		mu.Unlock()
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if arrived < len(keys) {
			t.Fatalf("%d of %d entries were in flight at once, want all", arrived, len(keys))
		}
		for _, k := range keys[:3] {
			fs := got[k]
			if len(fs) != 2 || fs[0].Skip != run.ReasonMissed || !fs[0].Slot.Equal(ts(t, "2026-01-10T09:00:00Z")) || fs[1].Skip != "" || !fs[1].Slot.Equal(ts(t, "2026-01-10T10:00:00Z")) {
				t.Errorf("%s fired %s, want 09:00 skipped as missed, then 10:00", k, fmtFirings(fs))
			}
			if m, _ := mem.get(k); !m.LastSlot.Equal(ts(t, "2026-01-10T10:00:00Z")) {
				t.Errorf("mark of %s = %s, want 10:00", k, m.LastSlot)
			}
		}
		if fs := got["fails"]; len(fs) != 1 {
			t.Errorf("the failing entry fired %s, want only its first firing", fmtFirings(fs))
		}
		if m, _ := mem.get("fails"); !m.LastSlot.Equal(ts(t, "2026-01-10T08:00:00Z")) {
			t.Errorf("mark of the failing entry advanced to %s", m.LastSlot)
		}
	})
}

// TestParallelKeepsOneTargetsPoliciesInOrder: two policies due at the same
// moment on one cluster are fired one after the other, in key order, even
// with Parallel (which of them takes the cluster first must not depend on
// goroutine timing), while another target's goes beside them.
func TestParallelKeepsOneTargetsPoliciesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := clock.NewFake(ts(t, "2026-01-10T10:00:10Z"))
		mem := newMemStore()
		var entries []Entry
		for _, k := range []string{"b-daily", "a-hourly", "other"} {
			e := keyed(t, k, "0 * * * *", 0, MissedOnce)
			if k != "other" {
				e.Target.Cluster = "shared"
			}
			mem.marks[k] = Mark{LastSlot: ts(t, "2026-01-10T09:00:00Z"), Spec: "0 * * * *"}
			entries = append(entries, e)
		}
		var (
			mu       sync.Mutex
			order    []string
			inFlight = map[string]int{}
			most     = map[string]int{}
		)
		fire := func(ctx context.Context, f Firing) error {
			c := f.Entry.Target.Cluster
			mu.Lock()
			order = append(order, f.Entry.Key)
			inFlight[c]++
			most[c] = max(most[c], inFlight[c])
			mu.Unlock()
			time.Sleep(time.Second) // the journal commit, in virtual time
			mu.Lock()
			inFlight[c]--
			mu.Unlock()
			return nil
		}
		s := New(fake, mem, fire, Options{Parallel: 8})
		s.Set(entries)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		var shared []string
		for _, k := range order {
			if k != "other" {
				shared = append(shared, k)
			}
		}
		if len(order) != 3 || len(shared) != 2 || shared[0] != "a-hourly" || shared[1] != "b-daily" {
			t.Errorf("fired %v, want a-hourly before b-daily on the shared cluster, and other", order)
		}
		if most["shared"] != 1 {
			t.Errorf("%d firings of the shared cluster at once, want one at a time", most["shared"])
		}
		if order[0] == "a-hourly" && order[1] == "b-daily" {
			t.Errorf("fired %v: the other target waited for the shared cluster's two firings", order)
		}
	})
}
