package journal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

// TestBoltAndMemoryAgree drives both implementations through the same
// random life of runs (stage changes, successes, re-indexing, prunes,
// marks, reopen) and requires identical answers after every step. At the
// end the file must pass both the journal's own check and bbolt's. With a
// release budget of 1, Bolt drops its mapped pages at every transaction,
// and must still answer the same.
func TestBoltAndMemoryAgree(t *testing.T) {
	for _, budget := range []int64{defaultReleaseBudget, 1} {
		t.Run(fmt.Sprintf("release-budget-%d", budget), func(t *testing.T) { boltAndMemoryAgree(t, budget) })
	}
}

func boltAndMemoryAgree(t *testing.T, budget int64) {
	path := filepath.Join(t.TempDir(), "state.db")
	var releases int64
	open := func() *Bolt {
		b := openBoltAt(t, path)
		b.rel.budget = budget
		return b
	}
	b := open()
	var bj Journal = b
	mem := NewMemory()
	rng := rand.New(rand.NewPCG(7, 11))

	policies := []string{"nightly", "nightly-2", "weekly"}
	targets := []run.Target{tgtA, tgtB, tgtC}
	stages := []run.Stage{run.StagePending, run.StageWaiting, run.StageSnapshotting, run.StageExporting,
		run.StageRestoring, run.StageSucceeded, run.StageFailed, run.StageSkipped}
	var known []run.ID
	runs := map[run.ID]run.Run{}
	pruned := map[run.ID]bool{}

	compare := func(step int, what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: %s differ:\nbolt   %+v\nmemory %+v", step, what, got, want)
		}
	}
	both := func(step int, op string, f func(j Journal) (any, error)) {
		t.Helper()
		g, err1 := f(bj)
		w, err2 := f(mem)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("step %d: %s: bolt err %v, memory err %v", step, op, err1, err2)
		}
		compare(step, op, g, w)
	}

	const steps = 200
	for step := range steps {
		switch p := rng.IntN(100); {
		case p < 35 || len(known) == 0: // a new run
			created := at(rng.IntN(60))
			r := mk(fmt.Sprintf("r%03d", step), policies[rng.IntN(3)], targets[rng.IntN(3)], created, stages[rng.IntN(len(stages))])
			switch rng.IntN(6) {
			case 0, 1:
				r.Action = run.ActionFlexRestore
			case 2: // exports of an existing snapshot record no snapshot success
				r.Action = run.ActionExport
			}
			if rng.IntN(10) == 0 { // large enough for overflow pages
				r.Detail = strings.Repeat("x", 5000+rng.IntN(5000))
			}
			runs[r.ID] = r
			known = append(known, r.ID)
			both(step, "put", func(j Journal) (any, error) { return nil, j.Put(r) })
		case p < 75: // an existing run moves on
			r := runs[known[rng.IntN(len(known))]]
			r.Stage = stages[rng.IntN(len(stages))]
			r.UpdatedAt = r.UpdatedAt.Add(time.Duration(1+rng.IntN(90)) * time.Minute)
			switch rng.IntN(6) {
			case 0:
				r.SnapshotStatus = []string{"queued", "inProgress", "completed", "failed"}[rng.IntN(4)]
			case 1:
				r.SnapshotBytes = int64(rng.IntN(1 << 30))
			case 2:
				r.ExportJobID = fmt.Sprintf("exp-%d", step)
			case 3:
				r.RestoreStatus = []string{"PENDING", "RUNNING", "COMPLETED", "FAILED"}[rng.IntN(4)]
			case 4:
				r.FinishedAt = r.UpdatedAt
			case 5: // re-indexed: another time or target
				r.CreatedAt = at(rng.IntN(60))
				if !pruned[r.ID] { // a run's target is its identity once its record is gone (see updateRollup)
					r.Target = targets[rng.IntN(3)]
				}
			}
			delete(pruned, r.ID)
			runs[r.ID] = r
			both(step, "update", func(j Journal) (any, error) { return nil, j.Put(r) })
		case p < 80:
			keep, age := rng.IntN(40), time.Duration(rng.IntN(70))*time.Hour
			both(step, "prune", func(j Journal) (any, error) { return j.Prune(at(60), keep, age) })
			for _, id := range known {
				if _, found, _ := bj.Get(id); !found {
					pruned[id] = true
				}
			}
		case p < 88:
			key := policies[rng.IntN(3)]
			m := Mark{LastSlot: at(step), Since: at(rng.IntN(10)), Schedule: "@every 1h"}
			both(step, "set mark", func(j Journal) (any, error) { return nil, j.SetMark(key, m) })
		case p < 92:
			key := policies[rng.IntN(3)]
			both(step, "delete mark", func(j Journal) (any, error) { return nil, j.DeleteMark(key) })
		case p < 94:
			releases += b.rel.releases.Load()
			reopenPath(t, b)
			b = open()
			bj = b
		default:
			tg := targets[rng.IntN(3)]
			q := Query{Limit: rng.IntN(8)}
			if rng.IntN(2) == 0 {
				q.Policy = policies[rng.IntN(3)]
			}
			if rng.IntN(2) == 0 {
				q.Target = &tg
			}
			if rng.IntN(2) == 0 {
				q.Before = at(rng.IntN(62))
			}
			both(step, fmt.Sprintf("history %+v", q), func(j Journal) (any, error) { return j.History(q) })
		}

		both(step, "outcomes", func(j Journal) (any, error) { return allOutcomes(j) })
		both(step, "horizon", func(j Journal) (any, error) { return j.Horizon() })
		checkOutcomes(t, step, bj, runs)
		both(step, "active", func(j Journal) (any, error) { return j.Active() })
		both(step, "summaries", func(j Journal) (any, error) { return j.Summaries() })
		both(step, "history", func(j Journal) (any, error) { return j.History(Query{}) })
		id := known[rng.IntN(len(known))]
		both(step, "get", func(j Journal) (any, error) {
			r, found, err := j.Get(id)
			return []any{r, found}, err
		})
		for _, key := range policies {
			both(step, "mark", func(j Journal) (any, error) {
				m, found, err := j.Mark(key)
				return []any{m, found}, err
			})
		}
	}
	if releases += b.rel.releases.Load(); budget == 1 && releases < steps {
		t.Fatalf("%d releases in %d steps with a budget of 1", releases, steps)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, path)
}

