package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/policy"
)

// DefaultConfigPath is where `run` and `validate` look without -config or
// $BACKUPD_CONFIG.
const DefaultConfigPath = "/etc/backupd/config.yaml"

func defaultConfig(env Env) string {
	if p := env.Getenv("BACKUPD_CONFIG"); p != "" {
		return p
	}
	return DefaultConfigPath
}

// Run is `backupd run`: the daemon. SIGHUP reloads the configuration;
// cancelling ctx (SIGTERM, SIGINT) stops it.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", defaultConfig(env), "configuration file (env BACKUPD_CONFIG)")
	fixedPolling := fs.Bool("fixed-polling", false, "benchmarks only: poll every Atlas job with the 10s-to-1min backoff, ignoring the cluster's history (the baseline learned polling is measured against)")
	var tf timeFlags
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd run [-config PATH]\n\nRuns the daemon. SIGHUP reloads the configuration; SIGTERM or SIGINT stops it.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "backupd run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	clk, err := tf.clock(env)
	if err != nil {
		fmt.Fprintf(stderr, "backupd run: %v\n", err)
		return exitUsage
	}
	d, err := daemon.New(daemon.Options{ConfigPath: *configPath, Env: env.Policy, Clock: clk, Notifier: daemon.Systemd{}, Elect: env.Elect, FixedPolling: *fixedPolling})
	if err != nil {
		return printConfigError(stderr, err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case <-d.Ready():
					_ = d.Reload(ctx) // logged and counted by the daemon
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "backupd: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// printConfigError prints every located config error, one per line, and
// returns exit code 2.
func printConfigError(w io.Writer, err error) int {
	var perrs *policy.Errors
	if errors.As(err, &perrs) {
		for _, is := range perrs.List {
			fmt.Fprintln(w, is.String())
		}
		fmt.Fprintf(w, "backupd: configuration invalid (%d error(s))\n", len(perrs.List))
		return exitUsage
	}
	fmt.Fprintf(w, "backupd: %v\n", err)
	return exitUsage
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}
