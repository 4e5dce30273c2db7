package ha_test

// These tests run against a real kube-apiserver and etcd (see hatest); they
// skip unless BACKUPD_KUBE_APISERVER and BACKUPD_ETCD name the binaries.
// Timings are shortened (4 s / 3 s / 1 s) so a run takes minutes, not
// tens of minutes; the behaviour scales with them.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/ha"
	"github.com/backupd/backupd/internal/ha/hatest"
	"github.com/backupd/backupd/internal/policy"
	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
)

var testHA = policy.HA{
	Namespace:     "default",
	LeaseName:     "backupd",
	LeaseDuration: 4 * time.Second,
	RenewDeadline: 3 * time.Second,
	RetryPeriod:   time.Second,
}

// maxRetryWait is the longest client-go waits between two tries: the retry
// period stretched by its jitter.
var maxRetryWait = time.Duration(float64(testHA.RetryPeriod) * (1 + leaderelection.JitterFactor))

// replica is one Elector with a network that a test can cut, which is how a
// crash looks to everyone else: no more renewals, and no release.
type replica struct {
	id      string
	e       *ha.Elector
	cut     atomic.Bool
	cancel  context.CancelFunc
	stopped chan struct{}

	mu      sync.Mutex
	started []time.Time
}

type cutTransport struct {
	r    *replica
	next http.RoundTripper
}

func (c cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.r.cut.Load() {
		return nil, errors.New("network cut by the test")
	}
	return c.next.RoundTrip(req)
}

func startReplica(t *testing.T, rc *rest.Config, id string, hooks ha.Hooks) *replica {
	t.Helper()
	return startReplicaOn(t, testHA, rc, id, hooks)
}

// startReplicaOn is startReplica electing on cfg's Lease.
func startReplicaOn(t *testing.T, cfg policy.HA, rc *rest.Config, id string, hooks ha.Hooks) *replica {
	t.Helper()
	r := &replica{id: id, stopped: make(chan struct{})}
	rc = rest.CopyConfig(rc)
	rc.WrapTransport = func(next http.RoundTripper) http.RoundTripper { return cutTransport{r: r, next: next} }
	started := hooks.StartedLeading
	hooks.StartedLeading = func() {
		r.mu.Lock()
		r.started = append(r.started, time.Now())
		r.mu.Unlock()
		if started != nil {
			started()
		}
	}
	e, err := ha.New(cfg, ha.Options{Identity: id, Rest: rc, Logger: zaptest.NewLogger(t).Named(id), Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.stopped)
		e.Run(ctx)
	}()
	t.Cleanup(r.crash)
	return r
}

// crash cuts the replica's network and ends it without releasing the lease.
func (r *replica) crash() {
	r.cut.Store(true)
	r.cancel()
	<-r.stopped
}

// stop ends the replica gracefully.
func (r *replica) stop() {
	r.cancel()
	<-r.stopped
}

func (r *replica) startedAt() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.started)
}

// waitFor polls cond (the state lives in other processes, so there is
// nothing to wait on) until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-tick.C
	}
	return time.Since(start)
}

func leaders(rs []*replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if r.e.Leading() {
			out = append(out, r)
		}
	}
	return out
}

