package journal

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Memory is the Journal for state.path "": the same behaviour as Bolt,
// nothing on disk. After a restart backupd recovers in-flight runs from
// the markers it leaves in Atlas instead.
//
// Values pass through the JSON encoding Bolt stores before they are kept,
// so both return exactly the same values (times lose their monotonic
// reading and come back in the same location either way). run.Run and Mark
// hold no pointers, so handing out a copy of the struct shares nothing.
// History and Prune sort in memory; a memory journal is expected to stay
// small.
type Memory struct {
	mu        sync.Mutex
	runs      map[run.ID]run.Run
	active    map[run.ID]bool
	summaries map[string]*summaryRecord // by targetKey
	marks     map[string]Mark
	pruned    time.Time // the newest CreatedAt Prune deleted
	// rollup holds the report views of the terminal runs by rollupKey
	// (Bolt's rollup, unencoded); rollupPruned is Horizon.PrunedBefore.
	rollup       map[string]dayRecord
	rollupPruned time.Time
}

var _ Journal = (*Memory)(nil)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory {
	return &Memory{
		runs:      make(map[run.ID]run.Run),
		active:    make(map[run.ID]bool),
		summaries: make(map[string]*summaryRecord),
		marks:     make(map[string]Mark),
		rollup:    make(map[string]dayRecord),
	}
}

// roundTrip returns v as it comes back from the JSON Bolt stores.
func roundTrip[T any](v T) (T, error) {
	var out T
	p, err := json.Marshal(v)
	if err != nil {
		return out, fmt.Errorf("encode: %w", err)
	}
	if err := json.Unmarshal(p, &out); err != nil {
		return out, fmt.Errorf("decode: %w", err)
	}
	return out, nil
}

