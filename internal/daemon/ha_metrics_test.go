package daemon_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// runOutcomeFamilies are the series a standby must not export: they come
// from its own journal, which stops at its last term.
var runOutcomeFamilies = []string{
	"backupd_runs_total", "backupd_last_success_timestamp_seconds", "backupd_last_run_success",
	"backupd_next_run_timestamp_seconds", "backupd_snapshot_size_bytes", "backupd_inflight_runs",
}

// families reports which of names have a sample line in /metrics.
func (e *env) families(t *testing.T, names []string) map[string]bool {
	t.Helper()
	_, body := e.get(t, "/metrics")
	got := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		for _, n := range names {
			if strings.HasPrefix(l, n+"{") || strings.HasPrefix(l, n+" ") {
				got[n] = true
			}
		}
	}
	return got
}

// Issue 16 (alerts with several replicas): a replica exports the
// per-target run-outcome series only while it leads. As a standby its
// journal goes stale, and a stale "last run failed" or last success would
// make the shipped alerts fire on every standby; the leadership gauges and
// the configuration series stay, and the series come back (with what the
// journal knows) when it leads again.
func TestHAStandbyHidesRunOutcomeSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", true, "")
		e := launchHA(t, dir, sim, f)
		defer e.stop()

		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + 45*time.Minute) // the slot's run succeeds
		synctest.Wait()
		if rs := e.runsOf(t, "hourly"); len(rs) == 0 || rs[0].Stage != "succeeded" {
			t.Fatalf("runs = %+v, want the slot succeeded", rs)
		}
		got := e.families(t, runOutcomeFamilies)
		for _, n := range runOutcomeFamilies {
			if !got[n] {
				t.Fatalf("the leader does not export %s: %v", n, got)
			}
		}

		f.lose("pod-b")
		synctest.Wait()
		if got := e.families(t, runOutcomeFamilies); len(got) != 0 {
			t.Fatalf("a standby exports %v", got)
		}
		for _, want := range []string{`backupd_ha_leading 0`, `backupd_ha_leader{identity="pod-b"} 1`} {
			if !e.metric(t, want) {
				t.Fatalf("a standby lacks %q", want)
			}
		}
		if got := e.families(t, []string{"backupd_policy_info", "backupd_schedule_interval_seconds"}); len(got) != 2 {
			t.Fatalf("a standby lacks its configuration series: %v", got)
		}

		f.lead()
		synctest.Wait()
		got = e.families(t, runOutcomeFamilies)
		for _, n := range []string{"backupd_runs_total", "backupd_last_success_timestamp_seconds", "backupd_last_run_success", "backupd_inflight_runs"} {
			if !got[n] {
				t.Fatalf("leading again, the replica does not export %s: %v", n, got)
			}
		}
	})
}
