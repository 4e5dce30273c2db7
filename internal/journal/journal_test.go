package journal

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// impl is one Journal implementation under the shared suite. reopen closes
// the journal and opens it again; for Memory it returns nil (nothing
// survives).
type impl struct {
	name   string
	open   func(t *testing.T) Journal
	reopen func(t *testing.T, j Journal) Journal
}

func openBoltAt(t *testing.T, path string) *Bolt {
	t.Helper()
	j, err := Open(path, Options{NoSync: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func impls() []impl {
	return []impl{
		{
			name: "bolt",
			open: func(t *testing.T) Journal {
				return openBoltAt(t, filepath.Join(t.TempDir(), "state.db"))
			},
			reopen: func(t *testing.T, j Journal) Journal {
				b := j.(*Bolt)
				if err := b.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return openBoltAt(t, b.Path())
			},
		},
		{
			name:   "memory",
			open:   func(*testing.T) Journal { return NewMemory() },
			reopen: func(*testing.T, Journal) Journal { return nil },
		},
	}
}

// forEach runs test against a fresh journal of every implementation.
func forEach(t *testing.T, test func(t *testing.T, j Journal, im impl)) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) { test(t, im.open(t), im) })
	}
}

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

var (
	tgtA = run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod"}
	tgtB = run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-2"}
	tgtC = run.Target{ProjectID: "42b6e34b3d91647abb20e7b8", Cluster: "prod"}
)

// mk is a run with a readable id, created at created.
func mk(id, policy string, tgt run.Target, created time.Time, stage run.Stage) run.Run {
	return run.Run{
		ID: run.ID(id), Policy: policy, Action: run.ActionSnapshot, Target: tgt,
		Slot: created, ScheduledAt: created, Stage: stage,
		CreatedAt: created, StageStartedAt: created, UpdatedAt: created,
	}
}

func mustPut(t *testing.T, j Journal, rs ...run.Run) {
	t.Helper()
	for _, r := range rs {
		if err := j.Put(r); err != nil {
			t.Fatalf("Put(%s): %v", r.ID, err)
		}
	}
}

func ids(rs []run.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.ID)
	}
	return out
}

// historyCase is a History query and the ids it must return, in order.
type historyCase struct {
	name string
	q    Query
	want []string
}

func checkHistory(t *testing.T, j Journal, cases []historyCase) {
	t.Helper()
	for _, c := range cases {
		if got := history(t, j, c.q); !slices.Equal(got, c.want) {
			t.Errorf("%s: History = %v; want %v", c.name, got, c.want)
		}
	}
}

func history(t *testing.T, j Journal, q Query) []string {
	t.Helper()
	rs, err := j.History(q)
	if err != nil {
		t.Fatalf("History(%+v): %v", q, err)
	}
	return ids(rs)
}

func active(t *testing.T, j Journal) []string {
	t.Helper()
	rs, err := j.Active()
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	return ids(rs)
}

func summaries(t *testing.T, j Journal) []Summary {
	t.Helper()
	s, err := j.Summaries()
	if err != nil {
		t.Fatalf("Summaries: %v", err)
	}
	return s
}

func TestPutGetReplace(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		if _, found, err := j.Get("nope"); err != nil || found {
			t.Fatalf("Get(missing) = found %v, err %v; want not found", found, err)
		}
		r := mk("r1", "nightly", tgtA, at(0), run.StagePending)
		r.Manual = true
		mustPut(t, j, r)
		r.Stages = []run.StageEntry{{Stage: run.StagePending, At: at(0)}}
		got, found, err := j.Get("r1")
		if err != nil || !found || !reflect.DeepEqual(got, r) {
			t.Fatalf("Get = %+v, %v, %v; want %+v", got, found, err, r)
		}

		r.Stage, r.SnapshotRequested, r.SnapshotID, r.UpdatedAt = run.StageSnapshotting, true, "snap-1", at(1)
		r.Stages = nil // the journal keeps the history, whatever the caller says
		mustPut(t, j, r)
		r.Stages = []run.StageEntry{{Stage: run.StagePending, At: at(0)}, {Stage: run.StageSnapshotting, At: at(0)}}
		got, _, _ = j.Get("r1")
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("after replace Get = %+v; want %+v", got, r)
		}
		if h := history(t, j, Query{}); !slices.Equal(h, []string{"r1"}) {
			t.Fatalf("replace must not duplicate history: %v", h)
		}
	})
}

