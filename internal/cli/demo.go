package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/run"
)

// demoConfig is the bundled configuration `backupd demo` runs: the three
// kinds of policy against the simulator's demo fleet.
const demoConfig = `# backupd demo configuration (written by 'backupd demo')
atlas:
  baseURL: http://atlas.sim
  auth:
    serviceAccount:
      clientID: ` + atlassim.DemoClientID + `
      clientSecretFile: client-secret
  requestsPerMinute: 600
server:
  listen: 127.0.0.1:0
  adminTokenFile: admin-token
state:
  path: STATE_PATH
log: {level: info, format: json}
defaults:
  timezone: Europe/Berlin
  timeouts: {wait: 30m, snapshot: 2h, export: 4h, restore: 2h}
policies:
  - name: quarter-hourly-prod
    schedule: "*/15 * * * *"
    targets:
      - projectID: ` + atlassim.DemoProjectID + `
        clusters: ["prod-*"]
    snapshot: {retentionInDays: 7, description: demo}
    export:
      bucketID: ` + atlassim.DemoBucketID + `
      customData: {team: demo}
  - name: export-native-analytics
    schedule: "*/20 * * * *"
    targets: [{projectID: ` + atlassim.DemoProjectID + `, clusters: [analytics]}]
    export: {bucketID: ` + atlassim.DemoBucketID + `, source: latest}
  - name: refresh-staging
    schedule: "*/30 * * * *"
    flexRestore:
      projectID: ` + atlassim.DemoProjectID + `
      cluster: flex-prod
      snapshot: latest
      targetProjectID: ` + atlassim.DemoProjectID + `
      targetCluster: staging
      confirmOverwrite: true
  - name: drill-prod-main
    schedule: "*/30 * * * *"
    restoreDrill:
      projectID: ` + atlassim.DemoProjectID + `
      cluster: prod-main
      snapshot: latest
      targetCluster: drill-scratch
      confirmOverwrite: true
monitor:
  interval: 5m
  margin: 10m # demoMargin
  targets:
    - projectID: ` + atlassim.DemoProjectID + `
      clusters: [prod-shards, prod-main, sandbox, flex-prod]
`

// demoDuration is how long `backupd demo` runs by default: under the minute
// the README promises, and at the default speed 45 simulated minutes, room
// for every policy's slots to fire and their runs to finish.
const demoDuration = 45 * time.Second

