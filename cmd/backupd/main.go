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
	env.Elect = electorFactory()
	switch verb {
	case "-version", "--version":
		verb = "version"
	case "help", "-h", "-help", "--help":
		cli.Usage(stdout)
		return 0
	}
	for _, v := range cli.Verbs() {
		if v.Name == verb {
			return v.Main(ctx, rest, stdout, stderr, env)
		}
	}
	fmt.Fprintf(stderr, "backupd: unknown verb %q\n", verb)
	usage(stderr)
	return 2
}

func usage(w io.Writer) { cli.Usage(w) }