func TestPutReturnsCopiesAndRejectsBadIDs(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		err := j.Put(run.Run{Policy: "nightly"})
		if err == nil || !strings.Contains(err.Error(), "empty run id") {
			t.Fatalf("Put without id: err = %v; want a clear error", err)
		}
		err = j.Put(run.Run{ID: run.ID(strings.Repeat("x", maxIDLen+1))})
		if err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("Put with a huge id: err = %v; want a clear error", err)
		}
		// Local times come back as the same instants.
		berlin := time.FixedZone("CET", 3600)
		r := mk("r1", "nightly", tgtA, at(0).In(berlin), run.StagePending)
		mustPut(t, j, r)
		got, _, _ := j.Get("r1")
		if !got.CreatedAt.Equal(r.CreatedAt) || !got.Slot.Equal(r.Slot) {
			t.Fatalf("times changed: got %v, want %v", got.CreatedAt, r.CreatedAt)
		}
	})
}

func TestActiveIndex(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, im impl) {
		if a := active(t, j); len(a) != 0 {
			t.Fatalf("empty journal Active = %v", a)
		}
		r1 := mk("r1", "nightly", tgtA, at(3), run.StagePending)
		r2 := mk("r2", "nightly", tgtB, at(1), run.StageWaiting)
		r3 := mk("r3", "weekly", tgtA, at(2), run.StageSnapshotting)
		done := mk("r0", "nightly", tgtC, at(0), run.StageSkipped)
		mustPut(t, j, r1, r2, r3, done)
		if a := active(t, j); !slices.Equal(a, []string{"r2", "r3", "r1"}) {
			t.Fatalf("Active = %v; want oldest first [r2 r3 r1], terminal r0 absent", a)
		}

		r2.Stage = run.StageSucceeded
		r3.Stage, r3.Reason = run.StageFailed, run.ReasonTimeout
		mustPut(t, j, r2, r3)
		if a := active(t, j); !slices.Equal(a, []string{"r1"}) {
			t.Fatalf("after r2, r3 ended Active = %v; want [r1]", a)
		}
		r1.Stage = run.StageExporting
		mustPut(t, j, r1)
		if a := active(t, j); !slices.Equal(a, []string{"r1"}) {
			t.Fatalf("stage change inside active: Active = %v; want [r1]", a)
		}

		if j2 := im.reopen(t, j); j2 != nil {
			if a := active(t, j2); !slices.Equal(a, []string{"r1"}) {
				t.Fatalf("after reopen Active = %v; want [r1]", a)
			}
		}
	})
}

func TestHistoryOrderFilterLimit(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		// "nightly" is a prefix of "nightly-2", and cluster "prod" of
		// "prod-2": filters must not leak across them.
		mustPut(t, j,
			mk("a", "nightly", tgtA, at(0), run.StageSucceeded),
			mk("b", "nightly", tgtB, at(1), run.StageFailed),
			mk("c", "nightly-2", tgtA, at(2), run.StageSucceeded),
			mk("d", "nightly", tgtC, at(3), run.StageSucceeded),
			mk("e", "nightly", tgtA, at(4), run.StagePending),
			// Same instant: ties are broken by descending ID.
			mk("f1", "nightly", tgtA, at(5), run.StageSucceeded),
			mk("f2", "nightly-2", tgtB, at(5), run.StageSkipped),
		)
		checkHistory(t, j, []historyCase{
			{"all", Query{}, []string{"f2", "f1", "e", "d", "c", "b", "a"}},
			{"policy", Query{Policy: "nightly"}, []string{"f1", "e", "d", "b", "a"}},
			{"other policy", Query{Policy: "nightly-2"}, []string{"f2", "c"}},
			{"unknown policy", Query{Policy: "nightl"}, nil},
			{"target", Query{Target: &tgtA}, []string{"f1", "e", "c", "a"}},
			{"target prefix", Query{Target: &tgtB}, []string{"f2", "b"}},
			{"policy and target", Query{Policy: "nightly", Target: &tgtA}, []string{"f1", "e", "a"}},
			{"limit", Query{Limit: 3}, []string{"f2", "f1", "e"}},
			{"policy limit", Query{Policy: "nightly", Limit: 2}, []string{"f1", "e"}},
			{"before", Query{Before: at(4)}, []string{"d", "c", "b", "a"}},
			{"before tie", Query{Before: at(5)}, []string{"e", "d", "c", "b", "a"}},
			{"before policy target limit", Query{Policy: "nightly", Target: &tgtA, Before: at(4), Limit: 5}, []string{"a"}},
			{"before everything", Query{Before: at(0)}, nil},
			{"before the future", Query{Policy: "nightly-2", Before: at(100)}, []string{"f2", "c"}},
		})

		// Paging with Before = CreatedAt of the last run returned.
		var pages [][]string
		q := Query{Policy: "nightly", Limit: 2}
		for {
			rs, err := j.History(q)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				break
			}
			pages = append(pages, ids(rs))
			q.Before = rs[len(rs)-1].CreatedAt
		}
		if fmt.Sprint(pages) != "[[f1 e] [d b] [a]]" {
			t.Errorf("pages = %v", pages)
		}

		// Moving a run in time and to another target re-indexes it.
		moved := mk("a", "nightly", tgtB, at(6), run.StageSucceeded)
		mustPut(t, j, moved)
		if got := history(t, j, Query{Target: &tgtA}); !slices.Equal(got, []string{"f1", "e", "c"}) {
			t.Errorf("after moving a to tgtB, tgtA history = %v", got)
		}
		if got := history(t, j, Query{Policy: "nightly", Target: &tgtB}); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("after moving a to tgtB, nightly/tgtB history = %v", got)
		}
		if got := history(t, j, Query{Limit: 2}); !slices.Equal(got, []string{"a", "f2"}) {
			t.Errorf("after moving a to at(6), newest = %v", got)
		}
	})
}

