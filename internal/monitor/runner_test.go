package monitor

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

const rproj = "32b6e34b3d91647abb20e7b8"

type fakeFleet struct {
	mu       sync.Mutex
	clusters []string
	listErr  error
	reads    map[run.Target][]time.Time
	inflight int
	peak     int
	readTime time.Duration
}

func (f *fakeFleet) Clusters(_ context.Context, p string) ([]run.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []run.Target
	for _, c := range f.clusters {
		out = append(out, run.Target{ProjectID: p, Cluster: c})
	}
	return out, nil
}

func (f *fakeFleet) Read(ctx context.Context, t run.Target) (Reading, error) {
	f.mu.Lock()
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.reads[t] = append(f.reads[t], time.Now())
	f.mu.Unlock()
	err := clock.Sleep(ctx, clock.Real(), f.readTime)
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
	return Reading{Target: t, BackupEnabled: true}, err
}

// TestRunnerReadsAtPlanTimes: each selected cluster is read once per
// interval at its own offset (spread, never a burst), with at most
// Concurrency reads at once; a cluster gone from the listing is forgotten,
// one excluded is never read, and a project that cannot be listed keeps
// its clusters.
func TestRunnerReadsAtPlanTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var names []string
		for _, c := range "abcdefghijklmnopqrst" {
			names = append(names, "c-"+string(c))
		}
		f := &fakeFleet{clusters: append(slices.Clone(names), "skip"), reads: map[run.Target][]time.Time{}, readTime: time.Minute}
		plan := NewPlan(policy.Monitor{Interval: time.Hour, Targets: []policy.TargetSelector{{ProjectID: rproj, Clusters: []string{"*"}, Exclude: []string{"skip"}}}})
		col := NewCollector(plan.Interval())
		var forgotten []run.Target
		r := NewRunner(RunnerConfig{Plan: plan, Reader: f, Lister: f, Collector: col, Clock: clock.Real(), Concurrency: 2,
			ListEvery: 30 * time.Minute, Forget: func(t run.Target) { forgotten = append(forgotten, t) }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		defer func() { cancel(); <-done }()

		start := time.Now()
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		for _, n := range names {
			tg := run.Target{ProjectID: rproj, Cluster: n}
			got := f.reads[tg]
			first := plan.NextRead(tg, start)
			if len(got) < 2 || got[1].Sub(got[0]) < time.Hour-5*time.Minute || got[0].Before(first) {
				t.Errorf("%s: reads %v, want from %s one interval apart", n, got, first)
			}
		}
		if f.reads[run.Target{ProjectID: rproj, Cluster: "skip"}] != nil {
			t.Error("excluded cluster read")
		}
		if f.peak > 2 {
			t.Errorf("%d reads at once, want at most 2", f.peak)
		}
		st := r.Status()
		if len(st.Clusters) != len(names) || st.Clusters[0].LastRead.IsZero() || st.Interval.D() != time.Hour {
			t.Fatalf("status %+v", st)
		}

		f.mu.Lock()
		f.listErr = errors.New("no answer")
		f.mu.Unlock()
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		st = r.Status()
		if len(st.Clusters) != len(names) || len(st.ListErrors) != 1 || st.ListErrors[0].ProjectID != rproj {
			t.Fatalf("a listing failure dropped clusters: %+v", st)
		}

		f.mu.Lock()
		f.listErr, f.clusters = nil, names[1:]
		f.mu.Unlock()
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		if want := []run.Target{{ProjectID: rproj, Cluster: names[0]}}; !slices.Equal(forgotten, want) {
			t.Errorf("forgotten %v, want %v", forgotten, want)
		}
		if st := r.Status(); len(st.Clusters) != len(names)-1 || len(st.ListErrors) != 0 {
			t.Errorf("after the cluster went: %+v", st)
		}
	})
}

type fixedReader Reading

func (f fixedReader) Read(context.Context, run.Target) (Reading, error) { return Reading(f), nil }

type fixedLister []run.Target

func (l fixedLister) Clusters(context.Context, string) ([]run.Target, error) { return l, nil }

