package journal

import (
	"fmt"
	"testing"

	"github.com/backupd/backupd/internal/run"
)

// TestHistoryCursorSinceKeep: BeforeID makes a (CreatedAt, ID) cursor
// exact, so paging never skips or repeats runs created at the same
// instant; Since stops the walk at runs older than it; Keep filters
// without shortening a page below Limit.
func TestHistoryCursorSinceKeep(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, _ impl) {
		mustPut(t, j,
			mk("a", "nightly", tgtA, at(0), run.StageSucceeded),
			mk("b", "nightly", tgtB, at(1), run.StageFailed),
			mk("c1", "nightly", tgtA, at(2), run.StageSucceeded),
			mk("c2", "nightly", tgtC, at(2), run.StageFailed),
			mk("c3", "nightly", tgtA, at(2), run.StageSkipped),
			mk("d", "nightly", tgtA, at(3), run.StagePending),
		)
		checkHistory(t, j, []historyCase{
			{"inside a tie", Query{Before: at(2), BeforeID: "c2"}, []string{"c1", "b", "a"}},
			{"after a tie", Query{Before: at(2), BeforeID: "c1"}, []string{"b", "a"}},
			{"id past the tie", Query{Before: at(2), BeforeID: "zz"}, []string{"c3", "c2", "c1", "b", "a"}},
			{"policy cursor", Query{Policy: "nightly", Before: at(2), BeforeID: "c3", Limit: 1}, []string{"c2"}},
			{"target cursor", Query{Target: &tgtA, Before: at(2), BeforeID: "c3"}, []string{"c1", "a"}},
			{"since", Query{Since: at(2)}, []string{"d", "c3", "c2", "c1"}},
			{"since and limit", Query{Since: at(1), Limit: 2}, []string{"d", "c3"}},
			{"keep", Query{Keep: func(r run.Run) bool { return r.Stage == run.StageFailed }}, []string{"c2", "b"}},
			{"keep limit", Query{Limit: 1, Keep: func(r run.Run) bool { return r.Target.Cluster == "prod-2" }}, []string{"b"}},
		})

		var pages [][]string
		q := Query{Limit: 2}
		for range 10 {
			rs, err := j.History(q)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				break
			}
			pages = append(pages, ids(rs))
			last := rs[len(rs)-1]
			q.Before, q.BeforeID = last.CreatedAt, last.ID
		}
		if fmt.Sprint(pages) != "[[d c3] [c2 c1] [b a]]" {
			t.Errorf("pages = %v", pages)
		}
	})
}
