package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// TestSystemdNotifySpeaksTheProtocol sends over a real $NOTIFY_SOCKET, as
// systemd would receive it.
func TestSystemdNotifySpeaksTheProtocol(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", "")

	if err := (Systemd{}).Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("received %q, %v; want READY=1", buf[:n], err)
	}
	if got := (Systemd{}).WatchdogInterval(); got != 30*time.Second {
		t.Fatalf("WatchdogInterval = %v, want 30s from WATCHDOG_USEC", got)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if got := (Systemd{}).WatchdogInterval(); got != 0 {
		t.Fatalf("WatchdogInterval without WATCHDOG_USEC = %v, want 0", got)
	}
}

type recordingNotifier struct {
	mu       sync.Mutex
	states   []string
	interval time.Duration
}

func (r *recordingNotifier) Notify(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s)
	return nil
}

func (r *recordingNotifier) WatchdogInterval() time.Duration { return r.interval }

func (r *recordingNotifier) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.states {
		if x == s {
			n++
		}
	}
	return n
}

// TestWatchdogPingsAtHalfIntervalOnlyWhileHealthy runs the loop in virtual time.
func TestWatchdogPingsAtHalfIntervalOnlyWhileHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &recordingNotifier{interval: time.Minute}
		var sick atomic.Bool
		var withheld atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			watchdogLoop(ctx, clock.Real(), n, func() error {
				if sick.Load() {
					return errors.New("scheduler loop last ran 5m ago")
				}
				return nil
			}, func(error) { withheld.Add(1) })
		}()
		time.Sleep(2*time.Minute + time.Second) // virtual: pings at 0, 30s, 1m, 1m30s, 2m
		synctest.Wait()
		if got := n.count("WATCHDOG=1"); got != 5 {
			t.Fatalf("pings in 2m with WatchdogSec=1m: %d, want 5", got)
		}
		sick.Store(true)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := n.count("WATCHDOG=1"); got != 5 || withheld.Load() != 2 {
			t.Fatalf("while unhealthy: %d pings, %d withheld; want 5 and 2", got, withheld.Load())
		}
		cancel()
		<-done
	})
}

func TestNoWatchdogWithoutInterval(t *testing.T) {
	n := &recordingNotifier{}
	watchdogLoop(context.Background(), clock.Real(), n, func() error { return nil }, func(error) {})
	if len(n.states) != 0 {
		t.Fatalf("notified %v with the watchdog off", n.states)
	}
}
