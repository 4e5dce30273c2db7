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
	"time"

	"go.uber.org/zap/zapcore"

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
`

// Demo is `backupd demo`: the daemon against an in-process simulated Atlas
// with fast clocks, printing one line per event.
func Demo(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 0, "stop after this much real time (default: run until interrupted)")
	speed := fs.Float64("speed", 60, "how much faster than real time the demo's clock runs")
	listen := fs.String("listen", "127.0.0.1:0", "address for /metrics and the API")
	logs := fs.Bool("logs", false, "also print the daemon's JSON logs to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd demo [-duration D] [-speed N] [-listen ADDR] [-logs]\n\nRuns the daemon against an embedded simulated Atlas with a small fleet and fast clocks.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
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
	var logOut zapcore.WriteSyncer = zapcore.AddSync(io.Discard)
	if *logs {
		logOut = zapcore.Lock(zapcore.AddSync(stderr))
	}
	live := &liveSummary{w: stdout, clk: clk, counts: map[string]int{}}
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
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	bannerDone, runDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bannerDone)
		select {
		case <-d.Ready():
			addr := d.Addr().String()
			live.printf("backupd demo: simulated Atlas with project %s; the clock runs %gx real time (a minute passes every %s)\n",
				atlassim.DemoProjectID, *speed, (time.Duration(float64(time.Minute) / *speed)).Round(time.Millisecond))
			live.printf("  metrics: http://%s/metrics   status: backupd status -addr http://%s   (Ctrl-C to stop)\n\n", addr, addr)
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
	live.summary()
	return exitOK
}

// liveSummary prints one line per run event.
type liveSummary struct {
	mu     sync.Mutex
	w      io.Writer
	clk    clock.Clock
	counts map[string]int
}

func (l *liveSummary) Observe(e run.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := e.Run
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

func (l *liveSummary) summary() {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.counts))
	for k := range l.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", l.counts[k], k))
	}
	if len(parts) == 0 {
		parts = []string{"no run finished yet"}
	}
	fmt.Fprintf(l.w, "\nbackupd demo: %s\n", strings.Join(parts, ", "))
}
