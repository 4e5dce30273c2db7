package atlassim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
)

// The factors are the same for the same seed and cluster, differ between
// clusters, and are lognormal with median 1 and the given sigma.
func TestSpreadFactors(t *testing.T) {
	sp := Spread{Sigma: 0.5, Seed: 7}
	if a, b := sp.Factor("p", "c1"), (Spread{Sigma: 0.5, Seed: 7}).Factor("p", "c1"); a != b {
		t.Fatalf("same seed and cluster: %g and %g", a, b)
	}
	if sp.Factor("p", "c1") == sp.Factor("p", "c2") || sp.Factor("p", "c1") == (Spread{Sigma: 0.5, Seed: 8}).Factor("p", "c1") {
		t.Fatal("another cluster or seed gave the same factor")
	}
	var logs []float64
	for i := range 4000 {
		logs = append(logs, math.Log(sp.Factor(fmt.Sprintf("p%d", i/10), fmt.Sprintf("c%d", i%10))))
	}
	slices.Sort(logs)
	median := logs[len(logs)/2]
	var sum float64
	for _, l := range logs {
		sum += l * l
	}
	if sd := math.Sqrt(sum / float64(len(logs))); math.Abs(median) > 0.05 || math.Abs(sd-0.5) > 0.05 {
		t.Fatalf("log factors: median %.3f, sd %.3f; want about 0 and 0.5", median, sd)
	}
	if f := (Spread{}).Factor("p", "c"); f != 1 {
		t.Fatalf("zero spread: factor %g, want 1", f)
	}
	for _, bad := range []float64{-0.1, 2.5, math.NaN()} {
		if err := New(Options{}).SetSpread(Spread{Sigma: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("sigma %g: %v, want ErrInvalid", bad, err)
		}
	}
}

// A snapshot's in-progress phase takes its cluster's factor times the
// timing; its queued phase is unchanged.
func TestSpreadScalesTheInProgressPhase(t *testing.T) {
	h := newHarness(t, Options{Timings: Timings{SnapshotQueued: 10 * time.Second, SnapshotInProgress: 100 * time.Second}})
	sp := Spread{Sigma: 0.8, Seed: 3}
	if err := h.sim.SetSpread(sp); err != nil {
		t.Fatal(err)
	}
	sn := h.takeSnapshot("prod-main", `{"retentionInDays":1}`)
	took := 10*time.Second + sp.Scale(100*time.Second, DemoProjectID, "prod-main")
	h.clk.Advance(took - time.Second)
	if st := h.snapshot("prod-main", sn.ID).Status; st != atlas.SnapshotInProgress {
		t.Fatalf("a second before the spread end: %s, want inProgress", st)
	}
	h.clk.Advance(time.Second)
	if st := h.snapshot("prod-main", sn.ID).Status; st != atlas.SnapshotCompleted {
		t.Fatalf("at the spread end (%s): %s, want completed", took, st)
	}
}
