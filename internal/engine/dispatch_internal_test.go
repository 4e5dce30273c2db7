package engine

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

func TestDispatcherOrdersByWakeThenFIFO(t *testing.T) {
	d := newDispatcher()
	a, b, c := &task{index: -1, r: taskRun{ID: "a"}}, &task{index: -1, r: taskRun{ID: "b"}}, &task{index: -1, r: taskRun{ID: "c"}}
	d.schedule(a, t0.Add(time.Minute))
	d.schedule(b, t0)
	d.schedule(c, t0)
	d.schedule(a, t0.Add(2*time.Minute)) // a later wake never delays an earlier one
	if got, next := d.next(t0.Add(-time.Second)); got != nil || !next.Equal(t0) {
		t.Fatalf("next before anything is due = %v, %v; want nil, %v", got, next, t0)
	}
	var order []string
	for {
		got, _ := d.next(t0.Add(time.Minute))
		if got == nil {
			break
		}
		order = append(order, string(got.r.ID))
	}
	if want := "b c a"; strings.Join(order, " ") != want {
		t.Fatalf("dispatch order %q, want %q", strings.Join(order, " "), want)
	}
}

// A wake that arrives while the task is being stepped (a lock released
// just after the step found it taken) must not be lost when the step parks.
func TestDispatcherKeepsWakeArrivingWhileRunning(t *testing.T) {
	d := newDispatcher()
	tk := &task{index: -1}
	d.schedule(tk, t0)
	if got, _ := d.next(t0); got != tk {
		t.Fatal("task not dispatched")
	}
	d.schedule(tk, t0.Add(time.Second)) // while running: remembered
	if got, _ := d.next(t0.Add(time.Hour)); got != nil {
		t.Fatal("a running task was dispatched twice")
	}
	d.park(tk, time.Time{}) // parks "until woken": the remembered wake counts
	if got, _ := d.next(t0.Add(time.Second)); got != tk {
		t.Fatal("the wake that arrived while the task ran was lost")
	}
	d.park(tk, t0.Add(time.Hour))
	d.finish(tk)
	d.schedule(tk, t0)
	if got, next := d.next(t0.Add(2 * time.Hour)); got != nil || !next.IsZero() {
		t.Fatalf("a finished task was scheduled again (%v, %v)", got, next)
	}
}
