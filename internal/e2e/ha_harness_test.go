package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/ha/hatest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// The HA suite runs three (and, in the rollout, more) `backupd run`
// processes built with -tags ha against one simulated Atlas and a real
// kube-apiserver with etcd (internal/ha/hatest). It skips unless
// BACKUPD_KUBE_APISERVER and BACKUPD_ETCD name the binaries, as .ci/run's
// HA step sets them.
//
// Two clocks are involved and kept apart. The lease runs on real time: the
// API server, client-go and the fence know no other. The schedules and the
// simulated Atlas run on the shared scaled clock (haScale times real time),
// so a slot passes every few seconds. Every instant the suite compares is
// converted to real time (realOf).
//
// The lease timings are short (haTimings, 4 s / 3 s / 1 s instead of
// Kubernetes' 15 s / 10 s / 2 s) so that the scenarios and the 20-kill
// takeover measurement fit in CI; docs/benchmarks.md says so next to the
// figures. One scenario runs with the defaults (defaultTimings, the ha:
// section naming none), so the defaults are proven to work together too.

// haScale is how much faster than real time the schedules and Atlas run: a
// one-minute slot passes every 6 s.
const haScale = 10

// leaseTimings are the ha: section's leaseDuration, renewDeadline and
// retryPeriod.
type leaseTimings struct{ lease, renew, retry time.Duration }

// haTimings are the lease timings of the suite's scenarios.
var haTimings = leaseTimings{4 * time.Second, 3 * time.Second, time.Second}

// defaultTimings are the ha: section's defaults (Kubernetes' own).
var defaultTimings = leaseTimings{15 * time.Second, 10 * time.Second, 2 * time.Second}

// jitteredRetry is the longest gap between two tries of a client-go
// candidate: the retry period stretched by leaderelection's JitterFactor 1.2.
func (lt leaseTimings) jitteredRetry() time.Duration { return time.Duration(2.2 * float64(lt.retry)) }

// maxTakeover bounds the takeover after a leader dies: the candidate saw
// the last renewal at most one jittered retry after it was written, waits
// the lease duration from then, and tries again at most one jittered retry
// later.
func (lt leaseTimings) maxTakeover() time.Duration { return lt.lease + 2*lt.jitteredRetry() }

var (
	jitteredRetry = haTimings.jitteredRetry()
	maxTakeover   = haTimings.maxTakeover()
)

var (
	haBuild    sync.Once
	haBinary   string
	haBuildErr error
)

// requireHA skips t unless the real API server and etcd are configured,
// and builds the -tags ha binary once per process.
func requireHA(t *testing.T) {
	t.Helper()
	requireBinary(t)
	if os.Getenv(hatest.EnvKubeAPIServer) == "" || os.Getenv(hatest.EnvEtcd) == "" {
		t.Skipf("the HA suite needs a real API server: set %s and %s, as .ci/run's HA step does", hatest.EnvKubeAPIServer, hatest.EnvEtcd)
	}
	haBuild.Do(func() {
		out := filepath.Join(filepath.Dir(binary), "backupd-ha")
		cmd := exec.Command("go", "build", "-tags", "ha", "-o", out, "./cmd/backupd")
		cmd.Dir = moduleDir
		if msg, err := cmd.CombinedOutput(); err != nil {
			haBuildErr = fmt.Errorf("go build -tags ha ./cmd/backupd: %v\n%s", err, msg)
			return
		}
		haBinary = out
	})
	if haBuildErr != nil {
		t.Fatal(haBuildErr)
	}
}

// haSuite is one scenario's world: the API server, the simulator, the
// replicas, and a record of the Lease as the API server showed it.
type haSuite struct {
	t          *testing.T
	dir        string
	ta         timeArgs
	kube       *hatest.Cluster
	leases     coordinationv1.LeaseInterface
	leaseName  string
	kubeconfig string
	sim        *simProc
	policies   string
	obs        *leaseObserver
	// timings are the replicas' lease timings (haTimings unless the
	// scenario set others before its first replica); with defaultLease the
	// ha: section names none and the defaults apply.
	timings      leaseTimings
	defaultLease bool

	replicas []*replica // every replica ever started, in order
}

