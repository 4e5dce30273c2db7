package engine_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/engine"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
	"github.com/backupd/backupd/internal/verify"
)

// The status API reads a drill's run while its worker records the restore
// and the verification: every read is a whole, consistent copy (go test
// -race watches the drill and restore records, which the engine keeps by
// reference), and the reads see the record grow as the drill goes.
func TestStatusReadsADrillInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, _ := drillFleet(t)
		fv := &fakeVerifier{res: verify.Result{ExitCode: 0, Output: "ok\n", Duration: 3 * time.Second}}
		p := drillPolicy("drill", "/usr/local/bin/check-restore")
		h := startConfig(t, sim, engine.Config{Journal: journal.NewMemory(), Atlas: engine.FromClient(clientFor(t, sim)), Verifier: fv}, p)
		defer h.stop()
		tg := run.Target{ProjectID: project, Cluster: "rs"}
		done := make(chan struct{})
		var wg sync.WaitGroup
		var seenJob, seenDone bool
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
				for _, r := range h.eng.Active() {
					seenJob = seenJob || !r.Drill.JobCreatedAt.IsZero()
					seenDone = seenDone || r.Drill.RestoreDone
					if r.Drill.RestoreDone && r.RestoreJobID == "" {
						t.Errorf("status shows a finished restore without its job: %+v", r)
					}
				}
				if r, ok := h.eng.InFlight(p.Name, tg); ok && r.RestoreRequested && !r.RestoreBaseline.Taken {
					t.Errorf("status shows a restore requested without its baseline: %+v", r)
				}
			}
		})
		id := fire(t, h, p, "rs", slot)
		r := h.await(id)
		close(done)
		wg.Wait()
		if r.Stage != run.StageSucceeded || r.Drill.Verification != run.VerifiedByCommand {
			t.Fatalf("run = %s{%s} %s verification %q", r.Stage, r.Reason, r.Detail, r.Drill.Verification)
		}
		if !seenJob || !seenDone {
			t.Fatalf("status never showed the drill's job (%v) or its end (%v)", seenJob, seenDone)
		}
	})
}
