package journal

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/report"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/scheduler"
)

// The rollup's figures in docs/journal.md (rough: the machine is shared):
//
//	go test -run '^$' -bench 'Rollup' -benchtime 1x ./internal/journal
//
// BACKUPD_BENCH_CLUSTERS and BACKUPD_BENCH_DAYS size BenchmarkRollupReport
// (10,000 and 30 by default: the fleet of benchmarks.md, a month).

// fleetOffset is cluster i's jitter (fleetTarget is rss_bench_test.go's:
// 1,000 projects of 10 clusters).
func fleetOffset(i int) time.Duration { return time.Duration(i%300) * time.Second }

// objectID is an Atlas-like 24-hex id.
func objectID(rng *rand.Rand) string { return fmt.Sprintf("%024x", rng.Uint64()<<32|rng.Uint64()>>32) }

// endedFleetRun is cluster i's finished run of an hourly snapshot+export policy
// at slot, with Atlas's ids and the engine's nanosecond times.
func endedFleetRun(rng *rand.Rand, i int, slot time.Time) run.Run {
	tg := fleetTarget(i)
	due := slot.Add(fleetOffset(i))
	created := due.Add(time.Duration(rng.IntN(1e9)))
	r := run.Run{ID: run.NewID("hourly", tg.ProjectID, tg.Cluster, slot, false), Policy: "hourly", Action: run.ActionSnapshot,
		Target: tg, Slot: slot, ScheduledAt: due, CreatedAt: created, Stage: run.StageSucceeded,
		Spec:       run.Spec{RetentionInDays: 7, ExportBucketID: "32b6e34b3d91647abb20e7b9"},
		SnapshotID: objectID(rng), SnapshotStatus: "completed", SnapshotBytes: 1<<30 + rng.Int64N(1<<30),
		ExportBucketID: "32b6e34b3d91647abb20e7b9", ExportJobID: objectID(rng), ExportState: "Successful",
		FinishedAt: created.Add(20*time.Minute + time.Duration(rng.IntN(1e9)))}
	r.Stages = []run.StageEntry{{Stage: run.StagePending, At: created}, {Stage: run.StageSnapshotting, At: created.Add(time.Millisecond)},
		{Stage: run.StageExporting, At: created.Add(4*time.Minute + time.Duration(rng.IntN(1e9)))}, {Stage: run.StageSucceeded, At: r.FinishedAt}}
	return r
}

// BenchmarkRollupRecord: the bytes of one cluster's day of an hourly
// snapshot+export policy (24 runs), per run.
func BenchmarkRollupRecord(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rec dayRecord
	for h := range 24 {
		rec.upsert(ReportView(endedFleetRun(rng, 7, day.Add(time.Duration(h)*time.Hour))))
	}
	var p []byte
	for b.Loop() {
		p = encodeDayRecord(dayOf(day), rec)
	}
	t, policy, d, _ := parseRollupKey(rollupKey(fleetTarget(7), "hourly", dayOf(day)))
	if got, err := decodeDayRecord(t, policy, d, p); err != nil || len(got) != 24 {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(p))/24, "B/run")
	b.ReportMetric(float64(len(p)+crcLen+len(rollupKey(fleetTarget(7), "hourly", 0))), "B/record")
}

