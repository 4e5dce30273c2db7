// Command backupd orchestrates MongoDB Atlas cloud backups from YAML
// policies. This file only dispatches verbs; each verb lives in internal/cli.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/backupd/backupd/internal/cli"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	verb, rest := args[0], args[1:]
	// SIGINT/SIGTERM end the verb's context; `run` also handles SIGHUP itself.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := cli.OSEnv()
	switch verb {
	case "run":
		return cli.Run(ctx, rest, stdout, stderr, env)
	case "validate":
		return cli.Validate(ctx, rest, stdout, stderr, env.Policy, env.Now)
	case "status":
		return cli.Status(ctx, rest, stdout, stderr, env)
	case "trigger":
		return cli.Trigger(ctx, rest, stdout, stderr, env)
	case "runs":
		return cli.Runs(ctx, rest, stdout, stderr, env)
	case "describe":
		return cli.Describe(ctx, rest, stdout, stderr, env)
	case "report":
		return cli.Report(ctx, rest, stdout, stderr, env)
	case "demo":
		return cli.Demo(ctx, rest, stdout, stderr, env)
	case "atlas-sim":
		return cli.AtlasSim(ctx, rest, stdout, stderr, env)
	case "version", "-version", "--version":
		return cli.Version(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "backupd: unknown verb %q\n", verb)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: backupd <verb> [flags]

verbs:
  run        run the daemon (-config PATH, default /etc/backupd/config.yaml or $BACKUPD_CONFIG)
  validate   check a config and print each policy's targets and next fire times (-online asks Atlas)
  status     show policies × targets: last run, result, next run, in-flight stage and Atlas ids (-watch redraws)
  runs       list past and current runs, newest first (-policy, -cluster, -result, -since, ...)
  describe   show one run: its stages and times, Atlas ids, the error and Atlas's own words
  report     the evidence report of a period per cluster: snapshots, exports, restores, missed slots (-since 30d, -o markdown|json|html)
  trigger    run a policy now through the daemon's admin API (-wait follows it to its end)
  demo       the whole job against an embedded simulated Atlas with fast clocks
  atlas-sim  serve the simulated Atlas API for dry runs
  version    print the version and the commit it was built from (-o json)

Run 'backupd <verb> -h' for a verb's flags. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
`)
}
