package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/run"
)

// fakeElector is a leadership the test steers; it keeps the contract of
// leader.Elector (fences end when the term does, graceful stop waits for
// them, then BeforeRelease, then release) without an API server. The real
// elector is proven against kube-apiserver in internal/ha.
type fakeElector struct {
	id string

	mu       sync.Mutex
	hooks    leader.Hooks
	leading  bool
	leader   string
	stale    bool // the last renewal is too old: Fence refuses while leading
	stopping bool
	released bool
	term     context.Context
	endTerm  context.CancelFunc
	inflight sync.WaitGroup
	admitted int // fences granted
	late     int // fences asked for after the lease was released
}

func newFake(id string, leading bool, leaderID string) *fakeElector {
	f := &fakeElector{id: id, leader: leaderID}
	if leading {
		f.leading, f.leader = true, id
		f.term, f.endTerm = context.WithCancel(context.Background())
	}
	return f
}

func (f *fakeElector) factory(cfg policy.HA, o leader.Options) (leader.Elector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks = o.Hooks
	return f, nil
}

func (f *fakeElector) Identity() string { return f.id }
func (f *fakeElector) Leading() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leading
}
func (f *fakeElector) Leader() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeElector) Fence(ctx context.Context) (context.Context, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		f.late++
	}
	if !f.leading || f.stopping || f.stale {
		other := f.leader
		if other == f.id {
			other = ""
		}
		return nil, nil, &leader.NotLeaderError{Leader: other, Reason: "fake"}
	}
	f.admitted++
	fctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(f.term, func() { cancel(leader.ErrLeaseLost) })
	f.inflight.Add(1)
	var once sync.Once
	return fctx, func() { once.Do(func() { stop(); cancel(nil); f.inflight.Done() }) }, nil
}

func (f *fakeElector) Run(ctx context.Context) {
	<-ctx.Done()
	f.mu.Lock()
	f.stopping = true
	leading := f.leading
	f.mu.Unlock()
	f.inflight.Wait()
	if leading && f.hooks.BeforeRelease != nil {
		f.hooks.BeforeRelease(context.Background())
	}
	f.mu.Lock()
	f.released = true
	f.mu.Unlock()
	if leading {
		f.lose("")
	}
}

// lead makes this replica the leader, as client-go's callbacks would.
func (f *fakeElector) lead() {
	f.mu.Lock()
	f.leading, f.leader = true, f.id
	f.term, f.endTerm = context.WithCancel(context.Background())
	h := f.hooks
	f.mu.Unlock()
	h.NewLeader(f.id)
	h.StartedLeading()
}

// lose ends this replica's term; next is the new leader ("" unknown).
func (f *fakeElector) lose(next string) {
	f.mu.Lock()
	f.leading, f.leader = false, next
	if f.endTerm != nil {
		f.endTerm()
	}
	h := f.hooks
	f.mu.Unlock()
	h.StoppedLeading()
	if next != "" {
		h.NewLeader(next)
	}
}

func (f *fakeElector) counts() (admitted, late int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.admitted, f.late
}

const haSection = "ha:\n  lease: {namespace: apps, name: backupd-leader}\n  identity: ID\n"

// withHA puts an ha: section naming identity at the top of dir's config.
func withHA(t *testing.T, dir, identity string) {
	t.Helper()
	p := filepath.Join(dir, goodConfig)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append([]byte(strings.Replace(haSection, "ID", identity, 1)), b...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// launchHA starts a replica on dir with f as its leadership.
func launchHA(t *testing.T, dir string, sim *atlassim.Sim, f *fakeElector) *env {
	t.Helper()
	e := launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), Elect: f.factory})
	synctest.Wait()
	return e
}

func (e *env) post(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (e *env) status(t *testing.T) run.Status {
	t.Helper()
	code, body := e.get(t, "/api/v1/status")
	var st run.Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("status = %d %s", code, body)
	}
	return st
}

func (e *env) runsOf(t *testing.T, policy string) []run.Run {
	t.Helper()
	code, body := e.get(t, "/api/v1/runs?policy="+policy)
	var out struct{ Runs []run.Run }
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("runs = %d %s", code, body)
	}
	var rs []run.Run // of prod-a: prod-paused's slots end skipped{not_supported}
	for _, r := range out.Runs {
		if r.Target.Cluster == "prod-a" {
			rs = append(rs, r)
		}
	}
	return rs
}

