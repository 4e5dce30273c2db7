// Command fleetbench measures backupd at fleet size: it generates N projects
// × M clusters for the simulator, runs `backupd atlas-sim -admin` and
// `backupd run` as separate processes on a shared fast clock, lets an hourly
// snapshot+export policy with jitter run for a number of simulated hours, and
// reports the daemon's peak RSS and CPU per simulated hour, Atlas calls per
// chain, completion-detection delays, schedule fire lag, start-up time with a
// 100,000-run journal and 429s, each against its target (PASS/FAIL).
//
//	go run ./cmd/fleetbench -projects 1000 -clusters 10 -hours 2 -scale 5
//
// docs/benchmarks.md explains every figure and records measured results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// defaultGoMemLimit is the GOMEMLIMIT deploy/systemd/backupd.service gives
// the daemon, so the benchmark measures the daemon as it is deployed
// (deploy's tests check the two agree).
const defaultGoMemLimit = "40MiB"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// realMain parses flags, runs the benchmark and prints the report. It returns
// the exit code: 0 when every check passed, 1 when one failed or the
// benchmark could not run, 2 for bad usage.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := Options{Command: "go run ./cmd/fleetbench " + strings.Join(args, " "), Progress: stderr}
	fs.IntVar(&o.Projects, "projects", 1000, "Atlas projects in the simulated fleet")
	fs.IntVar(&o.Clusters, "clusters", 10, "M10 replica-set clusters per project")
	fs.IntVar(&o.Hours, "hours", 2, "hourly slots to measure")
	fs.Float64Var(&o.Scale, "scale", 5, "time scale shared by the daemon and the simulator (simulated seconds per real second)")
	fs.DurationVar(&o.Jitter, "jitter", 15*time.Minute, "the policy's jitter")
	fs.IntVar(&o.JournalRuns, "journal-runs", 100_000, "finished runs pre-generated in the daemon's journal")
	fs.StringVar(&o.Backupd, "backupd", "", "backupd binary to run (default: go build the module's)")
	fs.StringVar(&o.Workdir, "workdir", "", "work directory for the fixture, config, journal and logs (default: a temporary one, removed)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary work directory")
	fs.IntVar(&o.RateCapacity, "rate-capacity", 100, "simulator's per-project token bucket capacity")
	fs.IntVar(&o.RatePerMinute, "rate-refill", 100, "simulator's per-project refill per minute")
	fs.IntVar(&o.RequestsPerMinute, "requests-per-minute", 0, "daemon's atlas.requestsPerMinute (default 200 x projects)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "daemon log level")
	fs.StringVar(&o.GoMemLimit, "gomemlimit", defaultGoMemLimit, "the daemon's GOMEMLIMIT (default: the value deploy/systemd/backupd.service sets; \"\" inherits fleetbench's environment)")
	fs.DurationVar(&o.Lead, "lead", 20*time.Second, "real time between starting the processes and the first measured slot")
	fs.DurationVar(&o.Scrape, "scrape", 30*time.Second, "simulated interval between /metrics scrapes (as Prometheus would), 0 for none beyond progress")
	fs.BoolVar(&o.Monitor, "monitor", true, "also run the monitor of native backups on every cluster (default schedules and compliance policies in the fixture)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fleetbench [flags]\n\nRuns backupd against the simulator at fleet size and reports resources, Atlas calls, delays and start-up against their targets.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fleetbench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := o.defaults(); err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 2
	}
	rep, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 1
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 1
	}
	for _, c := range rep.Checks {
		if !c.Pass {
			return 1
		}
	}
	return 0
}
