package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// memStore is an in-memory MarkStore with error injection.
type memStore struct {
	mu      sync.Mutex
	marks   map[string]Mark
	getErrs int // fail this many Mark calls
	setErrs int // fail this many SetMark calls
	delErrs int // fail this many DeleteMark calls
	sets    int
	batches int
}

func newMemStore() *memStore { return &memStore{marks: map[string]Mark{}} }

func (s *memStore) Mark(key string) (Mark, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErrs > 0 {
		s.getErrs--
		return Mark{}, false, errors.New("disk on fire")
	}
	m, ok := s.marks[key]
	return m, ok, nil
}

func (s *memStore) SetMark(key string, m Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets++
	if s.setErrs > 0 {
		s.setErrs--
		return errors.New("disk full")
	}
	s.marks[key] = m
	return nil
}

func (s *memStore) DeleteMark(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delErrs > 0 {
		s.delErrs--
		return errors.New("disk busy")
	}
	delete(s.marks, key)
	return nil
}

func (s *memStore) get(key string) (Mark, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.marks[key]
	return m, ok
}

// batchStore adds MarkBatcher to memStore.
type batchStore struct{ *memStore }

func (s batchStore) SetMarks(marks map[string]Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for k, m := range marks {
		s.marks[k] = m
	}
	return nil
}

// recClock reports every timer the loop creates, i.e. every time it has
// finished an iteration and gone to sleep, with the sleep's length.
type recClock struct {
	*clock.Fake
	sleeps chan time.Duration
}

func (c recClock) NewTimer(d time.Duration) clock.Timer {
	t := c.Fake.NewTimer(d)
	c.sleeps <- d
	return t
}

type harness struct {
	t      *testing.T
	fake   *clock.Fake
	clk    recClock
	store  MarkStore
	mem    *memStore
	s      *Scheduler
	fired  chan Firing
	mu     sync.Mutex
	fail   int // fail this many fire calls
	logs   []string
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, start string, store MarkStore, mem *memStore) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		fake:  clock.NewFake(ts(t, start)),
		store: store,
		mem:   mem,
		fired: make(chan Firing, 100),
		done:  make(chan error, 1),
	}
	h.clk = recClock{Fake: h.fake, sleeps: make(chan time.Duration, 100)}
	h.s = New(h.clk, store, h.fire, Options{Logf: func(format string, args ...any) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.logs = append(h.logs, fmt.Sprintf(format, args...))
	}})
	return h
}

func (h *harness) fire(ctx context.Context, f Firing) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		return errors.New("journal unavailable")
	}
	h.fired <- f
	return nil
}

func (h *harness) setFail(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail = n
}

func (h *harness) logged(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.s.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("Run did not return after cancel")
	}
}

// sleeping waits until the loop has finished an iteration and gone to sleep,
// and returns how long it sleeps for.
func (h *harness) sleeping() time.Duration {
	h.t.Helper()
	select {
	case d := <-h.clk.sleeps:
		return d
	case <-time.After(10 * time.Second): // failure guard only
		h.t.Fatal("scheduler loop never went to sleep")
		return 0
	}
}

// firings drains what the loop fired. Firing happens before the loop sleeps,
// so after sleeping() the channel holds everything of that iteration.
func (h *harness) firings() []Firing {
	var out []Firing
	for {
		select {
		case f := <-h.fired:
			out = append(out, f)
		default:
			return out
		}
	}
}