// replica is one backupd process (restartable) with its own identity,
// journal and service account.
type replica struct {
	s        *haSuite
	id       string // identity in the Lease
	clientID string // its Atlas credential: its POSTs are counted by it
	cfg      string
	d        *daemonProc // nil before start
}

// haIdentities are the replicas a suite can start: three at a time, new
// ones for the rollout.
const haMaxReplicas = 12

func haIdentity(i int) string     { return "r" + strconv.Itoa(i) }
func haClientID(id string) string { return "mdb_sa_id_" + id }

// newHASuite starts etcd, kube-apiserver and the simulator with the given
// Atlas timings and writes the configs of haMaxReplicas replicas running
// policies (none started).
func newHASuite(t *testing.T, clusters []string, timings, policies string) *haSuite {
	t.Helper()
	requireHA(t)
	s := &haSuite{t: t, dir: t.TempDir(), ta: newTimeArgs(haScale), leaseName: "backupd-e2e", policies: policies, timings: haTimings}
	s.kube = hatest.Start(t)
	client, err := coordinationv1.NewForConfig(s.kube.RestConfig())
	if err != nil {
		t.Fatalf("creating the coordination client: %v", err)
	}
	s.leases = client.Leases("default")
	s.kubeconfig = s.writeKubeconfig()

	var sas []string
	for i := range haMaxReplicas {
		sas = append(sas, haClientID(haIdentity(i)))
	}
	fx := fleet{clusters: clusters, buckets: []string{bucketID}, timings: timings, serviceAccounts: sas}.write(t, s.dir)
	s.sim = startSim(t, fx, s.ta, 1)

	ctx, cancel := context.WithCancel(context.Background())
	s.obs = &leaseObserver{changed: make(chan struct{}), done: make(chan struct{})}
	go s.obs.run(ctx, s.leases, s.leaseName)
	t.Cleanup(func() {
		cancel()
		<-s.obs.done
	})
	return s
}

