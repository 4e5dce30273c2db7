package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Formats Render writes.
const (
	FormatMarkdown = "markdown"
	FormatJSON     = "json"
	FormatHTML     = "html"
)

// Formats lists the formats, for messages.
var Formats = []string{FormatMarkdown, FormatJSON, FormatHTML}

// ContentType is the media type of a format.
func ContentType(format string) string {
	switch format {
	case FormatJSON:
		return "application/json"
	case FormatHTML:
		return "text/html; charset=utf-8"
	}
	return "text/markdown; charset=utf-8"
}

// Render writes rep in format to w. An unknown format is an error.
func Render(w io.Writer, rep *Report, format string) error {
	f, err := formatter(format)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	if err := f.head(bw, rep); err != nil {
		return err
	}
	for _, c := range rep.Clusters {
		if err := f.cluster(bw, c); err != nil {
			return err
		}
	}
	if err := f.foot(bw, rep); err != nil {
		return err
	}
	return flush(bw, format)
}

// Stream builds the report of in and src for q (q valid) and writes it in
// format to w as it goes, holding one cluster's evidence at a time: the
// runs of src (ordered by cluster, as journal.Outcomes yields them) and
// in.Runs (any order, held whole) are its runs. JSON takes one pass over
// src, its totals written after the clusters; Markdown and HTML take two,
// the first for the summary at their top, so src must yield the same runs
// twice. It returns the totals; an error from src, or from writing, ends
// it, with the report written so far incomplete.
func Stream(w io.Writer, format string, in Input, q Query, src Source) (Totals, error) {
	f, err := formatter(format)
	if err != nil {
		return Totals{}, err
	}
	b := newBuilder(in, q)
	rep := header(in, q)
	bw := bufio.NewWriter(w)
	if format != FormatJSON {
		// The summary: every cluster's verdict, without its evidence.
		err := b.each(src, func(c Cluster) error {
			rep.Totals.add(c)
			rep.Clusters = append(rep.Clusters, Cluster{Target: c.Target, Met: c.Met, Why: c.Why})
			return nil
		})
		if err != nil {
			return Totals{}, err
		}
	}
	if err := f.head(bw, rep); err != nil {
		return Totals{}, err
	}
	var totals Totals
	err = b.each(src, func(c Cluster) error {
		totals.add(c)
		if err := f.cluster(bw, c); err != nil {
			return err
		}
		if bw.Buffered() > 64<<10 {
			return flush(bw, format)
		}
		return nil
	})
	if err != nil {
		return totals, err
	}
	rep.Totals = totals
	if err := f.foot(bw, rep); err != nil {
		return totals, err
	}
	return totals, flush(bw, format)
}

func flush(bw *bufio.Writer, format string) error {
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write the report as %s: %w", format, err)
	}
	return nil
}

// A renderer writes a report in three parts: what comes before the
// clusters (given the report without them, or with their verdicts
// alone), each cluster, and what comes after (given the totals). Write
// errors stay in the bufio.Writer until it is flushed; the errors
// returned are the template's.
type renderer struct {
	head    func(w *bufio.Writer, rep *Report) error
	cluster func(w *bufio.Writer, c Cluster) error
	foot    func(w *bufio.Writer, rep *Report) error
}

func formatter(format string) (renderer, error) {
	switch format {
	case FormatJSON:
		return renderer{head: noErr(jsonHead), cluster: noErr(jsonCluster()), foot: noErr(jsonFoot)}, nil
	case FormatMarkdown:
		return renderer{head: noErr(mdHead), cluster: noErr(mdCluster), foot: func(*bufio.Writer, *Report) error { return nil }}, nil
	case FormatHTML:
		return renderer{head: html[*Report]("head"), cluster: html[Cluster]("cluster"), foot: html[*Report]("foot")}, nil
	}
	return renderer{}, fmt.Errorf("report format %q: use %s", format, strings.Join(Formats, ", "))
}

func noErr[T any](f func(*bufio.Writer, T)) func(*bufio.Writer, T) error {
	return func(w *bufio.Writer, v T) error { f(w, v); return nil }
}

// html executes the page's template name.
func html[T any](name string) func(*bufio.Writer, T) error {
	return func(w *bufio.Writer, v T) error {
		if err := page.ExecuteTemplate(w, name, v); err != nil {
			return fmt.Errorf("render the report as HTML: %w", err)
		}
		return nil
	}
}

func jsonHead(w *bufio.Writer, rep *Report) {
	// The header, then the clusters, then the totals: a stream knows them
	// at its end.
	p, _ := json.MarshalIndent(rep.Header, "", "  ") // plain values: it cannot fail
	_, _ = w.Write(p[:len(p)-2])                     // without its closing "\n}"
	_, _ = w.WriteString(",\n  \"clusters\": [")
}

