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

// Issue 16 (alerts after a takeover): a replica that leads again holds a
// journal as old as its last term, while the other replica ran the slots
// since. It publishes the last run Atlas's markers show, not its own
// journal's: a failure it saw before another replica's success does not
// come back as backupd_last_run_success 0 (a false BackupdLastRunFailed),
// and a success it saw before another replica's failure does not hide
// that failure. The last-success timestamps follow Atlas too.
func TestHATakeoverPublishesTheLastRunAtlasShows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, a, b, fa, fb := launchPair(t)
		defer a.stop()
		defer b.stop()
		lbl := `{cluster="prod-a",policy="hourly",project="` + project + `"`
		lastRun := func(e *env) float64 { return e.metricValue(t, "backupd_last_run_success"+lbl+"}") } // -1: absent
		// handOver ends from's term and starts to's (e), as a change of
		// leader, and checks the last result e publishes then.
		handOver := func(from, to *fakeElector, e *env, want float64, why string) {
			t.Helper()
			from.lose(to.id)
			to.lead()
			synctest.Wait()
			if got := lastRun(e); got != want {
				t.Errorf("%s leading again: last_run_success %v, want %v (%s)", to.id, got, want, why)
			}
		}

		// runSlot lets the leader e run slot (failing its snapshot if
		// fail) and checks the result it publishes.
		runSlot := func(e *env, slot time.Time, fail bool) {
			t.Helper()
			if fail {
				sim.FailNextSnapshots(1)
			}
			time.Sleep(time.Until(slot) + 30*time.Minute)
			synctest.Wait()
			if got, want := lastRun(e), map[bool]float64{true: 0, false: 1}[fail]; got != want {
				t.Fatalf("the leader after its run of %s: last_run_success %v, want %v", slot.Format(time.Kitchen), got, want)
			}
		}

		h1 := time.Now().Truncate(time.Hour).Add(time.Hour)
		runSlot(a, h1, true)
		handOver(fa, fb, b, 0, "A's run of the first slot failed; B's journal has no run")
		h2 := h1.Add(time.Hour)
		runSlot(b, h2, false)

		handOver(fb, fa, a, 1, "B's run of the second slot succeeded; A's journal still has its failure of the first")
		for _, stage := range []string{"snapshot", "export"} {
			if v := a.metricValue(t, "backupd_last_success_timestamp_seconds"+lbl+`,stage="`+stage+`"}`); v < float64(h2.Unix()) {
				t.Errorf("A leading again: last %s success at %v, want at or after B's slot %s", stage, v, h2.Format(time.Kitchen))
			}
		}

		runSlot(a, h2.Add(time.Hour), true)
		handOver(fa, fb, b, 0, "A's run of the third slot failed; B's journal still has its success of the second")
	})
}

// Issue 16 (alerts with several replicas): the monitor reads Atlas on
// every replica, but only the leader exports its series, so each monitor
// alert fires once per deployment rather than once per replica.
func TestHAStandbyHidesMonitorSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, monitorSection)
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", false, "pod-b")
		e := launchHA(t, dir, sim, f)
		defer e.stop()
		lbl := `{cluster="prod-a",project="` + project + `"}`
		watch := "backupd_monitor_watch_start_timestamp_seconds" + lbl
		if e.metricValue(t, watch) >= 0 {
			t.Fatalf("a standby exports %s", watch)
		}
		f.lead()
		synctest.Wait()
		if e.metricValue(t, watch) < 0 {
			t.Fatalf("the leader does not export %s", watch)
		}
		f.lose("pod-b")
		synctest.Wait()
		if e.metricValue(t, watch) >= 0 {
			t.Fatalf("a replica that lost the lease still exports %s", watch)
		}
	})
}
