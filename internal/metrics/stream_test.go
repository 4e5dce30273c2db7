package metrics

import (
	"bytes"
	"fmt"
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
			for i := 0; i < n; {
				buf = buf[:0]
				for ; i < n && len(buf) < cap(buf); i++ {
					smp := SourceSample{Value: float64(i) + 0.5}
					for j := range labels {
						smp.Values[j] = fmt.Sprintf("v%d-%05d", j, i)
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
		{Name: "backupd_aa_stream", Help: "A streamed gauge.", Labels: []string{"cluster", "kind", "project"}, Walk: walk(3)},
	}
}

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
	for _, gz := range []bool{false, true} {
		hdr := http.Header{}
		if gz {
			hdr.Set("Accept-Encoding", "gzip")
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
		if !bytes.Equal(body, want.Bytes()) {
			t.Errorf("gzip=%v: exposition differs from the registry's encoding:\n%s", gz, firstDiff(body, want.Bytes()))
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
