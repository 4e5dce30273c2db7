package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

func TestJitterOffset(t *testing.T) {
	tgt := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-1"}
	if got := JitterOffset("p", tgt, 0); got != 0 {
		t.Fatalf("zero window: got %v", got)
	}
	a, b := JitterOffset("p", tgt, 15*time.Minute), JitterOffset("p", tgt, 15*time.Minute)
	if a != b {
		t.Fatalf("not deterministic: %v then %v", a, b)
	}
	if a < 0 || a >= 15*time.Minute || a%time.Second != 0 {
		t.Fatalf("offset %v not a whole second in [0, 15m)", a)
	}
	if sub := JitterOffset("p", tgt, 500*time.Millisecond); sub < 0 || sub >= 500*time.Millisecond {
		t.Fatalf("sub-second window: offset %v", sub)
	}
	// The policy name and both halves of the target feed the hash.
	other := []time.Duration{
		JitterOffset("q", tgt, time.Hour),
		JitterOffset("p", run.Target{ProjectID: tgt.ProjectID, Cluster: "prod-2"}, time.Hour),
		JitterOffset("p", run.Target{ProjectID: "32b6e34b3d91647abb20e7b9", Cluster: tgt.Cluster}, time.Hour),
	}
	for i, o := range other {
		if o == JitterOffset("p", tgt, time.Hour) {
			t.Errorf("variant %d has the same offset as the original", i)
		}
	}
}

// TestJitterSpreadsFleet checks offsets are uniform over the window, so a
// fleet does not hit Atlas in one burst.
func TestJitterSpreadsFleet(t *testing.T) {
	const n, buckets = 20000, 10
	window := time.Hour
	var count [buckets]int
	for i := range n {
		o := JitterOffset("nightly", run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: fmt.Sprintf("c-%d", i)}, window)
		count[int(o*buckets/window)]++
	}
	for i, c := range count {
		if c < n/buckets*85/100 || c > n/buckets*115/100 {
			t.Fatalf("bucket %d holds %d of %d offsets: not uniform (%v)", i, c, n, count)
		}
	}
}

func TestNextFires(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	p := mustSchedule(t, "30 2 * * *", berlin)
	p.Jitter = 15 * time.Minute
	tgt := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-1"}
	j := JitterOffset(p.Name, tgt, p.Jitter)

	after := time.Date(2026, 3, 28, 0, 0, 0, 0, berlin)
	fires := NextFires(p, tgt, after, 3)
	wantSlots := []string{"2026-03-28 02:30 CET", "2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"}
	if len(fires) != 3 {
		t.Fatalf("got %d fires, want 3", len(fires))
	}
	for i, f := range fires {
		if got := f.Slot.Format("2006-01-02 15:04 MST"); got != wantSlots[i] {
			t.Errorf("fire %d slot %s, want %s", i, got, wantSlots[i])
		}
		if !f.At.Equal(f.Slot.Add(j)) || f.At.Location() != berlin || f.Slot.Location() != berlin {
			t.Errorf("fire %d: At %v is not Slot %v + jitter %v in Europe/Berlin", i, f.At, f.Slot, j)
		}
	}

	// A slot that has passed but whose jittered start has not is still next.
	if j < 2*time.Second {
		t.Fatalf("test target's jitter %v is too small for this check; pick another cluster name", j)
	}
	mid := fires[0].Slot.Add(j / 2)
	if got := NextFires(p, tgt, mid, 1); len(got) != 1 || !got[0].Slot.Equal(fires[0].Slot) {
		t.Fatalf("between slot and start: got %v, want slot %v", got, fires[0].Slot)
	}
	// At exactly the jittered start, that fire is no longer in the future.
	if got := NextFires(p, tgt, fires[0].At, 1); len(got) != 1 || !got[0].Slot.Equal(fires[1].Slot) {
		t.Fatalf("at start: got %v, want slot %v", got, fires[1].Slot)
	}
	if got := NextFires(Policy{}, tgt, after, 5); got != nil {
		t.Fatalf("policy without schedule: got %v", got)
	}
	if got := NextFires(p, tgt, after, 0); got != nil {
		t.Fatalf("n=0: got %v", got)
	}
}
