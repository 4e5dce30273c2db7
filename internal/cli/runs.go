package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// daemonFlags find the daemon the way trigger does: -addr, else the
// config's server.listen, else DefaultAddr.
type daemonFlags struct {
	addr, config string
}

func (d *daemonFlags) register(fs *flag.FlagSet, env Env) {
	fs.StringVar(&d.addr, "addr", "", "the daemon's HTTP address (default: server.listen from -config, else "+DefaultAddr+")")
	fs.StringVar(&d.config, "config", defaultConfig(env), "configuration file, for server.listen (env BACKUPD_CONFIG)")
}

// base returns the daemon's base URL. A config given explicitly (-config
// or $BACKUPD_CONFIG) must load; the default path may be absent, as on a
// workstation talking to a local daemon.
func (d *daemonFlags) base(fs *flag.FlagSet, env Env) (string, error) {
	if d.addr != "" {
		return baseURL(d.addr), nil
	}
	explicit := env.Getenv("BACKUPD_CONFIG") != ""
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := policy.Load(d.config, env.Policy)
	switch {
	case err != nil && explicit:
		return "", fmt.Errorf("finding the daemon from %s (or pass -addr): %w", d.config, err)
	case err != nil || cfg.Server.Listen == "":
		return DefaultAddr, nil
	}
	return baseURL(cfg.Server.Listen), nil
}

// outputFlag is -o: table (the default) or json, on every read verb.
type outputFlag string

func (o *outputFlag) String() string { return string(*o) }

func (o *outputFlag) Set(s string) error {
	if s != "table" && s != "json" {
		return fmt.Errorf("must be table or json")
	}
	*o = outputFlag(s)
	return nil
}

