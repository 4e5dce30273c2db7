package journal

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// TestReleasesUnderConcurrentUse: with a release budget of 1 every
// transaction drops the journal's mapped pages, while other goroutines
// read and write through the same mapping. Every read must still see
// exactly what was written (a release in the wrong place would zero or
// unmap memory under a reader).
func TestReleasesUnderConcurrentUse(t *testing.T) {
	j := openBoltAt(t, filepath.Join(t.TempDir(), "state.db"))
	j.rel.budget = 1
	const writers, runsEach = 4, 15
	stages := []run.Stage{run.StagePending, run.StageSnapshotting, run.StageExporting, run.StageSucceeded}
	final := make([][]run.Run, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range runsEach {
				r := mk(fmt.Sprintf("w%d-%02d", w, i), fmt.Sprintf("p%d", w), []run.Target{tgtA, tgtB, tgtC}[i%3], at(i), run.StagePending)
				r.Detail = fmt.Sprintf("detail of %s", r.ID)
				for k, st := range stages {
					r.Stage, r.UpdatedAt = st, at(i).Add(time.Duration(k)*time.Minute)
					r.SnapshotStatus, r.SnapshotBytes = "completed", int64(1000*w+i)
					if err := j.Put(r); err != nil {
						t.Errorf("Put(%s): %v", r.ID, err)
						return
					}
					got, found, err := j.Get(r.ID)
					if err != nil || !found || !reflect.DeepEqual(withoutStages(got), r) {
						t.Errorf("Get(%s) right after Put = %+v, %v, %v", r.ID, got, found, err)
						return
					}
				}
				final[w] = append(final[w], r)
			}
		})
		wg.Go(func() {
			for range runsEach * len(stages) {
				if _, err := j.History(Query{Policy: fmt.Sprintf("p%d", w), Limit: 5}); err != nil {
					t.Errorf("History: %v", err)
					return
				}
				if _, err := j.Summaries(); err != nil {
					t.Errorf("Summaries: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		for _, r := range final[w] {
			if got, _, err := j.Get(r.ID); err != nil || !reflect.DeepEqual(withoutStages(got), r) {
				t.Fatalf("Get(%s) = %+v, %v; want %+v", r.ID, got, err, r)
			}
		}
		h := history(t, j, Query{Policy: fmt.Sprintf("p%d", w)})
		if len(h) != runsEach {
			t.Fatalf("history of p%d has %d runs; want %d", w, len(h), runsEach)
		}
	}
	if s := summaries(t, j); len(s) != writers*3 {
		t.Fatalf("%d summaries; want %d", len(s), writers*3)
	}
	if j.rel.releases.Load() == 0 {
		t.Fatal("no release happened with a budget of 1")
	}
}
