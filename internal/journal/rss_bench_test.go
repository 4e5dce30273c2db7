package journal

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

// The fleet of docs/benchmarks.md: 1,000 projects x 10 clusters, one
// hourly snapshot+export policy, runs created at the slot plus a per-target
// jitter of up to 15 minutes.
const (
	fleetProjects = 1000
	fleetClusters = 10
	fleetTargets  = fleetProjects * fleetClusters
)

var fleetT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func fleetTarget(t int) run.Target {
	return run.Target{ProjectID: fmt.Sprintf("6a%022x", t/fleetClusters), Cluster: fmt.Sprintf("c%03d", t%fleetClusters)}
}

// fleetRun is the run of target t for hourly slot h, as it is created
// (stage pending), shaped like the runs fleetbench pre-generates.
func fleetRun(t, h int) run.Run {
	tgt := fleetTarget(t)
	slot := fleetT0.Add(time.Duration(h) * time.Hour)
	at := slot.Add(time.Duration(t%900) * time.Second)
	return run.Run{
		ID: run.NewID("hourly", tgt.ProjectID, tgt.Cluster, slot, false), Policy: "hourly", Action: run.ActionSnapshot,
		Target: tgt, Slot: slot, ScheduledAt: at,
		Spec: run.Spec{RetentionInDays: 1, Description: "fleetbench", ExportBucketID: "6b0000000000000000000001",
			Timeouts: run.Timeouts{Wait: 2 * time.Hour, Snapshot: 4 * time.Hour, Export: 24 * time.Hour, Restore: 6 * time.Hour}},
		Stage: run.StagePending, CreatedAt: at, StageStartedAt: at, UpdatedAt: at,
	}
}

// fleetChain is the engine's 9 journal writes of one snapshot+export chain
// of r, each with the time it happens.
func fleetChain(r run.Run, h, t int) []timedPut {
	var out []timedPut
	step := func(d time.Duration, f func(*run.Run)) {
		f(&r)
		r.UpdatedAt = r.CreatedAt.Add(d)
		out = append(out, timedPut{at: r.UpdatedAt, r: r})
	}
	seq := h*fleetTargets + t
	step(0, func(*run.Run) {})
	step(time.Second, func(r *run.Run) { r.Stage, r.StageStartedAt = run.StageSnapshotting, r.CreatedAt.Add(time.Second) })
	step(2*time.Second, func(r *run.Run) { r.SnapshotRequested = true })
	step(3*time.Second, func(r *run.Run) { r.SnapshotID, r.SnapshotKind = fmt.Sprintf("6d%022x", seq), "replicaSet" })
	step(190*time.Second, func(r *run.Run) {
		r.Stage, r.SnapshotStatus, r.SnapshotBytes, r.StageStartedAt = run.StageExporting, "completed", 1<<30, r.CreatedAt.Add(190*time.Second)
	})
	step(191*time.Second, func(r *run.Run) { r.ExportBucketID, r.ExportRequested = r.Spec.ExportBucketID, true })
	step(192*time.Second, func(r *run.Run) { r.ExportJobID = fmt.Sprintf("6e%022x", seq) })
	step(560*time.Second, func(r *run.Run) { r.ExportState, r.ExportProgress = "Successful", "40/40" })
	step(561*time.Second, func(r *run.Run) {
		r.Stage, r.FinishedAt, r.StageStartedAt = run.StageSucceeded, r.CreatedAt.Add(561*time.Second), r.CreatedAt.Add(561*time.Second)
	})
	return out
}

type timedPut struct {
	at time.Time
	r  run.Run
}

// buildFleetJournal writes a closed journal holding the finished runs of
// hours [0, hours) of the fleet (10,000 per hour), in batches.
func buildFleetJournal(tb testing.TB, path string, hours int) {
	tb.Helper()
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	for h := range hours {
		err := j.db.Update(func(tx *bolt.Tx) error {
			for t := range fleetTargets {
				chain := fleetChain(fleetRun(t, h), h, t)
				if err := putRun(tx, chain[len(chain)-1].r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
}

// memStat is the resident memory of this process: the journal's mapping
// (from /proc/self/smaps) and the process's RssFile and RssAnon.
type memStat struct{ mapping, file, anon int64 }

func (m memStat) String() string {
	return fmt.Sprintf("mapping %.1f MiB, RssFile %.1f MiB, RssAnon %.1f MiB", mib(m.mapping), mib(m.file), mib(m.anon))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// readMem reads memStat for the journal file at path.
func readMem(tb testing.TB, path string) memStat {
	tb.Helper()
	var m memStat
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) == 3 && (f[0] == "RssFile:" || f[0] == "RssAnon:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "RssFile:" {
				m.file = kb << 10
			} else {
				m.anon = kb << 10
			}
		}
	}
	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		tb.Skipf("no /proc/self/smaps: %v", err)
	}
	defer smaps.Close()
	sc := bufio.NewScanner(smaps)
	in := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header line
			in = len(f) >= 6 && f[len(f)-1] == path
			continue
		}
		if in && f[0] == "Rss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			m.mapping += kb << 10
		}
	}
	return m
}

