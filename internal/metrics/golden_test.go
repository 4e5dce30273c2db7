package metrics

import (
	"bytes"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the code serves")

// targetFamilyNames are the per-target families, whose store (targets.go)
// is compact and hand-encoded: what they serve is pinned in a golden file.
func targetFamilyNames() url.Values {
	q := url.Values{}
	for _, f := range targetFamilies {
		q.Add("name[]", f.name)
	}
	return q
}

// The per-target series of a mixed fleet (mixedFleet), then of the same
// fleet in a new leadership term with some targets reconciled, withheld
// results and all, are byte for byte what the golden file holds: the
// file was written by the store before it was made compact (a key of a
// shared policy-and-project group, 32-bit counters, the last-run result
// as a bit), so a change to how the series are stored cannot change what
// a scrape shows.
func TestTargetExpositionGolden(t *testing.T) {
	m := mixedFleet(t)
	path := "/metrics?" + targetFamilyNames().Encode()
	_, leading := get(t, m.Handler(), path, nil)

	m.BeginTerm()
	for i := range 400 {
		tg := run.Target{ProjectID: fmt.Sprintf("%024x", i%37), Cluster: fmt.Sprintf("c-%d", (i*7919)%400)}
		switch i % 4 {
		case 0:
			m.Reconciled("nightly", tg, nil)
		case 1:
			m.Reconciled("nightly", tg, &AtlasRun{Slot: t0.Add(time.Duration(i) * time.Hour), Succeeded: i%8 == 1,
				SnapshotAt: t0.Add(time.Duration(i)*time.Hour + 90*time.Second), SnapshotBytes: int64(i) << 20})
		}
	}
	_, term := get(t, m.Handler(), path, nil)

	got := append(append(leading, "# --- new term ---\n"...), term...)
	golden := filepath.Join("testdata", "target_families.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading the golden exposition: %v", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		start := bytes.LastIndexByte(want[:i], '\n') + 1
		t.Fatalf("per-target exposition differs from %s at byte %d:\n got: %.200s\nwant: %.200s", golden, i, got[start:], want[start:])
	}
}