func (h *harness) expectFirings(want ...Firing) {
	h.t.Helper()
	got := h.firings()
	if len(got) != len(want) {
		h.t.Fatalf("fired %s, want %s", fmtFirings(got), fmtFirings(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Slot.Equal(w.Slot) || !g.At.Equal(w.At) || g.CatchUp != w.CatchUp || g.Skip != w.Skip || (w.Entry.Key != "" && g.Entry.Key != w.Entry.Key) {
			h.t.Fatalf("fired %s, want %s", fmtFirings(got), fmtFirings(want))
		}
	}
}

func (h *harness) expectMark(key string, lastSlot string) Mark {
	h.t.Helper()
	m, ok := h.mem.get(key)
	if !ok {
		h.t.Fatalf("no mark stored for %s", key)
	}
	if !m.LastSlot.Equal(ts(h.t, lastSlot)) {
		h.t.Fatalf("mark of %s has LastSlot %s, want %s", key, m.LastSlot.UTC(), lastSlot)
	}
	return m
}

func keyed(t testing.TB, key, spec string, off time.Duration, missed string) Entry {
	e := mkEntry(t, spec, nil, off, missed)
	e.Key = key
	e.Target.Cluster = key
	return e
}

func TestLoopFiresOnTime(t *testing.T) {
	mem := newMemStore()
	h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
	e := keyed(t, "a", "0 * * * *", 0, MissedOnce)
	h.s.Set([]Entry{e})
	h.start()
	ctx := context.Background()
	if err := h.fake.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if d := h.sleeping(); d != time.Minute {
		t.Fatalf("idle sleep %s, want 1m (slot is 30m away)", d)
	}
	h.expectFirings()
	m := h.expectMark("a", "2026-01-10T10:30:00Z")
	if !m.Since.Equal(ts(t, "2026-01-10T10:30:00Z")) || m.Spec != e.Spec {
		t.Fatalf("first mark = %+v, want Since=now and the entry's spec", m)
	}
	if got := h.s.Next()["a"]; !got.Equal(ts(t, "2026-01-10T11:00:00Z")) {
		t.Fatalf("Next()[a] = %s, want 11:00", got)
	}

	h.fake.Set(ts(t, "2026-01-10T10:59:00Z"))
	if d := h.sleeping(); d != time.Minute {
		t.Fatalf("sleep before the slot = %s, want 1m", d)
	}
	h.expectFirings()
	h.fake.Advance(time.Minute)
	h.sleeping()
	h.expectFirings(Firing{Entry: e, Slot: ts(t, "2026-01-10T11:00:00Z"), At: ts(t, "2026-01-10T11:00:00Z")})
	h.expectMark("a", "2026-01-10T11:00:00Z")
	if got := h.s.Next()["a"]; !got.Equal(ts(t, "2026-01-10T12:00:00Z")) {
		t.Fatalf("Next()[a] after firing = %s, want 12:00", got)
	}
}

func TestLoopSleepsUntilJitteredSlot(t *testing.T) {
	mem := newMemStore()
	h := newHarness(t, "2026-01-10T11:00:00Z", mem, mem)
	mem.marks["a"] = Mark{LastSlot: ts(t, "2026-01-10T10:00:00Z"), Since: ts(t, "2026-01-01T00:00:00Z"), Spec: "0 * * * *"}
	e := keyed(t, "a", "0 * * * *", 30*time.Second, MissedOnce)
	h.s.Set([]Entry{e})
	h.start()
	if d := h.sleeping(); d != 30*time.Second {
		t.Fatalf("sleep = %s, want 30s until slot+offset", d)
	}
	h.expectFirings()
	h.fake.Advance(30 * time.Second)
	h.sleeping()
	h.expectFirings(Firing{Slot: ts(t, "2026-01-10T11:00:00Z"), At: ts(t, "2026-01-10T11:00:30Z")})
}

func TestLoopFiresSlotOnceAcrossReloads(t *testing.T) {
	mem := newMemStore()
	h := newHarness(t, "2026-01-10T10:59:00Z", mem, mem)
	e := keyed(t, "a", "0 * * * *", 0, MissedOnce)
	h.s.Set([]Entry{e})
	h.start()
	h.sleeping()

	// A reload with the same entries (re-parsed) before the slot.
	h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, MissedOnce)})
	h.sleeping()
	h.expectFirings()
	h.fake.Advance(time.Minute)
	h.sleeping()
	h.expectFirings(Firing{Slot: ts(t, "2026-01-10T11:00:00Z"), At: ts(t, "2026-01-10T11:00:00Z")})

	// Reloads after the slot fired, unchanged and with a changed offset, do not fire it again.
	h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, MissedOnce)})
	h.sleeping()
	h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 20*time.Second, MissedOnce)})
	h.sleeping()
	h.fake.Advance(time.Minute)
	h.sleeping()
	h.expectFirings()
	h.expectMark("a", "2026-01-10T11:00:00Z")

	// A changed spec starts over: new mark, no catch-up of the new schedule's past slots.
	h.s.Set([]Entry{keyed(t, "a", "*/15 * * * *", 0, MissedOnce)})
	h.sleeping()
	h.expectFirings()
	m := h.expectMark("a", "2026-01-10T11:01:00Z")
	if m.Spec != "*/15 * * * *" || !m.Since.Equal(ts(t, "2026-01-10T11:01:00Z")) {
		t.Fatalf("mark after spec change = %+v, want a fresh mark for the new spec", m)
	}
	if got := h.s.Next()["a"]; !got.Equal(ts(t, "2026-01-10T11:15:00Z")) {
		t.Fatalf("Next()[a] = %s, want 11:15", got)
	}
}

