package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// validateFires is how many upcoming fire times validate prints per target.
const validateFires = 5

// validateTimeLayout shows fire times in the policy's zone, to the second
// because jitter offsets are whole seconds.
const validateTimeLayout = "2006-01-02 15:04:05 MST"

// validateAttempts bounds retries of one Atlas call under -online, so an
// unreachable Atlas fails the check in seconds instead of minutes.
const validateAttempts = 3

// Validate is `backupd validate`: it parses and checks the configuration,
// prints warnings and each policy's targets with their next fire times, and
// exits 0; or prints every error as file:line:column: path: message and
// exits 2. With -online it also asks Atlas whether the clusters exist and
// fit the action and whether the export buckets exist; any such failure
// exits 2 too.
//
// elect is the binary's leader-election factory: nil in a build without
// the `ha` tag, which makes a configuration with ha: invalid here, as it
// is at start.
func Validate(ctx context.Context, args []string, stdout, stderr io.Writer, env policy.Env, now func() time.Time, elect leader.Factory) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath := DefaultConfigPath
	if env.Getenv != nil && env.Getenv("BACKUPD_CONFIG") != "" {
		defPath = env.Getenv("BACKUPD_CONFIG")
	}
	configPath := fs.String("config", defPath, "configuration file (env BACKUPD_CONFIG)")
	online := fs.Bool("online", false, "also check against Atlas: clusters exist and fit the action, export buckets exist")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd validate [-config PATH] [-online]\n\n"+
			"Checks the configuration and prints each policy's targets and next "+fmt.Sprint(validateFires)+" fire times.\n"+
			"Exit status: 0 valid, 2 invalid (every error is printed as file:line:column: path: message).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "backupd validate: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	env.MissingSecretOK = !*online // offline, the credentials are never used
	cfg, err := policy.Load(*configPath, env)
	if err == nil && cfg.HA != nil && elect == nil {
		err = leader.Unsupported(cfg.HA)
	}
	if err != nil {
		validatePrintErrors(stderr, err)
		return exitUsage
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning: "+w.String())
	}
	at := now()
	if !*online {
		validatePrintOffline(stdout, cfg, at)
		validatePrintMonitor(stdout, cfg.Monitor)
		validatePrintNotify(stdout, cfg.Notify)
		fmt.Fprintf(stdout, "\n%s: valid (%d %s; not checked against Atlas, use -online)\n", cfg.Source, len(cfg.Policies), validatePlural(len(cfg.Policies), "policy", "policies"))
		return exitOK
	}
	problems, err := validateOnline(ctx, stdout, stderr, cfg, at)
	if err != nil {
		fmt.Fprintf(stderr, "backupd validate: %v\n", err)
		return exitUsage
	}
	validatePrintNotify(stdout, cfg.Notify)

	if problems > 0 {
		fmt.Fprintf(stderr, "backupd validate: %s: %d %s found in Atlas\n", cfg.Source, problems, validatePlural(problems, "problem", "problems"))
		return exitUsage
	}
	fmt.Fprintf(stdout, "\n%s: valid (%d %s, checked against %s)\n", cfg.Source, len(cfg.Policies), validatePlural(len(cfg.Policies), "policy", "policies"), cfg.Atlas.BaseURL)
	return exitOK
}

func validatePlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// validatePrintErrors prints every located issue, one per line.
func validatePrintErrors(w io.Writer, err error) {
	var errs *policy.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintf(w, "backupd validate: %v\n", err)
		return
	}
	for _, is := range errs.List {
		fmt.Fprintln(w, is.String())
	}
	fmt.Fprintf(w, "backupd validate: configuration invalid (%d %s)\n", len(errs.List), validatePlural(len(errs.List), "error", "errors"))
}