// writeKubeconfig writes a kubeconfig for the test API server: the
// replicas run outside a cluster, as ha.kubeconfig allows.
func (s *haSuite) writeKubeconfig() string {
	rc := s.kube.RestConfig()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: hatest
    cluster:
      server: %s
      certificate-authority-data: %s
users:
  - name: hatest
    user:
      token: %s
contexts:
  - name: hatest
    context: {cluster: hatest, user: hatest}
current-context: hatest
`, rc.Host, base64.StdEncoding.EncodeToString(rc.TLSClientConfig.CAData), rc.BearerToken)
	return writeFile(s.t, s.dir, "kubeconfig", cfg)
}

// replica returns the i-th replica (its config written on first use).
func (s *haSuite) replica(i int) *replica {
	s.t.Helper()
	if i >= haMaxReplicas {
		s.t.Fatalf("replica %d: the fixture has service accounts for %d", i, haMaxReplicas)
	}
	for len(s.replicas) <= i {
		id := haIdentity(len(s.replicas))
		dir := filepath.Join(s.dir, id)
		if err := os.Mkdir(dir, 0o700); err != nil {
			s.t.Fatal(err)
		}
		timings := fmt.Sprintf("  leaseDuration: %s\n  renewDeadline: %s\n  retryPeriod: %s\n", s.timings.lease, s.timings.renew, s.timings.retry)
		if s.defaultLease {
			timings = ""
		}
		ha := fmt.Sprintf(`ha:
  lease: {namespace: default, name: %s}
  identity: %s
%s  kubeconfig: %s
`, s.leaseName, id, timings, s.kubeconfig)
		cfg := daemonConfig{simURL: s.sim.url, statePath: filepath.Join(dir, "state.db"), policies: s.policies,
			clientID: haClientID(id), extra: ha}.write(s.t, dir, "config.yaml")
		s.replicas = append(s.replicas, &replica{s: s, id: id, clientID: haClientID(id), cfg: cfg})
	}
	return s.replicas[i]
}

// byID returns the replica with identity id, nil if none.
func (s *haSuite) byID(id string) *replica {
	for _, r := range s.replicas {
		if r.id == id {
			return r
		}
	}
	return nil
}

// running are the replicas whose process runs now.
func (s *haSuite) running() []*replica {
	var out []*replica
	for _, r := range s.replicas {
		if r.d != nil && r.d.running() {
			out = append(out, r)
		}
	}
	return out
}

func (r *replica) start() {
	r.s.t.Helper()
	if r.d != nil && r.d.running() {
		r.s.t.Fatalf("%s is already running", r.id)
	}
	r.d = startDaemonOf(r.s.t, haBinary, "backupd "+r.id, r.cfg, r.s.ta)
}

// kill sends SIGKILL and returns when the process is gone, with the
// instant the signal was sent.
func (r *replica) kill() time.Time {
	r.s.t.Helper()
	at := time.Now()
	r.d.quiet.Store(true)
	r.d.kill()
	return at
}

// term sends SIGTERM and requires a clean exit; it returns the instant the
// signal was sent.
func (r *replica) term() time.Time {
	r.s.t.Helper()
	at := time.Now()
	r.d.signal(syscall.SIGTERM)
	code, ok := r.d.waitExit(30 * time.Second)
	if !ok {
		r.s.t.Fatalf("%s did not exit within 30s of SIGTERM", r.id)
	}
	if code != 0 {
		r.s.t.Fatalf("%s exited %d after SIGTERM, want 0", r.id, code)
	}
	return at
}

// haView is what a replica's status API says of the election.
type haView struct {
	Role   string // leader, acquiring (holds the lease, re-attaching runs) or standby
	Leader string // "" when none is known
	raw    string
}

// Leading is a replica that acts; Holding one that holds the lease, acting
// or about to.
func (v haView) Leading() bool { return v.Role == "leader" }
func (v haView) Holding() bool { return v.Role != "standby" }

// view reads the replica's status; ok is false when it did not answer.
func (r *replica) view() (haView, bool) {
	code, body, err := httpDo("GET", r.d.url+"/api/v1/status", "", nil)
	if err != nil || code != http.StatusOK {
		return haView{}, false
	}
	var st struct {
		HA *struct {
			Identity string `json:"identity"`
			Role     string `json:"role"`
			Leader   string `json:"leader"`
		} `json:"ha"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.HA == nil {
		return haView{raw: string(body)}, false
	}
	return haView{Role: st.HA.Role, Leader: st.HA.Leader, raw: string(body)}, true
}

// waitLeader waits until the Lease names a running replica that says it
// leads, and every other running replica names it as the leader; it
// returns that replica.
func (s *haSuite) waitLeader(timeout time.Duration) *replica {
	s.t.Helper()
	var leader *replica
	eventually(s.t, timeout, func() (bool, string) {
		cur, ok := s.obs.current()
		if !ok || cur.holder == "" {
			return false, "the Lease has no holder"
		}
		leader = s.byID(cur.holder)
		if leader == nil || leader.d == nil || !leader.d.running() {
			return false, "the Lease names " + cur.holder + ", which is not running"
		}
		for _, r := range s.running() {
			v, ok := r.view()
			if !ok {
				return false, r.id + "'s status has no ha section yet: " + truncate(v.raw, 300)
			}
			if r == leader && !v.Leading() {
				return false, r.id + " holds the Lease but is " + v.Role
			}
			if r != leader && (v.Holding() || v.Leader != leader.id) {
				return false, fmt.Sprintf("%s is %s, leader %q; want standby with leader %s", r.id, v.Role, v.Leader, leader.id)
			}
		}
		return true, ""
	})
	return leader
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// realOf converts an instant of the shared scaled clock to real time.
func (s *haSuite) realOf(sim time.Time) time.Time {
	anchor := time.Unix(s.ta.Anchor, 0)
	return anchor.Add(time.Duration(float64(sim.Sub(anchor)) / s.ta.Scale))
}

// post is one write to Atlas as the simulator received it.
type post struct {
	who  string    // replica identity
	op   string    // take_snapshot, create_export, ...
	at   time.Time // real time received
	path string
}

// posts lists every Atlas write (POSTs other than token requests) the
// simulator received, by replica, oldest first.
func (s *haSuite) posts() []post {
	s.t.Helper()
	var out []post
	for _, c := range s.sim.calls(true).Log {
		if c.Method != http.MethodPost || c.Op == "token" || c.Who == "" {
			continue
		}
		out = append(out, post{who: strings.TrimPrefix(c.Who, "mdb_sa_id_"), op: c.Op, at: s.realOf(c.Received), path: c.Path})
	}
	return out
}

// postsBy counts the writes of each replica.
func postsBy(ps []post) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		m[p.who]++
	}
	return m
}

