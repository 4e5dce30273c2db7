package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
monitor:
  interval: 5m
  margin: 10m
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
	speed := fs.Float64("speed", 60, "how much faster than real time the demo's clock runs")
	listen := fs.String("listen", "127.0.0.1:0", "address for /metrics and the API")
	logs := fs.Bool("logs", false, "also print the daemon's JSON logs to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd demo [-duration D] [-speed N] [-listen ADDR] [-logs]\n\n"+
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
		fmt.Fprintln(stderr, "backupd demo: -speed must be positive")
		return exitUsage
	}
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

	clk := clock.Scaled(*speed)
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
	// plus the margin), and sandbox has backup disabled.
	hourly := atlassim.ScheduleSpec{Items: []atlas.PolicyItem{
		{FrequencyType: atlas.FrequencyHourly, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 2},
	}, Backfill: 6 * time.Hour}
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
	if *logs {
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
		Transport: sim.Transport(), Listen: *listen, Observers: []run.Observer{live},
	})
	if err != nil {
		return printConfigError(stderr, err)
	}
	if *duration < 0 {
		fmt.Fprintln(stderr, "backupd demo: -duration must not be negative")
		return exitUsage
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	start := clk.Now()
	bannerDone, runDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bannerDone)
		select {
		case <-d.Ready():
			addr := d.Addr().String()
			live.printf("backupd demo: simulated Atlas with project %s; the clock runs %gx real time (a minute passes every %s)\n",
				atlassim.DemoProjectID, *speed, (time.Duration(float64(time.Minute) / *speed)).Round(time.Millisecond))
			stop := "Ctrl-C to stop"
			if *duration > 0 {
				stop = fmt.Sprintf("ends by itself after %s, or Ctrl-C", *duration)
			}
			live.printf("  metrics: http://%s/metrics   status: backupd status -addr http://%s   (%s)\n", addr, addr, stop)
			live.printf("  fault injected: Atlas fails the first export job; that run ends failed{export_failed}, the next slot runs again\n")
			live.printf("  monitor: reads Atlas's native backups of prod-shards, prod-main (schedule stalled), sandbox (backup disabled) and flex-prod every 5m; see backupd status\n\n")
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
	if err != nil {
		fmt.Fprintf(stderr, "backupd demo: %v\n", err)
		return exitFailure
	}
	live.summary(clk.Now().Sub(start))
	return exitOK
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
			msg += ": restore job " + r.RestoreJobID + " done"
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
