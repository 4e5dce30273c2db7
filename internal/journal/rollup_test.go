package journal

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

// allOutcomes is every outcome j holds.
func allOutcomes(j Journal) ([]run.Run, error) {
	var out []run.Run
	err := j.Outcomes(OutcomeQuery{From: time.Unix(0, 0), To: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, func(r run.Run) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// checkOutcomes requires j's outcomes to be the report views of the ended
// runs of model (the last version put of each), each once: every one of a
// day after the rollup's pruned horizon, none that is not ended.
func checkOutcomes(t *testing.T, step int, j Journal, model map[run.ID]run.Run) {
	t.Helper()
	got, err := allOutcomes(j)
	if err != nil {
		t.Fatalf("step %d: outcomes: %v", step, err)
	}
	h, err := j.Horizon()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[run.ID]bool{}
	for _, o := range got {
		r, ok := model[o.ID]
		if seen[o.ID] || !ok || !r.Stage.Terminal() {
			t.Fatalf("step %d: outcome %s (seen before %v, in the model %v, %s)", step, o.ID, seen[o.ID], ok, r.Stage)
		}
		seen[o.ID] = true
		stored, err := roundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		stored.Stages = o.Stages // the journal's history, checked by the stage tests
		if want := ReportView(stored); !reflect.DeepEqual(o, want) {
			t.Fatalf("step %d: outcome of %s:\n got %+v\nwant %+v", step, o.ID, o, want)
		}
	}
	for id, r := range model {
		if r.Stage.Terminal() && !seen[id] && !ReportTime(r).Before(h.PrunedBefore) {
			t.Fatalf("step %d: ended run %s (%s, report time %v) has no outcome (pruned before %v)", step, id, r.Stage, ReportTime(r), h.PrunedBefore)
		}
	}
}

// fullRun is a run with every field the report shows set, and some it
// does not.
func fullRun(id string, slot time.Time) run.Run {
	r := mk(id, "nightly", tgtA, slot, run.StageSucceeded)
	r.ScheduledAt = slot.Add(17*time.Second + 3*time.Millisecond)
	r.CreatedAt = r.ScheduledAt
	r.CatchUp = true
	r.Reason, r.Detail = run.ReasonExportFailed, "Atlas says: no \x00 way"
	r.SnapshotID, r.SnapshotStatus, r.SnapshotBytes = "65f1a0000000000000000001", "completed", 3959422976
	r.ExportBucketID, r.ExportJobID, r.ExportState = "32b6e34b3d91647abb20e7b9", "65f1a00000000000000000AB", "Successful"
	r.FlexSnapshotID, r.RestoreJobID, r.RestoreStatus, r.RestoreRequested = "flexsnap", "65f1a0000000000000000003", "COMPLETED", true
	r.Spec = run.Spec{RetentionInDays: 7, Description: "not kept", TargetProjectID: "52b6e34b3d91647abb20e7b8", TargetCluster: "scratch"}
	r.Drill = run.Drill{SnapshotAt: slot.Add(-time.Hour), SourceExportID: "exp-1", JobCreatedAt: slot.Add(time.Minute),
		JobFinishedAt: slot.Add(9 * time.Minute), Verification: run.VerifyFailed, VerifyExitCode: -3,
		VerifyOutput: "not kept", VerifyDuration: run.Duration(41 * time.Second)}
	r.FinishedAt = slot.Add(time.Hour + 500*time.Microsecond)
	r.Stages = []run.StageEntry{{Stage: run.StagePending, At: slot}, {Stage: run.StageSnapshotting, At: slot.Add(time.Second)},
		{Stage: run.StageExporting, At: slot.Add(3 * time.Minute)}, {Stage: run.StageSnapshotting, At: slot.Add(4 * time.Minute)},
		{Stage: run.StageRestoring, At: slot.Add(5 * time.Minute)}, {Stage: run.StageSucceeded, At: r.FinishedAt}}
	return r
}

func TestRollupRecordRoundTrip(t *testing.T) {
	slot := time.Date(2026, 3, 4, 3, 0, 0, 0, time.UTC)
	manual := fullRun("02", slot.Add(30*time.Minute))
	manual.Manual, manual.Slot = true, time.Time{}
	odd := mk("0a1b", "nightly", tgtA, time.Date(1969, 12, 31, 23, 0, 0, 1, time.UTC), run.StageSkipped)
	odd.Action, odd.Reason = "someFutureAction", "some_future_reason"
	rec := dayRecord{ReportView(fullRun("ab12", slot)), ReportView(manual)}
	for _, rs := range []dayRecord{rec, {ReportView(odd)}} {
		d := dayOf(ReportTime(rs[0]))
		p := encodeDayRecord(d, rs)
		got, err := decodeDayRecord(tgtA, "nightly", d, p)
		if err != nil || !reflect.DeepEqual(got, rs) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, rs)
		}
		for i := range len(p) - 1 {
			if _, err := decodeDayRecord(tgtA, "nightly", d, p[:i]); err == nil {
				t.Fatalf("a record cut to %d of %d bytes decoded", i, len(p))
			}
		}
	}
	v := rec[0]
	want := []run.StageEntry{{Stage: run.StageSnapshotting, At: slot.Add(time.Second)}, {Stage: run.StageExporting, At: slot.Add(3 * time.Minute)},
		{Stage: run.StageRestoring, At: slot.Add(5 * time.Minute)}}
	if v.Drill.VerifyOutput != "" || v.Spec.Description != "" || !reflect.DeepEqual(v.Stages, want) {
		t.Fatalf("view kept %q %q, stages %+v", v.Drill.VerifyOutput, v.Spec.Description, v.Stages)
	}
	if d := dayOf(time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)); dayStart(d) != time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) || dayStart(d+1) != time.Unix(0, 0).UTC() {
		t.Fatalf("day of 1969-12-31 starts %v", dayStart(d))
	}
}