func jsonCluster() func(w *bufio.Writer, c Cluster) {
	first := true
	return func(w *bufio.Writer, c Cluster) {
		if !first {
			_ = w.WriteByte(',')
		}
		first = false
		// One line a cluster: indenting a fleet's evidence would double
		// its bytes and the time to write them.
		p, _ := json.Marshal(c)
		_, _ = w.WriteString("\n    ")
		_, _ = w.Write(p)
	}
}

func jsonFoot(w *bufio.Writer, rep *Report) {
	p, _ := json.MarshalIndent(rep.Totals, "  ", "  ")
	_, _ = w.WriteString("\n  ],\n  \"totals\": ")
	_, _ = w.Write(p)
	_, _ = w.WriteString("\n}\n")
}

// Decode reads a report Render wrote as JSON, refusing another schema.
func Decode(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode the report: %w", err)
	}
	if rep.Schema != Schema {
		return nil, fmt.Errorf("decode the report: schema %q, this backupd reads %q", rep.Schema, Schema)
	}
	return &rep, nil
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(time.RFC3339)
}

func dur(d run.Duration) string {
	if d <= 0 {
		return "—"
	}
	return d.D().Round(time.Second).String()
}

// md escapes text for a Markdown table cell or the rest of a line (never
// its start): everything that could start emphasis, code, a link, HTML or
// an entity, or end the cell.
func md(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '|', '<', '>', '&', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT MET"
}

func mdHead(w *bufio.Writer, rep *Report) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# backupd evidence report\n\n")
	p("Period: %s to %s (generated %s, schema %s).\n\n", ts(rep.From), ts(rep.To), ts(rep.GeneratedAt), rep.Schema)
	if !rep.RetainedSince.IsZero() && rep.RetainedSince.After(rep.From) {
		p("The journal keeps runs created since %s only: earlier slots are not judged.\n\n", ts(rep.RetainedSince))
	}
	if len(rep.Filters.Policies)+len(rep.Filters.Clusters) > 0 {
		p("Filters: policies %s; clusters %s.\n\n", md(orAll(rep.Filters.Policies)), md(orAll(rep.Filters.Clusters)))
	}
	if !rep.MonitorConfigured {
		p("The monitor of native backups is not configured: native schedules are not part of this report.\n\n")
	}
	c := rep.Totals.Counts
	p("**%d of %d clusters met their policies.** Slots: %d due, %d succeeded, %d failed, %d skipped, %d missed, %d in flight; %d manual runs.\n\n",
		rep.Totals.Met, rep.Totals.Clusters, c.Due, c.Succeeded, c.Failed, c.Skipped, c.Missed, c.InFlight, c.Manual)
	p("| cluster | verdict | why not |\n|---|---|---|\n")
	for _, cl := range rep.Clusters {
		p("| %s | %s | %s |\n", md(cl.Target.String()), verdict(cl.Met), md(strings.Join(cl.Why, "; ")))
	}
}

