package daemon_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// fullDisk makes the journal's writes of a run's final state fail while
// full is set, as bbolt's commit does on ENOSPC.
type fullDisk struct {
	journal.Journal
	mu   sync.Mutex
	full bool
}

func (f *fullDisk) set(full bool) {
	f.mu.Lock()
	f.full = full
	f.mu.Unlock()
}

func (f *fullDisk) Put(r run.Run) error {
	f.mu.Lock()
	full := f.full
	f.mu.Unlock()
	if full && r.Stage.Terminal() {
		return fmt.Errorf("write state.db: %w", syscall.ENOSPC)
	}
	return f.Journal.Put(r)
}

// TestFullDiskIsSurfacedAndLeavesNoPhantomRun: while the journal cannot
// record a run's final state, /readyz says so, the failures are counted
// and logged; once space is freed the write goes through, /readyz is
// ready again and the target's next slot runs (it is not skipped{overlap}
// behind a run that had already ended).
func TestFullDiskIsSurfacedAndLeavesNoPhantomRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sim := setup(t, "")
		disk := &fullDisk{}
		e := launchOpts(t, dir, sim, daemon.Options{Transport: sim.Transport(), WrapJournal: func(j journal.Journal) journal.Journal {
			disk.Journal = j
			return disk
		}})
		defer e.stop()
		synctest.Wait()
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz before the disk filled = %d %s", code, body)
		}

		disk.set(true)
		first := time.Now().Truncate(time.Hour).Add(time.Hour)
		time.Sleep(time.Until(first.Add(40 * time.Minute))) // the chain has ended in Atlas
		synctest.Wait()
		if code, body := e.get(t, "/readyz"); code != 503 || !strings.Contains(body, "journal cannot be written") {
			t.Fatalf("/readyz while the final write fails = %d %s, want 503 naming the journal", code, body)
		}
		_, metrics := e.get(t, "/metrics")
		if line := grep(metrics, "backupd_journal_write_errors_total "); line == "" || strings.HasSuffix(line, " 0") {
			t.Fatalf("backupd_journal_write_errors_total = %q, want the failed writes counted", line)
		}
		if !strings.Contains(e.logs.String(), "journal write failed") {
			t.Fatal("no error logged for the failed journal writes")
		}

		disk.set(false)
		time.Sleep(2 * time.Minute) // retries back off to at most a minute
		synctest.Wait()
		if code, body := e.get(t, "/readyz"); code != 200 {
			t.Fatalf("/readyz once the journal is written again = %d %s", code, body)
		}
		time.Sleep(time.Until(first.Add(time.Hour + 40*time.Minute)))
		synctest.Wait()
		runs, body := e.runs(t, "hourly")
		for _, s := range []time.Time{first, first.Add(time.Hour)} {
			i := slices.IndexFunc(runs, func(r run.Run) bool { return r.Target.Cluster == "prod-a" && r.Slot.Equal(s) })
			if i < 0 || runs[i].Stage != run.StageSucceeded {
				t.Fatalf("prod-a's run of slot %v is not succeeded: %s", s, body)
			}
		}
	})
}

// runs is GET /api/v1/runs of a policy, decoded, and the body.
func (e *env) runs(t *testing.T, policyName string) ([]run.Run, string) {
	t.Helper()
	_, body := e.get(t, "/api/v1/runs?policy="+policyName)
	var got struct {
		Runs []run.Run `json:"runs"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decoding the runs of %s: %v\n%s", policyName, err, body)
	}
	return got.Runs, body
}
