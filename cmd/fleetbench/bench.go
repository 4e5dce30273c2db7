package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// Options are the benchmark's inputs.
type Options struct {
	Projects, Clusters int
	Hours              int           // measured hourly slots
	Scale              float64       // -time-scale of both processes
	Jitter             time.Duration // the policy's jitter
	JournalRuns        int           // finished runs pre-generated in the journal
	Backupd            string        // binary; built from the module when ""
	Workdir            string        // default: a temporary directory
	Keep               bool          // keep the work directory
	RateCapacity       int           // simulator's per-project bucket
	RatePerMinute      int
	RequestsPerMinute  int           // daemon's client budget per project; 0 = RatePerMinute
	LogLevel           string        // daemon log level
	GoMemLimit         string        // the daemon's GOMEMLIMIT ("": inherit fleetbench's environment)
	Lead               time.Duration // real time from starting the processes to the first slot
	Scrape             time.Duration // simulated interval of /metrics scrapes (0: none)
	Monitor            bool          // watch every cluster's native backups too
	// Spread varies the simulator's job durations per cluster (lognormal;
	// the same seed gives every mode the same durations).
	Spread atlassim.Spread
	// Warmup is how many hourly slots run before the measured ones, so
	// learned polling has a history to plan from.
	Warmup int
	// FixedPolling runs the daemon with -fixed-polling: the baseline.
	FixedPolling bool
	Command      string      // the command line, for the report
	Progress     io.Writer   // progress lines (nil: none)
	Clock        clock.Clock // real time (default clock.Real())
}

// daemonEnv is fleetbench's environment with GOMEMLIMIT set to limit (kept
// as inherited when limit is "").
func daemonEnv(limit string) []string {
	if limit == "" {
		return nil
	}
	env := []string{"GOMEMLIMIT=" + limit}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	return env
}