// Demo is `backupd demo`: the daemon against an in-process simulated Atlas
// with fast clocks, printing one line per event, one injected failure, and
// a summary of the runs at the end.
func Demo(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", demoDuration, "stop after this much real time; 0 runs until interrupted")
	speed := fs.Float64("time-scale", 60, "how much faster than real time the demo's clock runs (as -time-scale of run and atlas-sim)")
	deprecatedFlag(fs, stderr, "speed", "time-scale")
	listen := fs.String("listen", "127.0.0.1:0", "address for /metrics and the API")
	logs := fs.Bool("logs", false, "also print the daemon's JSON logs to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd demo [-duration D] [-time-scale N] [-listen ADDR] [-logs]\n\n"+
			"Runs the daemon against an embedded simulated Atlas with a small fleet and fast clocks,\n"+
			"makes Atlas fail the first export job, and ends with a summary of the runs.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "backupd demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *speed <= 0 {
		fmt.Fprintln(stderr, "backupd demo: -time-scale must be positive")
		return exitUsage
	}
	if *duration < 0 {
		fmt.Fprintln(stderr, "backupd demo: -duration must not be negative")
		return exitUsage
	}
	stop := "Ctrl-C to stop"
	if *duration > 0 {
		stop = fmt.Sprintf("ends by itself after %s, or Ctrl-C", *duration)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	return runDemo(ctx, demoOptions{Clock: clock.Scaled(*speed), Speed: *speed, Listen: *listen, Logs: *logs, StopText: stop,
		Stdout: stdout, Stderr: stderr, Env: env})
}

// demoOptions are what runDemo needs; Demo fills them from its flags,
// tests run it in a testing/synctest bubble with the bubble's clock and no
// socket.
type demoOptions struct {
	Clock          clock.Clock // the demo's fast clock
	Speed          float64     // for the banner only
	Listen         string
	NoListen       bool
	Logs           bool
	StopText       string // how the demo ends, for the banner
	Stdout, Stderr io.Writer
	Env            Env
}

// demoStaleAfter is when, after the start, prod-main's stalled native
// schedule goes overdue: its last hourly slot is set 50 minutes before the
// start, so the next one (which the stall skips) is 10 minutes after it and
// the monitor's 10-minute margin ends at 20 minutes, well inside the
// demo's default 45 simulated minutes; BackupdNativeSnapshotOverdue's 5
// minutes (for:) end at 25.
const demoStaleAfter = 20 * time.Minute

// demoMargin is the monitor.margin of demoConfig.
const demoMargin = 10 * time.Minute

// runDemo runs the demo until ctx ends.
func runDemo(ctx context.Context, o demoOptions) int {
	stdout, stderr, env, clk := o.Stdout, o.Stderr, o.Env, o.Clock
	dir, err := os.MkdirTemp("", "backupd-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "backupd demo: %v\n", err)
		return exitFailure
	}
	defer os.RemoveAll(dir)
	for name, content := range map[string]string{
		"config.yaml": strings.Replace(demoConfig, "STATE_PATH", filepath.Join(dir, "state.db"), 1), "client-secret": atlassim.DemoClientSecret, "admin-token": "demo-admin-token",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			fmt.Fprintf(stderr, "backupd demo: %v\n", err)
			return exitFailure
		}
	}

	sim := atlassim.New(atlassim.Options{Clock: clk, Seed: 7, Timings: atlassim.Timings{TokenTTL: 24 * 365 * time.Hour}})
	if err := atlassim.DemoFixture().Apply(sim); err != nil {
		fmt.Fprintf(stderr, "backupd demo: %v\n", err)
		return exitFailure
	}
	// One failure, handled where everyone can see it: the run ends
	// failed{export_failed} with Atlas's reason, and the next slot of the
	// same target succeeds.
	sim.FailNextExports(1, false)
	// The monitor watches Atlas's own schedules: prod-shards keeps its hourly
	// one, prod-main's stalls (it goes overdue at the first slot it misses,
	// plus the margin: demoStaleAfter), and sandbox has backup disabled.
	// The slots are at the minute 50 minutes before the start, each hour.
	anchor := clk.Now().UTC().Add(-(time.Hour - (demoStaleAfter - demoMargin)))
	hourly := atlassim.ScheduleSpec{Items: []atlas.PolicyItem{
		{FrequencyType: atlas.FrequencyHourly, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 2},
	}, ReferenceHourOfDay: anchor.Hour(), ReferenceMinuteOfHour: anchor.Minute(), Backfill: 6 * time.Hour}
	for _, err := range []error{
		sim.SetSchedule(atlassim.DemoProjectID, "prod-shards", hourly),
		sim.SetSchedule(atlassim.DemoProjectID, "prod-main", hourly),
		sim.StallSchedule(atlassim.DemoProjectID, "prod-main", true),
	} {
		if err != nil {
			fmt.Fprintf(stderr, "backupd demo: %v\n", err)
			return exitFailure
		}
	}
	var logOut zapcore.WriteSyncer = zapcore.AddSync(io.Discard)
	if o.Logs {
		logOut = zapcore.Lock(zapcore.AddSync(stderr))
	}
	live := &liveSummary{w: stdout, clk: clk, counts: map[string]int{}, inflight: map[run.ID]bool{}}
	penv := env.Policy
	penv.Getenv = func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return dir
		}
		return ""
	}
	d, err := daemon.New(daemon.Options{
		ConfigPath: filepath.Join(dir, "config.yaml"), Env: penv, Clock: clk, LogOutput: logOut,
		Transport: sim.Transport(), Listen: o.Listen, NoListen: o.NoListen, Observers: []run.Observer{live},
	})
	if err != nil {
		return printConfigError(stderr, err)
	}
	start := clk.Now()
	bannerDone, runDone := make(chan struct{}), make(chan struct{})
	var monWG sync.WaitGroup // the monitor's watcher, started by the banner once ready
	mon := &demoMonitor{live: live, clk: clk, status: d.Status, seen: map[run.Target]*demoSeen{}}
	go func() {
		defer close(bannerDone)
		select {
		case <-d.Ready():
			live.printf("backupd demo: simulated Atlas with project %s; the clock runs %gx real time (a minute passes every %s)\n",
				atlassim.DemoProjectID, o.Speed, (time.Duration(float64(time.Minute) / o.Speed)).Round(time.Millisecond))
			if o.NoListen {
				live.printf("  (no socket)   (%s)\n", o.StopText)
			} else {
				addr := d.Addr().String()
				live.printf("  metrics: http://%s/metrics   status: backupd status -addr http://%s   (%s)\n", addr, addr, o.StopText)
				live.printf("  evidence: backupd report -addr http://%s -since 1h   (-o html for a page)\n", addr)
			}
			live.printf("  fault injected: Atlas fails the first export job; that run ends failed{export_failed}, the next slot runs again\n")
			live.printf("  monitor: reads Atlas's native backups of prod-shards, prod-main (schedule stalled: stale at +%s), sandbox (backup disabled) and flex-prod every 5m\n\n", demoStaleAfter)
			monWG.Add(1)
			go func() { defer monWG.Done(); mon.watch(ctx, runDone) }()
			select { // targets resolve in the background
			case <-d.RunsStarted():
			case <-ctx.Done():
				return
			case <-runDone:
				return
			}
			for _, p := range d.Status().Policies {
				for _, u := range p.Unresolved {
					live.printf("%s  %-24s %-14s not acted on: %s (%s)\n", clk.Now().Format("15:04:05"), p.Name, u.Target.Cluster, u.Reason, u.Detail)
				}
			}
		case <-ctx.Done():
		case <-runDone:
		}
	}()
	err = d.Run(ctx)
	close(runDone)
	<-bannerDone
	monWG.Wait()
	if err != nil {
		fmt.Fprintf(stderr, "backupd demo: %v\n", err)
		return exitFailure
	}
	live.summary(clk.Now().Sub(start))
	mon.summary()
	return exitOK
}

