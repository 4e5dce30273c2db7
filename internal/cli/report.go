package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/backupd/backupd/internal/report"
)

// multiFlag is a repeatable string flag (-policy a -policy b).
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(s string) error {
	*m = append(*m, s)
	return nil
}

// Report is `backupd report`: the evidence report of a period, from the
// daemon's journal and the monitor's last reads (GET /api/v1/report). It
// asks the running daemon: the journal file is locked by it, and the
// clusters the policies schedule and the native reads live there. It exits
// exitNotMet (6) when a cluster in the report did not meet its policies,
// after printing the whole report, so a cron job or CI step fails on it.
func Report(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	df := &daemonFlags{}
	df.register(fs, env)
	since := fs.String("since", "", "the period: this long back from -to (30d, 24h) or since this RFC 3339 time (default 30d)")
	from := fs.String("from", "", "the period's start, RFC 3339 (instead of -since)")
	to := fs.String("to", "", "the period's end, RFC 3339 (default now)")
	var policies, clusters multiFlag
	fs.Var(&policies, "policy", "only this policy (a name or a glob; repeatable, or comma-separated)")
	fs.Var(&clusters, "cluster", "only this cluster (a name, projectID/name, or a glob; repeatable, or comma-separated)")
	format := fs.String("o", report.FormatMarkdown, "output format: "+strings.Join(report.Formats, ", "))
	if code, ok := parseFlags(fs, args, stderr, "usage: backupd report [-since 30d | -from T [-to T]] [-policy P]... [-cluster C]... [-o markdown|json|html] [-addr URL | -config PATH]\n\nThe evidence report: per cluster, the snapshots backupd took, its exports and restores, every slot missed or failed and why, the native backups the monitor read, and whether the cluster met its policies over the period.", false); !ok {
		return code
	}
	base, err := df.base(fs, env)
	if err != nil {
		fmt.Fprintf(stderr, "backupd report: %v\n", err)
		return exitUsage
	}
	if !slices.Contains(report.Formats, *format) {
		fmt.Fprintf(stderr, "backupd report: -o format: format must be one of %s\n", strings.Join(report.Formats, ", "))
		return exitUsage
	}
	// The daemon's JSON, rendered here in the asked format (the same
	// renderer the daemon uses): the verb needs the totals for its exit
	// code whatever it prints.
	v := url.Values{"format": {report.FormatJSON}}
	for k, p := range map[string]string{"since": *since, "from": *from, "to": *to} {
		if p != "" {
			v.Set(k, p)
		}
	}
	for _, p := range policies {
		v.Add("policy", p)
	}
	for _, c := range clusters {
		v.Add("cluster", c)
	}
	var body []byte
	if code, ok := readAPI(ctx, "report", base+"/api/v1/report?"+v.Encode(), &body, stderr); !ok {
		return code
	}
	rep, err := report.Decode(bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "backupd report: %v\n", err)
		return exitFailure
	}
	if err := report.Render(stdout, rep, *format); err != nil {
		fmt.Fprintf(stderr, "backupd report: writing the report: %v\n", err)
		return exitFailure
	}
	if rep.Totals.NotMet > 0 {
		return exitNotMet
	}
	return exitOK
}