// BenchmarkRollupFleetWrites writes the rollup as a fleet does, through
// updateRollup (each run's end, in the hour's order across the fleet), 16
// ends a transaction as group commit does, without fsync, and reports the
// file's bytes per record (pages as the fleet's writes fill them) and the
// time an end adds.
func BenchmarkRollupFleetWrites(b *testing.B) {
	const clusters, days = 1000, 10
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "state.db")
		j, err := Open(path, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		var spent time.Duration
		for h := range days * 24 {
			order := rng.Perm(clusters)
			for k := 0; k < len(order); k += 16 {
				batch := make([]run.Run, 0, 16)
				for _, i := range order[k:min(k+16, len(order))] {
					batch = append(batch, endedFleetRun(rng, i, start.Add(time.Duration(h)*time.Hour)))
				}
				t0 := time.Now()
				err := j.db.Update(func(tx *bolt.Tx) error {
					for _, r := range batch {
						if err := updateRollup(tx, nil, nil, r); err != nil {
							return err
						}
					}
					return nil
				})
				spent += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		var st bolt.BucketStats
		_ = j.db.View(func(tx *bolt.Tx) error { st = tx.Bucket(bucketRollup).Stats(); return nil })
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		records := float64(clusters * days)
		b.ReportMetric(float64(fi.Size())/records, "file-B/record")
		b.ReportMetric(float64(st.LeafAlloc+st.BranchAlloc)/records, "bucket-B/record")
		b.ReportMetric(float64(st.LeafInuse)/float64(st.LeafAlloc)*100, "leaf-fill-%")
		b.ReportMetric(float64(spent.Microseconds())/float64(clusters*days*24), "µs/end")
	}
}

// BenchmarkRollupReport builds the evidence report of the last 30 days of
// a fleet (10,000 clusters, one hourly snapshot+export policy: 7.2 M runs)
// from its rollup, as the daemon does (report.Stream over Outcomes, JSON,
// written to nowhere), and reports its time, its output and the Go heap's
// peak while it ran: one cluster's evidence at a time, never the rollup.
func BenchmarkRollupReport(b *testing.B) {
	clusters, days := envInt(b, "BACKUPD_BENCH_CLUSTERS", 10000), envInt(b, "BACKUPD_BENCH_DAYS", 30)
	path := filepath.Join(b.TempDir(), "state.db")
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// The records are put whole, in key order: quicker to build than the
	// fleet's writes (BenchmarkRollupFleetWrites), and the same to read.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range clusters {
		err := j.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketRollup)
			bk.FillPercent = 0.9
			for d := range days {
				var rec dayRecord
				day := start.Add(time.Duration(d) * 24 * time.Hour)
				for h := range 24 {
					rec = append(rec, ReportView(endedFleetRun(rng, i, day.Add(time.Duration(h)*time.Hour))))
				}
				k := rollupKey(fleetTarget(i), "hourly", dayOf(day))
				if err := bk.Put(k, seal(k, encodeDayRecord(dayOf(day), rec))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	spec := "0 * * * *"
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		b.Fatal(err)
	}
	now := start.Add(time.Duration(days) * 24 * time.Hour)
	pol := report.Policy{Name: "hourly", Action: run.ActionSnapshot, Schedule: spec, Timezone: "UTC"}
	for i := range clusters {
		tg := fleetTarget(i)
		e := scheduler.Entry{Key: "hourly|" + tg.String(), Policy: "hourly", Target: tg, Spec: spec, Schedule: sched, Location: time.UTC, Offset: fleetOffset(i)}
		pol.Targets = append(pol.Targets, report.Target{Target: tg, Entry: e, Mark: &scheduler.Mark{Since: start.Add(-time.Hour), Spec: spec}})
	}
	in := report.Input{Now: now, Policies: []report.Policy{pol}}
	q := report.Query{From: start, To: now}
	src := func(fn func(run.Run) error) error {
		return j.Outcomes(OutcomeQuery{From: q.From, To: q.To, Keep: q.Selects}, fn)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.ReportMetric(float64(fi.Size())/float64(clusters*days), "file-B/record")
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // sampled: a measurement, not a synchronisation
			defer close(done)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		cw := &countWriter{}
		t0, cpu0 := time.Now(), cpuSeconds()
		totals, err := report.Stream(cw, report.FormatJSON, in, q, src)
		el, cpu := time.Since(t0), cpuSeconds()-cpu0
		close(stop)
		<-done
		if err != nil || totals.Counts.Succeeded != clusters*days*24 {
			b.Fatalf("report: %v, totals %+v", err, totals)
		}
		b.ReportMetric(el.Seconds(), "s/report")
		b.ReportMetric(cpu, "cpu-s/report")
		b.ReportMetric(float64(cw.n)/(1<<20), "MiB-out")
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "MiB-heap-peak")
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