// demoMonitor follows the monitor's status once a simulated minute and
// prints what a platform team would be told: each cluster's first read,
// a cluster going stale with the alert condition that then holds, the
// alert firing once its for: has passed, and at the end the monitor's view
// as `backupd status` shows it.
type demoMonitor struct {
	live   *liveSummary
	clk    clock.Clock
	status func() run.Status

	mu   sync.Mutex
	last *run.Status // the latest status with a monitor section
	seen map[run.Target]*demoSeen
}

// demoSeen is what was already printed of one cluster.
type demoSeen struct{ read, stale, firing bool }

// overdueFor is BackupdNativeSnapshotOverdue's for: (deploy/prometheus).
const overdueFor = 5 * time.Minute

// watch checks every simulated minute until ctx ends or the daemon stops.
func (m *demoMonitor) watch(ctx context.Context, done <-chan struct{}) {
	for {
		m.check()
		t := m.clk.NewTimer(time.Minute)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-done:
			t.Stop()
			return
		case <-t.C():
		}
	}
}

func (m *demoMonitor) check() {
	st := m.status()
	if st.Monitor == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = &st
	at := st.Now.Format("15:04:05")
	line := func(c run.MonitorCluster, format string, args ...any) {
		m.live.printf("%s  %-24s %-14s %s\n", at, "monitor", c.Target.Cluster, fmt.Sprintf(format, args...))
	}
	for _, c := range st.Monitor.Clusters {
		s := m.seen[c.Target]
		if s == nil {
			s = &demoSeen{}
			m.seen[c.Target] = s
		}
		if c.LastRead.IsZero() {
			continue
		}
		if !s.read {
			s.read = true
			var newest []string
			for _, kind := range slices.Sorted(maps.Keys(c.Newest)) {
				newest = append(newest, kind+" "+ago(st.Now, c.Newest[kind]))
			}
			switch {
			case slices.ContainsFunc(c.Problems, func(p string) bool { return strings.Contains(p, "backup is disabled") }):
				line(c, "✘ read: backup is disabled; condition of BackupdNativeBackupDisabled holds (backupd_native_backup_enabled == 0, fires after 15m)")
			case len(c.Problems) > 0:
				line(c, "✘ read: %s", strings.Join(c.Problems, "; "))
			default:
				line(c, "read: newest %s; next due %s", orDash(strings.Join(newest, ", ")), c.Due.In(st.Now.Location()).Format("15:04:05"))
			}
		}
		switch {
		case len(c.Overdue) > 0 && !s.stale:
			s.stale = true
			line(c, "✘ stale: no %s snapshot since the slot its schedule promised (due %s, margin included); condition of BackupdNativeSnapshotOverdue holds: time() - backupd_native_snapshot_due_timestamp_seconds > 0",
				strings.Join(c.Overdue, ","), c.Due.In(st.Now.Location()).Format("15:04:05"))
		case len(c.Overdue) > 0 && !s.firing && !st.Now.Before(c.Due.Add(overdueFor)):
			s.firing = true
			line(c, "✘ alert BackupdNativeSnapshotOverdue firing: overdue for %s (its for:)", overdueFor)
		case len(c.Overdue) == 0 && s.stale:
			s.stale, s.firing = false, false
			line(c, "✔ fresh again")
		}
	}
}