func mdCluster(w *bufio.Writer, cl Cluster) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n## %s: %s\n", md(cl.Target.String()), verdict(cl.Met))
	for _, w := range cl.Why {
		p("\n- %s", md(w))
	}
	if len(cl.Why) > 0 {
		p("\n")
	}
	for _, pr := range cl.Policies {
		p("\n### Policy %s (%s): %s\n\n", md(pr.Policy), md(string(pr.Action)), verdict(pr.Met))
		if pr.Configured {
			p("Schedule `%s` (%s), scheduled on this cluster since %s.\n", strings.ReplaceAll(pr.Schedule, "`", "'"), md(pr.Timezone), ts(pr.ScheduledSince))
		} else {
			p("No longer scheduled on this cluster: only its runs are judged.\n")
		}
		k := pr.Counts
		p("Slots: %d due, %d succeeded, %d failed, %d skipped, %d missed, %d in flight; %d manual runs.\n", k.Due, k.Succeeded, k.Failed, k.Skipped, k.Missed, k.InFlight, k.Manual)
		for _, w := range pr.Why {
			p("\n- %s", md(w))
		}
		if len(pr.Why) > 0 {
			p("\n")
		}
		if len(pr.Problems) > 0 {
			p("\n| slot | outcome | reason | run | detail |\n|---|---|---|---|---|\n")
			for _, s := range pr.Problems {
				p("| %s | %s | %s | %s | %s |\n", ts(s.Slot), s.Outcome, md(s.Reason), s.RunID, md(s.Detail))
			}
		}
		if len(pr.Snapshots) > 0 {
			p("\nSnapshots taken:\n\n| snapshot | slot | status | completed | retention | expires | run |\n|---|---|---|---|---|---|---|\n")
			for _, s := range pr.Snapshots {
				p("| %s | %s | %s | %s | %d d | %s | %s |\n", md(s.SnapshotID), ts(s.Slot), md(s.Status), ts(s.CompletedAt), s.RetentionInDays, ts(s.ExpiresAt), s.RunID)
			}
		}
		if len(pr.Exports) > 0 {
			p("\nExports:\n\n| snapshot | bucket | job | state | result | run id in bucket metadata | finished |\n|---|---|---|---|---|---|---|\n")
			for _, e := range pr.Exports {
				p("| %s | %s | %s | %s | %s | %s | %s |\n", md(e.SnapshotID), md(e.BucketID), md(e.JobID), md(e.State), md(e.Result), e.BucketRunID, ts(e.FinishedAt))
			}
		}
		if len(pr.Restores) > 0 {
			p("\nRestores:\n\n| kind | snapshot | into | job | result | requested | restore time | snapshot age | verification | run |\n|---|---|---|---|---|---|---|---|---|---|\n")
			for _, x := range pr.Restores {
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", md(string(x.Kind)), md(x.SnapshotID), md(x.Target.String()), md(x.JobID),
					md(x.Result), ts(x.RequestedAt), dur(x.RestoreDuration), age(x.SnapshotAge), md(x.Verification), x.RunID)
			}
		}
	}
	if n := cl.Native; n != nil {
		p("\n### Native backups (monitor, last read %s)\n\n", ts(n.LastRead))
		if n.LastError != "" {
			p("Last read failed: %s\n\n", md(n.LastError))
		}
		p("Schedule: %s. Newest native snapshot: %s.\n", md(items(n.Schedule)), ts(n.NewestAny))
		if n.Compliance != nil {
			p("Compliance policy in force: %s.", md(items(n.Compliance.Required)))
			if len(n.Compliance.Shortfalls) > 0 {
				p(" The schedule falls short: %s.", md(strings.Join(n.Compliance.Shortfalls, "; ")))
			}
			p("\n")
		} else {
			p("No compliance policy in force for the project.\n")
		}
		if len(n.Overdue) > 0 {
			p("Overdue: %s.\n", md(strings.Join(n.Overdue, ", ")))
		}
	}
}

func orAll(s []string) string {
	if len(s) == 0 {
		return "all"
	}
	return strings.Join(s, ", ")
}

func age(d *run.Duration) string {
	if d == nil {
		return "not recorded"
	}
	return dur(*d)
}

// items says a schedule in words: "daily every 24h0m0s kept 7d".
func items(its []run.NativeItem) string {
	if len(its) == 0 {
		return "none"
	}
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = fmt.Sprintf("%s (at most %s apart, kept %s)", it.Frequency, days(it.MaxGap.D()), days(it.Retention.D()))
	}
	return strings.Join(out, ", ")
}

func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// page is the self-contained HTML page: inline CSS, no script, nothing
// fetched; html/template escapes every value. It is written as XHTML-clean
// markup (every element closed, attributes quoted), so an XML parser
// reads it too.
var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts": ts, "dur": dur, "age": age, "items": items, "verdict": verdict, "orAll": orAll,
	"join": strings.Join,
}).Parse(pageHTML))

