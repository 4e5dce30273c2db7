package ha

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/policy"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// EnvPodName is the variable a Deployment sets from the downward API
// (fieldRef metadata.name) to give each replica its pod name as identity.
const EnvPodName = "POD_NAME"

// ResolveIdentity returns the identity a replica holds the lease under:
// the configured one, else POD_NAME, else the hostname. Pod names are unique
// among live pods, which is what the lease needs; a hostname is the best
// outside a cluster.
func ResolveIdentity(configured string, getenv func(string) string, hostname func() (string, error)) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if v := getenv(EnvPodName); v != "" {
		return v, nil
	}
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("resolving the replica identity (ha.identity unset, %s unset): %w", EnvPodName, err)
	}
	if h == "" {
		return "", fmt.Errorf("resolving the replica identity: ha.identity and %s are unset and the hostname is empty", EnvPodName)
	}
	return h, nil
}

// RestConfig builds the API server connection of cfg: the kubeconfig file
// when one is named, else the pod's service account. Requests time out after
// half the renew deadline, so a hanging API server costs one retry, not the
// lease.
func RestConfig(cfg policy.HA) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
	} else {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("loading in-cluster credentials (set ha.kubeconfig to run outside a cluster): %w", err)
		}
	}
	rc.Timeout = cfg.RenewDeadline / 2
	return rc, nil
}

// Options are the Elector's collaborators. Callbacks run on their own
// goroutines and must not block the elector for long.
type Options struct {
	Identity string       // resolved (ResolveIdentity); required
	Clock    clock.Clock  // the fence's time source; clock.Real() if nil
	Logger   *zap.Logger  // nil discards
	SkewRate float64      // fence margin as a fraction of the lease; DefaultSkewRate if 0
	Rest     *rest.Config // API server connection (RestConfig)
	Hooks    Hooks        // optional
}

// Hooks let the daemon follow leadership (internal/leader.Hooks).
type Hooks = leader.Hooks

// Elector takes part in the election for one Lease. Construct with New, then
// Run.
type Elector struct {
	cfg   policy.HA
	opts  Options
	clock clock.Clock
	log   *zap.Logger
	lock  *trackedLock
	le    *leaderelection.LeaderElector

	hookMu   sync.Mutex // serialises leadership callbacks, so hooks see start and stop in order
	mu       sync.Mutex
	leading  bool
	stopping bool
	term     context.Context // cancelled when this leadership term ends
	endTerm  context.CancelFunc
	inflight sync.WaitGroup
}

// New validates cfg and prepares an elector; it contacts nothing.
func New(cfg policy.HA, opts Options) (*Elector, error) {
	if opts.Identity == "" {
		return nil, errors.New("creating the leader elector: the replica identity is empty")
	}
	if opts.Rest == nil {
		return nil, errors.New("creating the leader elector: no API server connection")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.SkewRate == 0 {
		opts.SkewRate = DefaultSkewRate
	}
	if opts.SkewRate < 0 || opts.SkewRate >= 1 {
		return nil, fmt.Errorf("creating the leader elector: skew rate %v must be in [0, 1)", opts.SkewRate)
	}
	rc := rest.CopyConfig(opts.Rest)
	rc.UserAgent = "backupd/" + opts.Identity
	rc.WarningHandler = rest.NoWarnings{}
	client, err := coordinationv1.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating the coordination.k8s.io client: %w", err)
	}
	e := &Elector{cfg: cfg, opts: opts, clock: opts.Clock, log: opts.Logger.With(zap.String("lease", cfg.Namespace+"/"+cfg.LeaseName), zap.String("identity", opts.Identity))}
	e.lock = &trackedLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.LeaseName},
			Client:     client,
			LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
		},
		clock: opts.Clock,
	}
	e.le, err = leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            e.lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Namespace + "/" + cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: e.startedLeading,
			OnStoppedLeading: e.stoppedLeading,
			OnNewLeader:      e.newLeader,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the leader elector: %w", err)
	}
	return e, nil
}

// NewFromConfig is New with the identity from ResolveIdentity (process
// environment) and the connection from RestConfig.
func NewFromConfig(cfg policy.HA, opts Options) (*Elector, error) {
	id, err := ResolveIdentity(cfg.Identity, os.Getenv, os.Hostname)
	if err != nil {
		return nil, err
	}
	rc, err := RestConfig(cfg)
	if err != nil {
		return nil, err
	}
	opts.Identity, opts.Rest = id, rc
	return New(cfg, opts)
}

// Factory is the leader.Factory of binaries built with the `ha` tag: the
// identity and connection come from the process environment.
func Factory(cfg policy.HA, o leader.Options) (leader.Elector, error) {
	e, err := NewFromConfig(cfg, Options{Clock: o.Clock, Logger: o.Logger, Hooks: o.Hooks})
	if err != nil {
		return nil, err
	}
	return e, nil
}