// TestOutcomesHoldEndedRunsOnce: a run enters the rollup when it ends,
// once however often its terminal state is written again (as the engine
// does after a restart), moves with its day, and leaves it if it is no
// longer ended; the period and the filter select.
func TestOutcomesHoldEndedRunsOnce(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, im impl) {
		day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
		a := fullRun("a1", day.Add(3*time.Hour))
		a.Stage = run.StageSnapshotting
		mustPut(t, j, a)
		if got, _ := allOutcomes(j); len(got) != 0 {
			t.Fatalf("a run in flight has outcomes %+v", got)
		}
		a.Stage = run.StageSucceeded
		b := fullRun("b1", day.Add(27*time.Hour))
		b.Policy = "weekly"
		c := fullRun("c1", day.Add(5*time.Hour))
		c.Target = tgtB
		mustPut(t, j, a, a, b, c, a)
		if j2 := im.reopen(t, j); j2 != nil {
			j = j2
		}
		got, err := allOutcomes(j)
		if err != nil || !reflect.DeepEqual(ids(got), []string{"a1", "b1", "c1"}) {
			t.Fatalf("outcomes = %v, %v; want a1 once, then b1 (policy weekly), then c1 (target prod-2)", ids(got), err)
		}
		stored, _, _ := j.Get("a1")
		if !reflect.DeepEqual(got[0], ReportView(stored)) {
			t.Fatalf("outcome %+v\nwant %+v", got[0], ReportView(stored))
		}
		var sel []string
		q := OutcomeQuery{From: day.Add(4 * time.Hour), To: day.Add(48 * time.Hour), Keep: func(p string, _ run.Target) bool { return p == "nightly" }}
		if err := j.Outcomes(q, func(r run.Run) error { sel = append(sel, string(r.ID)); return nil }); err != nil || !reflect.DeepEqual(sel, []string{"c1"}) {
			t.Fatalf("outcomes of nightly from 04:00 = %v, %v", sel, err)
		}
		stop := errors.New("stop")
		if err := j.Outcomes(OutcomeQuery{From: day, To: day.Add(72 * time.Hour)}, func(run.Run) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("fn's error = %v", err)
		}
		a.Stage = run.StageExporting // not ended any more
		c.Slot = day.Add(50 * time.Hour)
		mustPut(t, j, a, c)
		if got, _ := allOutcomes(j); !reflect.DeepEqual(ids(got), []string{"b1", "c1"}) || !got[1].Slot.Equal(c.Slot) {
			t.Fatalf("outcomes = %v", ids(got))
		}
	})
}

// TestOutcomesOutliveTheCountLimit: Prune's count limit deletes full runs
// and leaves the rollup; its age limit deletes whole days of it and says
// so in the horizon.
func TestOutcomesOutliveTheCountLimit(t *testing.T) {
	forEach(t, func(t *testing.T, j Journal, im impl) {
		day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		for i := range 100 {
			mustPut(t, j, fullRun(fmt.Sprintf("%04x", i), day.Add(time.Duration(i)*6*time.Hour)))
		}
		now := day.Add(25 * 24 * time.Hour)
		if n, err := j.Prune(now, 5, 0); err != nil || n != 95 {
			t.Fatalf("Prune = %d, %v", n, err)
		}
		if got, _ := allOutcomes(j); len(got) != 100 {
			t.Fatalf("%d outcomes after the count limit, want 100", len(got))
		}
		if n, err := j.Prune(now, 0, 20*24*time.Hour+time.Hour); err != nil || n != 0 {
			t.Fatalf("Prune = %d, %v", n, err)
		}
		got, _ := allOutcomes(j)
		h, err := j.Horizon()
		if want := day.Add(4 * 24 * time.Hour); err != nil || !h.PrunedBefore.Equal(want) || len(got) != 100-16 || !got[0].Slot.Equal(want) {
			t.Fatalf("after the age limit: %d outcomes from %v, horizon %+v (%v); want 84 from %v", len(got), got[0].Slot, h, err, want)
		}
	})
}