// validateHeader prints one policy's summary line.
func validateHeader(w io.Writer, p policy.Policy) {
	what := string(p.Action())
	switch {
	case p.Snapshot != nil && p.Export != nil:
		what = fmt.Sprintf("snapshot (retention %dd) + export to bucket %s", p.Snapshot.RetentionInDays, p.Export.BucketID)
	case p.Snapshot != nil:
		what = fmt.Sprintf("snapshot (retention %dd)", p.Snapshot.RetentionInDays)
	case p.Export != nil:
		what = fmt.Sprintf("export latest snapshot to bucket %s", p.Export.BucketID)
	case p.FlexRestore != nil:
		what = fmt.Sprintf("flexRestore %s/%s -> %s/%s", p.FlexRestore.ProjectID, p.FlexRestore.Cluster, p.FlexRestore.TargetProjectID, p.FlexRestore.TargetCluster)
	case p.RestoreDrill != nil:
		rd := p.RestoreDrill
		verify := "verified at the Atlas level only"
		if rd.Verify != nil {
			verify = "verified by " + rd.Verify.Command[0]
		}
		what = fmt.Sprintf("restoreDrill of the %s snapshot of %s/%s -> scratch %s/%s (its data is deleted), %s",
			rd.Snapshot, rd.ProjectID, rd.Cluster, rd.TargetProjectID, rd.TargetCluster, verify)
	}
	jitter := "no jitter"
	if p.Jitter > 0 {
		jitter = "jitter < " + policy.FormatDuration(p.Jitter)
	}
	fmt.Fprintf(w, "\npolicy %s: %s\n  schedule %q in %s, %s, every %s\n", p.Name, what, p.Schedule, p.Timezone, jitter, p.Interval())
}

// validateFireTimes renders the next fires of one target.
func validateFireTimes(p policy.Policy, t run.Target, at time.Time) string {
	var out []string
	for _, f := range policy.NextFires(p, t, at, validateFires) {
		out = append(out, f.At.Format(validateTimeLayout))
	}
	if len(out) == 0 {
		return "(never)"
	}
	return strings.Join(out, "  ")
}

// validatePrintOffline prints each policy with its targets as written: a
// literal cluster gets its exact fire times; a glob gets the slots, each
// cluster it matches starting within its own jitter offset after them.
func validatePrintOffline(w io.Writer, cfg *policy.Config, at time.Time) {
	for _, p := range cfg.Policies {
		validateHeader(w, p)
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "  TARGET\tNEXT %d FIRES (%s)\n", validateFires, p.Timezone)
		if fr := p.FlexRestore; fr != nil {
			t := run.Target{ProjectID: fr.ProjectID, Cluster: fr.Cluster}
			fmt.Fprintf(tw, "  %s\t%s\n", t, validateFireTimes(p, t, at))
		}
		if rd := p.RestoreDrill; rd != nil {
			t := run.Target{ProjectID: rd.ProjectID, Cluster: rd.Cluster}
			fmt.Fprintf(tw, "  %s\t%s\n", t, validateFireTimes(p, t, at))
		}
		for _, sel := range p.Targets {
			for _, c := range sel.Clusters {
				t := run.Target{ProjectID: sel.ProjectID, Cluster: c}
				if !strings.ContainsAny(c, "*?[") {
					fmt.Fprintf(tw, "  %s\t%s\n", t, validateFireTimes(p, t, at))
					continue
				}
				slotsOnly := p
				slotsOnly.Jitter = 0
				note := ""
				if p.Jitter > 0 {
					note = "  (slots; each cluster starts at its own offset < " + policy.FormatDuration(p.Jitter) + " after them)"
				}
				fmt.Fprintf(tw, "  %s (glob)\t%s%s\n", t, validateFireTimes(slotsOnly, t, at), note)
			}
			if len(sel.Exclude) > 0 {
				fmt.Fprintf(tw, "  %s excluding\t%s\n", sel.ProjectID, strings.Join(sel.Exclude, ", "))
			}
		}
		_ = tw.Flush()
	}
}

// validateClient builds the Atlas client from the validated config.
func validateClient(cfg *policy.Config) (*atlas.Client, error) {
	ac := atlas.Config{
		BaseURL:           cfg.Atlas.BaseURL,
		RequestsPerMinute: cfg.Atlas.RequestsPerMinute,
		Timeout:           cfg.Atlas.Timeout,
		MaxAttempts:       validateAttempts,
	}
	if sa := cfg.Atlas.ServiceAccount; sa != nil {
		ac.ServiceAccount = &atlas.ServiceAccount{ClientID: sa.ClientID, ClientSecret: sa.ClientSecret.Reveal()}
	}
	if k := cfg.Atlas.APIKey; k != nil {
		ac.APIKey = &atlas.APIKey{PublicKey: k.PublicKey, PrivateKey: k.PrivateKey.Reveal()}
	}
	c, err := atlas.New(ac)
	if err != nil {
		return nil, fmt.Errorf("building the Atlas client: %w", err)
	}
	return c, nil
}

