package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/backupd/backupd/internal/atlas/atlassim"
)

// AtlasSim is `backupd atlas-sim`: the simulated Atlas as a standalone
// server, so users can dry-run configs and alert rules without Atlas.
func AtlasSim(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("atlas-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9470", "address to serve the simulated Atlas Admin API on")
	fixture := fs.String("fixture", "", "YAML fixture describing the fleet and credentials (default: the built-in demo fleet)")
	speed := fs.Float64("lifecycle-scale", 1, "lifecycle speed-up: snapshot, export and restore durations are divided by it (the clock itself is -time-scale)")
	deprecatedFlag(fs, stderr, "speed", "lifecycle-scale")
	seed := fs.Int64("seed", 1, "seed for generated ids and injected faults")
	admin := fs.Bool("admin", false, "also serve the unauthenticated test-control API under /_sim/ (faults, fleet changes, call log); tests and dry runs only")
	var tf timeFlags
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd atlas-sim [-listen ADDR] [-fixture FILE] [-lifecycle-scale N] [-time-scale N -time-anchor UNIX] [-admin] [-seed N]\n\nServes a simulated Atlas Admin API v2 (cloud backups, exports, flex restores, clusters).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "backupd atlas-sim: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *speed <= 0 {
		fmt.Fprintf(stderr, "backupd atlas-sim: -lifecycle-scale must be positive, got %g\n", *speed)
		return exitUsage
	}
	fx := atlassim.DemoFixture()
	if *fixture != "" {
		var err error
		if fx, err = atlassim.LoadFixture(*fixture); err != nil {
			fmt.Fprintf(stderr, "backupd atlas-sim: %v\n", err)
			return exitUsage
		}
	}
	clk, err := tf.clock(env)
	if err != nil {
		fmt.Fprintf(stderr, "backupd atlas-sim: %v\n", err)
		return exitUsage
	}
	sim := atlassim.New(atlassim.Options{Clock: clk, Speed: *speed, Seed: *seed})
	if err := fx.Apply(sim); err != nil {
		fmt.Fprintf(stderr, "backupd atlas-sim: applying the fixture: %v\n", err)
		return exitUsage
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "backupd atlas-sim: %v\n", err)
		return exitFailure
	}
	var handler http.Handler = sim
	if *admin {
		mux := http.NewServeMux()
		mux.Handle(atlassim.AdminPrefix, sim.AdminHandler())
		mux.Handle("/", sim)
		handler = mux
		fmt.Fprintf(stdout, "test-control API on http://%s%s (unauthenticated: -admin is for tests and dry runs)\n", ln.Addr(), atlassim.AdminPrefix)
	}
	fmt.Fprintf(stdout, "%slistening on http://%s (use it as atlas.baseURL)\n", sim.Describe(), ln.Addr())
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "backupd atlas-sim: %v\n", err)
		return exitFailure
	}
	return exitOK
}