func (o *Options) defaults() error {
	if o.Projects < 1 || o.Clusters < 1 || o.Hours < 1 {
		return fmt.Errorf("-projects, -clusters and -hours must be at least 1 (got %d, %d, %d)", o.Projects, o.Clusters, o.Hours)
	}
	if o.Scale < 1 || math.IsInf(o.Scale, 0) || math.IsNaN(o.Scale) {
		return fmt.Errorf("-scale must be at least 1, got %g", o.Scale)
	}
	if o.Jitter < 0 || o.Jitter >= time.Hour {
		return fmt.Errorf("-jitter must be from 0 to under 1h, got %s", o.Jitter)
	}
	if o.Warmup < 0 {
		return fmt.Errorf("-warmup must not be negative, got %d", o.Warmup)
	}
	if o.JournalRuns < 0 {
		return fmt.Errorf("-journal-runs must not be negative, got %d", o.JournalRuns)
	}
	if o.RateCapacity <= 0 {
		o.RateCapacity = 100
	}
	if o.RatePerMinute <= 0 {
		o.RatePerMinute = 100
	}
	if o.RequestsPerMinute <= 0 {
		// The daemon's budget is per project, like the simulator's
		// bucket: at its refill rate no steady state earns a 429.
		o.RequestsPerMinute = o.RatePerMinute
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Lead <= 0 {
		o.Lead = 20 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	return nil
}

// chainOps are the operations a snapshot+export chain uses; every other
// operation (discovery, tokens) is overhead.
var chainOps = map[string]bool{
	"get_cluster": true, "list_snapshots": true, "take_snapshot": true, "get_snapshot": true,
	"create_export": true, "list_exports": true, "get_export": true,
}

// Run runs one benchmark: it generates the fleet, starts `backupd atlas-sim
// -admin` and `backupd run` as separate processes sharing a fast clock,
// measures Hours hourly slots and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	rclk := o.Clock
	began := rclk.Now()
	wd := o.Workdir
	if wd == "" {
		var err error
		if wd, err = os.MkdirTemp("", "fleetbench-"); err != nil {
			return nil, fmt.Errorf("creating the work directory: %w", err)
		}
		if !o.Keep {
			defer os.RemoveAll(wd)
		}
	} else if err := os.MkdirAll(wd, 0o700); err != nil {
		return nil, fmt.Errorf("creating the work directory: %w", err)
	}
	fmt.Fprintf(o.Progress, "fleetbench: work directory %s\n", wd)

	bin := o.Backupd
	if bin == "" {
		bin = filepath.Join(wd, "backupd")
		fmt.Fprintf(o.Progress, "fleetbench: building backupd\n")
		if err := build(ctx, bin); err != nil {
			return nil, err
		}
	}

	fleet := Fleet{Projects: o.Projects, Clusters: o.Clusters, Monitor: o.Monitor}
	simAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	daemonAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	paths := struct{ fixture, config, secret, token, state, simLog, daemonLog string }{
		filepath.Join(wd, "fixture.yaml"), filepath.Join(wd, "config.yaml"), filepath.Join(wd, "client-secret"), filepath.Join(wd, "admin-token"),
		filepath.Join(wd, "state", "state.db"), filepath.Join(wd, "atlas-sim.log"), filepath.Join(wd, "backupd.log"),
	}
	if err := fleet.WriteFixture(paths.fixture, o.RateCapacity, o.RatePerMinute, o.Spread); err != nil {
		return nil, err
	}
	if err := WriteSecret(paths.secret); err != nil {
		return nil, err
	}
	if err := WriteAdminToken(paths.token); err != nil {
		return nil, err
	}
	if err := fleet.WriteConfig(paths.config, ConfigParams{
		BaseURL: "http://" + simAddr, Listen: daemonAddr, StatePath: paths.state, SecretFile: paths.secret, AdminTokenFile: paths.token,
		RequestsPerMinute: o.RequestsPerMinute, Jitter: o.Jitter, LogLevel: o.LogLevel,
	}); err != nil {
		return nil, err
	}

	// The first slot is the next whole hour of real time; the anchor makes
	// the shared fast clock reach it Lead after the processes start (with
	// -scale 1, the benchmark waits for the real hour). Warmup slots later,
	// the first measured one, H0.
	first := rclk.Now().Add(time.Hour).Truncate(time.Hour)
	h0 := first.Add(time.Duration(o.Warmup) * time.Hour)
	if err := os.MkdirAll(filepath.Dir(paths.state), 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	if o.JournalRuns > 0 {
		fmt.Fprintf(o.Progress, "fleetbench: pre-generating a journal of %d runs\n", o.JournalRuns)
		if err := fleet.PregenerateJournal(paths.state, o.JournalRuns, first); err != nil {
			return nil, err
		}
	}
	var timeArgs []string
	simClk := clock.Real()
	if o.Scale > 1 {
		at := rclk.Now().Add(o.Lead)
		anchor := time.Unix(int64(math.Round((o.Scale*float64(at.Unix())-float64(first.Unix()))/(o.Scale-1))), 0)
		simClk = clock.ScaledFrom(anchor, o.Scale)
		timeArgs = []string{"-time-scale", strconv.FormatFloat(o.Scale, 'f', -1, 64), "-time-anchor", strconv.FormatInt(anchor.Unix(), 10)}
	}
	// realAt is the real instant the shared clock reads sim.
	realAt := func(sim time.Time) time.Time {
		return rclk.Now().Add(time.Duration(float64(sim.Sub(simClk.Now())) / o.Scale))
	}
	end := h0.Add(time.Duration(o.Hours) * time.Hour)

	sim, err := startProc(rclk, "simulator", bin, append([]string{"atlas-sim", "-listen", simAddr, "-fixture", paths.fixture, "-admin"}, timeArgs...), nil, paths.simLog)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sim.stop(rclk, 10*time.Second) }()
	hc := &http.Client{Timeout: time.Minute}
	sc := simClient{base: "http://" + simAddr, http: hc}
	if err := waitFor(ctx, rclk, 20*time.Millisecond, sim, func() (bool, error) {
		_, err := sc.calls(ctx)
		return err == nil, nil
	}); err != nil {
		return nil, fmt.Errorf("waiting for the simulator to serve: %w", err)
	}

	daemonArgs := []string{"run", "-config", paths.config}
	if o.FixedPolling {
		daemonArgs = append(daemonArgs, "-fixed-polling")
	}
	daemon, err := startProc(rclk, "daemon", bin, append(daemonArgs, timeArgs...), daemonEnv(o.GoMemLimit), paths.daemonLog)
	if err != nil {
		return nil, err
	}
	defer func() { _ = daemon.stop(rclk, 20*time.Second) }()
	base := "http://" + daemonAddr
	if err := waitFor(ctx, rclk, 5*time.Millisecond, daemon, func() (bool, error) {
		status, _, err := httpGet(ctx, hc, base+"/readyz", 1<<16)
		return err == nil && status == http.StatusOK, nil
	}); err != nil {
		return nil, fmt.Errorf("waiting for the daemon to become ready: %w", err)
	}
	rep := &Report{Machine: machine(), Start: h0, End: end}
	rep.StartupSeconds = rclk.Now().Sub(daemon.started).Seconds()
	fmt.Fprintf(o.Progress, "fleetbench: daemon ready after %.3f s; first slot %s in %.1f s\n",
		rep.StartupSeconds, h0.Format(time.RFC3339), realAt(h0).Sub(rclk.Now()).Seconds())
	cpuReady, err := readCPU(daemon.pid())
	if err != nil {
		return nil, err
	}
	rep.StartupCPUSeconds = cpuReady.Seconds()
	if !simClk.Now().Before(first) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the daemon became ready after the first slot (%s); raise -lead", first.Format(time.RFC3339)))
	}

	// Scrapes at a simulated interval, as Prometheus would scrape production,
	// and progress lines.
	scrapeCtx, stopScrapes := context.WithCancel(ctx)
	scrapesDone := make(chan struct{})
	var peaks Memory // the largest RssAnon and RssFile seen at a scrape; read after scrapesDone
	go func() {
		defer close(scrapesDone)
		scrapeLoop(scrapeCtx, o, simClk, hc, base+"/metrics", daemon.pid(), end, &peaks)
	}()
	defer func() { stopScrapes(); <-scrapesDone }()

	// Window start: just before H0 (no run of a measured slot can exist yet).
	const margin = 200 * time.Millisecond
	if err := waitUntil(ctx, rclk, realAt(h0).Add(-margin), sim, daemon); err != nil {
		return nil, err
	}
	// CPU is read at the same point at both ends: before the call counters
	// and the scrape taken for the 429 count.
	cpu0, err := readCPU(daemon.pid())
	if err != nil {
		return nil, err
	}
	simCPU0, err := readCPU(sim.pid())
	if err != nil {
		return nil, err
	}
	calls0, err := sc.calls(ctx)
	if err != nil {
		return nil, err
	}
	m0, err := scrape(ctx, hc, base+"/metrics")
	if err != nil {
		return nil, err
	}

	// Window end: just before the slot after the last measured one.
	if err := waitUntil(ctx, rclk, realAt(end).Add(-margin), sim, daemon); err != nil {
		return nil, err
	}
	stopScrapes()
	<-scrapesDone
	// CPU and memory first, before runs of the next slot can fire.
	cpu1, err := readCPU(daemon.pid())
	if err != nil {
		return nil, err
	}
	simCPU1, err := readCPU(sim.pid())
	if err != nil {
		return nil, err
	}
	mem, err := readMemory(daemon.pid())
	if err != nil {
		return nil, err
	}
	calls1, err := sc.calls(ctx)
	if err != nil {
		return nil, err
	}
	m1, err := scrape(ctx, hc, base+"/metrics")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "fleetbench: window over; stopping the daemon\n")
	if err := daemon.stop(rclk, 20*time.Second); err != nil {
		rep.Notes = append(rep.Notes, err.Error())
	}
	state, err := sc.state(ctx)
	if err != nil {
		return nil, err
	}
	if err := sim.stop(rclk, 10*time.Second); err != nil {
		rep.Notes = append(rep.Notes, err.Error())
	}

	runs, err := readRuns(paths.state)
	if err != nil {
		return nil, err
	}
	rep.Params = Params{
		Command: o.Command, Projects: o.Projects, Clusters: o.Clusters, Targets: fleet.Targets(), Hours: o.Hours,
		TimeScale: o.Scale, Jitter: o.Jitter.String(), JournalRuns: o.JournalRuns,
		RateLimit:         fmt.Sprintf("%d per project, refilling %d/min", o.RateCapacity, o.RatePerMinute),
		RequestsPerMinute: o.RequestsPerMinute, StatePath: paths.state, LogLevel: o.LogLevel,
		GoMemLimit: o.GoMemLimit, Monitor: o.Monitor, Polling: o.polling(), SpreadSigma: o.Spread.Sigma, SpreadSeed: o.Spread.Seed, Warmup: o.Warmup,
	}
	rep.PeakRSSBytes, rep.EndRSSAnonBytes, rep.EndRSSFileBytes = mem.HWM, mem.RssAnon, mem.RssFile
	rep.PeakRSSAnonBytes, rep.PeakRSSFileBytes = max(peaks.RssAnon, mem.RssAnon), max(peaks.RssFile, mem.RssFile)
	rep.CPUSecondsPerSimHour = (cpu1 - cpu0).Seconds() / float64(o.Hours)
	rep.SimulatorCPUPerSimHour = (simCPU1 - simCPU0).Seconds() / float64(o.Hours)
	calls := diffCalls(calls0, calls1)
	if o.Monitor {
		var mon MonitorFigures
		mon, calls = splitMonitorCalls(calls, o.Hours, o.Projects)
		mon.Watched, mon.Read, mon.ReadFailures = m1.MonitorWatched, m1.MonitorRead, int(m1.MonitorFailures)
		rep.Monitor = &mon
	}
	analyse(rep, fleet, o.Spread, runs, state, calls, h0, end)
	rep.API.Status429 = int(m1.RequestsByCode["429"] - m0.RequestsByCode["429"])
	rep.API.Status429Startup = int(m0.RequestsByCode["429"])
	rep.Elapsed = rclk.Now().Sub(began).Seconds()
	rep.evaluate()
	return rep, nil
}

