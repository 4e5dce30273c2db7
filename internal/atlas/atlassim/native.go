package atlassim

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// The native side: what Atlas backs up by itself. A cluster may carry a
// backup schedule (policy items on the simulated clock); its scheduled
// snapshots are produced lazily, whenever the cluster is read, for every
// occurrence the schedule had since it was last read, exactly as if Atlas
// had taken them at those instants. The project may carry a Backup
// Compliance Policy.

// ScheduleSpec is a cluster's native backup schedule.
type ScheduleSpec struct {
	// Items are the policy items (hourly, daily, weekly, monthly, yearly).
	Items []atlas.PolicyItem
	// ReferenceHourOfDay and ReferenceMinuteOfHour anchor every item (UTC).
	ReferenceHourOfDay    int
	ReferenceMinuteOfHour int
	// RestoreWindowDays is reported as is (continuous backup is not simulated).
	RestoreWindowDays int
	// Backfill is how long the schedule had been running when it was set:
	// the snapshots of that past (those not yet expired) exist at once.
	Backfill time.Duration
}

// DefaultSchedule is Atlas's default backup policy for a new cluster: every
// 6 hours kept 7 days, daily kept 7 days, weekly on Saturday kept 4 weeks,
// monthly on the last day kept 12 months.
func DefaultSchedule() ScheduleSpec {
	return ScheduleSpec{Items: []atlas.PolicyItem{
		{FrequencyType: atlas.FrequencyHourly, FrequencyInterval: 6, RetentionUnit: atlas.RetentionDays, RetentionValue: 7},
		{FrequencyType: atlas.FrequencyDaily, FrequencyInterval: 1, RetentionUnit: atlas.RetentionDays, RetentionValue: 7},
		{FrequencyType: atlas.FrequencyWeekly, FrequencyInterval: 6, RetentionUnit: atlas.RetentionWeeks, RetentionValue: 4},
		{FrequencyType: atlas.FrequencyMonthly, FrequencyInterval: 40, RetentionUnit: atlas.RetentionMonths, RetentionValue: 12},
	}}
}

// CompliancePolicySpec is a project's Backup Compliance Policy.
type CompliancePolicySpec struct {
	ScheduledItems          []atlas.PolicyItem
	OnDemandItem            *atlas.PolicyItem
	CopyProtectionEnabled   bool
	EncryptionAtRestEnabled bool
	PitEnabled              bool
	RestoreWindowDays       int
	AuthorizedEmail         string // default compliance@example.com
	AuthorizedUserFirstName string // default Ada
	AuthorizedUserLastName  string // default Lovelace
}

// schedule is a cluster's native schedule and where its production stands.
type schedule struct {
	policyID    string
	items       []atlas.PolicyItem // with ids
	refHour     int
	refMinute   int
	restoreDays int
	producedTo  time.Time // occurrences up to and including this instant exist
	stalled     bool      // Atlas stopped taking scheduled snapshots (CPS_SNAPSHOT_BEHIND)
	stalledAt   time.Time
	failNext    int // the next n scheduled snapshots end failed
}

// frequencyRank orders frequencies: a snapshot that several items take at
// once is labelled with the least frequent one.
var frequencyRank = map[atlas.FrequencyType]int{
	atlas.FrequencyHourly: 1, atlas.FrequencyDaily: 2, atlas.FrequencyWeekly: 3, atlas.FrequencyMonthly: 4, atlas.FrequencyYearly: 5,
}

func checkScheduleItem(i int, p atlas.PolicyItem) error {
	n := p.FrequencyInterval
	ok := true
	switch p.FrequencyType {
	case atlas.FrequencyHourly:
		ok = n == 1 || n == 2 || n == 4 || n == 6 || n == 8 || n == 12
	case atlas.FrequencyDaily:
		ok = n == 1
	case atlas.FrequencyWeekly:
		ok = n >= 1 && n <= 7
	case atlas.FrequencyMonthly:
		ok = (n >= 1 && n <= 28) || n == 40
	case atlas.FrequencyYearly:
		ok = n >= 1 && n <= 12
	default:
		return fmt.Errorf("policy item %d: frequencyType %q is not hourly, daily, weekly, monthly or yearly: %w", i, p.FrequencyType, ErrInvalid)
	}
	if !ok {
		return fmt.Errorf("policy item %d: frequencyInterval %d is not valid for a %s item (hourly 1,2,4,6,8,12; daily 1; weekly 1-7; monthly 1-28 or 40; yearly 1-12): %w",
			i, n, p.FrequencyType, ErrInvalid)
	}
	if p.Retention() == 0 {
		return fmt.Errorf("policy item %d: retention %d %q must be at least 1 of days, weeks, months or years: %w", i, p.RetentionValue, p.RetentionUnit, ErrInvalid)
	}
	return nil
}

