package scheduler_test

import (
	"testing"
	"time"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/scheduler"
)

// These tests run Due on schedules exactly as the daemon gets them: parsed
// by internal/policy, whose DST rules differ from raw robfig/cron (a skipped
// wall time fires when the clocks jump, a repeated one fires once).

func policyEntry(t *testing.T, schedule, tz, jitter string) scheduler.Entry {
	t.Helper()
	text := "policies:\n" +
		"  - name: nightly\n" +
		"    schedule: \"" + schedule + "\"\n" +
		"    timezone: " + tz + "\n" +
		"    jitter: " + jitter + "\n" +
		"    targets: [{projectID: 32b6e34b3d91647abb20e7b8, clusters: [prod-1]}]\n" +
		"    snapshot: {retentionInDays: 7}\n"
	env := policy.Env{Getenv: func(k string) string {
		return map[string]string{policy.EnvClientID: "mdb_sa_id_test", policy.EnvClientSecret: "test-secret"}[k]
	}}
	cfg, err := policy.Parse([]byte(text), "cfg.yaml", env)
	if err != nil {
		t.Fatalf("parsing test policy: %v", err)
	}
	p := cfg.Policies[0]
	target := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-1"}
	return scheduler.Entry{
		Key:      p.Name + "|" + target.ProjectID + "|" + target.Cluster,
		Policy:   p.Name,
		Target:   target,
		Spec:     p.Schedule,
		Schedule: p.Cron,
		Location: p.Location,
		Offset:   policy.JitterOffset(p.Name, target, p.Jitter),
		Missed:   p.Missed,
	}
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDueWithPolicySchedulesAcrossDST(t *testing.T) {
	e := policyEntry(t, "30 2 * * *", "Europe/Berlin", "0s")
	since := at(t, "2026-01-01T00:00:00Z")
	cases := []struct {
		name, last, now, slot, next string
	}{
		// 2026-03-29: 02:30 does not exist; the slot fires when clocks jump to 03:00 CEST.
		{"spring forward fires at the jump", "2026-03-28T01:30:00Z", "2026-03-29T01:00:10Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		// 2026-10-25: 02:30 happens twice; only the first (CEST) is a slot.
		{"fall back fires once", "2026-10-24T00:30:00Z", "2026-10-25T00:30:10Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := scheduler.Mark{LastSlot: at(t, c.last), Since: since, Spec: e.Spec}
			fs, next := scheduler.Due(e, m, true, at(t, c.now))
			if len(fs) != 1 || !fs[0].Slot.Equal(at(t, c.slot)) || fs[0].CatchUp || fs[0].Skip != "" {
				t.Fatalf("Due = %+v, want one on-time firing of %s", fs, c.slot)
			}
			if !next.Equal(at(t, c.next)) {
				t.Fatalf("next = %s, want %s", next.UTC(), c.next)
			}
		})
	}
}

func TestDueWithPolicyJitterAndEvery(t *testing.T) {
	e := policyEntry(t, "@every 6h", "Europe/Berlin", "15m")
	if e.Offset <= 0 || e.Offset >= 15*time.Minute {
		t.Fatalf("jitter offset %s outside (0, 15m)", e.Offset)
	}
	start := at(t, "2026-01-01T13:07:00Z")
	_, next1 := scheduler.Due(e, scheduler.Mark{}, false, start)
	_, next2 := scheduler.Due(e, scheduler.NewMark(e, start), true, at(t, "2026-01-01T16:00:00Z"))
	want := at(t, "2026-01-01T18:00:00Z").Add(e.Offset)
	if !next1.Equal(want) || !next2.Equal(want) {
		t.Fatalf("next at first start %s, after a restart %s, want both %s", next1, next2, want)
	}
	fs, _ := scheduler.Due(e, scheduler.NewMark(e, start), true, want)
	if len(fs) != 1 || !fs[0].At.Equal(want) || !fs[0].Slot.Equal(at(t, "2026-01-01T18:00:00Z")) {
		t.Fatalf("Due at the jittered time = %+v, want the 18:00 slot", fs)
	}
}
