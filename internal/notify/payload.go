package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// PayloadVersion is the version of the JSON payload (docs/configuration.md,
// "The JSON payload"). Fields may be added within a version; renaming or
// removing one, or changing its meaning, bumps it.
const PayloadVersion = 1

// Payload is the body a json-format webhook receives for one run event.
// It is its own type, not run.Run, so the journal's record can change
// without breaking receivers.
type Payload struct {
	Version int       `json:"version"`
	Event   string    `json:"event"` // succeeded | failed | skipped
	At      time.Time `json:"at"`    // when the run reached it
	Run     RunInfo   `json:"run"`
}

// RunInfo is the run as a receiver sees it.
type RunInfo struct {
	ID          string    `json:"id"`
	Policy      string    `json:"policy"`
	Action      string    `json:"action"`
	ProjectID   string    `json:"projectID"`
	Cluster     string    `json:"cluster"`
	Manual      bool      `json:"manual"`
	CatchUp     bool      `json:"catchUp"`
	Stage       string    `json:"stage"`
	Reason      string    `json:"reason,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	Slot        time.Time `json:"slot"`
	ScheduledAt time.Time `json:"scheduledAt"`
	CreatedAt   time.Time `json:"createdAt"`
	FinishedAt  time.Time `json:"finishedAt"`
	// Duration is FinishedAt - CreatedAt as a Go duration string ("1h2m3s").
	Duration        string `json:"duration"`
	SnapshotID      string `json:"snapshotID,omitempty"`
	ExportBucketID  string `json:"exportBucketID,omitempty"`
	ExportJobID     string `json:"exportJobID,omitempty"`
	FlexSnapshotID  string `json:"flexSnapshotID,omitempty"`
	RestoreJobID    string `json:"restoreJobID,omitempty"`
	TargetProjectID string `json:"targetProjectID,omitempty"` // flexRestore: where the data went
	TargetCluster   string `json:"targetCluster,omitempty"`
}

// NewPayload describes a run that reached a terminal stage.
func NewPayload(r run.Run, at time.Time) Payload {
	return Payload{Version: PayloadVersion, Event: string(r.Stage), At: at.UTC(), Run: RunInfo{
		ID: string(r.ID), Policy: r.Policy, Action: string(r.Action), ProjectID: r.Target.ProjectID, Cluster: r.Target.Cluster,
		Manual: r.Manual, CatchUp: r.CatchUp, Stage: string(r.Stage), Reason: r.Reason, Detail: r.Detail,
		Slot: r.Slot.UTC(), ScheduledAt: r.ScheduledAt.UTC(), CreatedAt: r.CreatedAt.UTC(), FinishedAt: r.FinishedAt.UTC(),
		Duration:   r.FinishedAt.Sub(r.CreatedAt).String(),
		SnapshotID: r.SnapshotID, ExportBucketID: r.ExportBucketID, ExportJobID: r.ExportJobID,
		FlexSnapshotID: r.FlexSnapshotID, RestoreJobID: r.RestoreJobID,
		TargetProjectID: r.Spec.TargetProjectID, TargetCluster: r.Spec.TargetCluster,
	}}
}

// Summary is the one-line, human description of a run event used by the
// Slack payload and the body of pings.
func Summary(r run.Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "backupd: policy %s on %s %s", r.Policy, r.Target, r.Stage)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	if r.Stage.Terminal() && !r.FinishedAt.IsZero() && r.Stage != run.StageSkipped {
		fmt.Fprintf(&b, " after %s", r.FinishedAt.Sub(r.CreatedAt).Round(time.Second))
	}
	if r.Detail != "" {
		b.WriteString(": " + r.Detail)
	}
	fmt.Fprintf(&b, " [run %s]", r.ID)
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning
// to, as Slack documents ("Escaping text").
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

var stageEmoji = map[run.Stage]string{run.StageSucceeded: ":white_check_mark:", run.StageFailed: ":x:", run.StageSkipped: ":fast_forward:"}

// SlackText is the text of the Slack payload for a terminal run.
func SlackText(r run.Run) string {
	return stageEmoji[r.Stage] + " " + slackEscape.Replace(Summary(r))
}

// body renders the webhook body for r in format. It fails only for a time
// JSON cannot carry (a year outside 0-9999).
func body(format string, r run.Run, at time.Time) ([]byte, error) {
	var v any = NewPayload(r, at)
	if format == policy.FormatSlack {
		v = struct {
			Text string `json:"text"`
		}{SlackText(r)}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the %s payload of run %s: %w", format, r.ID, err)
	}
	return b, nil
}