func (sp ScheduleSpec) validate() error {
	if sp.ReferenceHourOfDay < 0 || sp.ReferenceHourOfDay > 23 || sp.ReferenceMinuteOfHour < 0 || sp.ReferenceMinuteOfHour > 59 {
		return fmt.Errorf("schedule reference time %02d:%02d is not a UTC time of day: %w", sp.ReferenceHourOfDay, sp.ReferenceMinuteOfHour, ErrInvalid)
	}
	if sp.Backfill < 0 || sp.RestoreWindowDays < 0 {
		return fmt.Errorf("schedule backfill and restoreWindowDays must not be negative: %w", ErrInvalid)
	}
	seen := map[atlas.FrequencyType]bool{}
	for i, p := range sp.Items {
		if err := checkScheduleItem(i, p); err != nil {
			return err
		}
		if seen[p.FrequencyType] {
			return fmt.Errorf("policy item %d: a second %s item (Atlas keeps one per frequency): %w", i, p.FrequencyType, ErrInvalid)
		}
		seen[p.FrequencyType] = true
	}
	return nil
}

// SetSchedule replaces a cluster's native backup schedule. Snapshots the old
// schedule took stay until they expire.
func (s *Sim) SetSchedule(projectID, clusterName string, sp ScheduleSpec) error {
	if err := sp.validate(); err != nil {
		return fmt.Errorf("set schedule of %s: %w", clusterName, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return fmt.Errorf("set schedule: %w", err)
	}
	now := s.clk.Now()
	s.produceLocked(c, now)
	sch := &schedule{policyID: s.newID(), refHour: sp.ReferenceHourOfDay, refMinute: sp.ReferenceMinuteOfHour,
		restoreDays: sp.RestoreWindowDays, producedTo: now.Add(-sp.Backfill)}
	if c.schedule != nil {
		sch.policyID = c.schedule.policyID
	}
	for _, p := range sp.Items {
		p.ID = s.newID()
		sch.items = append(sch.items, p)
	}
	c.schedule = sch
	s.produceLocked(c, now)
	return nil
}

// StallSchedule stops (true) or resumes (false) a cluster's scheduled
// snapshots while its schedule still promises them, as when Atlas falls
// behind (its CPS_SNAPSHOT_BEHIND alert): nextSnapshot stays at the first
// missed occurrence. Resuming does not take the missed ones.
func (s *Sim) StallSchedule(projectID, clusterName string, stalled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return fmt.Errorf("stall schedule: %w", err)
	}
	if c.schedule == nil {
		return fmt.Errorf("stall schedule of %s: the cluster has no schedule: %w", clusterName, ErrInvalid)
	}
	now := s.clk.Now()
	s.produceLocked(c, now)
	if stalled && !c.schedule.stalled {
		c.schedule.stalledAt = now
	}
	c.schedule.stalled = stalled
	return nil
}

// FailScheduledSnapshots makes the cluster's next n scheduled snapshots
// (those due after now) end failed.
func (s *Sim) FailScheduledSnapshots(projectID, clusterName string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return fmt.Errorf("fail scheduled snapshots: %w", err)
	}
	if c.schedule == nil {
		return fmt.Errorf("fail scheduled snapshots of %s: the cluster has no schedule: %w", clusterName, ErrInvalid)
	}
	s.produceLocked(c, s.clk.Now())
	c.schedule.failNext = max(n, 0)
	return nil
}

// TakeFallbackSnapshot makes Atlas take a fallback snapshot of the cluster
// now (as it does when a regular one cannot be taken), which goes through
// the snapshot lifecycle and completes, or fails when failed is true. It
// returns the snapshot's id.
func (s *Sim) TakeFallbackSnapshot(projectID, clusterName string, failed bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.clusterLocked(projectID, clusterName)
	if err != nil {
		return "", fmt.Errorf("take fallback snapshot: %w", err)
	}
	now := s.clk.Now()
	s.produceLocked(c, now)
	sn := s.newSnapshotLocked(c, s.newID(), atlas.SnapshotFallback, now, 7, "")
	s.startLifecycleLocked(sn, now, failed)
	c.snapshots = append(c.snapshots, sn)
	return sn.id, nil
}

