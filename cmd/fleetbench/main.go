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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
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
	fs.IntVar(&o.RequestsPerMinute, "requests-per-minute", 0, "daemon's atlas.requestsPerMinute, per project (default -rate-refill)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "daemon log level")
	fs.StringVar(&o.GoMemLimit, "gomemlimit", defaultGoMemLimit, "the daemon's GOMEMLIMIT (default: the value deploy/systemd/backupd.service sets; \"\" inherits fleetbench's environment)")
	fs.DurationVar(&o.Lead, "lead", 20*time.Second, "real time between starting the processes and the first measured slot")
	fs.DurationVar(&o.Scrape, "scrape", 30*time.Second, "simulated interval between /metrics scrapes (as Prometheus would), 0 for none beyond progress")
	fs.BoolVar(&o.Monitor, "monitor", true, "also run the monitor of native backups on every cluster (default schedules and compliance policies in the fixture)")
	fs.Float64Var(&o.Spread.Sigma, "spread", 0.5, "sigma of the lognormal factor that varies job durations per cluster (0: the simulator's fixed timings)")
	fs.Int64Var(&o.Spread.Seed, "seed", 1, "seed of the per-cluster durations; every mode gets the same")
	fs.IntVar(&o.Warmup, "warmup", 3, "hourly slots run before the measured ones, so learned polling has a history")
	polling := fs.String("polling", "both", "daemon polling: learned, fixed (the one-minute backoff, -fixed-polling), or both side by side")
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
	var modes []bool // FixedPolling of each run
	switch *polling {
	case "learned":
		modes = []bool{false}
	case "fixed":
		modes = []bool{true}
	case "both":
		modes = []bool{true, false}
	default:
		fmt.Fprintf(stderr, "fleetbench: -polling must be learned, fixed or both, got %q\n", *polling)
		return 2
	}
	// The modes run one after the other on the same fleet, fixture and
	// seed, so each job duration is the same in both; side by side they
	// would share the machine's two cores and measure each other.
	var reps []*Report
	for _, fixed := range modes {
		mo := o
		mo.FixedPolling = fixed
		fmt.Fprintf(stderr, "fleetbench: polling %s\n", mo.polling())
		rep, err := Run(ctx, mo)
		if err != nil {
			fmt.Fprintf(stderr, "fleetbench: %v\n", err)
			return 1
		}
		reps = append(reps, rep)
	}
	var err error
	if *asJSON {
		err = writeJSONReports(stdout, reps)
	} else {
		err = writeTables(stdout, reps)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetbench: %v\n", err)
		return 1
	}
	for _, rep := range reps {
		for _, c := range rep.Checks {
			if !c.Pass {
				return 1
			}
		}
	}
	return 0
}

// writeJSONReports writes one report as an object, several as an array.
func writeJSONReports(w io.Writer, reps []*Report) error {
	if len(reps) == 1 {
		return reps[0].WriteJSON(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(reps); err != nil {
		return fmt.Errorf("writing the JSON reports: %w", err)
	}
	return nil
}

// writeTables writes each report and, for several, the comparison of the
// figures issue 15 compares.
func writeTables(w io.Writer, reps []*Report) error {
	for _, rep := range reps {
		if err := rep.WriteTable(w); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
	}
	if len(reps) < 2 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "polling	calls/chain	snapshot detection p50/p99	export detection p50/p99	fire lag p99	peak RSS	429s\n")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s	%.1f	%.1f / %.1f s	%.1f / %.1f s	%.3f s	%.1f MiB	%d\n", r.Params.Polling, r.API.PerChain,
			r.SnapshotDetection.P50, r.SnapshotDetection.P99, r.ExportDetection.P50, r.ExportDetection.P99,
			r.FireLag.P99, float64(r.PeakRSSBytes)/(1<<20), r.API.Status429)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the comparison: %w", err)
	}
	return nil
}
