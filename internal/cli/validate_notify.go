package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/backupd/backupd/internal/policy"
)

// validatePrintNotify prints the notify section as the daemon will use
// it: each webhook's name, format, events and policies, each ping's policy
// and signals, and the delivery bounds. URLs are secrets (their tokens sit
// in the path) and are never printed, nor anything read from a urlFile.
func validatePrintNotify(w io.Writer, n *policy.Notify) {
	if n == nil {
		return
	}
	fmt.Fprintf(w, "\nnotify: %d %s, %d %s; up to %d pending, %d attempts each, %s per request, backoff %s doubling to %s\n",
		len(n.Webhooks), validatePlural(len(n.Webhooks), "webhook", "webhooks"), len(n.Pings), validatePlural(len(n.Pings), "ping", "pings"),
		n.QueueSize, n.Attempts, policy.FormatDuration(n.Timeout), policy.FormatDuration(n.Backoff), policy.FormatDuration(n.MaxBackoff))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(n.Webhooks) > 0 {
		fmt.Fprintln(tw, "  WEBHOOK\tFORMAT\tEVENTS\tPOLICIES")
		for _, h := range n.Webhooks {
			pols := "all"
			if len(h.Policies) > 0 {
				pols = strings.Join(h.Policies, ",")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Name, h.Format, joinOrDash(h.Events), pols)
		}
	}
	if len(n.Pings) > 0 {
		fmt.Fprintln(tw, "  PING POLICY\tMETHOD\tSIGNALS")
		for _, p := range n.Pings {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Policy, p.Method, joinOrDash(p.Send))
		}
	}
	_ = tw.Flush()
}
