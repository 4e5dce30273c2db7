package daemon

import (
	"slices"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/backupd/backupd/internal/policy"
)

// The metrics learn which last-success stages each policy produces, so a
// reload that removes export: drops the export series (and its lag alert).
func TestPolicyInfosCarryTheStagesEachPolicyProduces(t *testing.T) {
	hourly := cron.Every(time.Hour)
	cfg := &policy.Config{Policies: []policy.Policy{
		{Name: "snap", Cron: hourly, Snapshot: &policy.SnapshotAction{RetentionInDays: 1}},
		{Name: "snap-export", Cron: hourly, Snapshot: &policy.SnapshotAction{RetentionInDays: 1}, Export: &policy.ExportAction{BucketID: "b"}},
		{Name: "export", Cron: hourly, Export: &policy.ExportAction{BucketID: "b", Source: policy.ExportSourceLatest}},
		{Name: "flex", Cron: hourly, FlexRestore: &policy.FlexRestoreAction{}},
	}}
	want := map[string][]string{
		"snap": {"snapshot"}, "snap-export": {"snapshot", "export"}, "export": {"export"}, "flex": {"restore"},
	}
	for _, pi := range policyInfos(cfg) {
		if !slices.Equal(pi.Stages, want[pi.Name]) {
			t.Errorf("policy %s: stages %q, want %q", pi.Name, pi.Stages, want[pi.Name])
		}
	}
}

// TestLegacySpecKeepsHistoryAcrossUpgrade: marks written when the spec
// carried " TZ=<zone>" match the schedule text the daemon now uses.
func TestLegacySpecKeepsHistoryAcrossUpgrade(t *testing.T) {
	for in, want := range map[string]string{
		"0 2 * * * TZ=Europe/Berlin": "0 2 * * *",
		"@every 6h TZ=UTC":           "@every 6h",
		"0 2 * * *":                  "0 2 * * *",
	} {
		if got := legacySpec(in); got != want {
			t.Errorf("legacySpec(%q) = %q, want %q", in, got, want)
		}
	}
}