// readVerb is the flag set of a verb that reads from the daemon: -addr,
// -config and -o.
func readVerb(name string, stderr io.Writer, env Env) (*flag.FlagSet, *daemonFlags, *outputFlag) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	df := &daemonFlags{}
	df.register(fs, env)
	o := outputFlag("table")
	fs.Var(&o, "o", "output format: table or json")
	return fs, df, &o
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// parseFlags parses a verb's args with usage as its help text. Unless the
// verb takes arguments, a stray one is a usage error rather than ignored.
// When ok is false the verb exits with code.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage string, takesArgs bool) (code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err), false
	}
	if fs.NArg() > 0 && !takesArgs {
		fmt.Fprintf(stderr, "backupd %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// readAPI GETs url into out for verb; when ok is false the verb exits with
// code: 2 for a request the API calls bad, 1 for anything else.
func readAPI(ctx context.Context, verb, url string, out any, stderr io.Writer) (code int, ok bool) {
	status, err := callAPI(ctx, "GET", url, "", nil, out)
	switch {
	case err == nil:
		return exitOK, true
	case status == 400:
		code = exitUsage
	default:
		code = exitFailure
	}
	fmt.Fprintf(stderr, "backupd %s: %v\n", verb, err)
	return code, false
}

// runsPage is the answer of GET /api/v1/runs.
type runsPage struct {
	Runs []run.Run `json:"runs"`
	Next string    `json:"next,omitempty"`
}

// Runs is `backupd runs`: run history from the daemon's journal, newest
// first, with the API's filters.
func Runs(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs, df, out := readVerb("runs", stderr, env)
	q := map[string]*string{}
	for _, f := range [][2]string{
		{"policy", "only runs of this policy"},
		{"project", "only runs on clusters of this project id"},
		{"cluster", "only runs on clusters of this name"},
		{"stage", "only runs in these stages, comma-separated (pending, waiting, snapshotting, exporting, restoring, verifying, succeeded, failed, skipped)"},
		{"result", "only runs with this result: success, failure or timeout"},
		{"since", "only runs created since this RFC 3339 time or this long ago (24h, 7d)"},
		{"cursor", "continue a listing: the cursor a previous page printed"},
	} {
		q[f[0]] = fs.String(f[0], "", f[1])
	}
	limit := fs.Int("limit", 50, "runs per page, 1 to 1000")
	if code, ok := parseFlags(fs, args, stderr, "usage: backupd runs [-policy NAME] [-project ID] [-cluster NAME] [-stage S,...] [-result R] [-since T] [-limit N] [-cursor C] [-o table|json] [-addr URL | -config PATH]\n\nLists runs from the daemon's journal, newest first.", false); !ok {
		return code
	}
	base, err := df.base(fs, env)
	if err != nil {
		fmt.Fprintf(stderr, "backupd runs: %v\n", err)
		return exitUsage
	}
	v := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, p := range q {
		if *p != "" {
			if k == "project" {
				k = "projectID"
			}
			v.Set(k, *p)
		}
	}
	var page runsPage
	if code, ok := readAPI(ctx, "runs", base+"/api/v1/runs?"+v.Encode(), &page, stderr); !ok {
		return code
	}
	if *out == "json" {
		printJSON(stdout, page)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPOLICY\tTARGET\tCREATED\tSTAGE\tTOOK\tDETAIL")
	for _, r := range page.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Policy, r.Target, stamp(r.CreatedAt), stageOf(r), took(r), oneLine(r.Detail, 80))
	}
	_ = tw.Flush()
	if len(page.Runs) == 0 {
		fmt.Fprintln(stdout, "(no runs match)")
	}
	if page.Next != "" {
		fmt.Fprintf(stderr, "more runs: add -cursor %s\n", page.Next)
	}
	return exitOK
}

// Describe is `backupd describe RUN`: one run in full.
func Describe(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs, df, out := readVerb("describe", stderr, env)
	if code, ok := parseFlags(fs, args, stderr, "usage: backupd describe [-o table|json] [-addr URL | -config PATH] RUN\n\nShows one run: its stage times, the Atlas ids, the error and Atlas's own words.", true); !ok {
		return code
	}
	if fs.NArg() != 1 {
		if fs.NArg() == 0 {
			fmt.Fprintln(stderr, "backupd describe: give one run id (from backupd runs)")
		} else {
			fmt.Fprintf(stderr, "backupd describe: unexpected argument %q: give one run id\n", fs.Arg(1))
		}
		fs.Usage()
		return exitUsage
	}
	base, err := df.base(fs, env)
	if err != nil {
		fmt.Fprintf(stderr, "backupd describe: %v\n", err)
		return exitUsage
	}
	var r run.Run
	if code, ok := readAPI(ctx, "describe", base+"/api/v1/runs/"+url.PathEscape(fs.Arg(0)), &r, stderr); !ok {
		return code
	}
	if *out == "json" {
		printJSON(stdout, r)
		return exitOK
	}
	writeRun(stdout, r)
	return exitOK
}

// writeRun renders describe's view of one run.
func writeRun(w io.Writer, r run.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	kind := "scheduled"
	switch {
	case r.Manual:
		kind = "manual trigger"
	case r.CatchUp:
		kind = "catch-up of a missed slot"
	}
	row := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Run", string(r.ID))
	row("Policy", fmt.Sprintf("%s (%s, %s)", r.Policy, r.Action, kind))
	row("Target", r.Target.String())
	row("Slot", stamp(r.Slot))
	row("Stage", stageOf(r))
	row("Error", r.Reason)
	row("Atlas said", r.Detail)
	row("Created", stamp(r.CreatedAt))
	row("Stage started", stamp(r.StageStartedAt))
	row("Updated", stamp(r.UpdatedAt))
	row("Finished", stamp(r.FinishedAt))
	row("Took", took(r))
	for _, id := range [][2]string{
		{"Snapshot", joinNonEmpty(r.SnapshotID, r.SnapshotKind, r.SnapshotStatus, bytesOf(r.SnapshotBytes))},
		{"Export bucket", r.ExportBucketID},
		{"Export job", joinNonEmpty(r.ExportJobID, r.ExportState, progressOf(r.ExportProgress))},
		{"Flex snapshot", r.FlexSnapshotID},
		{"Restore job", joinNonEmpty(r.RestoreJobID, r.RestoreStatus)},
	} {
		row(id[0], id[1])
	}
	_ = tw.Flush()
	if len(r.Stages) == 0 {
		return
	}
	fmt.Fprintln(w, "\nStages:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, s := range r.Stages {
		took := "(now)"
		switch {
		case i+1 < len(r.Stages):
			took = r.Stages[i+1].At.Sub(s.At).Round(time.Second).String()
		case s.Stage.Terminal():
			took = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Stage, stamp(s.At), took)
	}
	_ = tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func stageOf(r run.Run) string {
	s := string(r.Stage)
	if r.Reason != "" {
		s += "{" + r.Reason + "}"
	}
	return s
}

// took is how long a finished run lasted.
func took(r run.Run) string {
	if r.FinishedAt.IsZero() || r.CreatedAt.IsZero() {
		return "-"
	}
	return r.FinishedAt.Sub(r.CreatedAt).Round(time.Second).String()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return ""
	}
	if len(out) == 1 {
		return out[0]
	}
	return out[0] + " (" + strings.Join(out[1:], ", ") + ")"
}

func bytesOf(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func progressOf(p string) string {
	if p == "" {
		return ""
	}
	return p + " collections"
}