// summary prints the monitor's last view, as `backupd status` does.
func (m *demoMonitor) summary() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return
	}
	var b strings.Builder
	writeMonitor(&b, *m.last)
	m.live.printf("%s", strings.Replace(b.String(), "\nMONITOR (", "\nMONITOR at "+m.last.Now.Format("15:04:05")+" (", 1))
}

// liveSummary prints one line per run event and counts how runs ended.
type liveSummary struct {
	mu       sync.Mutex
	w        io.Writer
	clk      clock.Clock
	counts   map[string]int  // by result: succeeded, failed{reason}, skipped{reason}
	inflight map[run.ID]bool // runs not yet ended
}

func (l *liveSummary) Observe(e run.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := e.Run
	if r.Stage.Terminal() {
		delete(l.inflight, r.ID)
	} else {
		l.inflight[r.ID] = true
	}
	var msg string
	switch {
	case e.Note == "re-attached after restart":
		msg = "re-attached after restart, " + string(r.Stage)
	case e.Note != "":
		msg = e.Note
	case e.From == "":
		msg = "slot fired"
		if r.Manual {
			msg = "manual trigger"
		}
		if r.Stage == run.StageSkipped {
			msg += " → skipped{" + r.Reason + "}"
			if r.Detail != "" {
				msg += ": " + r.Detail
			}
			l.counts["skipped{"+r.Reason+"}"]++
		}
	case r.Stage == run.StageSucceeded:
		msg = "✔ succeeded"
		switch r.Action {
		case run.ActionSnapshot:
			msg += fmt.Sprintf(": snapshot %s (%d MiB)", r.SnapshotID, r.SnapshotBytes>>20)
			if r.ExportJobID != "" {
				msg += " exported by job " + r.ExportJobID
			}
		case run.ActionExport:
			msg += ": snapshot " + r.SnapshotID + " exported by job " + r.ExportJobID
		case run.ActionFlexRestore:
			msg += fmt.Sprintf(": flex snapshot %s (%s old) restored into %s in %s by job %s", r.FlexSnapshotID,
				r.Drill.SnapshotAge().Round(time.Minute), r.Spec.TargetCluster, r.Drill.RestoreDuration(), r.RestoreJobID)
		case run.ActionRestoreDrill:
			msg += fmt.Sprintf(": snapshot %s (%s old) restored into %s in %s by job %s, %s", r.SnapshotID,
				r.Drill.SnapshotAge().Round(time.Minute), r.Spec.TargetCluster, r.Drill.RestoreDuration(), r.RestoreJobID, drillVerification(r))
		}
		l.counts["succeeded"]++
	case r.Stage == run.StageFailed || r.Stage == run.StageSkipped:
		msg = fmt.Sprintf("✘ %s{%s}: %s", r.Stage, r.Reason, r.Detail)
		l.counts[string(r.Stage)+"{"+r.Reason+"}"]++
	default:
		msg = string(e.From) + " → " + string(r.Stage)
		if r.Stage == run.StageWaiting && r.Detail != "" {
			msg += " (" + r.Detail + ")"
		}
	}
	fmt.Fprintf(l.w, "%s  %-24s %-14s %s\n", e.At.Format("15:04:05"), r.Policy, r.Target.Cluster, msg)
}

// printf writes one line in order with the event lines.
func (l *liveSummary) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// summary prints how the runs ended, one row per result, and what is
// still in flight (it would resume at the next start).
func (l *liveSummary) summary(simulated time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.counts))
	total := 0
	for k, n := range l.counts {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	fmt.Fprintf(l.w, "\nbackupd demo: done after %s of simulated time; %d runs ended\n", simulated.Round(time.Minute), total)
	tw := tabwriter.NewWriter(l.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RESULT\tRUNS")
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%d\n", k, l.counts[k])
	}
	fmt.Fprintf(tw, "  still in flight\t%d\n", len(l.inflight))
	_ = tw.Flush()
}

// drillVerification says how a drill was verified.
func drillVerification(r run.Run) string {
	if r.Drill.Verification == run.VerifiedByCommand {
		return "verified by " + r.Spec.VerifyCommand[0]
	}
	return "verified at the Atlas level only"
}