// SetCompliancePolicy sets (or, with nil, removes) a project's Backup
// Compliance Policy.
func (s *Sim) SetCompliancePolicy(projectID string, p *CompliancePolicySpec) error {
	if p != nil {
		for i, it := range p.ScheduledItems {
			if err := checkScheduleItem(i, it); err != nil {
				return fmt.Errorf("set compliance policy of project %s: scheduled %w", projectID, err)
			}
		}
		if od := p.OnDemandItem; od != nil && (od.Retention() == 0 || (od.FrequencyType != "" && od.FrequencyType != atlas.FrequencyOnDemand)) {
			return fmt.Errorf("set compliance policy of project %s: the on-demand item needs frequencyType ondemand and a retention of at least 1: %w", projectID, ErrInvalid)
		}
		if p.RestoreWindowDays < 0 {
			return fmt.Errorf("set compliance policy of project %s: restoreWindowDays must not be negative: %w", projectID, ErrInvalid)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pr, err := s.projectLocked(projectID)
	if err != nil {
		return fmt.Errorf("set compliance policy: %w", err)
	}
	if p == nil {
		pr.compliance = nil
		return nil
	}
	v := &atlas.CompliancePolicy{
		ProjectID: projectID, State: atlas.ComplianceActive,
		CopyProtectionEnabled: p.CopyProtectionEnabled, EncryptionAtRestEnabled: p.EncryptionAtRestEnabled,
		PitEnabled: p.PitEnabled, RestoreWindowDays: p.RestoreWindowDays,
		UpdatedDate: ts(s.clk.Now()), UpdatedUser: "compliance@example.com",
		AuthorizedEmail: p.AuthorizedEmail, AuthorizedUserFirstName: p.AuthorizedUserFirstName, AuthorizedUserLastName: p.AuthorizedUserLastName,
	}
	if v.AuthorizedEmail == "" {
		v.AuthorizedEmail = "compliance@example.com"
	}
	if v.AuthorizedUserFirstName == "" {
		v.AuthorizedUserFirstName = "Ada"
	}
	if v.AuthorizedUserLastName == "" {
		v.AuthorizedUserLastName = "Lovelace"
	}
	for _, it := range p.ScheduledItems {
		it.ID = s.newID()
		v.ScheduledPolicyItems = append(v.ScheduledPolicyItems, it)
	}
	if od := p.OnDemandItem; od != nil {
		it := *od
		it.ID, it.FrequencyType, it.FrequencyInterval = s.newID(), atlas.FrequencyOnDemand, 0
		v.OnDemandPolicyItem = &it
	}
	pr.compliance = v
	return nil
}

// startLifecycleLocked runs a snapshot created at `at` through queued and
// inProgress to completed (or failed).
func (s *Sim) startLifecycleLocked(sn *snapshot, at time.Time, failed bool) {
	t := s.timings
	q := s.scaled(t.SnapshotQueued)
	sn.timeline = phases{queuedUntil: at.Add(q), doneAt: at.Add(q + s.scaled(t.SnapshotInProgress))}
	sn.final = atlas.SnapshotCompleted
	if failed {
		sn.final = atlas.SnapshotFailed
	}
}

// produceLocked takes the scheduled snapshots the cluster's schedule had
// due in (producedTo, now]. Nothing is taken while backup is off, the
// cluster is paused, its tier cannot back up or the schedule is stalled;
// those occurrences are skipped, as Atlas skips them. Occurrences whose
// snapshot would already have expired are not materialised.
func (s *Sim) produceLocked(c *cluster, now time.Time) {
	sch := c.schedule
	if sch == nil || !now.After(sch.producedTo) {
		return
	}
	from := sch.producedTo
	sch.producedTo = now
	if sch.stalled || !c.spec.BackupEnabled || c.spec.Paused || tenantTier(c.spec.Tier) {
		return
	}
	// Occurrences older than the longest retention would have expired
	// whatever items they served; younger ones are gathered for every item,
	// so that one snapshot serving several items names them all.
	var longest time.Duration
	for _, it := range sch.items {
		longest = max(longest, it.Retention())
	}
	start := from
	if keep := now.Add(-longest); keep.After(start) {
		start = keep
	}
	due := map[time.Time][]atlas.PolicyItem{}
	for _, it := range sch.items {
		for _, at := range sch.occurrences(it, start, now) {
			due[at] = append(due[at], it)
		}
	}
	times := make([]time.Time, 0, len(due))
	for at := range due {
		times = append(times, at)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for _, at := range times {
		items := due[at]
		sn := s.newSnapshotLocked(c, s.newID(), atlas.SnapshotScheduled, at, 1, "")
		var keep time.Duration
		for _, it := range items {
			sn.policyItems = append(sn.policyItems, it.ID)
			if frequencyRank[it.FrequencyType] > frequencyRank[sn.frequency] {
				sn.frequency = it.FrequencyType
			}
			keep = max(keep, it.Retention())
		}
		sn.expiresAt = at.Add(keep)
		if !now.Before(sn.expiresAt) {
			continue // taken and already deleted by Atlas
		}
		fail := sch.failNext > 0
		if fail {
			sch.failNext--
		}
		s.startLifecycleLocked(sn, at, fail)
		c.snapshots = append(c.snapshots, sn)
	}
}

// occurrences lists the instants in (from, to] at which item fires.
func (sch *schedule) occurrences(it atlas.PolicyItem, from, to time.Time) []time.Time {
	var out []time.Time
	ref := time.Duration(sch.refHour)*time.Hour + time.Duration(sch.refMinute)*time.Minute
	day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	for ; !day.After(to); day = day.AddDate(0, 0, 1) {
		var times []time.Time
		switch it.FrequencyType {
		case atlas.FrequencyHourly:
			n := max(it.FrequencyInterval, 1)
			for h := 0; h < 24; h += n {
				times = append(times, day.Add(ref+time.Duration(h)*time.Hour))
			}
		case atlas.FrequencyDaily:
			times = append(times, day.Add(ref))
		case atlas.FrequencyWeekly:
			// 1 = Monday … 7 = Sunday; time.Weekday has Sunday = 0.
			if int(day.Weekday()) == it.FrequencyInterval%7 {
				times = append(times, day.Add(ref))
			}
		case atlas.FrequencyMonthly:
			last := day.AddDate(0, 0, 1).Day() == 1
			if day.Day() == it.FrequencyInterval || (it.FrequencyInterval == 40 && last) {
				times = append(times, day.Add(ref))
			}
		case atlas.FrequencyYearly:
			if day.Day() == 1 && int(day.Month()) == it.FrequencyInterval {
				times = append(times, day.Add(ref))
			}
		}
		for _, at := range times {
			if at.After(from) && !at.After(to) {
				out = append(out, at)
			}
		}
	}
	return out
}

// next is the schedule's nextSnapshot at now: the first occurrence after
// now, or, while stalled, the first one missed since the stall.
func (sch *schedule) next(now time.Time) time.Time {
	after := now
	if sch.stalled {
		after = sch.stalledAt
	}
	var best time.Time
	for _, it := range sch.items {
		// Every frequency fires within 366 days (yearly items).
		horizon := after.Add(it.Interval() + 48*time.Hour)
		if occ := sch.occurrences(it, after, horizon); len(occ) > 0 && (best.IsZero() || occ[0].Before(best)) {
			best = occ[0]
		}
	}
	return best
}

// --- handlers -------------------------------------------------------------

func (s *Sim) getSchedule(c *call) (any, *apiError) {
	p, cl, e := s.pathCluster(c)
	if e != nil {
		return nil, e
	}
	spec := cl.spec
	switch {
	case tenantTier(spec.Tier):
		return nil, errNoCloudBackup(spec)
	case !spec.BackupEnabled:
		return nil, newErr(http.StatusNotFound, atlas.CodeBackupConfigNotFound, fmt.Sprintf("No backup configuration exists for cluster %s.", spec.Name), spec.Name)
	}
	v := atlas.BackupSchedule{
		ClusterID: cl.id, ClusterName: spec.Name, Policies: []atlas.BackupPolicy{},
		Links: selfLink(c, "/groups/"+p.id+"/clusters/"+spec.Name+"/backup/schedule"),
	}
	if sch := cl.schedule; sch != nil {
		v.Policies = []atlas.BackupPolicy{{ID: sch.policyID, PolicyItems: append([]atlas.PolicyItem{}, sch.items...)}}
		v.ReferenceHourOfDay, v.ReferenceMinuteOfHour, v.RestoreWindowDays = sch.refHour, sch.refMinute, sch.restoreDays
		if !spec.Paused {
			v.NextSnapshot = ts(sch.next(c.now))
		}
	}
	return v, nil
}

func (s *Sim) getCompliancePolicy(c *call) (any, *apiError) {
	p, e := s.pathProject(c)
	if e != nil {
		return nil, e
	}
	if p.compliance == nil {
		return nil, newErr(http.StatusNotFound, atlas.CodeResourceNotFound,
			fmt.Sprintf("No Backup Compliance Policy is set for project %s.", p.id), p.id)
	}
	v := *p.compliance
	v.ScheduledPolicyItems = append([]atlas.PolicyItem(nil), v.ScheduledPolicyItems...)
	return v, nil
}
