package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// JitterOffset is the fixed delay of one target's runs after each slot: a
// hash of policy and target mapped uniformly onto [0, maxJitter), in whole
// seconds when maxJitter is at least a second. The same inputs give the same
// offset on every host and after every restart, and a fleet's clusters
// spread evenly across the window instead of all hitting Atlas at once.
func JitterOffset(policy string, t run.Target, maxJitter time.Duration) time.Duration {
	if maxJitter <= 0 {
		return 0
	}
	sum := sha256.Sum256([]byte(policy + "\x00" + t.ProjectID + "\x00" + t.Cluster))
	h := binary.BigEndian.Uint64(sum[:8])
	unit := time.Duration(1)
	if maxJitter >= time.Second {
		unit = time.Second
	}
	steps := uint64((maxJitter + unit - 1) / unit) // offsets 0..steps-1, all < maxJitter
	hi, _ := bits.Mul64(h, steps)                  // uniform in [0, steps) without modulo bias
	return time.Duration(hi) * unit
}

// Fire is one planned run start: the cron slot and the moment, after
// jitter, the run is due.
type Fire struct {
	Slot time.Time // the cron slot, in the policy's time zone
	At   time.Time // Slot + the target's jitter offset
}

// NextFires returns the next n fires of policy p on target t whose At is
// strictly after `after`, in order. A slot that has passed but whose
// jittered start has not is included: it is still to run.
func NextFires(p Policy, t run.Target, after time.Time, n int) []Fire {
	if p.Cron == nil || n <= 0 {
		return nil
	}
	j := JitterOffset(p.Name, t, p.Jitter)
	loc := locOrUTC(p.Location)
	fires := make([]Fire, 0, n)
	slot := after.Add(-j)
	for len(fires) < n {
		slot = p.Cron.Next(slot)
		if slot.IsZero() {
			break
		}
		fires = append(fires, Fire{Slot: slot.In(loc), At: slot.Add(j).In(loc)})
	}
	return fires
}