func TestSummaries(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, im impl) {
		r := mk("r1", "nightly", tgtA, at(0), run.StagePending)
		mustPut(t, j, r)
		r.Stage, r.SnapshotStatus, r.UpdatedAt = run.StageSnapshotting, "queued", at(1)
		mustPut(t, j, r)
		if s := summaries(t, j); len(s) != 0 {
			t.Fatalf("no run ended, no stage succeeded, yet Summaries = %+v", s)
		}

		// The snapshot completes at 2:00; later Puts repeat the status and
		// must not move the time; the size arrives later.
		r.SnapshotStatus, r.UpdatedAt = "completed", at(2)
		mustPut(t, j, r)
		r.Stage, r.ExportJobID, r.UpdatedAt = run.StageExporting, "exp-1", at(3)
		mustPut(t, j, r)
		r.SnapshotBytes, r.UpdatedAt = 1234, at(4)
		mustPut(t, j, r)
		if s := summaries(t, j); len(s) != 1 || s[0].LastSnapshotBytes != 1234 {
			t.Fatalf("a size known after the snapshot completed is not in the summary: %+v", s)
		}
		r.Stage, r.UpdatedAt, r.FinishedAt = run.StageSucceeded, at(5), at(5)
		mustPut(t, j, r)

		s := summaries(t, j)
		if len(s) != 1 {
			t.Fatalf("Summaries = %+v; want one", s)
		}
		want := Summary{
			Policy: "nightly", Target: tgtA, Last: &r,
			LastSuccess:       map[string]time.Time{SuccessSnapshot: at(2), SuccessExport: at(5)},
			LastSnapshotBytes: 1234,
		}
		if !reflect.DeepEqual(s[0], want) {
			t.Fatalf("Summary = %+v (last %+v); want %+v", s[0], s[0].Last, want)
		}

		// A failure ends later: it becomes Last; successes stay.
		f := mk("r2", "nightly", tgtA, at(6), run.StageFailed)
		f.Reason, f.UpdatedAt, f.FinishedAt = run.ReasonTimeout, at(8), at(8)
		mustPut(t, j, f)
		// A skip created after r2 but that ended before it does not replace it.
		sk := mk("r3", "nightly", tgtA, at(7), run.StageSkipped)
		sk.Reason = run.ReasonOverlap
		mustPut(t, j, sk)
		// An older snapshot success arriving late does not move time or size back.
		late := mk("r0", "nightly", tgtA, at(-5), run.StageSucceeded)
		late.SnapshotStatus, late.SnapshotBytes, late.UpdatedAt = "completed", 99, at(-4)
		mustPut(t, j, late)
		s = summaries(t, j)
		if s[0].Last == nil || s[0].Last.ID != "r2" {
			t.Fatalf("Last = %+v; want r2 (ended last)", s[0].Last)
		}
		if got := s[0].LastSuccess[SuccessSnapshot]; !got.Equal(at(2)) || s[0].LastSnapshotBytes != 1234 {
			t.Fatalf("late old success moved snapshot success to %v / %d bytes", got, s[0].LastSnapshotBytes)
		}

		// Export-only runs do not count as snapshots; flex restores count as restores.
		ex := mk("x1", "weekly", tgtA, at(10), run.StageSucceeded)
		ex.Action, ex.SnapshotStatus, ex.SnapshotBytes, ex.ExportJobID, ex.UpdatedAt = run.ActionExport, "completed", 5, "exp-9", at(11)
		fr := mk("f1", "refresh", tgtC, at(10), run.StageRestoring)
		fr.Action, fr.RestoreJobID, fr.RestoreStatus, fr.UpdatedAt = run.ActionFlexRestore, "rj", "COMPLETED", at(12)
		mustPut(t, j, ex, fr)
		s = summaries(t, j)
		if len(s) != 3 || s[0].Policy != "nightly" || s[1].Policy != "refresh" || s[2].Policy != "weekly" {
			t.Fatalf("Summaries not ordered by policy: %+v", s)
		}
		if want := map[string]time.Time{SuccessRestore: at(12)}; !reflect.DeepEqual(s[1].LastSuccess, want) || s[1].Last != nil {
			t.Errorf("restore summary = %+v; want LastSuccess %v and no Last (still restoring)", s[1], want)
		}
		if want := map[string]time.Time{SuccessExport: at(11)}; !reflect.DeepEqual(s[2].LastSuccess, want) || s[2].LastSnapshotBytes != 0 {
			t.Errorf("export-only summary = %+v; want only export success %v", s[2], want)
		}

		// Returned summaries are copies.
		s[0].LastSuccess[SuccessSnapshot] = at(100)
		s[0].Last.Detail = "scribbled"
		again := summaries(t, j)
		if !again[0].LastSuccess[SuccessSnapshot].Equal(at(2)) || again[0].Last.Detail != "" {
			t.Fatalf("Summaries shares memory with the journal: %+v", again[0])
		}

		if j2 := im.reopen(t, j); j2 != nil {
			if got := summaries(t, j2); !reflect.DeepEqual(got, again) {
				t.Fatalf("after reopen Summaries = %+v; want %+v", got, again)
			}
		}
	})
}