// polling names the daemon's polling mode.
func (o Options) polling() string {
	if o.FixedPolling {
		return "fixed"
	}
	return "learned"
}

// waitFor polls ok every interval until it holds, failing after two minutes
// of real time or when p exits.
func waitFor(ctx context.Context, clk clock.Clock, interval time.Duration, p *proc, ok func() (bool, error)) error {
	deadline := clk.Now().Add(2 * time.Minute)
	return pollUntil(ctx, clk, interval, func() (bool, error) {
		select {
		case <-p.done:
			return false, p.exitError()
		default:
		}
		if clk.Now().After(deadline) {
			return false, fmt.Errorf("the %s did not answer within 2 minutes (log: %s)", p.name, p.logPath)
		}
		return ok()
	})
}

// scrapeLoop scrapes /metrics every o.Scrape of simulated time, samples
// the daemon's memory after each scrape (the largest RssAnon and RssFile go
// to peaks: VmHWM alone cannot tell heap from mapped files), and prints a
// progress line about every ten seconds of real time.
func scrapeLoop(ctx context.Context, o Options, simClk clock.Clock, hc *http.Client, url string, pid int, end time.Time, peaks *Memory) {
	every := o.Scrape
	if every <= 0 {
		every = time.Duration(10 * o.Scale * float64(time.Second))
	}
	lastPrint := time.Time{}
	for {
		m, err := scrape(ctx, hc, url)
		if ctx.Err() != nil {
			return
		}
		mem, _ := readMemory(pid)
		peaks.RssAnon, peaks.RssFile = max(peaks.RssAnon, mem.RssAnon), max(peaks.RssFile, mem.RssFile)
		if now := o.Clock.Now(); now.Sub(lastPrint) >= 10*time.Second {
			lastPrint = now
			left := end.Sub(simClk.Now())
			if err != nil {
				fmt.Fprintf(o.Progress, "fleetbench: %s simulated, %s to go: %v\n", simClk.Now().UTC().Format("15:04:05"), left.Round(time.Second), err)
			} else {
				fmt.Fprintf(o.Progress, "fleetbench: %s simulated, %s to go: %.0f runs in flight, RSS %.1f MiB\n",
					simClk.Now().UTC().Format("15:04:05"), left.Round(time.Second), m.Inflight, float64(mem.RSS)/(1<<20))
			}
		}
		if clock.Sleep(ctx, simClk, every) != nil {
			return
		}
	}
}