// Issue 16 item 3: a standby fires no slot, sends nothing, refuses a
// trigger naming the leader, and still serves status, health and metrics
// with the leadership gauge.
func TestHAStandbyActsOnNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", false, "pod-b")
		e := launchHA(t, dir, sim, f)
		defer e.stop()

		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + 30*time.Minute)
		synctest.Wait()
		for _, op := range []string{"take_snapshot", "create_export", "get_snapshot"} {
			if n := sim.Calls(op); n != 0 {
				t.Errorf("a standby made %d %s calls", n, op)
			}
		}
		if rs := e.runsOf(t, "hourly"); len(rs) != 0 {
			t.Fatalf("a standby recorded runs: %+v", rs)
		}

		code, body := e.post(t, "/api/v1/policies/hourly/trigger")
		var ans struct {
			Error   string `json:"error"`
			Standby bool   `json:"standby"`
			Leader  string `json:"leader"`
		}
		if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &ans) != nil || !ans.Standby || ans.Leader != "pod-b" || !strings.Contains(ans.Error, "pod-b") {
			t.Fatalf("trigger on a standby = %d %s", code, body)
		}

		st := e.status(t)
		if st.HA == nil || st.HA.Role != run.RoleStandby || st.HA.Leader != "pod-b" || st.HA.Identity != "pod-a" || st.HA.Lease != "apps/backupd-leader" {
			t.Fatalf("status ha = %+v", st.HA)
		}
		if got := st.HA.String(); got != "standby (pod-a), leader is pod-b" {
			t.Fatalf("status line = %q", got)
		}
		if len(st.Policies) == 0 || len(st.Policies[0].Targets) == 0 {
			t.Fatalf("a standby does not show its resolved targets: %+v", st.Policies)
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, body := e.get(t, p); code != 200 {
				t.Fatalf("%s = %d %s", p, code, body)
			}
		}
		for _, want := range []string{`backupd_ha_leading 0`, `backupd_ha_leader{identity="pod-b"} 1`} {
			if !e.metric(t, want) {
				_, body := e.get(t, "/metrics")
				t.Fatalf("metrics lack %q:\n%s", want, grep(body, "backupd_ha"))
			}
		}
	})
}

// Issue 16 items 3 and 4: the leader fires and sends through the fence;
// losing the lease mid-chain stops every request at once and parks the run
// (in flight in the journal, not failed); leading again carries it to the
// end with one snapshot and one export.
func TestHALeaderParksOnLossAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", true, "")
		e := launchHA(t, dir, sim, f)
		defer e.stop()
		if !e.metric(t, `backupd_ha_leading 1`) || !e.metric(t, `backupd_ha_leader{identity="pod-a"} 1`) {
			_, body := e.get(t, "/metrics")
			t.Fatalf("leader gauges:\n%s", grep(body, "backupd_ha"))
		}
		if st := e.status(t); st.HA == nil || st.HA.Role != run.RoleLeader {
			t.Fatalf("status ha = %+v", st.HA)
		}

		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + time.Minute) // the snapshot is queued or in progress
		synctest.Wait()
		if sim.Calls("take_snapshot") != 1 {
			t.Fatalf("take_snapshot calls = %d", sim.Calls("take_snapshot"))
		}
		if admitted, _ := f.counts(); admitted != 1 {
			t.Fatalf("fences granted = %d, want 1 (the snapshot POST)", admitted)
		}

		f.lose("pod-b")
		synctest.Wait()
		before := len(sim.CallLog())
		time.Sleep(time.Hour)
		synctest.Wait()
		for _, c := range sim.CallLog()[before:] {
			if c.Op != "token" && c.Op != "list_clusters" && c.Op != "get_cluster" && c.Op != "list_flex_clusters" {
				t.Errorf("after losing the lease the replica called %s %s", c.Method, c.Path)
			}
		}
		rs := e.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage != run.StageSnapshotting {
			t.Fatalf("runs after the loss = %+v, want one parked in snapshotting", rs)
		}
		if st := e.status(t); st.HA.Role != run.RoleStandby || st.Policies[0].Targets[0].InFlight != nil {
			t.Fatalf("status after the loss: ha %+v, in flight %+v", st.HA, st.Policies[0].Targets[0].InFlight)
		}
		if code, _ := e.post(t, "/api/v1/policies/hourly/trigger"); code != http.StatusServiceUnavailable {
			t.Fatalf("trigger after the loss = %d", code)
		}

		f.lead()
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		rs = e.runsOf(t, "hourly")
		var done []run.Run
		for _, r := range rs {
			if r.Slot.Equal(next) {
				done = append(done, r)
			}
		}
		if len(done) != 1 || done[0].Stage != run.StageSucceeded {
			t.Fatalf("runs of the slot = %+v", done)
		}
		snaps := 0
		for _, s := range sim.Snapshots(project, "prod-a") {
			if strings.Contains(s.Description, string(done[0].ID)) {
				snaps++
			}
		}
		exports := 0
		for _, x := range sim.Exports(project, "prod-a") {
			if x.SnapshotID == done[0].SnapshotID {
				exports++
			}
		}
		if snaps != 1 || exports != 1 {
			t.Fatalf("the slot has %d snapshots and %d exports, want 1 and 1", snaps, exports)
		}
	})
}