// Put implements Journal.
func (m *Memory) Put(r run.Run) error {
	if err := checkID("run id", string(r.ID)); err != nil {
		return fmt.Errorf("memory journal: put run: %w", err)
	}
	stored, err := roundTrip(r)
	if err != nil {
		return fmt.Errorf("memory journal: put run %s: %w", r.ID, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	var old *run.Run
	if o, ok := m.runs[r.ID]; ok {
		old = &o
	}
	stored.Stages = run.StageHistory(old, stored)
	m.runs[r.ID] = stored
	if prev := old; prev != nil && prev.Stage.Terminal() || prev == nil && !stored.Stage.Terminal() {
		if prev == nil { // pruned after it ended, perhaps (see updateRollup)
			prev = &stored
		}
		k := string(rollupKey(prev.Target, prev.Policy, dayOf(ReportTime(*prev))))
		rec := m.rollup[k]
		if rec.remove(prev.ID); len(rec) == 0 {
			delete(m.rollup, k)
		} else {
			m.rollup[k] = rec
		}
	}
	if stored.Stage.Terminal() {
		k := string(rollupKey(stored.Target, stored.Policy, dayOf(ReportTime(stored))))
		rec := m.rollup[k]
		rec.upsert(ReportView(stored))
		m.rollup[k] = rec
	}
	if stored.Stage.Terminal() {
		delete(m.active, r.ID)
	} else {
		m.active[r.ID] = true
	}
	key := string(targetKey(stored.Policy, stored.Target))
	s, ok := m.summaries[key]
	if !ok {
		s = &summaryRecord{Summary: Summary{Policy: stored.Policy, Target: stored.Target}}
	}
	if s.apply(old, stored) {
		m.summaries[key] = s
	}
	return nil
}

// Get implements Journal.
func (m *Memory) Get(id run.ID) (run.Run, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	return r, ok, nil
}

// sorted returns the runs keep selects, in History order. Callers hold mu.
func (m *Memory) sorted(keep func(id run.ID) bool) []run.Run {
	var out []run.Run
	for id, r := range m.runs {
		if keep(id) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b run.Run) int {
		if newer(a, b) {
			return -1
		}
		return 1
	})
	return out
}

// Active implements Journal.
func (m *Memory) Active() ([]run.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.sorted(func(id run.ID) bool { return m.active[id] })
	slices.Reverse(out)
	return out, nil
}

// History implements Journal.
func (m *Memory) History(q Query) ([]run.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Filter before sorting: the engine asks for one target's runs (learned
	// polling), and sorting the whole history for each was O(n log n) a
	// cluster.
	keep := func(id run.ID) bool {
		r := m.runs[id]
		return (q.Policy == "" || r.Policy == q.Policy) && (q.Target == nil || r.Target == *q.Target) &&
			(q.Before.IsZero() || beforeCursor(r, q.Before, q.BeforeID)) &&
			(q.Since.IsZero() || !r.CreatedAt.Before(q.Since)) &&
			(q.Keep == nil || q.Keep(r))
	}
	out := m.sorted(keep)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// beforeCursor reports whether r comes after the cursor (before, id) in
// History order.
func beforeCursor(r run.Run, before time.Time, id run.ID) bool {
	if c := r.CreatedAt.Compare(before); c != 0 {
		return c < 0
	}
	return id != "" && r.ID < id
}

// Summaries implements Journal.
func (m *Memory) Summaries() ([]Summary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Summary
	for _, k := range slices.Sorted(maps.Keys(m.summaries)) {
		out = append(out, m.summaries[k].clone())
	}
	return out, nil
}

// Mark implements Journal.
func (m *Memory) Mark(key string) (Mark, bool, error) {
	if err := checkID("mark key", key); err != nil {
		return Mark{}, false, fmt.Errorf("memory journal: read mark: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mk, ok := m.marks[key]
	return mk, ok, nil
}

// SetMark implements Journal.
func (m *Memory) SetMark(key string, mk Mark) error {
	if err := checkID("mark key", key); err != nil {
		return fmt.Errorf("memory journal: set mark: %w", err)
	}
	stored, err := roundTrip(mk)
	if err != nil {
		return fmt.Errorf("memory journal: set mark %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marks[key] = stored
	return nil
}

// DeleteMark implements Journal.
func (m *Memory) DeleteMark(key string) error {
	if err := checkID("mark key", key); err != nil {
		return fmt.Errorf("memory journal: delete mark: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.marks, key)
	return nil
}

// Prune implements Journal.
func (m *Memory) Prune(now time.Time, keepRuns int, maxAge time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cutoff := now.Add(-maxAge)
	if maxAge > 0 {
		day := dayOf(cutoff)
		for k := range m.rollup {
			if d := binaryDay([]byte(k)); d < day {
				delete(m.rollup, k)
				if next := dayStart(d + 1); next.After(m.rollupPruned) {
					m.rollupPruned = next
				}
			}
		}
	}
	removed := 0
	for i, r := range m.sorted(func(id run.ID) bool { return !m.active[id] }) {
		if (keepRuns > 0 && i >= keepRuns) || (maxAge > 0 && r.CreatedAt.Before(cutoff)) {
			delete(m.runs, r.ID)
			removed++
			if r.CreatedAt.After(m.pruned) {
				m.pruned = r.CreatedAt
			}
		}
	}
	return removed, nil
}

// Outcomes implements Journal.
func (m *Memory) Outcomes(q OutcomeQuery, fn func(run.Run) error) error {
	m.mu.Lock()
	var out []run.Run
	for _, k := range slices.Sorted(maps.Keys(m.rollup)) {
		for _, r := range m.rollup[k] {
			if at := ReportTime(r); !at.Before(q.From) && at.Before(q.To) && (q.Keep == nil || q.Keep(r.Policy, r.Target)) {
				out = append(out, r)
			}
		}
	}
	m.mu.Unlock()
	for _, r := range out {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Horizon implements Journal: a memory journal had its rollup from the
// start.
func (m *Memory) Horizon() (Horizon, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Horizon{PrunedBefore: m.rollupPruned}, nil
}

// PrunedThrough implements Journal.
func (m *Memory) PrunedThrough() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pruned, nil
}

// Close implements Journal; a memory journal has nothing to release.
func (m *Memory) Close() error { return nil }
