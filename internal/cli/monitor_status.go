package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// writeMonitor renders the monitor's watched clusters, one line each, if
// the daemon runs a monitor.
func writeMonitor(w io.Writer, st run.Status) {
	m := st.Monitor
	if m == nil {
		return
	}
	interval := m.Interval.D()
	fmt.Fprintf(w, "\nMONITOR (Atlas native backups, read every %s)\n", interval)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tNEWEST\tDUE\tLAST READ\tPROBLEMS")
	for _, c := range m.Clusters {
		if c.LastRead.IsZero() {
			line := "not read yet, first read " + c.NextRead.UTC().Format("2006-01-02 15:04:05Z")
			if c.LastError != "" {
				line = fmt.Sprintf("never read (%d failures): %s", c.ReadFailures, c.LastError)
			}
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", c.Target, line)
			continue
		}
		var newest []string
		for _, kind := range slices.Sorted(maps.Keys(c.Newest)) {
			newest = append(newest, kind+" "+ago(st.Now, c.Newest[kind]))
		}
		due := "-"
		switch {
		case len(c.Overdue) > 0:
			due = "OVERDUE " + strings.Join(c.Overdue, ",")
		case !c.Due.IsZero():
			due = c.Due.UTC().Format("2006-01-02 15:04:05Z")
		}
		problems := slices.Clone(c.Problems)
		if c.LastError != "" {
			problems = append(problems, fmt.Sprintf("last read failed (%d failures): %s", c.ReadFailures, c.LastError))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Target, orDash(strings.Join(newest, ", ")), due, ago(st.Now, c.LastRead), orDash(strings.Join(problems, "; ")))
	}
	for _, e := range m.ListErrors {
		fmt.Fprintf(tw, "%s/*\t-\t-\t-\tnot listed for %s, last known clusters kept: %s\n", e.ProjectID, st.Now.Sub(e.Since).Round(time.Second), e.Error)
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