// Issue 16 item 4: a replica taking over re-attaches the previous leader's
// run from its Atlas marker (its own journal never saw it) and carries it
// to the end without a second snapshot; the slot is not run again.
func TestHATakeoverReattachesFromMarkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, a, b, fa, fb := launchPair(t)
		defer a.stop()
		defer b.stop()

		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + time.Minute)
		synctest.Wait()
		if sim.Calls("take_snapshot") != 1 {
			t.Fatalf("take_snapshot calls = %d", sim.Calls("take_snapshot"))
		}
		fa.lose("pod-b")
		fb.lead()
		time.Sleep(20 * time.Minute) // before the next slot
		synctest.Wait()

		rs := b.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage != run.StageSucceeded || !rs[0].Slot.Equal(next) {
			t.Fatalf("runs of the new leader = %+v", rs)
		}
		if n, m := len(sim.Snapshots(project, "prod-a")), len(sim.Exports(project, "prod-a")); n != 1 || m != 1 {
			t.Fatalf("snapshots %d exports %d, want 1 and 1", n, m)
		}
		if sim.Calls("take_snapshot") != 1 || sim.Calls("create_export") != 1 {
			t.Fatalf("POSTs: take_snapshot %d create_export %d", sim.Calls("take_snapshot"), sim.Calls("create_export"))
		}
		if ra := a.runsOf(t, "hourly"); len(ra) != 1 || ra[0].Stage.Terminal() {
			t.Fatalf("the old leader's run = %+v, want parked, not ended", ra)
		}
		if admitted, _ := fa.counts(); admitted != 1 {
			t.Fatalf("the old leader was granted %d fences, want 1", admitted)
		}
	})
}

// Issue 16 item 4: slots missed while no replica led get the policy's
// missed treatment (missed: once, the default: one catch-up), and the slot
// the previous leader ran is not run again.
func TestHAMissedSlotsDuringChangeOfLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, a, b, fa, fb := launchPair(t)
		defer a.stop()
		defer b.stop()

		h1 := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(h1) + 30*time.Minute) // the first slot's chain ends on A
		synctest.Wait()
		if ra := a.runsOf(t, "hourly"); len(ra) != 1 || ra[0].Stage != run.StageSucceeded {
			t.Fatalf("A's runs = %+v", ra)
		}
		fa.lose("")
		time.Sleep(2 * time.Hour) // slots h1+1h and h1+2h pass with no leader
		synctest.Wait()
		fb.lead()
		time.Sleep(20 * time.Minute) // before the next slot
		synctest.Wait()

		rs := b.runsOf(t, "hourly")
		if len(rs) != 1 || !rs[0].CatchUp || !rs[0].Slot.Equal(h1.Add(2*time.Hour)) || rs[0].Stage != run.StageSucceeded {
			t.Fatalf("B's runs = %+v, want one catch-up of the newest missed slot", rs)
		}
		if n := len(sim.Snapshots(project, "prod-a")); n != 2 {
			t.Fatalf("snapshots = %d, want 2 (A's slot, B's catch-up)", n)
		}
	})
}

// Issue 16 item 5: a leader whose last renewal is too old to vouch for
// (paused, API server unreachable) sends nothing; the run waits, parked
// and not failed, and goes on once the fence admits it again.
func TestHAStaleFenceParksWithoutFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", true, "")
		e := launchHA(t, dir, sim, f)
		defer e.stop()
		f.mu.Lock()
		f.stale = true
		f.mu.Unlock()

		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + 10*time.Minute)
		synctest.Wait()
		if n := sim.Calls("take_snapshot"); n != 0 {
			t.Fatalf("a leader with a stale renewal sent %d snapshot requests", n)
		}
		rs := e.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage.Terminal() {
			t.Fatalf("runs = %+v, want one parked in flight", rs)
		}
		if !strings.Contains(e.logs.String(), "may not send to Atlas now") {
			t.Fatal("the parked run is not logged")
		}
		f.mu.Lock()
		f.stale = false
		f.mu.Unlock()
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		rs = e.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage != run.StageSucceeded || sim.Calls("take_snapshot") != 1 {
			t.Fatalf("runs = %+v, take_snapshot = %d", rs, sim.Calls("take_snapshot"))
		}
	})
}

