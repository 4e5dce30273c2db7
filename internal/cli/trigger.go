package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// Trigger is `backupd trigger`: run a policy now through the admin API. It
// exits 0 when every run was started, 3 when any was skipped (or none was
// started), 1 when the daemon refused or could not be reached. With -wait
// it follows the runs to their end and exits 0 only when all succeeded:
// 4 when one failed, 5 when -timeout passed first.
func Trigger(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("trigger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pol := fs.String("policy", "", "policy to run (required)")
	project := fs.String("project", "", "project id of the one target to run (with -cluster)")
	cluster := fs.String("cluster", "", "cluster name of the one target to run (with -project)")
	addr := fs.String("addr", "", "the daemon's HTTP address (default: server.listen from -config)")
	configPath := fs.String("config", defaultConfig(env), "configuration file, for server.listen and server.adminTokenFile")
	tokenFile := fs.String("token-file", "", "file holding the admin token (default: server.adminTokenFile from -config)")
	wait := fs.Bool("wait", false, "follow the runs to their end, printing each stage")
	timeout := fs.Duration("timeout", 0, "with -wait: give up waiting after this long (default: the runs' own stage timeouts added up, plus 5m)")
	interval := fs.Duration("interval", 5*time.Second, "with -wait: time between looks at the runs")
	if code, ok := parseFlags(fs, args, stderr, "usage: backupd trigger -policy NAME [-project ID -cluster NAME] [-wait [-timeout D] [-interval D]] [-addr URL] [-config PATH | -token-file PATH]\n\nExit codes: 0 every run started (with -wait: every run succeeded), 3 a run was skipped (overlap, not_supported, shutdown, ...) or none started, 4 with -wait a run failed, 5 with -wait -timeout passed with a run still in flight (it goes on in the daemon), 1 the daemon refused or is unreachable, 2 usage.", false); !ok {
		return code
	}
	if *timeout < 0 || *interval < 100*time.Millisecond {
		fmt.Fprintf(stderr, "backupd trigger: -timeout must not be negative and -interval must be at least 100ms\n")
		return exitUsage
	}
	if *pol == "" {
		fmt.Fprintln(stderr, "backupd trigger: -policy is required")
		return exitUsage
	}
	if (*project == "") != (*cluster == "") {
		fmt.Fprintln(stderr, "backupd trigger: -project and -cluster go together")
		return exitUsage
	}
	token, listen := "", ""
	if *tokenFile != "" {
		data, err := policy.ReadRegularFile(*tokenFile, policy.MaxSecretSize)
		if err != nil {
			fmt.Fprintf(stderr, "backupd trigger: reading the admin token: %v\n", err)
			return exitUsage
		}
		token = strings.TrimSpace(string(data))
	}
	if token == "" || *addr == "" {
		cfg, err := policy.Load(*configPath, env.Policy)
		if err != nil {
			if token == "" {
				fmt.Fprintf(stderr, "backupd trigger: the admin token comes from -token-file or the config's server.adminTokenFile:\n")
				return printConfigError(stderr, err)
			}
		} else {
			listen = cfg.Server.Listen
			if token == "" {
				token = cfg.Server.AdminToken.Reveal()
			}
		}
	}
	if token == "" {
		fmt.Fprintln(stderr, "backupd trigger: no admin token: set server.adminTokenFile in the config or pass -token-file")
		return exitUsage
	}
	base := *addr
	if base == "" {
		base = listen
	}
	if base == "" {
		base = DefaultAddr
	}
	var body io.Reader
	if *project != "" {
		b, _ := json.Marshal(map[string]string{"projectID": *project, "cluster": *cluster})
		body = bytes.NewReader(b)
	}
	var out struct {
		Runs []run.Run `json:"runs"`
	}
	u := baseURL(base) + "/api/v1/policies/" + url.PathEscape(*pol) + "/trigger"
	if _, err := callAPI(ctx, "POST", u, token, body, &out); err != nil {
		fmt.Fprintf(stderr, "backupd trigger: %v\n", err)
		return exitFailure
	}
	for _, r := range out.Runs {
		fmt.Fprintln(stdout, stageLine(r))
	}
	if len(out.Runs) == 0 {
		fmt.Fprintln(stderr, "backupd trigger: no runs started: the policy has no resolved targets")
		return exitSkipped
	}
	runs := out.Runs
	if *wait {
		var timedOut bool
		runs, timedOut = follow(ctx, baseURL(base), runs, *timeout, *interval, stdout, stderr, env)
		if timedOut {
			return exitWaitTimeout
		}
	}
	failed, skipped := 0, 0
	for _, r := range runs {
		switch r.Stage {
		case run.StageFailed:
			failed++
		case run.StageSkipped:
			skipped++
		}
	}
	switch {
	case failed > 0:
		fmt.Fprintf(stderr, "backupd trigger: %d of %d run(s) failed\n", failed, len(runs))
		return exitRunFailed
	case skipped > 0:
		// The caller asked for work that will not happen: a script must
		// not mistake it for a run in progress.
		fmt.Fprintf(stderr, "backupd trigger: %d of %d run(s) skipped\n", skipped, len(runs))
		return exitSkipped
	}
	return exitOK
}

// stageLine is how trigger prints a run's stage.
func stageLine(r run.Run) string {
	line := fmt.Sprintf("%s %s on %s: %s", r.ID, r.Policy, r.Target, r.Stage)
	if r.Reason != "" {
		line += "{" + r.Reason + "} " + r.Detail
	} else if ids := atlasIDs(r); ids != "" {
		line += " " + ids
	}
	return line
}

// follow polls each run until all are terminal, printing every stage
// change, and returns their last known state; timedOut is true when the
// deadline passed first (or ctx ended). A failed look is reported and
// retried: the daemon may be restarting, and the runs survive that.
func follow(ctx context.Context, base string, runs []run.Run, timeout, interval time.Duration, stdout, stderr io.Writer, env Env) (_ []run.Run, timedOut bool) {
	if timeout == 0 {
		// The daemon fails a run on its own stage timeouts: waiting
		// longer than all of them would wait for nothing.
		timeout = 5 * time.Minute
		var longest time.Duration
		for _, r := range runs {
			t := r.Spec.Timeouts
			longest = max(longest, t.Wait+t.Snapshot+t.Export+t.Restore)
		}
		timeout += longest
	}
	deadline := env.Clock.Now().Add(timeout)
	for {
		inFlight := 0
		for i, r := range runs {
			if r.Stage.Terminal() {
				continue
			}
			var now run.Run
			if _, err := callAPI(ctx, "GET", base+"/api/v1/runs/"+url.PathEscape(string(r.ID)), "", nil, &now); err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(stderr, "backupd trigger: following %s: %v\n", r.ID, err)
				}
				inFlight++
				continue
			}
			if now.Stage != r.Stage {
				fmt.Fprintln(stdout, stageLine(now))
			}
			runs[i] = now
			if !now.Stage.Terminal() {
				inFlight++
			}
		}
		if inFlight == 0 {
			return runs, false
		}
		left := deadline.Sub(env.Clock.Now())
		if left <= 0 {
			fmt.Fprintf(stderr, "backupd trigger: %d run(s) still in flight after %s; they go on in the daemon (backupd runs -policy %s)\n", inFlight, timeout, runs[0].Policy)
			return runs, true
		}
		if clock.Sleep(ctx, env.Clock, min(interval, left)) != nil {
			fmt.Fprintf(stderr, "backupd trigger: stopped waiting with %d run(s) in flight; they go on in the daemon\n", inFlight)
			return runs, true
		}
	}
}
