package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Status is `backupd status`: policies × targets from the daemon.
func Status(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", DefaultAddr, "the daemon's HTTP address (server.listen)")
	asJSON := fs.Bool("json", false, "print the raw JSON status")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupd status [-addr URL] [-json]\n\nShows policies × targets: last run, result, next run, in-flight stage and Atlas ids.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var st run.Status
	if _, err := callAPI(ctx, "GET", baseURL(*addr)+"/api/v1/status", "", nil, &st); err != nil {
		fmt.Fprintf(stderr, "backupd status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return exitOK
	}
	writeStatus(stdout, st)
	return exitOK
}

// writeStatus renders the status table.
func writeStatus(w io.Writer, st run.Status) {
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "backupd %s, up since %s, %s\n\n", st.Version, st.StartedAt.UTC().Format(time.RFC3339), ready)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tACTION\tTARGET\tLAST RUN\tRESULT\tNEXT RUN\tIN FLIGHT")
	for _, p := range st.Policies {
		if len(p.Targets) == 0 && len(p.Unresolved) == 0 && len(p.ResolutionErrors) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t(no targets)\t-\t-\t-\t-\n", p.Name, p.Action)
		}
		for _, t := range p.Targets {
			last, result := "-", "-"
			if t.LastRun != nil {
				last = ago(st.Now, t.LastRun.FinishedAt)
				result = string(t.LastRun.Stage)
				if t.LastRun.Reason != "" {
					result += "{" + t.LastRun.Reason + "}"
				}
			}
			next := "-"
			if !t.NextRun.IsZero() {
				next = t.NextRun.UTC().Format("2006-01-02 15:04:05Z")
			}
			inflight := "-"
			if r := t.InFlight; r != nil {
				inflight = string(r.Stage) + " " + atlasIDs(*r)
				if r.Stage == run.StageWaiting && r.Detail != "" {
					inflight += " (" + r.Detail + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Action, t.Target, last, result, next, strings.TrimSpace(inflight))
		}
		for _, u := range p.Unresolved {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\tskipped{%s}: %s\t-\t-\n", p.Name, p.Action, u.Target, u.Reason, u.Detail)
		}
		for _, e := range p.ResolutionErrors {
			kept := "nothing known of it"
			switch e.KeptFrom {
			case "resolution":
				kept = "last known targets kept"
			case "journal":
				kept = "the journal's targets kept"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s/*\t-\tunresolved for %s, %s: %s\t-\t-\n", p.Name, p.Action, e.ProjectID, st.Now.Sub(e.Since).Round(time.Second), kept, e.Error)
		}
	}
	_ = tw.Flush()
}

func atlasIDs(r run.Run) string {
	var parts []string
	for _, kv := range [][2]string{{"snapshot", r.SnapshotID}, {"export", r.ExportJobID}, {"flexSnapshot", r.FlexSnapshotID}, {"restore", r.RestoreJobID}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if r.ExportProgress != "" {
		parts = append(parts, "progress="+r.ExportProgress)
	}
	return strings.Join(parts, " ")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	return d.String() + " ago"
}