// Issue 16 item 6: a graceful stop of the leader parks the run before the
// lease is released, and nothing asks the fence after the release.
func TestHAGracefulStopParksBeforeRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", true, "")
		e := launchHA(t, dir, sim, f)
		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + 4*time.Minute) // exporting
		synctest.Wait()
		rs := e.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage.Terminal() {
			t.Fatalf("runs = %+v", rs)
		}
		e.stop()
		f.mu.Lock()
		released := f.released
		f.mu.Unlock()
		if _, late := f.counts(); !released || late != 0 {
			t.Fatalf("released %v, fences asked after the release %d", released, late)
		}
		j, err := journal.Open(filepath.Join(dir, "state.db"), journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		if active, err := j.Active(); err != nil || len(active) != 1 || active[0].ID != rs[0].ID {
			t.Fatalf("journal in flight after the stop = %+v, %v", active, err)
		}
	})
}

// launchPair starts replicas pod-a (leading) and pod-b (standby) on one
// simulator, each with its own journal; the caller stops them.
func launchPair(t *testing.T) (sim *atlassim.Sim, a, b *env, fa, fb *fakeElector) {
	t.Helper()
	dirA, sim := setup(t, "")
	withHA(t, dirA, "pod-a")
	dirB := t.TempDir()
	copySetup(t, dirA, dirB, "pod-a", "pod-b")
	fa = newFake("pod-a", true, "")
	fb = newFake("pod-b", false, "pod-a")
	return sim, launchHA(t, dirA, sim, fa), launchHA(t, dirB, sim, fb), fa, fb
}

// copySetup gives dst the same secrets and config as src (its own journal)
// with identity to instead of from.
func copySetup(t *testing.T, src, dst, from, to string) {
	t.Helper()
	for _, name := range []string{"client-secret", "admin-token", goodConfig} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), src, dst)
		if name == goodConfig {
			s = strings.Replace(s, "identity: "+from, "identity: "+to, 1)
		}
		if err := os.WriteFile(filepath.Join(dst, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 16 (build): a binary without the ha tag refuses a configuration
// with ha: at start, located, rather than run unfenced.
func TestHARefusedWithoutSupport(t *testing.T) {
	dir, _ := setup(t, "")
	withHA(t, dir, "pod-a")
	_, err := daemon.New(daemon.Options{ConfigPath: filepath.Join(dir, goodConfig), Env: policy.OSEnv()})
	if err == nil || !strings.Contains(err.Error(), goodConfig+":1:1: ha: built without HA support: build with -tags ha") {
		t.Fatalf("New = %v", err)
	}
}

// Issue 16 item 4: a replica that leads again holds a stale journal (its
// run of slot 1 was carried to the end by the other replica, which then
// started slot 2). It finishes its stale run by adopting what Atlas shows,
// then re-attaches the other replica's run of slot 2 from its marker: every
// slot ends with exactly one snapshot and one export.
func TestHALeaderAgainWithStaleJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, a, b, fa, fb := launchPair(t)
		defer a.stop()
		defer b.stop()

		h1 := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(h1) + time.Minute) // slot 1 snapshotting on A
		synctest.Wait()
		fa.lose("pod-b")
		fb.lead()
		time.Sleep(time.Until(h1.Add(time.Hour)) + time.Minute) // B ends slot 1, slot 2 snapshotting on B
		synctest.Wait()
		fb.lose("pod-a")
		fa.lead()
		time.Sleep(40 * time.Minute)
		synctest.Wait()

		for _, slot := range []time.Time{h1, h1.Add(time.Hour)} {
			id := run.NewID("hourly", project, "prod-a", slot, false)
			snaps, exports := 0, 0
			var snapID string
			for _, s := range sim.Snapshots(project, "prod-a") {
				if strings.Contains(s.Description, string(id)) {
					snaps++
					snapID = s.ID
				}
			}
			for _, x := range sim.Exports(project, "prod-a") {
				if snapID != "" && x.SnapshotID == snapID {
					exports++
				}
			}
			if snaps != 1 || exports != 1 {
				t.Errorf("slot %s: %d snapshots, %d exports; want 1 and 1", slot.Format(time.Kitchen), snaps, exports)
			}
		}
		ra := a.runsOf(t, "hourly")
		if len(ra) != 2 {
			t.Errorf("A has %d runs, want both slots'", len(ra))
		}
		for _, r := range ra {
			if r.Stage != run.StageSucceeded {
				t.Errorf("A's run of slot %s: %s %s", r.Slot.Format(time.Kitchen), r.Stage, r.Detail)
			}
		}
	})
}

