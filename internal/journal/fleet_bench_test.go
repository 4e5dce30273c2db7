package journal

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

// BenchmarkPutConcurrent is the journal's load at fleet size: thousands of
// runs in flight, each writing its stage transitions from its own goroutine
// (64 writers here).
//   - "put" is Put as the daemon calls it: writes that arrive while a
//     commit is in flight are committed together in the next transaction,
//     one fsync for all of them (group commit, see committer).
//   - "update-each" is what Put did before: one bbolt transaction and one
//     fsync per write, serialised on bbolt's writer lock, so throughput is
//     one write per fsync however many runs wait.
//   - "bbolt-batch" writes through bbolt's DB.Batch, which also groups
//     writes but waits up to 10 ms for company.
//
// fleetbench at 10,000 targets found ~1,300 run goroutines queued on the
// writer lock at 10x time scale; docs/benchmarks.md has the figures.
func BenchmarkPutConcurrent(b *testing.B) {
	for _, mode := range []string{"put", "update-each", "bbolt-batch"} {
		b.Run(mode, func(b *testing.B) {
			j, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			var next atomic.Int64
			b.SetParallelism(32) // 32 x GOMAXPROCS writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := benchRun(int(next.Add(1)))
				r.Stage, r.FinishedAt = run.StageExporting, time.Time{}
				for pb.Next() {
					r.UpdatedAt = r.UpdatedAt.Add(time.Second)
					var err error
					switch mode {
					case "put":
						err = j.Put(r)
					case "update-each":
						err = j.db.Update(func(tx *bolt.Tx) error { return putRun(tx, r) })
					default:
						err = j.db.Batch(func(tx *bolt.Tx) error { return putRun(tx, r) })
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

// BenchmarkOpen100k is the journal part of the daemon's start-up with a
// 100,000-run history: Open (which checks every page), Summaries for the
// metrics rebuild over 10,000 targets, and Active.
func BenchmarkOpen100k(b *testing.B) {
	const total = 100_000
	path := filepath.Join(b.TempDir(), "state.db")
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < total; start += 5000 {
		err := j.db.Update(func(tx *bolt.Tx) error {
			for i := start; i < start+5000; i++ {
				r := benchRun(i)
				r.Target.ProjectID = fmt.Sprintf("6a%022x", i%1000)
				r.Target.Cluster = fmt.Sprintf("c%03d", (i/1000)%10)
				r.Policy = "hourly"
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
	for b.Loop() {
		j, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		sums, err := j.Summaries()
		if err != nil || len(sums) != 10_000 {
			b.Fatalf("%d summaries (%v), want 10,000", len(sums), err)
		}
		if _, err := j.Active(); err != nil {
			b.Fatal(err)
		}
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