// holder reads the Lease from the API server.
func holder(t *testing.T, rc *rest.Config) string {
	t.Helper()
	client, err := coordinationv1.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := client.Leases(testHA.Namespace).Get(ctx, testHA.LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the lease: %v", err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// oneLeader waits until exactly one replica leads, every replica names it,
// and the Lease in the API server does too; it returns that replica.
func oneLeader(t *testing.T, rc *rest.Config, rs []*replica, limit time.Duration) *replica {
	t.Helper()
	var leader *replica
	waitFor(t, limit, "one leader, seen by all", func() bool {
		ls := leaders(rs)
		if len(ls) != 1 {
			return false
		}
		for _, r := range rs {
			if r.e.Leader() != ls[0].id {
				return false
			}
		}
		leader = ls[0]
		return true
	})
	if h := holder(t, rc); h != leader.id {
		t.Fatalf("the Lease names %q, the replicas %q", h, leader.id)
	}
	if _, done, err := leader.e.Fence(context.Background()); err != nil {
		t.Fatalf("the leader's fence refused: %v", err)
	} else {
		done()
	}
	for _, r := range rs {
		if r == leader {
			continue
		}
		var nl *ha.NotLeaderError
		if _, _, err := r.e.Fence(context.Background()); !errors.As(err, &nl) || nl.Leader != leader.id {
			t.Fatalf("follower %s: fence gave %v, want a refusal naming %s", r.id, err, leader.id)
		}
	}
	return leader
}

func replicas(t *testing.T, rc *rest.Config, n int) []*replica {
	var rs []*replica
	for i := range n {
		rs = append(rs, startReplica(t, rc, fmt.Sprintf("replica-%d", i), ha.Hooks{}))
	}
	return rs
}

// election starts the API server and n replicas and waits for their leader.
func election(t *testing.T, n int) (*hatest.Cluster, *rest.Config, []*replica, *replica) {
	t.Helper()
	c := hatest.Start(t)
	rc := c.RestConfig()
	rs := replicas(t, rc, n)
	return c, rc, rs, oneLeader(t, rc, rs, takeoverLimit)
}

func without(rs []*replica, x *replica) []*replica {
	return slices.DeleteFunc(slices.Clone(rs), func(r *replica) bool { return r == x })
}

func TestKubeExactlyOneLeads(t *testing.T) {
	_, _, rs, leader := election(t, 3)
	// Several renewals later it is still the one.
	deadline := time.Now().Add(3 * testHA.RetryPeriod)
	waitFor(t, 4*testHA.RetryPeriod, "renewals", func() bool {
		if ls := leaders(rs); len(ls) != 1 || ls[0] != leader {
			t.Fatalf("leadership moved without a failure: leaders %v", ls)
		}
		return time.Now().After(deadline)
	})
}

// takeoverLimit bounds a takeover after a crash: the lease runs out a lease
// duration after the last renewal a candidate saw (which it sees up to one
// retry wait late), and the candidate notices at its next try.
var takeoverLimit = testHA.LeaseDuration + 2*maxRetryWait

func TestKubeCrashedLeaderIsReplaced(t *testing.T) {
	_, rc, rs, leader := election(t, 3)
	crashed := time.Now()
	leader.crash()
	next := oneLeader(t, rc, without(rs, leader), takeoverLimit+time.Second)
	took := next.startedAt()[len(next.startedAt())-1].Sub(crashed)
	t.Logf("takeover %v after the crash (lease %v, retry %v)", took.Round(time.Millisecond), testHA.LeaseDuration, testHA.RetryPeriod)
	if took > takeoverLimit {
		t.Fatalf("takeover took %v, want at most %v", took, takeoverLimit)
	}
	if _, _, err := leader.e.Fence(context.Background()); !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("the crashed replica's fence: %v", err)
	}
}

// A graceful stop keeps the lease until the fenced request returned, then
// hands over within about one retry period.
func TestKubeGracefulStopReleasesAfterInFlightWork(t *testing.T) {
	c := hatest.Start(t)
	rc := c.RestConfig()
	var parked atomic.Bool
	var rs []*replica
	for i := range 3 {
		rs = append(rs, startReplica(t, rc, fmt.Sprintf("replica-%d", i), ha.Hooks{
			BeforeRelease: func(context.Context) { parked.Store(true) },
		}))
	}
	leader := oneLeader(t, rc, rs, takeoverLimit)
	fctx, done, err := leader.e.Fence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	leader.cancel() // SIGTERM
	waitFor(t, time.Second, "new fences refused once stopping", func() bool {
		_, d, err := leader.e.Fence(context.Background())
		if err == nil {
			d()
		}
		return errors.Is(err, ha.ErrNotLeader)
	})
	// Two renewals later the request in flight still holds the lease.
	hold := time.Now().Add(2 * testHA.RetryPeriod)
	waitFor(t, 3*testHA.RetryPeriod, "holding while in flight", func() bool {
		if parked.Load() || fctx.Err() != nil || holder(t, rc) != leader.id {
			t.Fatalf("the lease went while a request was in flight (parked %v, context %v)", parked.Load(), context.Cause(fctx))
		}
		return time.Now().After(hold)
	})
	returned := time.Now()
	done()
	<-leader.stopped
	if !parked.Load() {
		t.Fatal("BeforeRelease was not called")
	}
	next := oneLeader(t, rc, without(rs, leader), takeoverLimit)
	took := next.startedAt()[0].Sub(returned)
	t.Logf("takeover %v after the last request returned", took.Round(time.Millisecond))
	if took > maxRetryWait+time.Second {
		t.Fatalf("takeover after release took %v, want about one retry period (at most %v)", took, maxRetryWait+time.Second)
	}
}

func TestKubeAPIServerDown(t *testing.T) {
	c, rc, rs, leader := election(t, 2)
	down := time.Now()
	c.StopAPIServer()
	// The leader steps down once renewing has failed for the renew
	// deadline (plus the request in flight at that moment).
	limit := testHA.RenewDeadline + maxRetryWait + rc.Timeout
	waitFor(t, limit, "the leader steps down", func() bool { return len(leaders(rs)) == 0 })
	t.Logf("stepped down %v after the API server went away", time.Since(down).Round(time.Millisecond))
	for _, r := range rs {
		if _, _, err := r.e.Fence(context.Background()); !errors.Is(err, ha.ErrNotLeader) {
			t.Fatalf("%s: fence without a live lease: %v", r.id, err)
		}
	}
	// Nobody acts while it is down.
	quiet := time.Now().Add(testHA.LeaseDuration)
	waitFor(t, 2*testHA.LeaseDuration, "no leader while down", func() bool {
		if ls := leaders(rs); len(ls) != 0 {
			t.Fatalf("%s leads without an API server", ls[0].id)
		}
		return time.Now().After(quiet)
	})
	c.StartAPIServer()
	got := oneLeader(t, rc, rs, takeoverLimit+time.Second)
	t.Logf("after the restart %s leads (before: %s)", got.id, leader.id)
}

// TestKubeTakeoverTimes measures takeover over 20 crashes and 20 graceful
// stops of the leader, keeping three replicas, and reports p50/p99/max.
func TestKubeTakeoverTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement: minutes of leader losses")
	}
	c := hatest.Start(t)
	rc := c.RestConfig()
	rs := replicas(t, rc, 3)
	n := 3
	measure := func(kind string, lose func(*replica)) {
		var took []time.Duration
		for range 20 {
			leader := oneLeader(t, rc, rs, takeoverLimit+time.Second)
			lost := time.Now()
			lose(leader)
			rs = without(rs, leader)
			next := oneLeader(t, rc, rs, takeoverLimit+time.Second)
			s := next.startedAt()
			took = append(took, s[len(s)-1].Sub(lost))
			rs = append(rs, startReplica(t, rc, fmt.Sprintf("replica-%d", n), ha.Hooks{}))
			n++
		}
		slices.Sort(took)
		p := func(q float64) time.Duration { return took[int(q*float64(len(took)-1)+0.5)].Round(time.Millisecond) }
		t.Logf("%s: takeover over %d losses: min %v p50 %v p99 %v max %v (lease %v, retry %v)",
			kind, len(took), p(0), p(0.5), p(0.99), p(1), testHA.LeaseDuration, testHA.RetryPeriod)
		limit := takeoverLimit
		if kind == "graceful" {
			limit = maxRetryWait + time.Second
		}
		if took[len(took)-1] > limit {
			t.Errorf("%s: slowest takeover %v, want at most %v", kind, took[len(took)-1], limit)
		}
	}
	measure("crash", (*replica).crash)
	measure("graceful", (*replica).stop)
}