// validateOnline resolves every policy against Atlas, prints the resolved
// plan and returns how many problems it found. Named clusters that are
// missing or unfit, unusable flexRestore sources or targets, and missing
// buckets are problems; clusters a glob matched but cannot act on are
// listed as skipped, as the daemon would skip them.
func validateOnline(ctx context.Context, stdout, stderr io.Writer, cfg *policy.Config, at time.Time) (int, error) {
	client, err := validateClient(cfg)
	if err != nil {
		return 0, err
	}
	problems := 0
	problem := func(p policy.Policy, i int, path, format string, args ...any) {
		problems++
		fmt.Fprintf(stderr, "%s: policies[%d]%s: %s\n", p.Pos, i, path, fmt.Sprintf(format, args...))
	}
	results := policy.ResolveAll(ctx, cfg.Policies, client.Clusters,
		policy.ResolveOptions{ProjectTimeout: policy.ProjectTimeout(cfg.Atlas)})
	for i, p := range cfg.Policies {
		res := results[i]
		for _, f := range res.Failed {
			problem(p, i, validateProjectPath(p, f.ProjectID), "cannot resolve its targets: %v", f.Err)
		}
		if len(res.Failed) > 0 && len(res.Targets) == 0 && len(res.Skipped) == 0 {
			continue
		}
		validateHeader(stdout, p)
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "  TARGET\tNEXT %d FIRES (%s)\n", validateFires, p.Timezone)
		for _, t := range res.Targets {
			fmt.Fprintf(tw, "  %s\t%s\n", t, validateFireTimes(p, t, at))
		}
		for _, s := range res.Skipped {
			fmt.Fprintf(tw, "  %s\tskipped: %s (%s)\n", s.Target, s.Reason, s.Detail)
		}
		_ = tw.Flush()
		for _, s := range res.Skipped {
			if p.FlexRestore != nil {
				problem(p, i, ".flexRestore", "%s", s.Detail)
			} else if p.RestoreDrill != nil {
				problem(p, i, ".restoreDrill", "%s", s.Detail)
			} else if validateNamed(p, s.Target) {
				problem(p, i, ".targets", "cluster %s is named explicitly but cannot be used: %s (%s)", s.Target, s.Reason, s.Detail)
			}
		}
		if len(res.Targets) == 0 && len(res.Failed) == 0 && p.FlexRestore == nil && p.RestoreDrill == nil {
			fmt.Fprintf(stderr, "warning: %s: policies[%d].targets: matches no usable cluster right now\n", p.Pos, i)
		}
		if p.Export != nil {
			for _, project := range validateProjects(p) {
				_, err := client.Buckets.Get(ctx, project, p.Export.BucketID)
				switch {
				case atlas.IsNotFound(err):
					problem(p, i, ".export.bucketID", "bucket %s not found in project %s", p.Export.BucketID, project)
				case err != nil:
					problem(p, i, ".export.bucketID", "checking bucket %s in project %s: %v", p.Export.BucketID, project, err)
				}
			}
		}
	}
	problems += validateOnlineMonitor(ctx, stdout, stderr, cfg.Monitor, client.Clusters, policy.ProjectTimeout(cfg.Atlas), at)
	return problems, nil
}

// validateProjectPath locates projectID in p: the first selector naming
// it, or the flexRestore field.
func validateProjectPath(p policy.Policy, projectID string) string {
	if fr := p.FlexRestore; fr != nil {
		if fr.ProjectID == projectID {
			return ".flexRestore.projectID"
		}
		return ".flexRestore.targetProjectID"
	}
	if rd := p.RestoreDrill; rd != nil {
		if rd.ProjectID == projectID {
			return ".restoreDrill.projectID"
		}
		return ".restoreDrill.targetProjectID"
	}
	i := slices.IndexFunc(p.Targets, func(sel policy.TargetSelector) bool { return sel.ProjectID == projectID })
	return fmt.Sprintf(".targets[%d].projectID", i)
}

// validateNamed reports whether t was named literally (not by a glob) in
// one of p's selectors.
func validateNamed(p policy.Policy, t run.Target) bool {
	for _, sel := range p.Targets {
		if sel.ProjectID == t.ProjectID && slices.Contains(sel.Clusters, t.Cluster) {
			return true
		}
	}
	return false
}

// validateProjects lists the distinct projects of p's selectors, in order.
func validateProjects(p policy.Policy) []string {
	var out []string
	for _, sel := range p.Targets {
		if !slices.Contains(out, sel.ProjectID) {
			out = append(out, sel.ProjectID)
		}
	}
	return out
}