// TestSummaryFollowsARunThatMoves: a run re-recorded under another target
// or policy and back keeps the summary whose snapshot it is current,
// including a size that changed while it was elsewhere.
func TestSummaryFollowsARunThatMoves(t *testing.T) {
	moves := map[string]func(r *run.Run, away bool){
		"target": func(r *run.Run, away bool) {
			if r.Target = tgtB; away {
				r.Target = tgtA
			}
		},
		"policy": func(r *run.Run, away bool) {
			if r.Policy = "nightly"; away {
				r.Policy = "weekly"
			}
		},
	}
	for name, move := range moves {
		t.Run(name, func(t *testing.T) {
			forEach(t, func(t *testing.T, j Journal, _ impl) {
				r := mk("r1", "nightly", tgtB, at(0), run.StageSnapshotting)
				r.SnapshotStatus, r.SnapshotBytes, r.UpdatedAt = "completed", 100, at(1)
				mustPut(t, j, r)
				move(&r, true)
				r.UpdatedAt = at(2)
				mustPut(t, j, r)
				r.SnapshotBytes, r.UpdatedAt = 200, at(3)
				mustPut(t, j, r)
				move(&r, false)
				r.UpdatedAt = at(4)
				mustPut(t, j, r)
				s := summaries(t, j)
				if len(s) != 1 || s[0].Policy != "nightly" || s[0].Target != tgtB || s[0].LastSnapshotBytes != 200 {
					t.Fatalf("Summaries = %+v; want one for nightly on %v with 200 bytes", s, tgtB)
				}
			})
		})
	}
}

func TestSummaryOrderAcrossTargets(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		for _, r := range []run.Run{
			mk("1", "b", tgtA, at(0), run.StageSucceeded),
			mk("2", "a-b", tgtA, at(0), run.StageSucceeded),
			mk("3", "a", tgtC, at(0), run.StageSucceeded),
			mk("4", "a", tgtB, at(0), run.StageSucceeded),
			mk("5", "a", tgtA, at(0), run.StageSucceeded),
		} {
			mustPut(t, j, r)
		}
		var got []string
		for _, s := range summaries(t, j) {
			got = append(got, s.Policy+" "+s.Target.String())
		}
		want := []string{
			"a " + tgtA.String(), "a " + tgtB.String(), "a " + tgtC.String(),
			"a-b " + tgtA.String(), "b " + tgtA.String(),
		}
		if !slices.Equal(got, want) {
			t.Fatalf("order = %q; want %q", got, want)
		}
	})
}

