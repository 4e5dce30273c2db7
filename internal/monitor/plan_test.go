package monitor

import (
	"fmt"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

func TestPlanSelects(t *testing.T) {
	p := NewPlan(policy.Monitor{Targets: []policy.TargetSelector{
		{ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaa", Clusters: []string{"prod-*", "analytics"}, Exclude: []string{"prod-scratch"}},
		{ProjectID: "bbbbbbbbbbbbbbbbbbbbbbbb", Clusters: []string{"*"}},
	}})
	tests := []struct {
		t    run.Target
		want bool
	}{
		{run.Target{ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaa", Cluster: "prod-a"}, true},
		{run.Target{ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaa", Cluster: "analytics"}, true},
		{run.Target{ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaa", Cluster: "prod-scratch"}, false},
		{run.Target{ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaa", Cluster: "dev-a"}, false},
		{run.Target{ProjectID: "bbbbbbbbbbbbbbbbbbbbbbbb", Cluster: "anything"}, true},
		{run.Target{ProjectID: "cccccccccccccccccccccccc", Cluster: "prod-a"}, false},
	}
	for _, tc := range tests {
		if got := p.Selects(tc.t); got != tc.want {
			t.Errorf("Selects(%s) = %v, want %v", tc.t, got, tc.want)
		}
	}
	if p.Interval() != policy.DefaultMonitorInterval || p.Margin() != policy.DefaultMonitorMargin {
		t.Errorf("defaults: interval %s margin %s", p.Interval(), p.Margin())
	}
}

func TestNextRead(t *testing.T) {
	p := NewPlan(policy.Monitor{Interval: 10 * time.Minute})
	a := run.Target{ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaa", Cluster: "prod-a"}
	off := p.Offset(a)
	if off != policy.JitterOffset(jitterKey, a, 10*time.Minute) || off >= 10*time.Minute || off%time.Second != 0 {
		t.Fatalf("offset %s", off)
	}
	base := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC) // a multiple of 10 minutes since the epoch
	tests := []struct {
		name  string
		after time.Time
		want  time.Time
	}{
		{"before this interval's read", base, base.Add(off)},
		{"exactly at the read: the next one", base.Add(off), base.Add(off + 10*time.Minute)},
		{"just after the read", base.Add(off + time.Nanosecond), base.Add(off + 10*time.Minute)},
		{"just before the read", base.Add(off - time.Nanosecond), base.Add(off)},
		{"before the epoch", time.Unix(0, 0).Add(-30*time.Minute + off - time.Second), time.Unix(0, 0).Add(-30*time.Minute + off)},
	}
	for _, tc := range tests {
		got := p.NextRead(a, tc.after)
		if !got.Equal(tc.want) {
			t.Errorf("%s: NextRead(%s) = %s, want %s", tc.name, tc.after, got, tc.want)
		}
	}
	// A zone that changes its clocks that night gives the same instants.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 24 * 6 {
		after := base.Add(time.Duration(i) * 10 * time.Minute)
		if u, z := p.NextRead(a, after), p.NextRead(a, after.In(paris)); !u.Equal(z) || z.Sub(after) <= 0 || z.Sub(after) > 10*time.Minute {
			t.Fatalf("after %s: UTC %s, Paris %s", after, u, z)
		}
	}
}

// TestReadsSpread: the reads of a fleet spread over the interval instead of
// coming in a burst: 6,000 clusters read every 10 minutes land in all 600
// seconds, none holding more than a few times the mean of 10.
func TestReadsSpread(t *testing.T) {
	p := NewPlan(policy.Monitor{Interval: 10 * time.Minute})
	perSecond := map[time.Duration]int{}
	for i := range 6000 {
		tg := run.Target{ProjectID: fmt.Sprintf("%024x", i%50), Cluster: fmt.Sprintf("c-%d", i)}
		perSecond[p.Offset(tg)]++
	}
	busiest := 0
	for _, n := range perSecond {
		busiest = max(busiest, n)
	}
	if len(perSecond) < 590 || busiest > 30 {
		t.Errorf("6000 reads over 600 s used %d distinct seconds, busiest %d: want an even spread", len(perSecond), busiest)
	}
	if NewPlan(policy.Monitor{Interval: 10 * time.Minute}).Offset(run.Target{ProjectID: "x", Cluster: "y"}) !=
		p.Offset(run.Target{ProjectID: "x", Cluster: "y"}) {
		t.Error("offsets differ between two plans of the same section")
	}
}