func TestLoopRestartCatchesUpOnce(t *testing.T) {
	for _, tt := range []struct {
		missed string
		want   Firing
	}{
		{MissedOnce, catchUp(fire(t, "2026-01-10T10:00:00Z", 0))},
		{MissedSkip, skipped(fire(t, "2026-01-10T10:00:00Z", 0))},
	} {
		t.Run(tt.missed, func(t *testing.T) {
			mem := newMemStore()
			since := ts(t, "2026-01-01T00:00:00Z")
			mem.marks["a"] = Mark{LastSlot: ts(t, "2026-01-10T07:00:00Z"), Since: since, Spec: "0 * * * *"}
			h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
			h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, tt.missed)})
			h.start()
			h.sleeping()
			h.expectFirings(tt.want)
			m := h.expectMark("a", "2026-01-10T10:00:00Z")
			if !m.Since.Equal(since) {
				t.Fatalf("mark Since changed to %s, want %s kept", m.Since, since)
			}
			if !h.logged("was missed") {
				t.Fatal("missed slot was not logged")
			}
			h.fake.Advance(time.Minute)
			h.sleeping()
			h.expectFirings()
		})
	}
}

func TestLoopFiresInOrderOfAt(t *testing.T) {
	mem := newMemStore()
	old := Mark{LastSlot: ts(t, "2026-01-10T09:00:00Z"), Since: ts(t, "2026-01-01T00:00:00Z"), Spec: "0 * * * *"}
	for _, k := range []string{"a", "b", "c"} {
		mem.marks[k] = old
	}
	h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
	h.s.Set([]Entry{
		keyed(t, "a", "0 * * * *", 20*time.Minute, MissedOnce),
		keyed(t, "b", "0 * * * *", 5*time.Minute, MissedOnce),
		keyed(t, "c", "0 * * * *", 10*time.Minute, MissedOnce),
	})
	h.start()
	h.sleeping()
	h.expectFirings(
		Firing{Entry: Entry{Key: "b"}, Slot: ts(t, "2026-01-10T10:00:00Z"), At: ts(t, "2026-01-10T10:05:00Z"), CatchUp: true},
		Firing{Entry: Entry{Key: "c"}, Slot: ts(t, "2026-01-10T10:00:00Z"), At: ts(t, "2026-01-10T10:10:00Z"), CatchUp: true},
		Firing{Entry: Entry{Key: "a"}, Slot: ts(t, "2026-01-10T10:00:00Z"), At: ts(t, "2026-01-10T10:20:00Z"), CatchUp: true},
	)
}

