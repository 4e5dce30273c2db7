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

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// Trigger is `backupd trigger`: run a policy now through the admin API. It
// exits 0 when every run was started, 3 when any was skipped (or none was
// started), 1 when the daemon refused or could not be reached.
func Trigger(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("trigger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pol := fs.String("policy", "", "policy to run (required)")
	project := fs.String("project", "", "project id of the one target to run (with -cluster)")
	cluster := fs.String("cluster", "", "cluster name of the one target to run (with -project)")
	addr := fs.String("addr", "", "the daemon's HTTP address (default: server.listen from -config)")
	configPath := fs.String("config", defaultConfig(env), "configuration file, for server.listen and server.adminTokenFile")
	tokenFile := fs.String("token-file", "", "file holding the admin token (default: server.adminTokenFile from -config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd trigger -policy NAME [-project ID -cluster NAME] [-addr URL] [-config PATH | -token-file PATH]\n\nExit codes: 0 every run started, 3 a run was skipped (overlap, not_supported, shutdown) or none started, 1 the daemon refused or is unreachable, 2 usage.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
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
	skipped := 0
	for _, r := range out.Runs {
		line := fmt.Sprintf("%s %s on %s: %s", r.ID, r.Policy, r.Target, r.Stage)
		if r.Reason != "" {
			line += "{" + r.Reason + "} " + r.Detail
		}
		if r.Stage == run.StageSkipped {
			skipped++
		}
		fmt.Fprintln(stdout, line)
	}
	switch {
	case len(out.Runs) == 0:
		fmt.Fprintln(stderr, "backupd trigger: no runs started: the policy has no resolved targets")
		return exitSkipped
	case skipped > 0:
		// The caller asked for work that will not happen: a script must
		// not mistake it for a run in progress.
		fmt.Fprintf(stderr, "backupd trigger: %d of %d run(s) skipped\n", skipped, len(out.Runs))
		return exitSkipped
	}
	return exitOK
}
