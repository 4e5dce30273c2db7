package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// unknownPosts answers every snapshot POST as Atlas's 503 with Retry-After:
// 60 (outcome unknown) and logs the POSTs and lists in order.
type unknownPosts struct {
	engine.Atlas
	mu  sync.Mutex
	ops []timedOp
}

type timedOp struct {
	op string
	at time.Time
}

func (u *unknownPosts) note(op string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ops = append(u.ops, timedOp{op, time.Now()})
}

func (u *unknownPosts) TakeSnapshot(ctx context.Context, p, c string, req atlas.OnDemandSnapshotRequest) (*atlas.Snapshot, error) {
	u.note("post")
	return nil, &atlas.Error{Operation: "take_snapshot", Method: "POST", StatusCode: 503, RetryAfter: time.Minute, OutcomeUnknown: true, Attempts: 1}
}

func (u *unknownPosts) ListSnapshots(ctx context.Context, p, c string, k atlas.SnapshotKind) ([]atlas.Snapshot, error) {
	u.note("list")
	return u.Atlas.ListSnapshots(ctx, p, c, k)
}

// A snapshot POST whose outcome is unknown is not re-sent in a loop: the run
// parks at least Retry-After, lists before every re-send, and fails with
// timeout at the snapshot deadline.
func TestUnknownPostOutcomeBacksOffAndTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := fleet(t)
		u := &unknownPosts{}
		p := snapshotPolicy("nightly", "rs", false)
		p.Spec.Timeouts.Snapshot = 2 * time.Hour
		h := start(t, sim, journal.NewMemory(), []engine.Policy{p}, false, func(a engine.Atlas) engine.Atlas { u.Atlas = a; return u })
		defer h.stop()
		id := fire(t, h, p, "rs", slot)
		r := h.await(id)
		if r.Stage != run.StageFailed || r.Reason != run.ReasonTimeout || !strings.Contains(r.Detail, "timeouts.snapshot") {
			t.Fatalf("run = %s{%s} %q, want failed{timeout} on the snapshot deadline", r.Stage, r.Reason, r.Detail)
		}
		if took := r.FinishedAt.Sub(h.rec.entered(id, run.StageSnapshotting)); took != 2*time.Hour {
			t.Fatalf("snapshotting lasted %v, want the 2h deadline", took)
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		posts := 0
		var lastPost time.Time
		for i, o := range u.ops {
			if o.op != "post" {
				continue
			}
			posts++
			if posts > 1 {
				if u.ops[i-1].op != "list" {
					t.Fatalf("POST %d at %v was not preceded by a list (ops %v)", posts, o.at, u.ops)
				}
				if gap := o.at.Sub(lastPost); gap < time.Minute {
					t.Fatalf("POST %d came %v after the previous one, want at least Retry-After (1m)", posts, gap)
				}
			}
			lastPost = o.at
		}
		if posts < 2 || posts > 40 {
			t.Fatalf("%d POSTs in the 2h snapshot stage, want a few dozen at most (and a re-send)", posts)
		}
	})
}