// checkFenced: every write reached Atlas while its sender held a live
// lease, as the API server recorded it: a renewal by that replica at or
// before the write, less than the lease duration earlier. It returns the
// writes checked.
func (s *haSuite) checkFenced() []post {
	s.t.Helper()
	ps := s.posts()
	hist := s.obs.history()
	bad := 0
	for _, p := range ps {
		ok := false
		for _, h := range hist {
			if h.holder == p.who && !h.renew.After(p.at) && p.at.Sub(h.renew) < s.timings.lease {
				ok = true
				break
			}
		}
		if !ok {
			bad++
			s.t.Errorf("%s sent %s %s at %s without a live lease (renewals seen: %s)", p.who, p.op, p.path,
				p.at.Format("15:04:05.000"), renewalsAround(hist, p.who, p.at, s.timings.lease))
		}
	}
	s.t.Logf("Atlas writes per replica: %v; %d without a live lease", postsBy(ps), bad)
	return ps
}

func renewalsAround(hist []leaseSample, who string, at time.Time, lease time.Duration) string {
	var parts []string
	for _, h := range hist {
		if h.holder == who && h.renew.After(at.Add(-3*lease)) && h.renew.Before(at.Add(lease)) {
			parts = append(parts, h.renew.Format("15:04:05.000"))
		}
	}
	if len(parts) == 0 {
		return "none near it"
	}
	return strings.Join(parts, " ")
}

// checkNoDuplicates: no run marker has two snapshots or two exports, no
// export belongs to another snapshot, and no slot has two runs. Runs still
// in flight are allowed (complete says which must have finished).
func checkNoDuplicates(t *testing.T, idx atlasRuns) (snapshots, exports int) {
	t.Helper()
	for id, snaps := range idx.snapshots {
		snapshots += len(snaps)
		if len(snaps) > 1 {
			t.Errorf("run %s has %d snapshots in Atlas: %v", id, len(snaps), snapshotIDs(snaps))
		}
		ex := idx.exports[id]
		exports += len(ex)
		if len(ex) > 1 {
			t.Errorf("run %s has %d exports in Atlas", id, len(ex))
		}
		if len(ex) == 1 && ex[0].SnapshotID != snaps[0].ID {
			t.Errorf("run %s exported snapshot %s, but its marked snapshot is %s", id, ex[0].SnapshotID, snaps[0].ID)
		}
	}
	checkOrphansAndSlots(t, idx)
	return snapshots, exports
}

// chainDone reports whether run id has one completed snapshot and one
// successful export, with why not.
func chainDone(idx atlasRuns, id string) (bool, string) {
	snaps := idx.snapshots[id]
	if len(snaps) != 1 {
		return false, fmt.Sprintf("run %s has %d snapshots", id, len(snaps))
	}
	if snaps[0].Status != atlas.SnapshotCompleted {
		return false, fmt.Sprintf("run %s: snapshot %s", id, snaps[0].Status)
	}
	ex := idx.exports[id]
	if len(ex) != 1 {
		return false, fmt.Sprintf("run %s has %d exports", id, len(ex))
	}
	if ex[0].State != atlas.ExportSuccessful {
		return false, fmt.Sprintf("run %s: export %s", id, ex[0].State)
	}
	return true, ""
}