func TestLoopFireErrorIsRetriedWithoutAdvancingMark(t *testing.T) {
	mem := newMemStore()
	mem.marks["a"] = Mark{LastSlot: ts(t, "2026-01-10T10:00:00Z"), Since: ts(t, "2026-01-01T00:00:00Z"), Spec: "0 * * * *"}
	h := newHarness(t, "2026-01-10T10:59:00Z", mem, mem)
	h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, MissedOnce)})
	h.setFail(4)
	h.start()
	h.sleeping()
	h.fake.Advance(time.Minute) // 11:00, fire fails
	wantBackoff := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i, want := range wantBackoff {
		if d := h.sleeping(); d != want {
			t.Fatalf("backoff after failure %d = %s, want %s", i+1, d, want)
		}
		h.expectFirings()
		h.expectMark("a", "2026-01-10T10:00:00Z")
		if got := h.s.Next()["a"]; !got.Equal(ts(t, "2026-01-10T11:00:00Z")) {
			t.Fatalf("Next()[a] while retrying = %s, want the failed slot's 11:00", got)
		}
		h.fake.Advance(want)
	}
	// 75s after the slot, beyond grace, but it is a retry of an on-time firing, not a catch-up.
	h.sleeping()
	h.expectFirings(fire(t, "2026-01-10T11:00:00Z", 0))
	h.expectMark("a", "2026-01-10T11:00:00Z")
	if !h.logged("will retry") {
		t.Fatal("fire error was not logged")
	}
	if got := h.s.Next()["a"]; !got.Equal(ts(t, "2026-01-10T12:00:00Z")) {
		t.Fatalf("Next()[a] after success = %s, want 12:00", got)
	}
}

func TestLoopStoreErrors(t *testing.T) {
	mem := newMemStore()
	mem.getErrs = 1
	mem.setErrs = 1
	h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
	h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, MissedOnce)})
	h.start()
	if d := h.sleeping(); d != 5*time.Second {
		t.Fatalf("sleep after a failed mark read = %s, want 5s backoff", d)
	}
	if _, ok := h.s.Next()["a"]; ok {
		t.Fatal("entry whose mark could not be read has a next time")
	}
	h.fake.Advance(5 * time.Second) // read succeeds, first write fails
	if d := h.sleeping(); d != 10*time.Second {
		t.Fatalf("sleep after a failed mark write = %s, want 10s backoff", d)
	}
	if _, ok := mem.get("a"); ok {
		t.Fatal("mark stored although the write failed")
	}
	h.fake.Advance(10 * time.Second)
	h.sleeping()
	m := h.expectMark("a", "2026-01-10T10:30:05Z")
	if !m.Since.Equal(ts(t, "2026-01-10T10:30:05Z")) {
		t.Fatalf("mark %+v, want Since = first evaluation", m)
	}
}

func TestLoopRemovedEntriesMarksDeleted(t *testing.T) {
	mem := newMemStore()
	mem.delErrs = 1
	h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
	a, b := keyed(t, "a", "0 * * * *", 0, MissedOnce), keyed(t, "b", "0 * * * *", 0, MissedOnce)
	h.s.Set([]Entry{a, b})
	h.start()
	h.sleeping()
	h.expectMark("b", "2026-01-10T10:30:00Z")
	h.s.Set([]Entry{a})
	h.sleeping() // the delete failed
	if _, ok := mem.get("b"); !ok {
		t.Fatal("mark deleted although the store failed")
	}
	if _, ok := h.s.Next()["b"]; ok {
		t.Fatal("removed entry still has a next time")
	}
	h.fake.Advance(time.Minute)
	h.sleeping()
	if _, ok := mem.get("b"); ok {
		t.Fatal("removed entry's mark was not deleted on retry")
	}
	h.expectMark("a", "2026-01-10T10:30:00Z")
	if _, ok := h.s.Next()["a"]; !ok {
		t.Fatal("kept entry lost its next time")
	}
	// Re-adding it is a new schedule.
	h.fake.Advance(time.Minute)
	h.sleeping()
	h.s.Set([]Entry{a, b})
	h.sleeping()
	m := h.expectMark("b", "2026-01-10T10:32:00Z")
	if !m.Since.Equal(ts(t, "2026-01-10T10:32:00Z")) {
		t.Fatalf("re-added mark %+v, want a fresh one", m)
	}
}

