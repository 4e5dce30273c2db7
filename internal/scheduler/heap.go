package scheduler

import (
	"container/heap"
	"time"
)

// wakeHeap orders entry states by when the loop must next look at them, so
// an iteration touches only what is due instead of every entry.
type wakeHeap []*state

func (h wakeHeap) Len() int { return len(h) }

func (h wakeHeap) Less(i, j int) bool {
	if h[i].wakeAt.Equal(h[j].wakeAt) {
		return h[i].entry.Key < h[j].entry.Key
	}
	return h[i].wakeAt.Before(h[j].wakeAt)
}

func (h wakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *wakeHeap) Push(x any) {
	st := x.(*state)
	st.index = len(*h)
	*h = append(*h, st)
}

func (h *wakeHeap) Pop() any {
	old := *h
	n := len(old)
	st := old[n-1]
	old[n-1] = nil
	st.index = -1
	*h = old[:n-1]
	return st
}

// schedule puts st in the heap to be looked at at t, or takes it out when t
// is zero (nothing will ever be due).
func (h *wakeHeap) schedule(st *state, t time.Time) {
	st.wakeAt = t
	switch {
	case t.IsZero() && st.index >= 0:
		heap.Remove(h, st.index)
	case t.IsZero():
	case st.index >= 0:
		heap.Fix(h, st.index)
	default:
		heap.Push(h, st)
	}
}

// remove takes st out of the heap if it is there.
func (h *wakeHeap) remove(st *state) {
	if st.index >= 0 {
		heap.Remove(h, st.index)
	}
}

// popDue removes and returns every state due at or before now.
func (h *wakeHeap) popDue(now time.Time) []*state {
	var due []*state
	for h.Len() > 0 && !(*h)[0].wakeAt.After(now) {
		due = append(due, heap.Pop(h).(*state))
	}
	return due
}
