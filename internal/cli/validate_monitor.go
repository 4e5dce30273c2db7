package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/monitor"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// validatePrintMonitor prints the monitor section's selection and timing
// offline: nothing is asked of Atlas, so globs stay globs.
func validatePrintMonitor(w io.Writer, m *policy.Monitor) {
	if m == nil {
		return
	}
	plan := monitor.NewPlan(*m)
	fmt.Fprintf(w, "\nmonitor (native backups, read-only): each cluster read every %s, overdue %s after a slot\n",
		policy.FormatDuration(plan.Interval()), policy.FormatDuration(plan.Margin()))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROJECT\tCLUSTERS\tEXCLUDING")
	for _, sel := range m.Targets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", sel.ProjectID, joinOrDash(sel.Clusters), joinOrDash(sel.Exclude))
	}
	_ = tw.Flush()
}

// validateOnlineMonitor lists, per project the monitor names, the clusters
// it would watch right now (what the daemon's monitor selects from the same
// listings) with each one's first read, and counts a project Atlas cannot
// list, or a selector matching nothing, as a problem.
func validateOnlineMonitor(ctx context.Context, stdout, stderr io.Writer, m *policy.Monitor, clusters policy.ClusterLister, timeout time.Duration, at time.Time) int {
	if m == nil {
		return 0
	}
	plan := monitor.NewPlan(*m)
	problems := 0
	fmt.Fprintf(stdout, "\nmonitor (native backups, read-only): each cluster read every %s\n", policy.FormatDuration(plan.Interval()))
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLUSTER\tKIND\tBACKUP\tFIRST READ")
	watched := map[string]int{}
	for _, project := range plan.Projects() {
		lctx, cancel := context.WithTimeout(ctx, timeout)
		ded, err := clusters.List(lctx, project)
		var flex []atlas.FlexCluster
		if err == nil {
			flex, err = clusters.ListFlex(lctx, project)
		}
		cancel()
		if err != nil {
			problems++
			fmt.Fprintf(stderr, "%s: monitor.targets: project %s: cannot list its clusters: %v\n", m.Pos, project, err)
			continue
		}
		row := func(name, kind, backup string) {
			t := run.Target{ProjectID: project, Cluster: name}
			if !plan.Selects(t) {
				return
			}
			watched[project]++
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t, kind, backup, plan.NextRead(t, at).UTC().Format(time.RFC3339))
		}
		for _, c := range ded {
			backup := "enabled"
			if !c.BackupEnabled {
				backup = "DISABLED"
			}
			row(c.Name, string(c.ClusterType), backup)
		}
		for _, f := range flex {
			row(f.Name, "FLEX", "always")
		}
	}
	_ = tw.Flush()
	for _, project := range plan.Projects() {
		if watched[project] == 0 {
			fmt.Fprintf(stderr, "warning: %s: monitor.targets: project %s: selects no cluster right now\n", m.Pos, project)
		}
	}
	return problems
}

func joinOrDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