// firstPost waits for the first write of op by replica who and returns it.
func (s *haSuite) firstPost(timeout time.Duration, who, op string, after time.Time) post {
	s.t.Helper()
	var found post
	eventually(s.t, timeout, func() (bool, string) {
		for _, p := range s.posts() {
			if p.who == who && p.op == op && p.at.After(after) {
				found = p
				return true, ""
			}
		}
		return false, fmt.Sprintf("no %s by %s yet", op, who)
	})
	return found
}

// runOfSnapshotPost is the run whose snapshot the POST at path created:
// the newest marked snapshot of that cluster.
func (s *haSuite) runOfSnapshotPost(p post) string {
	s.t.Helper()
	cluster := ""
	if i := strings.Index(p.path, "/clusters/"); i >= 0 {
		cluster, _, _ = strings.Cut(p.path[i+len("/clusters/"):], "/")
	}
	var best string
	var bestAt time.Time
	for _, pr := range s.sim.state().Projects {
		for _, c := range pr.Clusters {
			if c.Name != cluster {
				continue
			}
			for _, sn := range c.Snapshots {
				if m := markerRE.FindStringSubmatch(sn.Description); m != nil && sn.CreatedAt.After(bestAt) {
					best, bestAt = m[1], sn.CreatedAt
				}
			}
		}
	}
	if best == "" {
		s.t.Fatalf("no marked snapshot on cluster %q after %s %s", cluster, p.op, p.path)
	}
	return best
}

// leaseSample is the Lease as read at one moment; the observer keeps one
// per distinct (holder, renewTime).
type leaseSample struct {
	seen    time.Time
	holder  string
	acquire time.Time
	renew   time.Time
}

// leaseObserver reads the Lease every 50 ms for the whole test. A leader
// renews every retry period, so nearly every renewal is seen; one missed
// renewal only makes checkFenced stricter, never laxer.
type leaseObserver struct {
	mu      sync.Mutex
	samples []leaseSample
	errs    int
	changed chan struct{}
	done    chan struct{}
}

func (o *leaseObserver) run(ctx context.Context, leases coordinationv1.LeaseInterface, name string) {
	defer close(o.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		l, err := leases.Get(gctx, name, metav1.GetOptions{})
		cancel()
		o.mu.Lock()
		if err != nil {
			o.errs++
		} else {
			smp := leaseSample{seen: time.Now()}
			if l.Spec.HolderIdentity != nil {
				smp.holder = *l.Spec.HolderIdentity
			}
			if l.Spec.AcquireTime != nil {
				smp.acquire = l.Spec.AcquireTime.Time
			}
			if l.Spec.RenewTime != nil {
				smp.renew = l.Spec.RenewTime.Time
			}
			if n := len(o.samples); n == 0 || o.samples[n-1].holder != smp.holder || !o.samples[n-1].renew.Equal(smp.renew) {
				o.samples = append(o.samples, smp)
				close(o.changed)
				o.changed = make(chan struct{})
			}
		}
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (o *leaseObserver) current() (leaseSample, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) == 0 {
		return leaseSample{}, false
	}
	return o.samples[len(o.samples)-1], true
}

func (o *leaseObserver) history() []leaseSample {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.samples)
}

// waitHolder waits until the Lease is held by an identity other than those
// in not (and not released), and returns that sample.
func (s *haSuite) waitHolder(timeout time.Duration, not ...string) leaseSample {
	s.t.Helper()
	var got leaseSample
	eventually(s.t, timeout, func() (bool, string) {
		cur, ok := s.obs.current()
		if !ok {
			return false, "the Lease was never read"
		}
		if cur.holder == "" || slices.Contains(not, cur.holder) {
			return false, fmt.Sprintf("the Lease is held by %q", cur.holder)
		}
		got = cur
		return true, ""
	})
	return got
}

// percentile is the q-quantile (0..1) of ds by nearest rank.
func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