// TestRunnerStatusDue: status's due is the earliest of the promises, a
// frequency overdue since ever (zero due) included, and lists the kinds
// overdue now.
func TestRunnerStatusDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := run.Target{ProjectID: rproj, Cluster: "a"}
		now := time.Now()
		rd := Reading{Target: tg, BackupEnabled: true,
			Schedule:   &Schedule{Items: []PolicyItem{{FrequencyDaily, 1, RetentionDays, 7}, {FrequencyWeekly, 1, RetentionWeeks, 4}}},
			Snapshots:  []Snapshot{{Kind: KindDaily, Status: StatusCompleted, CreatedAt: now}},
			Compliance: &Compliance{ScheduledItems: []PolicyItem{{FrequencyDaily, 1, RetentionDays, 30}}}}
		plan := NewPlan(policy.Monitor{Interval: time.Hour, Targets: []policy.TargetSelector{{ProjectID: rproj, Clusters: []string{"*"}}}})
		r := NewRunner(RunnerConfig{Plan: plan, Reader: fixedReader(rd), Lister: fixedLister{tg}, Collector: NewCollector(time.Hour)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Hour)
		synctest.Wait()
		st := r.Status()
		if len(st.Clusters) != 1 {
			t.Fatalf("status %+v", st)
		}
		c := st.Clusters[0]
		if !c.Due.IsZero() || !slices.Equal(c.Overdue, []string{FrequencyWeekly}) || c.Newest[KindDaily].IsZero() {
			t.Errorf("due %s overdue %v newest %v, want zero due and weekly overdue", c.Due, c.Overdue, c.Newest)
		}
		// The schedule and the compliance policy in force, for the
		// evidence report: daily kept 7 days falls short of 30.
		day := run.Duration(24 * time.Hour)
		wantSched := []run.NativeItem{{Frequency: FrequencyDaily, MaxGap: day, Retention: 7 * day}, {Frequency: FrequencyWeekly, MaxGap: 7 * day, Retention: 28 * day}}
		if !slices.Equal(c.Schedule, wantSched) {
			t.Errorf("schedule %+v, want %+v", c.Schedule, wantSched)
		}
		if cp := c.Compliance; cp == nil || !slices.Equal(cp.Required, []run.NativeItem{{Frequency: FrequencyDaily, MaxGap: day, Retention: 30 * day}}) || len(cp.Shortfalls) != 1 {
			t.Errorf("compliance %+v, want daily kept 30 days and one shortfall", cp)
		}
	})
}

// spreadReader records when each cluster is read.
type spreadReader struct {
	mu    sync.Mutex
	reads map[run.Target][]time.Time
}

func (s *spreadReader) Read(_ context.Context, t run.Target) (Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads[t] = append(s.reads[t], time.Now())
	return Reading{Target: t, BackupEnabled: true}, nil
}

// TestRunnerSpreadsAFleet: at 10,000 clusters each is read once per
// interval and the reads are spread over it, about as many in each minute
// (never a burst at the start, at a listing or at a reload).
func TestRunnerSpreadsAFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sel := make([]policy.TargetSelector, 0, benchProjects)
		for p := range benchProjects {
			sel = append(sel, policy.TargetSelector{ProjectID: fleetTarget(p, 0).ProjectID, Clusters: []string{"*"}})
		}
		plan := NewPlan(policy.Monitor{Interval: time.Hour, Targets: sel})
		rd := &spreadReader{reads: map[run.Target][]time.Time{}}
		r := NewRunner(RunnerConfig{Plan: plan, Reader: rd, Lister: benchLister{}, Collector: NewCollector(plan.Interval()),
			Clock: clock.Real(), ListEvery: 20 * time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		defer func() { cancel(); <-done }()
		start := time.Now()
		time.Sleep(30 * time.Minute)
		r.SetPlan(plan) // a reload relists at once and moves nothing
		time.Sleep(90 * time.Minute)
		synctest.Wait()

		const minutes = 120
		var perMinute [minutes]int
		for p := range benchProjects {
			for c := range benchClusters {
				tg := fleetTarget(p, c)
				// Offsets are whole seconds: a cluster at offset 0 is read
				// at 1 h and 2 h, every other one in the first hour and
				// an hour later.
				got := rd.reads[tg]
				if len(got) != 2 || got[1].Sub(got[0]) != time.Hour || got[0].Sub(start) > time.Hour {
					t.Fatalf("%s read at %v, want in the first interval and an interval later", tg, got)
				}
				for _, at := range got {
					if m := int(at.Sub(start) / time.Minute); m < minutes {
						perMinute[m]++
					}
				}
			}
		}
		mean := 2 * benchProjects * benchClusters / minutes
		for m, n := range perMinute {
			if n > 2*mean || n < mean/2 {
				t.Errorf("minute %d: %d reads, want about %d (spread, no burst)", m, n, mean)
			}
		}
	})
}
