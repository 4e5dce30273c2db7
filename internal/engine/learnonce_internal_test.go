package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// racingJournal answers History with runs and, while it reads, lets
// during run: a transition learnt while the journal is read.
type racingJournal struct {
	journal.Journal
	runs   []run.Run
	during func()
}

func (j *racingJournal) History(journal.Query) ([]run.Run, error) {
	j.during()
	return j.runs, nil
}

// A run counts once in its cluster's history however it arrives: learnt
// while the journal read that also returns it is under way, learnt again
// after that read, or learnt twice.
func TestHistoryCountsARunOnce(t *testing.T) {
	tgt := run.Target{ProjectID: "p", Cluster: "c"}
	done := func(id run.ID, d time.Duration) run.Run {
		return run.Run{ID: id, Target: tgt, Stage: run.StageExporting, SnapshotRanFor: d - time.Second, SnapshotDoneBy: d}
	}
	a, b, c := done("run-a", 2*time.Minute), done("run-b", 3*time.Minute), done("run-c", 4*time.Minute)
	j := &racingJournal{Journal: journal.NewMemory(), runs: []run.Run{b, a}}
	e := New(Config{Journal: j})
	j.during = func() { e.learn(b, run.StageSnapshotting) }
	if est := e.estimate(tgt, run.StageSnapshotting); est.Samples != 2 {
		t.Fatalf("estimate of runs a and b (b learnt while read) has %d samples, want 2", est.Samples)
	}
	e.learn(b, run.StageSnapshotting) // the read saw b; learnt after it
	e.learn(c, run.StageSnapshotting)
	e.learn(c, run.StageSnapshotting)
	if est := e.estimate(tgt, run.StageSnapshotting); est.Samples != 3 {
		t.Errorf("after learning b again and c twice the estimate has %d samples, want 3 (a, b, c)", est.Samples)
	}
}

// Stages sharing one array keep their own newest keep samples each, newest
// first, whatever order they are learnt in.
func TestClusterHistoryKeepsEachStageApart(t *testing.T) {
	const keep = 3
	var ch clusterHistory
	ms := func(k, i int) sample { return sample{done: uint32(1000*(k+1) + i)} }
	for i := range 5 {
		ch.push(1, ms(1, i), uint32(i), keep)
		if i%2 == 0 {
			ch.push(0, ms(0, i), uint32(i), keep)
		}
		ch.push(2, ms(2, i), uint32(i), keep)
	}
	for k, want := range [][]sample{{ms(0, 4), ms(0, 2), ms(0, 0)}, {ms(1, 4), ms(1, 3), ms(1, 2)}, {ms(2, 4), ms(2, 3), ms(2, 2)}} {
		if got := ch.stage(k); !slices.Equal(got, want) || ch.newest[k] != 4 {
			t.Errorf("stage %d: %v (newest run %d), want %v (4)", k, got, ch.newest[k], want)
		}
	}
	if len(ch.s) != 3*keep {
		t.Errorf("%d samples in the array, want %d", len(ch.s), 3*keep)
	}
}
