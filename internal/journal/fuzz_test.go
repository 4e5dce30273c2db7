package journal

import (
	"errors"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// FuzzDecodeRecords feeds arbitrary keys and values to the decoders of
// the journal's stored records: a run and a rollup key with its day
// record. A damaged file must be reported as damage, never panic, and
// never pass as a record under another key.
func FuzzDecodeRecords(f *testing.F) {
	t0 := time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC)
	tg := run.Target{ProjectID: "32b6e34b3d91647abb20e7b8", Cluster: "prod-main"}
	r := run.Run{ID: "0123456789abcdef0123", Policy: "nightly", Action: run.ActionSnapshot, Target: tg, Slot: t0, ScheduledAt: t0, Manual: true, Stage: run.StageSucceeded}
	_, payload, err := encodeRun(r)
	if err != nil {
		f.Fatal(err)
	}
	key := rollupKey(tg, "nightly", dayOf(t0))
	f.Add([]byte(r.ID), seal([]byte(r.ID), payload), key, encodeDayRecord(dayOf(t0), dayRecord{r}))
	f.Add([]byte("x"), []byte("{}"), []byte("a\x00b"), []byte{rollupVersion, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, id, v, rkey, rec []byte) {
		isDamage := func(err error) bool {
			var d *damage
			return errors.As(err, &d) && d.msg != ""
		}
		if got, err := decodeRun(id, v); err != nil {
			if !isDamage(err) {
				t.Fatalf("decodeRun: %T %v, want damage", err, err)
			}
		} else if string(got.ID) != string(id) {
			t.Fatalf("decodeRun under %q returned run %q", id, got.ID)
		}
		tgt, pol, dd, err := parseRollupKey(rkey)
		if err != nil {
			if !isDamage(err) {
				t.Fatalf("parseRollupKey: %T %v, want damage", err, err)
			}
			return
		}
		rs, err := decodeDayRecord(tgt, pol, dd, rec)
		if err != nil {
			if !isDamage(err) {
				t.Fatalf("decodeDayRecord: %T %v, want damage", err, err)
			}
			return
		}
		for _, r := range rs {
			if r.Policy != pol || r.Target != tgt {
				t.Fatalf("record of %s on %s decoded a run of %s on %s", pol, tgt, r.Policy, r.Target)
			}
		}
	})
}
