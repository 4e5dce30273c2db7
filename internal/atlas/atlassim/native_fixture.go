package atlassim

import (
	"fmt"
	"net/http"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// FixturePolicyItem is one policy item of a fixture's schedule or
// compliance policy, with the API's field names.
type FixturePolicyItem struct {
	FrequencyType     string `yaml:"frequencyType" json:"frequencyType"`
	FrequencyInterval int    `yaml:"frequencyInterval" json:"frequencyInterval"`
	RetentionUnit     string `yaml:"retentionUnit" json:"retentionUnit"`
	RetentionValue    int    `yaml:"retentionValue" json:"retentionValue"`
}

func (p FixturePolicyItem) item() atlas.PolicyItem {
	return atlas.PolicyItem{FrequencyType: atlas.FrequencyType(p.FrequencyType), FrequencyInterval: p.FrequencyInterval,
		RetentionUnit: atlas.RetentionUnit(p.RetentionUnit), RetentionValue: p.RetentionValue}
}

// FixtureSchedule is a cluster's native backup schedule (see ScheduleSpec).
// Default true starts from Atlas's default policy (DefaultSchedule); Items,
// when given, replace its items.
type FixtureSchedule struct {
	Default               bool                `yaml:"default" json:"default"`
	Items                 []FixturePolicyItem `yaml:"policyItems" json:"policyItems"`
	ReferenceHourOfDay    int                 `yaml:"referenceHourOfDay" json:"referenceHourOfDay"`
	ReferenceMinuteOfHour int                 `yaml:"referenceMinuteOfHour" json:"referenceMinuteOfHour"`
	RestoreWindowDays     int                 `yaml:"restoreWindowDays" json:"restoreWindowDays"`
	Backfill              time.Duration       `yaml:"backfill" json:"-"`
	Stalled               bool                `yaml:"stalled" json:"stalled"`
}

func (f FixtureSchedule) spec() ScheduleSpec {
	sp := ScheduleSpec{}
	if f.Default {
		sp = DefaultSchedule()
	}
	if len(f.Items) > 0 {
		sp.Items = nil
		for _, it := range f.Items {
			sp.Items = append(sp.Items, it.item())
		}
	}
	sp.ReferenceHourOfDay, sp.ReferenceMinuteOfHour = f.ReferenceHourOfDay, f.ReferenceMinuteOfHour
	sp.RestoreWindowDays, sp.Backfill = f.RestoreWindowDays, f.Backfill
	return sp
}

// FixtureCompliancePolicy is a project's Backup Compliance Policy (see
// CompliancePolicySpec).
type FixtureCompliancePolicy struct {
	ScheduledPolicyItems    []FixturePolicyItem `yaml:"scheduledPolicyItems" json:"scheduledPolicyItems"`
	OnDemandPolicyItem      *FixturePolicyItem  `yaml:"onDemandPolicyItem" json:"onDemandPolicyItem"`
	CopyProtectionEnabled   bool                `yaml:"copyProtectionEnabled" json:"copyProtectionEnabled"`
	EncryptionAtRestEnabled bool                `yaml:"encryptionAtRestEnabled" json:"encryptionAtRestEnabled"`
	PitEnabled              bool                `yaml:"pitEnabled" json:"pitEnabled"`
	RestoreWindowDays       int                 `yaml:"restoreWindowDays" json:"restoreWindowDays"`
	AuthorizedEmail         string              `yaml:"authorizedEmail" json:"authorizedEmail"`
}

func (f FixtureCompliancePolicy) spec() *CompliancePolicySpec {
	sp := &CompliancePolicySpec{CopyProtectionEnabled: f.CopyProtectionEnabled, EncryptionAtRestEnabled: f.EncryptionAtRestEnabled,
		PitEnabled: f.PitEnabled, RestoreWindowDays: f.RestoreWindowDays, AuthorizedEmail: f.AuthorizedEmail}
	for _, it := range f.ScheduledPolicyItems {
		sp.ScheduledItems = append(sp.ScheduledItems, it.item())
	}
	if od := f.OnDemandPolicyItem; od != nil {
		it := od.item()
		sp.OnDemandItem = &it
	}
	return sp
}

// applySchedule sets a fixture cluster's schedule.
func (f *Fixture) applySchedule(s *Sim, projectID string, pi, ci int, c FixtureCluster) error {
	if c.Schedule == nil {
		return nil
	}
	if c.Schedule.Backfill < 0 {
		return f.where(fmt.Errorf("backfill must not be negative: %w", ErrInvalid), "projects", pi, "clusters", ci, "schedule")
	}
	if err := s.SetSchedule(projectID, c.Name, c.Schedule.spec()); err != nil {
		return f.where(err, "projects", pi, "clusters", ci, "schedule")
	}
	if c.Schedule.Stalled {
		if err := s.StallSchedule(projectID, c.Name, true); err != nil {
			return f.where(err, "projects", pi, "clusters", ci, "schedule")
		}
	}
	return nil
}

// AdminNative is the body of POST /_sim/native/{project}/{cluster}: changes
// to a cluster's native backups. Omitted fields change nothing.
type AdminNative struct {
	// Schedule replaces the cluster's schedule (backfill is not offered here).
	Schedule *FixtureSchedule `json:"schedule,omitempty"`
	// Stalled stops or resumes the scheduled snapshots (see StallSchedule).
	Stalled *bool `json:"stalled,omitempty"`
	// FailScheduled makes the next n scheduled snapshots end failed.
	FailScheduled *int `json:"failScheduled,omitempty"`
	// Fallback takes a fallback snapshot now ("completed" or "failed").
	Fallback string `json:"fallback,omitempty"`
	// FallbackID is set in the answer: the fallback snapshot's id.
	FallbackID string `json:"fallbackId,omitempty"`
}

func (s *Sim) adminNative(w http.ResponseWriter, r *http.Request) {
	project, name := r.PathValue("project"), r.PathValue("cluster")
	var n AdminNative
	if err := decodeAdmin(r, &n); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	if n.FailScheduled != nil && *n.FailScheduled < 0 {
		adminError(w, http.StatusBadRequest, fmt.Errorf("failScheduled %d: must not be negative", *n.FailScheduled))
		return
	}
	if n.Fallback != "" && n.Fallback != "completed" && n.Fallback != "failed" {
		adminError(w, http.StatusBadRequest, fmt.Errorf("fallback %q: want completed or failed", n.Fallback))
		return
	}
	steps := []func() error{}
	if n.Schedule != nil {
		steps = append(steps, func() error { return s.SetSchedule(project, name, n.Schedule.spec()) })
	}
	if n.Stalled != nil {
		steps = append(steps, func() error { return s.StallSchedule(project, name, *n.Stalled) })
	}
	if n.FailScheduled != nil {
		steps = append(steps, func() error { return s.FailScheduledSnapshots(project, name, *n.FailScheduled) })
	}
	if n.Fallback != "" {
		steps = append(steps, func() error {
			id, err := s.TakeFallbackSnapshot(project, name, n.Fallback == "failed")
			n.FallbackID = id
			return err
		})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			adminFleetError(w, err)
			return
		}
	}
	s.log("atlassim: admin: native backups of %s/%s changed", project, name)
	adminJSON(w, http.StatusOK, n)
}

// AdminCompliance is the body of POST /_sim/compliance/{project}: the
// project's Backup Compliance Policy, or none when Policy is omitted.
type AdminCompliance struct {
	Policy *FixtureCompliancePolicy `json:"policy"`
}

func (s *Sim) adminCompliance(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project")
	var c AdminCompliance
	if err := decodeAdmin(r, &c); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	var sp *CompliancePolicySpec
	if c.Policy != nil {
		sp = c.Policy.spec()
	}
	if err := s.SetCompliancePolicy(project, sp); err != nil {
		adminFleetError(w, err)
		return
	}
	adminJSON(w, http.StatusOK, c)
}