// TestRollupAddedToAnOlderJournal: a journal written before the rollup
// existed passes the check, gets the rollup at open, and its horizon
// starts after its newest run, whose outcomes it does not hold.
func TestRollupAddedToAnOlderJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	j := openBoltAt(t, path)
	old := fullRun("0001", at(3))
	mustPut(t, j, old)
	err := j.db.Update(func(tx *bolt.Tx) error {
		for _, b := range optionalBuckets() {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyRollupSince)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openBoltAt(t, path)
	h, err := j.Horizon()
	if want := old.CreatedAt.Add(time.Nanosecond); err != nil || !h.Since.Equal(want) || !h.PrunedBefore.IsZero() {
		t.Fatalf("horizon %+v, %v; want since %v", h, err, want)
	}
	later := fullRun("0002", at(5))
	mustPut(t, j, later, old) // old's terminal state again: it stays History's
	if got, err := allOutcomes(j); err != nil || !reflect.DeepEqual(ids(got), []string{"0002"}) {
		t.Fatalf("outcomes %v, %v; want the run created after the rollup", ids(got), err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, path)
	if h2, _ := openBoltAt(t, path).Horizon(); h2 != h {
		t.Fatalf("horizon moved at a reopen: %+v, was %+v", h2, h)
	}
}

// TestOutcomesSurviveAKill kills a process that ends runs as fast as it
// can, at a random point, and requires the file to hold for every ended
// run exactly one outcome, its report view, and none for a run it does
// not hold as ended: the rollup and the runs commit together or not at
// all.
func TestOutcomesSurviveAKill(t *testing.T) {
	if dir := os.Getenv("BACKUPD_ROLLUP_WRITER"); dir != "" {
		rollupWriter(dir)
		return
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestOutcomesSurviveAKill$")
		cmd.Env = append(os.Environ(), "BACKUPD_ROLLUP_WRITER="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		stopAfter := 50 + rand.IntN(300)
		for n := 0; n < stopAfter && sc.Scan(); n++ {
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		j := openBoltAt(t, filepath.Join(dir, "state.db"))
		got, err := allOutcomes(j)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[run.ID]run.Run{}
		for _, o := range got {
			if _, dup := byID[o.ID]; dup {
				t.Fatalf("round %d: two outcomes of %s", round, o.ID)
			}
			byID[o.ID] = o
		}
		ended := 0
		all, err := j.History(Query{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			o, ok := byID[r.ID]
			switch {
			case r.Stage.Terminal() && (!ok || !reflect.DeepEqual(o, ReportView(r))):
				t.Fatalf("round %d: ended run %s: outcome %v %+v", round, r.ID, ok, o)
			case !r.Stage.Terminal() && ok:
				t.Fatalf("round %d: run %s in %s has an outcome", round, r.ID, r.Stage)
			}
			if ok {
				ended++
				delete(byID, r.ID)
			}
		}
		if len(byID) > 0 || ended == 0 {
			t.Fatalf("round %d: %d outcomes without their run, %d ended runs", round, len(byID), ended)
		}
		t.Logf("round %d: %d runs, %d ended", round, len(all), ended)
	}
}

// rollupWriter is TestOutcomesSurviveAKill's child: it takes runs through
// their stages and to their end, durably, from 4 writers, printing a line
// after each Put, until it is killed.
func rollupWriter(dir string) {
	j, err := Open(filepath.Join(dir, "state.db"), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := fullRun(fmt.Sprintf("%02x%06x", w, i), t0.Add(time.Duration(i)*time.Hour))
				final := []run.Stage{run.StageSucceeded, run.StageFailed, run.StageSkipped}[i%3]
				for _, st := range []run.Stage{run.StagePending, run.StageSnapshotting, final, final} {
					r.Stage, r.StageStartedAt = st, r.StageStartedAt.Add(time.Minute)
					if err := j.Put(r); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(2)
					}
					mu.Lock()
					fmt.Println("put", r.ID, strings.ToLower(string(st)))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}
