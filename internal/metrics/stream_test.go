package metrics

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// fakeSource streams n series in each of two families (a gauge with three
// labels, a counter with none beyond one), sorted by label values as a
// registry would order them, in chunks of at most cap(buf).
type fakeSource struct {
	mu sync.Mutex
	n  int
}

func (s *fakeSource) Families() []SourceFamily {
	walk := func(labels int) func([]SourceSample, func([]SourceSample) error) error {
		return func(buf []SourceSample, emit func([]SourceSample) error) error {
			s.mu.Lock()
			n := s.n
			s.mu.Unlock()
			if labels == 0 {
				n = min(n, 1) // one series without labels
			}
			for i := 0; i < n; {
				buf = buf[:0]
				for ; i < n && len(buf) < cap(buf); i++ {
					smp := SourceSample{Value: sourceValues[i%len(sourceValues)] + float64(i/len(sourceValues))}
					for j := range labels {
						smp.Values[j] = fmt.Sprintf("v%d-%05d", j, i)
						if i%5 == 0 {
							// What the encoder must escape, and UTF-8.
							smp.Values[j] += "a\"b\\c\nd é"
						}
					}
					buf = append(buf, smp)
				}
				if err := emit(buf); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return []SourceFamily{
		// Out of name order on purpose: the handler sorts.
		{Name: "backupd_zz_stream_total", Help: "A streamed counter.", Counter: true, Labels: []string{"cluster"}, Walk: walk(1)},
		{Name: "backupd_aa_stream", Help: "A streamed gauge: \"quoted\", back\\slash,\nnewline.", Labels: []string{"cluster", "kind", "project"}, Walk: walk(3)},
		{Name: "backupd_mm_stream", Help: "A streamed gauge without labels.", Walk: walk(0)},
	}
}

// sourceValues are the values fakeSource cycles through (plus the cycle
// number): what the text formats write specially (0, ±1, NaN, ±Inf,
// integral values, exponents) and ordinary ones.
var sourceValues = []float64{0.5, 0, 1, -1, math.NaN(), math.Inf(1), math.Inf(-1), 1.7724456e+09, 1 << 30, 1e21, 2.5e-7, 86400}

// A source's families are served between the registry's and the
// per-target ones in name order, chunk after chunk, byte for byte as
// expfmt encodes their gathering; removing the source removes them.
func TestSourceStreamsLikeRegistry(t *testing.T) {
	m := mixedFleet(t)
	src := &fakeSource{n: 3*chunkSamples + 7}
	remove, err := m.AddSource(src)
	if err != nil {
		t.Fatal(err)
	}
	mfs := backupdFamilies(t, m)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if !names["backupd_aa_stream"] || !names["backupd_zz_stream_total"] {
		t.Fatalf("Gatherer lacks the streamed families: %v", names)
	}
	for _, tc := range []struct {
		gz     bool
		accept string
	}{{false, ""}, {true, ""}, {false, string(expfmt.FmtOpenMetrics_1_0_0)}, {true, string(expfmt.FmtOpenMetrics_0_0_1)}} {
		gz := tc.gz
		hdr := http.Header{}
		if gz {
			hdr.Set("Accept-Encoding", "gzip")
		}
		if tc.accept != "" {
			hdr.Set("Accept", tc.accept)
		}
		resp, body := get(t, m.Handler(), onlyBackupd(mfs), hdr)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var want bytes.Buffer
		enc := expfmt.NewEncoder(&want, expfmt.Format(resp.Header.Get("Content-Type")))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(body, want.Bytes()) {
			t.Errorf("gzip=%v %s: exposition differs from the registry's encoding:\n%s", gz, resp.Header.Get("Content-Type"), firstDiff(body, want.Bytes()))
		}
	}
	remove()
	_, body := get(t, m.Handler(), "/metrics", nil)
	if strings.Contains(string(body), "_stream") {
		t.Error("a removed source's families are still served")
	}
	if n, err := testutil.GatherAndCount(m.Gatherer(), "backupd_aa_stream"); err != nil || n != 0 {
		t.Errorf("Gatherer after removal: %d series, %v", n, err)
	}
}

// A family whose labels a registry would reorder, or with too many, is
// refused: the chunks would not match what Gatherer says.
func TestAddSourceRefusesBadFamilies(t *testing.T) {
	m := New("test")
	for _, labels := range [][]string{{"project", "cluster"}, {"a", "b", "c", "d", "e"}} {
		s := staticSource{{Name: "backupd_x", Labels: labels, Walk: func([]SourceSample, func([]SourceSample) error) error { return nil }}}
		if _, err := m.AddSource(s); err == nil || !strings.Contains(err.Error(), "backupd_x") {
			t.Errorf("labels %v: err %v, want a refusal naming the family", labels, err)
		}
	}
}

type staticSource []SourceFamily

func (s staticSource) Families() []SourceFamily { return s }