// reopenPath closes b and returns its path.
func reopenPath(t *testing.T, b *Bolt) string {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Path()
}

// checkHealthy runs the journal's checker and bbolt's own consistency
// check on a closed journal: both must find nothing, or the checker would
// refuse healthy journals.
func checkHealthy(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	values := 0
	err = checkFile(f, st.Size(), func(_ [][]byte, _, _ []byte) error { values++; return nil })
	if err != nil {
		t.Fatalf("checker refuses a healthy journal: %v", err)
	}
	if values == 0 {
		t.Fatal("checker visited no values")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
}

func TestHealthyLargeJournalPassesChecks(t *testing.T) {
	// Enough runs for branch pages in every bucket, overflow pages, and
	// pages freed and reused by prunes.
	path := filepath.Join(t.TempDir(), "state.db")
	j := openBoltAt(t, path)
	err := j.db.Update(func(tx *bolt.Tx) error {
		for i := range 1500 {
			r := mk(fmt.Sprintf("r%05d", i), fmt.Sprintf("p%d", i%7), []run.Target{tgtA, tgtB, tgtC}[i%3], t0.Add(time.Duration(i)*time.Minute), run.StageSucceeded)
			if i%500 == 0 {
				r.Detail = strings.Repeat("d", 9000)
			}
			if err := putRun(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := j.Prune(at(100), 900, 0); err != nil || n != 600 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, path)
	j = openBoltAt(t, path)
	if h := history(t, j, Query{Limit: 1}); !slices.Equal(h, []string{"r01499"}) {
		t.Fatalf("newest = %v", h)
	}
}

func TestKeyEncodingKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{0x00, 0x01, 'a', 'b', 0xFF, '-'}
	word := func() string {
		b := make([]byte, rng.IntN(4))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	cmpPair := func(a1, a2, b1, b2 string) int {
		if c := strings.Compare(a1, b1); c != 0 {
			return c
		}
		return strings.Compare(a2, b2)
	}
	for range 5000 {
		a1, a2, b1, b2 := word(), word(), word(), word()
		ka := appendComponent(appendComponent(nil, a1), a2)
		kb := appendComponent(appendComponent(nil, b1), b2)
		if got, want := bytes.Compare(ka, kb), cmpPair(a1, a2, b1, b2); got != want {
			t.Fatalf("(%q,%q) vs (%q,%q): key order %d, tuple order %d", a1, a2, b1, b2, got, want)
		}
		if a1 != b1 && bytes.HasPrefix(kb, appendComponent(nil, a1)) {
			t.Fatalf("component %q is a key prefix of (%q,%q)", a1, b1, b2)
		}
	}
	times := []time.Time{
		{}, time.Unix(-1, 999999999), time.Unix(0, 0), time.Unix(0, 1), t0, t0.Add(time.Nanosecond),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		if bytes.Compare(appendTime(nil, times[i-1]), appendTime(nil, times[i])) >= 0 {
			t.Fatalf("time keys out of order: %v !< %v", times[i-1], times[i])
		}
	}
}
