package cli

import (
	"context"
	"fmt"
	"io"
)

// Verb is one backupd verb: the table main dispatches from, the usage
// lists and the shell completions are generated from.
type Verb struct {
	Name    string
	Summary string
	// Main runs the verb and returns the process's exit code.
	Main func(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int
	// Args are the words the verb takes after its flags, for completion
	// (nil: none; describe's run id cannot be completed offline).
	Args []string
}

// Verbs lists every verb in the order the usage shows them.
func Verbs() []Verb {
	return []Verb{
		{Name: "run", Summary: "run the daemon (-config PATH, default /etc/backupd/config.yaml or $BACKUPD_CONFIG)", Main: Run},
		{Name: "validate", Summary: "check a config and print each policy's targets and next fire times (-online asks Atlas)",
			Main: func(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
				return Validate(ctx, args, stdout, stderr, env.Policy, env.Now, env.Elect)
			}},
		{Name: "status", Summary: "show policies × targets: last run, result, next run, in-flight stage and Atlas ids (-watch redraws)", Main: Status},
		{Name: "runs", Summary: "list past and current runs, newest first (-policy, -cluster, -result, -since, ...)", Main: Runs},
		{Name: "describe", Summary: "show one run: its stages and times, Atlas ids, the error and Atlas's own words", Main: Describe},
		{Name: "report", Summary: "the evidence report of a period per cluster: snapshots, exports, restores, missed slots (-since 30d, -o markdown|json|html)", Main: Report},
		{Name: "trigger", Summary: "run a policy now through the daemon's admin API (-wait follows it to its end)", Main: Trigger},
		{Name: "demo", Summary: "the whole job against an embedded simulated Atlas with fast clocks", Main: Demo},
		{Name: "atlas-sim", Summary: "serve the simulated Atlas API for dry runs", Main: AtlasSim},
		{Name: "completion", Summary: "print a shell completion script: completion bash|zsh|fish", Main: Completion, Args: shells},
		{Name: "version", Summary: "print the version and the commit it was built from (-o json)",
			Main: func(_ context.Context, args []string, stdout, stderr io.Writer, _ Env) int {
				return Version(args, stdout, stderr)
			}},
	}
}

// Usage writes the top-level usage: every verb with its summary.
func Usage(w io.Writer) {
	fmt.Fprint(w, "usage: backupd <verb> [flags]\n\nverbs:\n")
	for _, v := range Verbs() {
		fmt.Fprintf(w, "  %-11s%s\n", v.Name, v.Summary)
	}
	fmt.Fprint(w, "\nRun 'backupd <verb> -h' for a verb's flags. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.\n")
}