const pageHTML = `{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<link rel="icon" href="data:," />
<title>backupd evidence report {{ts .From}} to {{ts .To}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #1b1b1b; }
table { border-collapse: collapse; margin: .6em 0 1.2em; }
th, td { border: 1px solid #c8c8c8; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.met { color: #116329; font-weight: bold; }
.notmet { color: #b3001b; font-weight: bold; }
code { font-size: 90%; }
section.cluster { border-top: 2px solid #888; margin-top: 2em; }
</style>
</head>
<body>
<h1>backupd evidence report</h1>
<p>Period: {{ts .From}} to {{ts .To}} (generated {{ts .GeneratedAt}}, schema <code>{{.Schema}}</code>).</p>
{{- if and (not .RetainedSince.IsZero) (.RetainedSince.After .From)}}
<p>The journal keeps runs created since {{ts .RetainedSince}} only: earlier slots are not judged.</p>
{{- end}}
<p>Filters: policies {{orAll .Filters.Policies}}; clusters {{orAll .Filters.Clusters}}.</p>
{{- if not .MonitorConfigured}}
<p>The monitor of native backups is not configured: native schedules are not part of this report.</p>
{{- end}}
{{- with .Totals}}
<p><strong>{{.Met}} of {{.Clusters}} clusters met their policies.</strong> Slots: {{.Counts.Due}} due, {{.Counts.Succeeded}} succeeded, {{.Counts.Failed}} failed, {{.Counts.Skipped}} skipped, {{.Counts.Missed}} missed, {{.Counts.InFlight}} in flight; {{.Counts.Manual}} manual runs.</p>
{{- end}}
<table>
<tr><th>cluster</th><th>verdict</th><th>why not</th></tr>
{{- range .Clusters}}
<tr><td>{{.Target.ProjectID}}/{{.Target.Cluster}}</td><td class="{{if .Met}}met{{else}}notmet{{end}}">{{verdict .Met}}</td><td>{{join .Why "; "}}</td></tr>
{{- end}}
</table>
{{- end}}
{{define "cluster"}}
<section class="cluster">
<h2>{{.Target.ProjectID}}/{{.Target.Cluster}}: <span class="{{if .Met}}met{{else}}notmet{{end}}">{{verdict .Met}}</span></h2>
{{- if .Why}}
<ul>{{range .Why}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
{{- range .Policies}}
<h3>Policy {{.Policy}} ({{.Action}}): <span class="{{if .Met}}met{{else}}notmet{{end}}">{{verdict .Met}}</span></h3>
{{- if .Configured}}
<p>Schedule <code>{{.Schedule}}</code> ({{.Timezone}}), scheduled on this cluster since {{ts .ScheduledSince}}.</p>
{{- else}}
<p>No longer scheduled on this cluster: only its runs are judged.</p>
{{- end}}
{{- with .Counts}}
<p>Slots: {{.Due}} due, {{.Succeeded}} succeeded, {{.Failed}} failed, {{.Skipped}} skipped, {{.Missed}} missed, {{.InFlight}} in flight; {{.Manual}} manual runs.</p>
{{- end}}
{{- if .Why}}
<ul>{{range .Why}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
{{- if .Problems}}
<table>
<tr><th>slot</th><th>outcome</th><th>reason</th><th>run</th><th>detail</th></tr>
{{- range .Problems}}
<tr><td>{{ts .Slot}}</td><td>{{.Outcome}}</td><td>{{.Reason}}</td><td><code>{{.RunID}}</code></td><td>{{.Detail}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Snapshots}}
<p>Snapshots taken:</p>
<table>
<tr><th>snapshot</th><th>slot</th><th>status</th><th>completed</th><th>retention</th><th>expires</th><th>run</th></tr>
{{- range .Snapshots}}
<tr><td><code>{{.SnapshotID}}</code></td><td>{{ts .Slot}}</td><td>{{.Status}}</td><td>{{ts .CompletedAt}}</td><td>{{.RetentionInDays}} d</td><td>{{ts .ExpiresAt}}</td><td><code>{{.RunID}}</code></td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Exports}}
<p>Exports:</p>
<table>
<tr><th>snapshot</th><th>bucket</th><th>job</th><th>state</th><th>result</th><th>run id in bucket metadata</th><th>finished</th></tr>
{{- range .Exports}}
<tr><td><code>{{.SnapshotID}}</code></td><td><code>{{.BucketID}}</code></td><td><code>{{.JobID}}</code></td><td>{{.State}}</td><td>{{.Result}}</td><td><code>{{.BucketRunID}}</code></td><td>{{ts .FinishedAt}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Restores}}
<p>Restores:</p>
<table>
<tr><th>kind</th><th>snapshot</th><th>into</th><th>job</th><th>result</th><th>requested</th><th>restore time</th><th>snapshot age</th><th>verification</th><th>run</th></tr>
{{- range .Restores}}
<tr><td>{{.Kind}}</td><td><code>{{.SnapshotID}}</code></td><td>{{.Target.ProjectID}}/{{.Target.Cluster}}</td><td><code>{{.JobID}}</code></td><td>{{.Result}}</td><td>{{ts .RequestedAt}}</td><td>{{dur .RestoreDuration}}</td><td>{{age .SnapshotAge}}</td><td>{{.Verification}}</td><td><code>{{.RunID}}</code></td></tr>
{{- end}}
</table>
{{- end}}
{{- end}}
{{- with .Native}}
<h3>Native backups (monitor, last read {{ts .LastRead}})</h3>
{{- if .LastError}}
<p>Last read failed: {{.LastError}}</p>
{{- end}}
<p>Schedule: {{items .Schedule}}. Newest native snapshot: {{ts .NewestAny}}.</p>
{{- if .Compliance}}
<p>Compliance policy in force: {{items .Compliance.Required}}.{{if .Compliance.Shortfalls}} The schedule falls short: {{join .Compliance.Shortfalls "; "}}.{{end}}</p>
{{- else}}
<p>No compliance policy in force for the project.</p>
{{- end}}
{{- if .Overdue}}
<p>Overdue: {{join .Overdue ", "}}.</p>
{{- end}}
{{- end}}
</section>
{{- end}}
{{define "foot"}}
</body>
</html>
{{end}}`