func TestLoopHeartbeat(t *testing.T) {
	mem := newMemStore()
	h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
	if !h.s.Heartbeat().IsZero() {
		t.Fatal("heartbeat before Run is not zero")
	}
	h.start()
	if d := h.sleeping(); d != time.Minute {
		t.Fatalf("idle sleep with no entries = %s, want 1m", d)
	}
	if hb := h.s.Heartbeat(); !hb.Equal(ts(t, "2026-01-10T10:30:00Z")) {
		t.Fatalf("heartbeat = %s, want 10:30", hb)
	}
	h.fake.Advance(time.Minute)
	h.sleeping()
	if hb := h.s.Heartbeat(); !hb.Equal(ts(t, "2026-01-10T10:31:00Z")) {
		t.Fatalf("heartbeat = %s, want 10:31", hb)
	}
	h.stop()
	h.fake.Advance(time.Minute)
	if hb := h.s.Heartbeat(); !hb.Equal(ts(t, "2026-01-10T10:31:00Z")) {
		t.Fatalf("heartbeat moved to %s after Run returned", hb)
	}
}

func TestLoopClockJumps(t *testing.T) {
	tests := []struct {
		name   string
		missed string
		jumpTo string
		want   []Firing
	}{
		{"forward past several slots, once", MissedOnce, "2026-01-10T15:50:00Z",
			[]Firing{catchUp(fire(t, "2026-01-10T15:00:00Z", 0))}},
		{"forward past several slots, skip", MissedSkip, "2026-01-10T15:50:00Z",
			[]Firing{skipped(fire(t, "2026-01-10T15:00:00Z", 0))}},
		{"forward landing just after a slot, skip", MissedSkip, "2026-01-10T15:00:20Z",
			[]Firing{skipped(fire(t, "2026-01-10T14:00:00Z", 0)), fire(t, "2026-01-10T15:00:00Z", 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMemStore()
			h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
			h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, tt.missed)})
			h.start()
			h.sleeping()
			if err := h.fake.WaitForTimers(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			h.fake.Set(ts(t, tt.jumpTo))
			h.sleeping()
			h.expectFirings(tt.want...)
			h.expectMark("a", tt.want[len(tt.want)-1].Slot.Format(time.RFC3339))
		})
	}

	t.Run("backwards never refires", func(t *testing.T) {
		mem := newMemStore()
		h := newHarness(t, "2026-01-10T10:59:00Z", mem, mem)
		h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, MissedOnce)})
		h.start()
		h.sleeping()
		h.fake.Advance(time.Minute)
		h.sleeping()
		h.expectFirings(fire(t, "2026-01-10T11:00:00Z", 0))
		h.fake.Set(ts(t, "2026-01-10T10:30:00Z")) // wall clock stepped back 30m
		h.fake.Set(ts(t, "2026-01-10T11:01:00Z")) // the loop's pending timer fires
		h.sleeping()
		h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, MissedOnce)}) // and a reload on top
		h.sleeping()
		h.expectFirings()
		h.fake.Set(ts(t, "2026-01-10T12:00:00Z"))
		h.sleeping()
		h.expectFirings(fire(t, "2026-01-10T12:00:00Z", 0))
	})
}