func diffCalls(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range after {
		if d := n - before[op]; d > 0 {
			out[op] = d
		}
	}
	return out
}

// readRuns reads every run of the benchmark's policy from the journal the
// daemon left.
func readRuns(path string) ([]run.Run, error) {
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening the daemon's journal: %w", err)
	}
	defer j.Close()
	runs, err := j.History(journal.Query{Policy: policyName})
	if err != nil {
		return nil, fmt.Errorf("reading the daemon's runs: %w", err)
	}
	return runs, nil
}

// analyse computes runs, fire lag, detection delays and calls per chain for
// the slots in [h0, end).
func analyse(rep *Report, fleet Fleet, spread atlassim.Spread, runs []run.Run, state *atlassim.AdminState, calls map[string]int, h0, end time.Time) {
	t := atlassim.DefaultTimings
	snapTook := t.SnapshotQueued + t.SnapshotInProgress
	snapDone := map[string]time.Time{}
	type exp struct{ created, finished time.Time }
	exports := map[string]exp{}
	for _, p := range state.Projects {
		for _, c := range p.Clusters {
			took := t.SnapshotQueued + spread.Scale(t.SnapshotInProgress, p.ID, c.Name)
			for _, s := range c.Snapshots {
				snapDone[s.ID] = s.CreatedAt.Add(took)
			}
			for _, e := range c.Exports {
				exports[e.ID] = exp{e.CreatedAt, e.FinishedAt}
			}
		}
	}
	hours := int(end.Sub(h0) / time.Hour)
	rep.Runs.Expected = fleet.Targets() * hours
	var lag, snapDelay, expDelay []time.Duration
	for _, r := range runs {
		if r.Manual || r.Slot.Before(h0) || !r.Slot.Before(end) {
			continue
		}
		switch r.Stage {
		case run.StageSucceeded:
			rep.Runs.Succeeded++
		case run.StageFailed:
			rep.Runs.Failed++
		case run.StageSkipped:
			rep.Runs.Skipped++
		default:
			rep.Runs.Unfinished++
		}
		lag = append(lag, r.CreatedAt.Sub(r.ScheduledAt))
		if r.Stage != run.StageSucceeded {
			continue
		}
		e, okE := exports[r.ExportJobID]
		if done, ok := snapDone[r.SnapshotID]; ok && okE {
			snapDelay = append(snapDelay, e.created.Sub(done))
		}
		if okE && !e.finished.IsZero() {
			expDelay = append(expDelay, r.FinishedAt.Sub(e.finished))
		}
	}
	rep.FireLag, rep.SnapshotDetection, rep.ExportDetection = distOf(lag), distOf(snapDelay), distOf(expDelay)

	rep.API.Calls = calls
	for op, n := range calls {
		if chainOps[op] {
			rep.API.ChainCalls += n
		} else {
			rep.API.OverheadCalls += n
		}
	}
	if rep.Runs.Succeeded > 0 {
		rep.API.PerChain = float64(rep.API.ChainCalls) / float64(rep.Runs.Succeeded)
		rep.API.PerChainAll = float64(rep.API.ChainCalls+rep.API.OverheadCalls) / float64(rep.Runs.Succeeded)
	}
	rep.API.Minimum = minCallsPerChain
	const preChecks, posts = 2, 2 // get_cluster + list_snapshots; take_snapshot + create_export
	rep.API.Budget = preChecks + posts + pollBudget(snapTook, 10*time.Second, time.Minute) +
		pollBudget(t.ExportQueued+t.ExportInProgress, 10*time.Second, time.Minute)
	if rep.Runs.Unfinished > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d runs of the measured slots were still in flight when the window closed: the daemon did not keep up at this scale", rep.Runs.Unfinished))
	}
}

// buildEnv and buildArgs build backupd as the README installs it and the
// container image ships it: without cgo (a static binary, no libc mapped
// into the process: about 1 MiB of its RSS) and with -trimpath. A plain
// `go build` would measure a binary nobody deploys.
var (
	buildEnv  = []string{"CGO_ENABLED=0"}
	buildArgs = []string{"build", "-trimpath"}
)

// build compiles backupd from the module this command belongs to.
func build(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", append(buildArgs, "-o", out, "github.com/backupd/backupd/cmd/backupd")...)
	cmd.Env = append(os.Environ(), buildEnv...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building backupd (CGO_ENABLED=0 go build -trimpath): %w\n%s", err, msg)
	}
	return nil
}

// machine describes the host: CPU model, cores, Go version, kernel.
func machine() Machine {
	m := Machine{CPUModel: "unknown", Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}
