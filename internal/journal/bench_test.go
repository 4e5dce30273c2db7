package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

// benchRun is a run with every field a finished snapshot+export run fills.
func benchRun(i int) run.Run {
	policy := fmt.Sprintf("policy-%02d", i%50)
	tgt := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: fmt.Sprintf("cluster-%02d", (i/50)%20)}
	created := t0.Add(time.Duration(i) * time.Minute)
	r := mk(string(run.NewID(policy, tgt.ProjectID, tgt.Cluster, created, false)), policy, tgt, created, run.StageSucceeded)
	r.SnapshotID, r.SnapshotKind, r.SnapshotStatus, r.SnapshotBytes = "6630ad8d1f1e3c4a5b6c7d8e", "replicaSet", "completed", 1<<30+int64(i)
	r.ExportBucketID, r.ExportJobID, r.ExportState, r.ExportProgress = "32b6e34b3d91647abb20e7b9", "6630ad8d1f1e3c4a5b6c7d8f", "Successful", "40/40"
	r.SnapshotRequested, r.ExportRequested = true, true
	r.UpdatedAt, r.FinishedAt = created.Add(40*time.Minute), created.Add(40*time.Minute)
	return r
}

// BenchmarkPut measures one durable stage transition of an existing run.
func BenchmarkPut(b *testing.B) {
	for _, c := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(c.name, func(b *testing.B) {
			j, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{NoSync: c.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			for i := range 1000 {
				if err := j.Put(benchRun(i)); err != nil {
					b.Fatal(err)
				}
			}
			r := benchRun(1000)
			stages := []run.Stage{run.StagePending, run.StageWaiting, run.StageSnapshotting, run.StageExporting}
			i := 0
			for b.Loop() {
				r.Stage = stages[i%len(stages)]
				r.UpdatedAt = r.UpdatedAt.Add(time.Second)
				if err := j.Put(r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkJournal100k measures start-up and queries on a journal holding
// 100,000 runs (50 policies x 20 clusters x 100 slots, 50 in flight).
func BenchmarkJournal100k(b *testing.B) {
	const total, inFlight, batch = 100_000, 50, 5000
	path := filepath.Join(b.TempDir(), "state.db")
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < total; start += batch {
		err := j.db.Update(func(tx *bolt.Tx) error {
			for i := start; i < start+batch; i++ {
				r := benchRun(i)
				if i >= total-inFlight {
					r.Stage, r.ExportState, r.FinishedAt = run.StageExporting, "InProgress", time.Time{}
				}
				if err := putRun(tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("open+active+summaries", func(b *testing.B) {
		for b.Loop() {
			j, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			a, err := j.Active()
			if err != nil || len(a) != inFlight {
				b.Fatalf("Active: %d runs, %v", len(a), err)
			}
			s, err := j.Summaries()
			if err != nil || len(s) != 1000 {
				b.Fatalf("Summaries: %d, %v", len(s), err)
			}
			if err := j.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(st.Size())/(1<<20), "MiB")
	})
	b.Run("check-only", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := checkFile(f, st.Size(), func(_ [][]byte, _, _ []byte) error { return nil }); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	j, err = Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	b.Run("history-policy-target-limit-50", func(b *testing.B) {
		tgt := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "cluster-07"}
		for b.Loop() {
			h, err := j.History(Query{Policy: "policy-07", Target: &tgt, Limit: 50})
			if err != nil || len(h) != 50 {
				b.Fatalf("History: %d, %v", len(h), err)
			}
		}
	})
	b.Run("history-limit-50", func(b *testing.B) {
		for b.Loop() {
			h, err := j.History(Query{Limit: 50})
			if err != nil || len(h) != 50 {
				b.Fatalf("History: %d, %v", len(h), err)
			}
		}
	})
	// What the evidence report reads: every run since the period began
	// (here all 100,000).
	b.Run("history-since-all", func(b *testing.B) {
		for b.Loop() {
			h, err := j.History(Query{Since: time.Unix(0, 0)})
			if err != nil || len(h) != total {
				b.Fatalf("History: %d, %v", len(h), err)
			}
		}
	})
	// The daemon's prune at every discovery when the count limit is not
	// reached (the default keeps 1,000,000): a walk of the index, no delete.
	b.Run("prune-count-limit-not-reached", func(b *testing.B) {
		for b.Loop() {
			n, err := j.Prune(time.Unix(0, 0).Add(24*time.Hour), 1_000_000, 0)
			if err != nil || n != 0 {
				b.Fatalf("Prune: %d, %v", n, err)
			}
		}
	})
}
