package ha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

var t0 = time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)

func TestFenceDeadline(t *testing.T) {
	cases := []struct {
		name  string
		lease time.Duration
		skew  float64
		want  time.Duration
	}{
		{"defaults: 15 s less 10%", 15 * time.Second, DefaultSkewRate, 13500 * time.Millisecond},
		{"no margin", 15 * time.Second, 0, 15 * time.Second},
		// The Lease stores whole seconds and other candidates go by it.
		{"fraction of a second is not stored", 15900 * time.Millisecond, 0, 15 * time.Second},
		{"short lease", 4 * time.Second, 0.25, 3 * time.Second},
	}
	for _, c := range cases {
		if got := fenceDeadline(t0, c.lease, c.skew).Sub(t0); got != c.want {
			t.Errorf("%s: deadline %v after the renewal, want %v", c.name, got, c.want)
		}
	}
}

func TestBeforeDeadline(t *testing.T) {
	d := time.Now()
	if !beforeDeadline(d.Add(-time.Nanosecond), d) {
		t.Error("an instant before the deadline was refused")
	}
	if beforeDeadline(d, d) || beforeDeadline(d.Add(time.Second), d) {
		t.Error("the deadline itself, or later, was admitted")
	}
}

// fakeLock is a resourcelock.Interface whose writes take simulated time.
type fakeLock struct {
	clock   *clock.Fake
	latency time.Duration
	err     error
}

func (f *fakeLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	return nil, nil, errors.New("not used")
}
func (f *fakeLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	return f.Update(ctx, r)
}
func (f *fakeLock) Update(context.Context, resourcelock.LeaderElectionRecord) error {
	f.clock.Advance(f.latency)
	return f.err
}
func (f *fakeLock) RecordEvent(string) {}
func (f *fakeLock) Identity() string   { return "replica-a" }
func (f *fakeLock) Describe() string   { return "ns/lease" }

func TestTrackedLockCountsFromTheStartOfTheWrite(t *testing.T) {
	fc := clock.NewFake(t0)
	inner := &fakeLock{clock: fc, latency: 3 * time.Second}
	l := &trackedLock{Interface: inner, clock: fc}
	ctx := context.Background()
	if _, ok := l.deadline(15*time.Second, 0); ok {
		t.Fatal("a deadline before any write")
	}
	if err := l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a"}); err != nil {
		t.Fatal(err)
	}
	if d, ok := l.deadline(15*time.Second, 0); !ok || !d.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("deadline %v %v, want 15 s after the write started (%v), not after it returned", d, ok, t0)
	}
	// A failed write may or may not have landed: the older start stays.
	inner.err = errors.New("timeout")
	_ = l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a"})
	if d, _ := l.deadline(15*time.Second, 0); !d.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("a failed write moved the deadline to %v", d)
	}
	// A release (holder cleared) ends the window.
	inner.err = nil
	_ = l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: ""})
	if _, ok := l.deadline(15*time.Second, 0); ok {
		t.Fatal("a deadline after releasing the lease")
	}
}

// unitElector is an Elector with a fake lock and clock; its leadership is
// driven by calling client-go's callbacks directly.
func unitElector(t *testing.T, fc *clock.Fake, inner *fakeLock) *Elector {
	t.Helper()
	cfg := policy.HA{Namespace: "ns", LeaseName: "lease", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	e, err := New(cfg, Options{Identity: "replica-a", Clock: fc, Rest: &rest.Config{Host: "https://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.lock.Interface = inner
	return e
}

func TestFence(t *testing.T) {
	fc := clock.NewFake(t0)
	e := unitElector(t, fc, &fakeLock{clock: fc})
	ctx := context.Background()

	if _, _, err := e.Fence(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fence before leading: %v", err)
	}
	term, endTerm := context.WithCancel(ctx)
	defer endTerm()
	e.startedLeading(term)
	if _, _, err := e.Fence(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fence while leading but before any renewal: %v", err)
	}
	if err := e.lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a"}); err != nil {
		t.Fatal(err)
	}

	// 13 s after the renewal, 0.5 s of the 13.5 s window remain, however
	// long the caller's own deadline is.
	fc.Advance(13 * time.Second)
	long, cancelLong := context.WithTimeout(ctx, time.Hour)
	defer cancelLong()
	fctx, done, err := e.Fence(long)
	if err != nil {
		t.Fatalf("fence inside the window: %v", err)
	}
	dl, ok := fctx.Deadline()
	if left := time.Until(dl); !ok || left > 500*time.Millisecond || left <= 0 {
		t.Fatalf("fenced context has %v left (deadline set: %v), want at most 500ms", left, ok)
	}
	done()
	if !errors.Is(context.Cause(fctx), context.Canceled) {
		t.Fatalf("done did not release the context: %v", context.Cause(fctx))
	}

	fc.Advance(500 * time.Millisecond)
	if _, _, err := e.Fence(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fence at the end of the window: %v", err)
	}

	// Renewed again: losing the lease cancels the requests in flight at once.
	if err := e.lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a"}); err != nil {
		t.Fatal(err)
	}
	fctx, done, err = e.Fence(ctx)
	if err != nil {
		t.Fatalf("fence after renewing: %v", err)
	}
	defer done()
	endTerm()
	e.stoppedLeading()
	<-fctx.Done()
	if !errors.Is(context.Cause(fctx), ErrLeaseLost) {
		t.Fatalf("cause after losing the lease: %v", context.Cause(fctx))
	}
	if e.Leading() {
		t.Fatal("still leading after stoppedLeading")
	}
	var nl *NotLeaderError
	if _, _, err := e.Fence(ctx); !errors.As(err, &nl) || nl.Reason != "not leading" {
		t.Fatalf("fence after losing the lease: %v", err)
	}
}

// client-go starts OnStartedLeading on a goroutine; when the term is over
// before it runs, the replica must not believe it leads.
func TestStartedLeadingAfterTermEnded(t *testing.T) {
	fc := clock.NewFake(t0)
	e := unitElector(t, fc, &fakeLock{clock: fc})
	term, endTerm := context.WithCancel(context.Background())
	endTerm()
	e.stoppedLeading()
	e.startedLeading(term)
	if e.Leading() {
		t.Fatal("leading after a term that had already ended")
	}
}

func TestResolveIdentity(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvPodName {
				return v
			}
			return ""
		}
	}
	host := func() (string, error) { return "host-1", nil }
	noHost := func() (string, error) { return "", errors.New("uname failed") }
	cases := []struct {
		configured, pod string
		hostname        func() (string, error)
		want            string
		wantErr         bool
	}{
		{"set", "pod-1", host, "set", false},
		{"", "pod-1", host, "pod-1", false},
		{"", "", host, "host-1", false},
		{"", "", noHost, "", true},
	}
	for _, c := range cases {
		got, err := ResolveIdentity(c.configured, env(c.pod), c.hostname)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("ResolveIdentity(%q, POD_NAME=%q) = %q, %v; want %q (error %v)", c.configured, c.pod, got, err, c.want, c.wantErr)
		}
	}
}