// copyFile copies src to dst in 4 KiB writes, as bbolt writes its pages
// (a bulk copy would cache dst in large folios, which a daemon's journal
// is not; see prefetchForCheck).
func copyFile(tb testing.TB, dst, src string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				tb.Fatal(err)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// peakSampler follows the resident size of the journal mapping at path
// from a goroutine, every 2 ms, until stop.
type peakSampler struct {
	stop chan struct{}
	done chan int64
}

func samplePeak(tb testing.TB, path string) *peakSampler {
	p := &peakSampler{stop: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var peak int64
		for {
			peak = max(peak, readMem(tb, path).mapping)
			select {
			case <-p.stop:
				p.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// peak stops sampling and returns the largest size seen.
func (p *peakSampler) peak() int64 {
	close(p.stop)
	return <-p.done
}

// BenchmarkFleetRSS is the journal's memory at fleet size: a journal of
// 100,000 finished runs (10 hours of 10,000 targets) is opened, start-up
// reads Summaries and Active, then 2 more hours run (20,000 chains, 9 Puts
// each, in the order they happen across the fleet, from 64 writers), and
// finally Prune keeps the newest 60,000 runs. It reports the resident size
// of the journal's mapping (smaps Rss) after start-up and at the end, and
// its peak (sampled every 2 ms) while writing and while pruning, for
// several release budgets, writes per commit and runs per prune
// transaction ("never-release" is the journal without releases). Run with
// -benchtime 1x; it takes about two minutes per variant.
func BenchmarkFleetRSS(b *testing.B) {
	const history, hours, writers = 10, 2, 64
	src := filepath.Join(b.TempDir(), "fleet.db")
	buildFleetJournal(b, src, history)
	var puts []timedPut
	for h := history; h < history+hours; h++ {
		for t := range fleetTargets {
			puts = append(puts, fleetChain(fleetRun(t, h), h, t)...)
		}
	}
	slices.SortStableFunc(puts, func(a, b timedPut) int { return a.at.Compare(b.at) })
	type variant struct {
		budget        int64
		commit, prune int
	}
	variants := []variant{
		{0, maxCommitBatch, pruneBatch},
		{defaultReleaseBudget, maxCommitBatch, pruneBatch}, // the journal as it is
		{16, 16, 16}, {16, 8, 8}, {16, 4, 4}, // as it was, and on the way
	}
	for _, v := range variants {
		name := fmt.Sprintf("budget=%d/commit=%d/prune=%d", v.budget, v.commit, v.prune)
		if v.budget == 0 {
			name = "never-release"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fleetSteady(b, src, puts, writers, v.budget, v.commit, v.prune)
			}
		})
	}
}

// fleetSteady opens a copy of the journal at src, reads what start-up
// reads, writes puts from writers goroutines, prunes, and reports the
// journal's resident memory.
func fleetSteady(b *testing.B, src string, puts []timedPut, writers int, budget int64, commit, prune int) {
	b.StopTimer()
	path := filepath.Join(b.TempDir(), "state.db")
	copyFile(b, path, src)
	b.StartTimer()
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	j.rel.budget, j.w.max, j.pruneBatch = budget, commit, prune
	opened := readMem(b, path)
	if _, err := j.Summaries(); err != nil {
		b.Fatal(err)
	}
	if _, err := j.Active(); err != nil {
		b.Fatal(err)
	}
	started := readMem(b, path)

	// Each writer owns the runs whose id hashes to it, so one run's
	// writes stay in order; together they follow the fleet's order.
	queues := make([]chan run.Run, writers)
	var wg sync.WaitGroup
	sampler := samplePeak(b, path)
	begin := time.Now()
	for w := range queues {
		queues[w] = make(chan run.Run, 64)
		wg.Go(func() {
			for r := range queues[w] {
				if err := j.Put(r); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, p := range puts {
		var w int
		for _, c := range []byte(p.r.ID) {
			w = (w*31 + int(c)) % writers
		}
		queues[w] <- p.r
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	elapsed := time.Since(begin)
	writePeak := sampler.peak()
	written := readMem(b, path)

	sampler = samplePeak(b, path)
	pruneStart := time.Now()
	removed, err := j.Prune(time.Time{}, 60_000, 0)
	if err != nil {
		b.Fatal(err)
	}
	pruneTime := time.Since(pruneStart)
	prunePeak := sampler.peak()
	end := readMem(b, path)
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("after Open: %v", opened)
	b.Logf("after Summaries+Active: %v", started)
	b.Logf("after %d puts in %v: %v; peak mapping %.1f MiB", len(puts), elapsed.Round(time.Millisecond), written, mib(writePeak))
	b.Logf("after pruning %d runs in %v: %v; peak mapping %.1f MiB", removed, pruneTime.Round(time.Millisecond), end, mib(prunePeak))
	b.Logf("%d releases", j.rel.releases.Load())
	b.ReportMetric(mib(started.mapping), "startup-MiB")
	b.ReportMetric(mib(writePeak), "write-peak-MiB")
	b.ReportMetric(mib(written.mapping), "written-MiB")
	b.ReportMetric(mib(prunePeak), "prune-peak-MiB")
	b.ReportMetric(float64(len(puts))/elapsed.Seconds(), "puts/s")
}