var _ leader.Elector = (*Elector)(nil)

// Identity is the name this replica holds the lease under.
func (e *Elector) Identity() string { return e.opts.Identity }

// Leading reports whether this replica holds the lease now. Acting needs
// Fence, which also checks the renewal is fresh.
func (e *Elector) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// Leader is the identity of the last observed leader, "" if none.
func (e *Elector) Leader() string { return e.le.GetLeader() }

// Run takes part in the election until ctx ends, standing again after each
// lost term. When ctx ends it stops gracefully: no new fences, wait for the
// fenced requests to return, BeforeRelease, then release the lease so the
// next replica takes over within about one retry period. A replica that dies
// instead leaves the lease to expire.
func (e *Elector) Run(ctx context.Context) {
	// The election runs on a context of its own so that ending ctx does not
	// release the lease under requests still in flight.
	inner, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), newLogr(e.log)))
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for inner.Err() == nil {
			e.le.Run(inner)
		}
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	e.mu.Lock()
	e.stopping = true
	leading := e.leading
	e.mu.Unlock()
	// Every fenced context ends by the fence deadline at the latest, so
	// this wait is bounded by the lease duration.
	e.inflight.Wait()
	if leading && e.opts.Hooks.BeforeRelease != nil {
		hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RenewDeadline)
		e.opts.Hooks.BeforeRelease(hctx)
		hcancel()
	}
	cancel() // client-go releases the lease (ReleaseOnCancel) and returns
	<-done
}

// Fence admits one request to Atlas. It refuses unless this replica leads
// and its last renewal is fresh; otherwise it returns a context that ends
// (with cause ErrFenceExpired) before any other replica could take the
// lease, or as soon as this replica stops leading, whatever deadline ctx
// has. Call done when the request has returned: graceful stop waits for it.
func (e *Elector) Fence(ctx context.Context) (fenced context.Context, done func(), err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.leading || e.stopping {
		reason := "not leading"
		if e.stopping {
			reason = "stopping"
		}
		return nil, nil, &NotLeaderError{Leader: e.otherLeader(), Reason: reason}
	}
	deadline, ok := e.lock.deadline(e.cfg.LeaseDuration, e.opts.SkewRate)
	now := e.clock.Now()
	if !ok || !beforeDeadline(now, deadline) {
		return nil, nil, &NotLeaderError{Leader: e.otherLeader(), Reason: "last renewal too old to act on"}
	}
	base, lose := context.WithCancelCause(ctx)
	fctx, cancel := context.WithTimeoutCause(base, deadline.Sub(now), ErrFenceExpired)
	stop := context.AfterFunc(e.term, func() { lose(ErrLeaseLost) })
	e.inflight.Add(1)
	var once sync.Once
	return fctx, func() {
		once.Do(func() {
			stop()
			cancel()
			lose(context.Canceled)
			e.inflight.Done()
		})
	}, nil
}

// FenceDeadline is the end of the current fence window and whether there is
// one, for status pages and tests.
func (e *Elector) FenceDeadline() (time.Time, bool) {
	return e.lock.deadline(e.cfg.LeaseDuration, e.opts.SkewRate)
}

func (e *Elector) otherLeader() string {
	if l := e.le.GetLeader(); l != e.opts.Identity {
		return l
	}
	return ""
}

// startedLeading runs on its own goroutine (client-go starts it so); ctx
// ends with the term, before stoppedLeading is called.
func (e *Elector) startedLeading(ctx context.Context) {
	e.hookMu.Lock()
	defer e.hookMu.Unlock()
	e.mu.Lock()
	if ctx.Err() != nil { // the term ended before this goroutine ran
		e.mu.Unlock()
		return
	}
	e.term, e.endTerm = context.WithCancel(ctx)
	e.leading = true
	e.mu.Unlock()
	e.log.Info("acquired the lease: this replica acts")
	if h := e.opts.Hooks.StartedLeading; h != nil {
		h()
	}
}

// stoppedLeading is called by client-go whenever a Run ends, led or not.
func (e *Elector) stoppedLeading() {
	e.hookMu.Lock()
	defer e.hookMu.Unlock()
	e.mu.Lock()
	was := e.leading
	e.leading = false
	if e.endTerm != nil {
		e.endTerm()
	}
	e.mu.Unlock()
	if !was {
		return
	}
	e.log.Info("lost the lease: this replica stands by")
	if h := e.opts.Hooks.StoppedLeading; h != nil {
		h()
	}
}

func (e *Elector) newLeader(identity string) {
	e.log.Info("observed a new leader", zap.String("leader", identity))
	if h := e.opts.Hooks.NewLeader; h != nil {
		h(identity)
	}
}