func TestLoopBatchesMarks(t *testing.T) {
	mem := newMemStore()
	h := newHarness(t, "2026-01-10T10:30:00Z", batchStore{mem}, mem)
	h.s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, ""), keyed(t, "b", "0 * * * *", 0, ""), keyed(t, "c", "0 * * * *", 0, "")})
	h.start()
	h.sleeping()
	mem.mu.Lock()
	batches, sets, n := mem.batches, mem.sets, len(mem.marks)
	mem.mu.Unlock()
	if batches != 1 || sets != 0 || n != 3 {
		t.Fatalf("batches=%d sets=%d marks=%d, want 3 marks in 1 batch", batches, sets, n)
	}
}

func TestSetIgnoresInvalidAndRepeatedEntries(t *testing.T) {
	mem := newMemStore()
	h := newHarness(t, "2026-01-10T10:30:00Z", mem, mem)
	bad := keyed(t, "bad", "0 * * * *", 0, "sometimes")
	first := keyed(t, "a", "0 * * * *", 0, "")
	second := keyed(t, "a", "30 * * * *", 0, "")
	h.s.Set([]Entry{bad, first, second})
	h.start()
	h.sleeping()
	next := h.s.Next()
	if _, ok := next["bad"]; ok || len(next) != 1 || !next["a"].Equal(ts(t, "2026-01-10T11:00:00Z")) {
		t.Fatalf("Next() = %v, want only a at 11:00 (the first of the repeated key)", next)
	}
	if !h.logged(`missed "sometimes"`) || !h.logged(`repeated entry key "a"`) {
		t.Fatalf("invalid entries not logged: %q", h.logs)
	}
}

func TestRunStopsOnCancelDuringFire(t *testing.T) {
	mem := newMemStore()
	mem.marks["a"] = Mark{LastSlot: ts(t, "2026-01-10T09:00:00Z"), Spec: "0 * * * *"}
	mem.marks["b"] = mem.marks["a"]
	fake := clock.NewFake(ts(t, "2026-01-10T10:30:00Z"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls []string
	s := New(fake, mem, func(ctx context.Context, f Firing) error {
		calls = append(calls, f.Entry.Key)
		cancel() // shutdown arrives while the engine handles the first firing
		return ctx.Err()
	}, Options{})
	s.Set([]Entry{keyed(t, "a", "0 * * * *", 0, ""), keyed(t, "b", "0 * * * *", 0, "")})
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil on cancel", err)
	}
	if len(calls) != 1 {
		t.Fatalf("fired %v after cancel, want only the first", calls)
	}
	for _, k := range []string{"a", "b"} {
		if m, _ := mem.get(k); !m.LastSlot.Equal(ts(t, "2026-01-10T09:00:00Z")) {
			t.Fatalf("mark of %s advanced to %s although nothing was durably fired", k, m.LastSlot)
		}
	}
}

// A fired slot is let go: at fleet size every target's last Firing (with
// its Entry) stayed reachable from its state until the next slot, through
// the empty slice left by slicing it off.
func TestFiredSlotsAreNotRetained(t *testing.T) {
	fake := clock.NewFake(ts(t, "2026-01-10T10:59:00Z"))
	mem := newMemStore()
	var fired []Firing
	s := New(fake, mem, func(_ context.Context, f Firing) error {
		fired = append(fired, f)
		return nil
	}, Options{})
	e := keyed(t, "a", "0 * * * *", 0, MissedOnce)
	s.Set([]Entry{e})
	ctx := context.Background()
	s.iterate(ctx) // reads the mark: a new schedule from 10:59
	fake.Set(ts(t, "2026-01-10T11:00:00Z"))
	s.iterate(ctx)
	if len(fired) != 1 || !fired[0].Slot.Equal(ts(t, "2026-01-10T11:00:00Z")) {
		t.Fatalf("fired %+v, want the 11:00 slot once", fired)
	}
	if st := s.states["a"]; st.pending != nil {
		t.Fatalf("after firing, the state still holds its pending firings (len %d, cap %d, nil %v)", len(st.pending), cap(st.pending), st.pending == nil)
	}
}
