package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/run"
)

// Status is `backupd status`: policies × targets from the daemon. With
// -watch it redraws every -interval until ctx ends (SIGINT), timed by
// env.Clock so a test drives it without waiting.
func Status(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	fs, df, out := readVerb("status", stderr, env)
	// -json was this verb's own name for -o json, which every read verb has.
	fs.BoolFunc("json", deprecatedPrefix+"use -o json (the same meaning)", func(s string) error {
		fmt.Fprintln(stderr, "backupd status: warning: -json is deprecated and will be removed; use -o json (the same meaning)")
		if s == "false" {
			return nil
		}
		return fs.Set("o", "json")
	})
	watch := fs.Bool("watch", false, "redraw every -interval until interrupted")
	interval := fs.Duration("interval", 5*time.Second, "with -watch: time between redraws")
	if code, ok := parseFlags(fs, args, stderr, "usage: backupd status [-addr URL | -config PATH] [-o table|json] [-watch [-interval 5s]]\n\nShows policies × targets: last run, result, next run, in-flight stage and Atlas ids.", false); !ok {
		return code
	}
	if *watch && *interval < 100*time.Millisecond {
		fmt.Fprintf(stderr, "backupd status: -interval must be at least 100ms, got %s\n", *interval)
		return exitUsage
	}
	base, err := df.base(fs, env)
	if err != nil {
		fmt.Fprintf(stderr, "backupd status: %v\n", err)
		return exitUsage
	}
	// A terminal is redrawn in place; a pipe or file gets frames one
	// after the other.
	clear := *watch && isTerminal(stdout)
	for {
		var st run.Status
		_, err := callAPI(ctx, "GET", base+"/api/v1/status", "", nil, &st)
		switch {
		case err != nil && ctx.Err() != nil:
			return exitOK // interrupted during a request
		case err != nil && !*watch:
			fmt.Fprintf(stderr, "backupd status: %v\n", err)
			return exitFailure
		case err != nil:
			// A daemon restarting is worth watching through.
			fmt.Fprintf(stderr, "backupd status: %v (retrying in %s)\n", err, *interval)
		case *out == "json":
			printJSON(stdout, st)
		default:
			if clear {
				_, _ = io.WriteString(stdout, "\x1b[H\x1b[2J")
			}
			writeStatus(stdout, st)
		}
		if !*watch {
			return exitOK
		}
		if !clear && err == nil && *out != "json" {
			fmt.Fprintln(stdout)
		}
		if clock.Sleep(ctx, env.Clock, *interval) != nil {
			return exitOK
		}
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writeStatus renders the status table.
func writeStatus(w io.Writer, st run.Status) {
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "backupd %s, up since %s, %s\n", st.Version, st.StartedAt.UTC().Format(time.RFC3339), ready)
	if st.HA != nil {
		fmt.Fprintf(w, "leader election on lease %s: %s\n", st.HA.Lease, st.HA)
	}
	fmt.Fprintln(w)
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
	writeMonitor(w, st)
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