func TestMarks(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, im impl) {
		if _, found, err := j.Mark("nightly/p/c"); err != nil || found {
			t.Fatalf("Mark(missing) = %v, %v", found, err)
		}
		m := Mark{LastSlot: at(1), Since: at(0), Schedule: "0 2 * * *"}
		if err := j.SetMark("nightly/p/c", m); err != nil {
			t.Fatal(err)
		}
		if err := j.SetMark("other", Mark{Schedule: "@hourly"}); err != nil {
			t.Fatal(err)
		}
		m.LastSlot = at(25)
		if err := j.SetMark("nightly/p/c", m); err != nil {
			t.Fatal(err)
		}
		got, found, err := j.Mark("nightly/p/c")
		if err != nil || !found || !reflect.DeepEqual(got, m) {
			t.Fatalf("Mark = %+v, %v, %v; want %+v", got, found, err, m)
		}
		if err := j.DeleteMark("other"); err != nil {
			t.Fatal(err)
		}
		if err := j.DeleteMark("never-set"); err != nil {
			t.Fatalf("DeleteMark(missing) = %v; want nil", err)
		}
		if _, found, _ := j.Mark("other"); found {
			t.Fatal("deleted mark still present")
		}
		if err := j.SetMark("", m); err == nil || !strings.Contains(err.Error(), "empty mark key") {
			t.Fatalf("SetMark(\"\") = %v; want a clear error", err)
		}
		if j2 := im.reopen(t, j); j2 != nil {
			if got, found, _ := j2.Mark("nightly/p/c"); !found || !reflect.DeepEqual(got, m) {
				t.Fatalf("after reopen Mark = %+v, %v", got, found)
			}
		}
	})
}

func TestPrune(t *testing.T) {
	setup := func(t *testing.T, j Journal) {
		// t1..t10 terminal at hours 1..10 on alternating targets; two
		// active runs older than all of them.
		for i := 1; i <= 10; i++ {
			tgt := tgtA
			if i%2 == 0 {
				tgt = tgtB
			}
			r := mk(fmt.Sprintf("t%02d", i), "nightly", tgt, at(i), run.StageSucceeded)
			r.SnapshotStatus = "completed"
			mustPut(t, j, r)
		}
		mustPut(t, j,
			mk("act1", "nightly", tgtA, at(-10), run.StageExporting),
			mk("act2", "weekly", tgtB, at(-9), run.StageWaiting))
	}
	now := at(12)
	cases := []struct {
		name     string
		keep     int
		maxAge   time.Duration
		removed  int
		wantHist []string
	}{
		{"count", 3, 0, 7, []string{"t10", "t09", "t08", "act2", "act1"}},
		{"age", 0, 4 * time.Hour, 7, []string{"t10", "t09", "t08", "act2", "act1"}}, // t08 is exactly 4h old: kept
		{"age wins", 5, 3*time.Hour + time.Minute, 8, []string{"t10", "t09", "act2", "act1"}},
		{"count wins", 2, 6 * time.Hour, 8, []string{"t10", "t09", "act2", "act1"}},
		{"keep all", 20, 0, 0, nil},
		{"no limits", 0, 0, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEach(t, func(t *testing.T, j Journal, im impl) {
				setup(t, j)
				before := summaries(t, j)
				all := history(t, j, Query{})
				if pt, err := j.PrunedThrough(); err != nil || !pt.IsZero() {
					t.Fatalf("PrunedThrough before any prune = %v, %v; want zero", pt, err)
				}
				created := map[string]time.Time{}
				for _, id := range all {
					r, _, _ := j.Get(run.ID(id))
					created[id] = r.CreatedAt
				}
				n, err := j.Prune(now, c.keep, c.maxAge)
				if err != nil || n != c.removed {
					t.Fatalf("Prune = %d, %v; want %d", n, err, c.removed)
				}
				want := c.wantHist
				if want == nil {
					want = all
				}
				if got := history(t, j, Query{}); !slices.Equal(got, want) {
					t.Fatalf("history after prune = %v; want %v", got, want)
				}
				// Every index forgot the pruned runs.
				var viaIndexes []string
				for _, q := range []Query{{Policy: "nightly", Target: &tgtA}, {Policy: "nightly", Target: &tgtB}, {Policy: "weekly"}} {
					viaIndexes = append(viaIndexes, history(t, j, q)...)
				}
				slices.Sort(viaIndexes)
				sorted := slices.Sorted(slices.Values(want))
				if !slices.Equal(viaIndexes, sorted) {
					t.Fatalf("filtered histories = %v; want %v", viaIndexes, sorted)
				}
				for _, id := range all {
					_, found, _ := j.Get(run.ID(id))
					if found != slices.Contains(want, id) {
						t.Fatalf("Get(%s) found = %v after prune", id, found)
					}
				}
				if a := active(t, j); !slices.Equal(a, []string{"act1", "act2"}) {
					t.Fatalf("Active after prune = %v", a)
				}
				if got := summaries(t, j); !reflect.DeepEqual(got, before) {
					t.Fatalf("Prune changed summaries: %+v -> %+v", before, got)
				}
				// Pruning again finds nothing more.
				if n, err := j.Prune(now, c.keep, c.maxAge); err != nil || n != 0 {
					t.Fatalf("second Prune = %d, %v; want 0", n, err)
				}
				// PrunedThrough is the newest creation time pruned, and it
				// survives a reopen.
				var wantPT time.Time
				for _, id := range all {
					if !slices.Contains(want, id) && created[id].After(wantPT) {
						wantPT = created[id]
					}
				}
				if re := im.reopen(t, j); re != nil {
					j = re
				}
				if pt, err := j.PrunedThrough(); err != nil || !pt.Equal(wantPT) {
					t.Fatalf("PrunedThrough = %v, %v; want %v", pt, err, wantPT)
				}
			})
		})
	}
}