// cutOnSnapshot forwards the first snapshot POST to Atlas, then has the
// replica lose its lease while the answer is on its way: the request is
// cut by the fence after it landed.
type cutOnSnapshot struct {
	next http.RoundTripper
	lose func()
	done atomic.Bool
}

func (c *cutOnSnapshot) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/backup/snapshots") || c.done.Swap(true) {
		return c.next.RoundTrip(req)
	}
	resp, err := c.next.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	go c.lose()
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// Issue 16 item 4: a snapshot POST cut off by the fence (the lease lost
// while it was in flight) parks the run, not fails it; the next term finds
// the snapshot by its marker instead of requesting a second one.
func TestHAPostCutByTheFenceIsAdoptedNotRepeated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", true, "")
		cut := &cutOnSnapshot{next: sim.Transport(), lose: func() { f.lose("pod-b") }}
		e := launchOpts(t, dir, sim, daemon.Options{Transport: cut, Elect: f.factory})
		synctest.Wait()
		defer e.stop()

		next := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(next) + time.Minute)
		synctest.Wait()
		rs := e.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage != run.StageSnapshotting || !rs[0].SnapshotRequested || rs[0].SnapshotID != "" {
			t.Fatalf("after the cut: %+v", rs)
		}
		f.lead()
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		rs = e.runsOf(t, "hourly")
		if len(rs) != 1 || rs[0].Stage != run.StageSucceeded {
			t.Fatalf("after leading again: %+v", rs)
		}
		if n := len(sim.Snapshots(project, "prod-a")); n != 1 || sim.Calls("take_snapshot") != 1 {
			t.Fatalf("snapshots %d, take_snapshot calls %d; want 1 and 1", n, sim.Calls("take_snapshot"))
		}
	})
}

// Issue 16 item 1: the ha: section is read at start. A reload that changes
// it (another Lease, another identity) or drops it is applied otherwise but
// says so and leaves the election as started: a replica must not leave its
// Lease, or act without one, on a SIGHUP.
func TestHAReloadKeepsTheElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		withHA(t, dir, "pod-a")
		f := newFake("pod-a", true, "")
		e := launchHA(t, dir, sim, f)
		defer e.stop()
		path := filepath.Join(dir, goodConfig)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		changed := strings.Replace(strings.Replace(string(orig), "name: backupd-leader", "name: other-lease", 1), "identity: pod-a", "identity: pod-z", 1)
		dropped := strings.Replace(string(orig), strings.Replace(haSection, "ID", "pod-a", 1), "", 1)
		for i, text := range []string{changed, dropped} {
			if text == string(orig) {
				t.Fatalf("reload %d: the config did not change", i)
			}
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := e.d.Reload(context.Background()); err != nil {
				t.Fatalf("reload %d: %v", i, err)
			}
			synctest.Wait()
			if n := strings.Count(e.logs.String(), "ha settings change at the next restart"); n != i+1 {
				t.Fatalf("reload %d: the change of ha: was logged %d times, want %d", i, n, i+1)
			}
			st := e.status(t)
			if st.HA == nil || st.HA.Lease != "apps/backupd-leader" || st.HA.Identity != "pod-a" || st.HA.Role != run.RoleLeader {
				t.Fatalf("reload %d: status ha = %+v, want the election as started", i, st.HA)
			}
			if code, body := e.post(t, "/api/v1/policies/hourly/trigger"); code != http.StatusAccepted {
				t.Fatalf("reload %d: trigger on the leader = %d %s", i, code, body)
			}
			synctest.Wait()
		}
		f.lose("pod-b")
		synctest.Wait()
		if code, _ := e.post(t, "/api/v1/policies/hourly/trigger"); code != http.StatusServiceUnavailable {
			t.Fatalf("after a reload without ha: and the lease lost, a trigger = %d, want 503: the replica acts without a lease", code)
		}
	})
}
