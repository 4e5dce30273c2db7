package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Atlas timings of the HA scenarios, on the shared clock (haScale times
// real time). longChain keeps a snapshot in progress for about 10 s of real
// time, so a kill, pause or stop lands in the middle of a chain; shortChain
// finishes a chain (polls included) well inside one 6-second slot, so the
// rollout can demand a run for every slot.
const (
	longChain  = "snapshotQueued: 10s, snapshotInProgress: 90s, exportQueued: 10s, exportInProgress: 60s"
	pauseChain = "snapshotQueued: 5s, snapshotInProgress: 40s, exportQueued: 10s, exportInProgress: 30s"
	shortChain = "snapshotQueued: 2s, snapshotInProgress: 5s, exportQueued: 2s, exportInProgress: 5s"
)

func haPolicy(schedule string) string {
	return fmt.Sprintf(`  - name: ha
    schedule: %q
    targets: [{projectID: %s}]
    snapshot: {retentionInDays: 7, description: ha}
    export: {bucketID: %s, customData: {suite: ha}}
`, schedule, projectID, bucketID)
}

// startThree starts replicas r0..r2 and waits for one of them to lead.
func (s *haSuite) startThree() *replica {
	s.t.Helper()
	for i := range 3 {
		s.replica(i).start()
	}
	return s.waitLeader(60 * time.Second)
}

// TestKubeHALeaderKilledMidChain: the leader is SIGKILLed while its
// snapshot is in progress. Another replica leads within the lease duration
// plus the jittered retries, re-attaches the run from its marker in Atlas
// (the dead replica's journal is not its own) and completes it: one
// snapshot, one export. Before the kill, a follower refuses a trigger and
// names the leader.
func TestKubeHALeaderKilledMidChain(t *testing.T) {
	leaderKilledMidChain(t, newHASuite(t, []string{"c0"}, longChain, haPolicy("* * * * *")))
}

// TestKubeHADefaultTimingsLeaderKilled is the SIGKILL scenario with the ha:
// section's default lease timings (15 s / 10 s / 2 s, none configured) and
// every other default (atlas.timeout 30 s): the fence's deadline (13.5 s
// after a renewal) and the renewals must work together out of the box,
// every write landing inside a live lease, and the takeover within the
// default lease plus the jittered retries.
func TestKubeHADefaultTimingsLeaderKilled(t *testing.T) {
	s := newHASuite(t, []string{"c0"}, longChain, haPolicy("* * * * *"))
	s.timings, s.defaultLease = defaultTimings, true
	leaderKilledMidChain(t, s)
}

func leaderKilledMidChain(t *testing.T, s *haSuite) {
	leader := s.startThree()

	var follower *replica
	for _, r := range s.running() {
		if r != leader {
			follower = r
			break
		}
	}
	code, body, err := httpDo("POST", follower.d.url+"/api/v1/policies/ha/trigger", adminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"leader":"`+leader.id+`"`) {
		t.Errorf("trigger on follower %s: %d %s; want 503 naming the leader %s", follower.id, code, body, leader.id)
	}

	// The gauges agree: 1 on the leader only, and every replica names it.
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, r := range s.running() {
			ms := r.d.metrics()
			leading, _ := ms.sum("backupd_ha_leading", nil)
			if want := map[bool]float64{true: 1, false: 0}[r == leader]; leading != want {
				return false, fmt.Sprintf("%s: backupd_ha_leading %v, want %v", r.id, leading, want)
			}
			if _, ok := ms.sum("backupd_ha_leader", map[string]string{"identity": leader.id}); !ok {
				return false, fmt.Sprintf("%s: no backupd_ha_leader{identity=%q}", r.id, leader.id)
			}
		}
		return true, ""
	})

	p := s.firstPost(60*time.Second, leader.id, "take_snapshot", time.Time{})
	runID := s.runOfSnapshotPost(p)
	if done, _ := chainDone(indexAtlas(s.sim.state()), runID); done {
		t.Fatalf("run %s finished before the kill: the chain is too short for the scenario", runID)
	}
	killed := leader.kill()
	maxTakeover := s.timings.maxTakeover()
	next := s.waitHolder(maxTakeover+10*time.Second, leader.id)
	took := next.acquire.Sub(killed)
	t.Logf("leader %s killed mid-chain (run %s); %s leads %v later (lease %v, renew %v, retry %v)", leader.id, runID, next.holder,
		took.Round(time.Millisecond), s.timings.lease, s.timings.renew, s.timings.retry)
	if took > maxTakeover {
		t.Errorf("takeover took %v, want at most %v (lease duration plus two jittered retry periods)", took, maxTakeover)
	}
	s.waitLeader(30 * time.Second)

	eventually(t, 90*time.Second, func() (bool, string) { return chainDone(indexAtlas(s.sim.state()), runID) })
	snaps, exports := checkNoDuplicates(t, indexAtlas(s.sim.state()))
	ps := s.checkFenced()
	exportBy := ""
	for _, p := range ps {
		if p.op == "create_export" && strings.Contains(p.path, "/c0/") {
			exportBy = p.who
			break
		}
	}
	t.Logf("run %s completed exactly once, its export sent by %s; Atlas: %d snapshots, %d exports, none twice", runID, exportBy, snaps, exports)
	if exportBy == leader.id {
		t.Errorf("the export of run %s was sent by the killed leader %s", runID, leader.id)
	}
}

// probePolicy is a snapshot policy on cluster c1 that only runs when
// triggered: the pause scenario's way to make a woken leader try a write.
func probePolicy() string {
	return fmt.Sprintf(`  - name: probe
    schedule: %q
    targets: [{projectID: %s, clusters: [c1]}]
    snapshot: {retentionInDays: 7, description: probe}
`, farSchedule(), projectID)
}

// TestKubeHALeaderPaused: the leader is SIGSTOPped right after its
// snapshot POST, for twice the lease duration, then continued. Another
// replica takes over and finishes the chain; the paused one, whose timers
// all fire at once on waking, sends nothing after it lost the lease. It
// must have tried, or the scenario proves nothing: on waking it still
// believes it leads until its renewals have failed for the renew deadline
// (3 s here), and a trigger sent to it right after SIGCONT is accepted and
// starts a run on c1 (no other run there) whose snapshot request the fence
// must refuse on the stale renewal. The refusal is counted from its log.
func TestKubeHALeaderPaused(t *testing.T) {
	policies := strings.Replace(haPolicy("* * * * *"), "targets: [{projectID: "+projectID+"}]", "targets: [{projectID: "+projectID+", clusters: [c0]}]", 1) + probePolicy()
	s := newHASuite(t, []string{"c0", "c1"}, pauseChain, policies)
	leader := s.startThree()
	p := s.firstPost(60*time.Second, leader.id, "take_snapshot", time.Time{})
	runID := s.runOfSnapshotPost(p)

	stopped := time.Now()
	leader.d.signal(syscall.SIGSTOP)
	next := s.waitHolder(maxTakeover+10*time.Second, leader.id)
	lost := next.acquire
	// The pause itself is the scenario's input, not a synchronisation.
	<-time.After(time.Until(stopped.Add(2 * haTimings.lease)))
	woke := len(leader.d.output())
	leader.d.signal(syscall.SIGCONT)
	resumed := time.Now()
	code, body, err := httpDo("POST", leader.d.url+"/api/v1/policies/probe/trigger", adminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trigger sent to %s %v after SIGCONT: %d %s", leader.id, time.Since(resumed).Round(time.Millisecond), code, strings.TrimSpace(string(body)))
	t.Logf("%s paused at %s for %v; %s took the lease at %s", leader.id, stopped.Format("15:04:05.000"),
		resumed.Sub(stopped).Round(time.Millisecond), next.holder, lost.Format("15:04:05.000"))

	eventually(t, 30*time.Second, func() (bool, string) {
		v, ok := leader.view()
		if !ok {
			return false, leader.id + " does not answer its status yet"
		}
		if v.Holding() || v.Leader != next.holder {
			return false, fmt.Sprintf("%s is %s, leader %q", leader.id, v.Role, v.Leader)
		}
		return true, ""
	})
	eventually(t, 90*time.Second, func() (bool, string) { return chainDone(indexAtlas(s.sim.state()), runID) })
	// Give the woken replica's parked run one more slot to misbehave in:
	// wait for the new leader's next snapshot.
	s.firstPost(30*time.Second, next.holder, "take_snapshot", resumed)

	snaps, exports := checkNoDuplicates(t, indexAtlas(s.sim.state()))
	after := 0
	for _, p := range s.checkFenced() {
		if p.who == leader.id && !p.at.Before(lost) {
			after++
			t.Errorf("%s sent %s %s at %s, after it lost the lease at %s", p.who, p.op, p.path, p.at.Format("15:04:05.000"), lost.Format("15:04:05.000"))
		}
	}
	out := leader.d.output()[woke:]
	refused := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "run parked: this replica may not send") && strings.Contains(l, "last renewal too old to act on") {
			refused++
		}
	}
	t.Logf("POSTs from %s after it lost the lease: %d; on waking the fence refused %d of its requests (renewal too old; %d \"run parked\" in all) before it logged %d \"lost the lease\"; Atlas: %d snapshots, %d exports, none twice",
		leader.id, after, refused, strings.Count(out, "run parked: this replica may not send"), strings.Count(out, "lost the lease"), snaps, exports)
	if code != http.StatusAccepted || refused == 0 {
		t.Errorf("the trigger on %s after waking was answered %d and the fence refused %d of its writes: the scenario does not exercise the fence (its log since SIGCONT:\n%s)", leader.id, code, refused, out)
	}
}

// TestKubeHAAPIServerDown: the API server is stopped for 30 s. The leader
// steps down after the renew deadline, nobody writes to Atlas without a
// live lease, and one leader resumes once the API server is back.
func TestKubeHAAPIServerDown(t *testing.T) {
	s := newHASuite(t, []string{"c0"}, shortChain, haPolicy("* * * * *"))
	leader := s.startThree()
	s.firstPost(60*time.Second, leader.id, "take_snapshot", time.Time{})

	stopped := time.Now()
	s.kube.StopAPIServer()
	eventually(t, haTimings.renew+15*time.Second, func() (bool, string) {
		for _, r := range s.running() {
			if v, ok := r.view(); !ok || v.Holding() {
				return false, r.id + " is still " + v.Role
			}
		}
		return true, ""
	})
	stepped := time.Since(stopped)
	// The outage's length is the scenario's input, not a synchronisation.
	<-time.After(time.Until(stopped.Add(30 * time.Second)))
	// The API server may accept a renewal before it reports ready: the
	// outage ends when it starts.
	up := time.Now()
	s.kube.StartAPIServer()

	var next leaseSample
	eventually(t, maxTakeover+30*time.Second, func() (bool, string) {
		cur, ok := s.obs.current()
		if !ok || cur.holder == "" || !cur.renew.After(up) {
			return false, fmt.Sprintf("no renewal since the restart (holder %q)", cur.holder)
		}
		next = cur
		return true, ""
	})
	// The first renewal after the restart, whoever made it.
	for _, h := range s.obs.history() {
		if h.holder != "" && h.renew.After(up) {
			next = h
			break
		}
	}
	s.firstPost(60*time.Second, next.holder, "take_snapshot", up)
	s.waitLeader(30 * time.Second)

	ps := s.checkFenced()
	during := 0
	for _, p := range ps {
		if p.at.After(stopped.Add(haTimings.lease)) && p.at.Before(up) {
			during++
		}
	}
	if during != 0 {
		t.Errorf("%d Atlas writes while the API server was down (after the last lease could have run out)", during)
	}
	snaps, exports := checkNoDuplicates(t, indexAtlas(s.sim.state()))
	t.Logf("API server down %v: every replica stood by %v after it went away; %d writes during the outage; %s renewed %v after the restart began and fired again; Atlas: %d snapshots, %d exports, none twice",
		up.Sub(stopped).Round(time.Second), stepped.Round(time.Millisecond), during, next.holder, next.renew.Sub(up).Round(time.Millisecond), snaps, exports)
}

// TestKubeHARollout replaces the replicas one by one, as a Deployment's
// rolling update does (a new pod with a new name and an empty journal
// starts, then the oldest one gets SIGTERM), six times over the first six
// of ten one-minute slots on two clusters. Every slot gets exactly one
// snapshot and one export per cluster, none missed, none twice.
func TestKubeHARollout(t *testing.T) {
	clusters := []string{"c0", "c1"}
	s := newHASuite(t, clusters, shortChain, haPolicy("* * * * *"))
	s.startThree()
	first := s.sim.state().Now.UTC().Truncate(time.Minute).Add(time.Minute)
	const slots, replacements = 10, 6
	slotKey := func(k int, cluster string) string {
		return "ha|" + cluster + "|" + first.Add(time.Duration(k)*time.Minute).Format(time.RFC3339)
	}
	oldest, next := 0, 3
	for k := range slots {
		eventually(t, 60*time.Second, func() (bool, string) {
			idx := indexAtlas(s.sim.state())
			for _, c := range clusters {
				if len(idx.slots[slotKey(k, c)]) == 0 {
					return false, "no run for slot " + slotKey(k, c)
				}
			}
			return true, ""
		})
		if k >= replacements {
			continue
		}
		nr := s.replica(next)
		next++
		nr.start()
		eventually(t, 30*time.Second, func() (bool, string) {
			v, ok := nr.view()
			return ok && v.Leader != "", nr.id + " has not seen the leader yet"
		})
		s.replicas[oldest].term()
		oldest++
	}
	eventually(t, 90*time.Second, func() (bool, string) {
		idx := indexAtlas(s.sim.state())
		for k := range slots {
			for _, c := range clusters {
				ids := idx.slots[slotKey(k, c)]
				if len(ids) != 1 {
					return false, fmt.Sprintf("slot %s has %d runs", slotKey(k, c), len(ids))
				}
				if done, why := chainDone(idx, ids[0]); !done {
					return false, why
				}
			}
		}
		return true, ""
	})
	snaps, exports := checkNoDuplicates(t, indexAtlas(s.sim.state()))
	s.checkFenced()
	holders := map[string]bool{}
	changes := 0
	last := ""
	for _, h := range s.obs.history() {
		if h.holder != "" && h.holder != last {
			holders[h.holder] = true
			changes++
			last = h.holder
		}
	}
	t.Logf("rollout: %d replacements over %d slots x %d clusters; %d leadership changes among %d replicas; every slot one snapshot and one export (%d snapshots, %d exports in Atlas)",
		replacements, slots, len(clusters), changes-1, len(holders), snaps, exports)
}

// TestKubeHAGracefulStop: SIGTERM to the leader mid-chain. It lets its
// requests return, parks its run and releases the Lease, so the next
// replica leads within about one (jittered) retry period instead of a
// lease duration; the chain completes once.
func TestKubeHAGracefulStop(t *testing.T) {
	s := newHASuite(t, []string{"c0"}, longChain, haPolicy("* * * * *"))
	leader := s.startThree()
	p := s.firstPost(60*time.Second, leader.id, "take_snapshot", time.Time{})
	runID := s.runOfSnapshotPost(p)
	at := leader.term()
	next := s.waitHolder(maxTakeover+10*time.Second, leader.id)
	took := next.acquire.Sub(at)
	t.Logf("SIGTERM to leader %s; %s leads %v later (retry period %v, jittered up to %v)", leader.id, next.holder, took.Round(time.Millisecond), haTimings.retry, jitteredRetry)
	if took >= haTimings.lease {
		t.Errorf("takeover after SIGTERM took %v, not less than the lease duration %v: the lease was not released", took, haTimings.lease)
	}
	s.waitLeader(30 * time.Second)
	eventually(t, 90*time.Second, func() (bool, string) { return chainDone(indexAtlas(s.sim.state()), runID) })
	checkNoDuplicates(t, indexAtlas(s.sim.state()))
	s.checkFenced()
}

// TestKubeHATakeoverTimes measures takeover over BACKUPD_E2E_HA_KILLS
// (default 20) SIGKILLs of the leader and 5 SIGTERMs, restarting the
// stopped replica each time: from the signal to the new holder's
// acquireTime in the Lease. The timings are the suite's short ones.
func TestKubeHATakeoverTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement of about two minutes; run without -short")
	}
	s := newHASuite(t, []string{"c0"}, shortChain, haPolicy(farSchedule()))
	s.startThree()
	measure := func(n int, stop func(*replica) time.Time) []time.Duration {
		var took []time.Duration
		for range n {
			l := s.waitLeader(60 * time.Second)
			at := stop(l)
			next := s.waitHolder(maxTakeover+10*time.Second, l.id)
			took = append(took, next.acquire.Sub(at))
			l.start()
		}
		return took
	}
	kills := measure(int(envInt(t, "BACKUPD_E2E_HA_KILLS", 20)), (*replica).kill)
	terms := measure(5, (*replica).term)
	report := func(what string, ds []time.Duration) {
		t.Logf("takeover after %s over %d: min %v p50 %v p99 %v max %v (lease %v, renew %v, retry %v)", what, len(ds),
			percentile(ds, 0).Round(time.Millisecond), percentile(ds, 0.5).Round(time.Millisecond),
			percentile(ds, 0.99).Round(time.Millisecond), percentile(ds, 1).Round(time.Millisecond),
			haTimings.lease, haTimings.renew, haTimings.retry)
	}
	report("SIGKILL", kills)
	report("SIGTERM", terms)
	if m := percentile(kills, 1); m > maxTakeover {
		t.Errorf("a takeover after SIGKILL took %v, want at most %v", m, maxTakeover)
	}
	if m := percentile(terms, 1); m >= haTimings.lease {
		t.Errorf("a takeover after SIGTERM took %v, not less than the lease duration: the lease was not released", m)
	}
}