func TestPruneManyBatches(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		const batch = 4
		if b, ok := j.(*Bolt); ok {
			b.pruneBatch = batch
		}
		const n = 2*batch + 7
		mustPut(t, j, mk("active", "nightly", tgtA, t0.Add(-time.Hour), run.StagePending))
		for i := range n {
			mustPut(t, j, mk(fmt.Sprintf("r%02d", i), "nightly", tgtA, t0.Add(time.Duration(i)*time.Minute), run.StageSucceeded))
		}
		removed, err := j.Prune(at(1000), 5, 0)
		if err != nil || removed != n-5 {
			t.Fatalf("Prune = %d, %v; want %d", removed, err, n-5)
		}
		want := []string{"r14", "r13", "r12", "r11", "r10", "active"}
		if got := history(t, j, Query{}); !slices.Equal(got, want) {
			t.Fatalf("history = %v; want %v", got, want)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		const workers, perWorker = 4, 12
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					r := mk(fmt.Sprintf("w%d-%02d", w, i), fmt.Sprintf("p%d", w), tgtA, at(i), run.StagePending)
					for _, st := range []run.Stage{run.StagePending, run.StageSnapshotting, run.StageSucceeded} {
						r.Stage = st
						if err := j.Put(r); err != nil {
							errs <- err
							return
						}
						if _, found, err := j.Get(r.ID); err != nil || !found {
							errs <- fmt.Errorf("Get(%s) = %v, %v", r.ID, found, err)
							return
						}
						if _, err := j.History(Query{Policy: r.Policy, Limit: 3}); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if h := history(t, j, Query{}); len(h) != workers*perWorker {
			t.Fatalf("history has %d runs; want %d", len(h), workers*perWorker)
		}
		if a := active(t, j); len(a) != 0 {
			t.Fatalf("Active = %v; want none", a)
		}
		if s := summaries(t, j); len(s) != workers {
			t.Fatalf("%d summaries; want %d", len(s), workers)
		}
	})
}

// TestClosedJournalFails: use after Close is an error, not a panic.
func TestClosedJournalFails(t *testing.T) {
	b := openBoltAt(t, filepath.Join(t.TempDir(), "state.db"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err := b.Put(mk("r1", "nightly", tgtA, at(0), run.StagePending))
	if err == nil || !strings.Contains(err.Error(), b.Path()) {
		t.Fatalf("Put after Close = %v; want an error naming the file", err)
	}
	if _, _, err := b.Get("r1"); err == nil {
		t.Fatal("Get after Close succeeded")
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		t.Fatalf("a closed journal is not a corrupt one: %v", err)
	}
}
