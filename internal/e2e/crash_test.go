package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/journal"
	"github.com/backupd/backupd/internal/run"
)

// defaultChains is the CI size of the crash suite; BACKUPD_E2E_CHAINS
// raises it. BACKUPD_E2E_SEED replays a kill schedule.
const defaultChains = 50

// crashScale is how much faster than real time the crash suite's shared
// clock runs: a 5-minute slot passes every 2.5 s.
const crashScale = 120

// crashClusters are the targets; one is sharded so both snapshot paths
// are crashed through.
var crashClusters = []string{"c0", "c1", "c2", "c3", "c4:SHARDED"}

// aim is a moment to kill the daemon at: just after it logged a line that
// match accepts (plus a random offset of a few milliseconds), or, for the
// aim without a match, at a random moment.
type aim struct {
	name  string
	match func(string) bool
}

func note(prefix, suffix string) func(string) bool {
	return func(l string) bool {
		i := strings.Index(l, `"note":"`+prefix)
		return i >= 0 && strings.Contains(l[i:], suffix+`"`)
	}
}

var aims = []aim{
	{"after start", func(l string) bool { return strings.Contains(l, startedMsg) }},
	{"re-attaching", func(l string) bool { return strings.Contains(l, `"msg":"re-attaching run"`) }},
	{"entering waiting", func(l string) bool {
		return strings.Contains(l, `"msg":"run stage changed"`) && strings.Contains(l, `"stage":"waiting"`)
	}},
	{"before snapshot POST", note("requesting on-demand snapshot", "")},
	{"after snapshot POST", note("snapshot ", " queued")},
	{"polling snapshot", note("snapshot ", " inProgress")},
	{"snapshot completed", note("snapshot ", " completed")},
	{"before export POST", note("requesting export", "")},
	{"after export POST", note("export ", " Queued")},
	{"polling export", func(l string) bool {
		return strings.Contains(l, `"note":"export `) && strings.Contains(l, ` InProgress `)
	}},
	{"random moment", nil},
}

func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: want an integer", name, v)
	}
	return n
}

// TestCrashSafetySIGKILL kills the daemon with SIGKILL at random moments
// aimed at every step of the snapshot → export chain, restarts it each time
// with the same config, and then proves that every slot that fired has
// exactly one snapshot and one export in Atlas, and that the journal agrees.
// It runs once with a journal and once with state.path "" (markers only).
func TestCrashSafetySIGKILL(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	chains := int(envInt(t, "BACKUPD_E2E_CHAINS", defaultChains))
	seed := uint64(envInt(t, "BACKUPD_E2E_SEED", time.Now().UnixNano()))
	t.Logf("kill schedule seed %d (BACKUPD_E2E_SEED=%d replays it), %d chains per mode", seed, seed, chains)
	t.Run("journal", func(t *testing.T) {
		t.Parallel()
		crashSuite(t, chains, seed, true)
	})
	t.Run("markers-only", func(t *testing.T) {
		t.Parallel()
		crashSuite(t, chains, seed+1, false)
	})
}

func crashPolicy(schedule string) string {
	return fmt.Sprintf(`  - name: crash
    schedule: %q
    targets: [{projectID: %s}]
    snapshot: {retentionInDays: 7, description: crash}
    export: {bucketID: %s, customData: {suite: crash}}
`, schedule, projectID, bucketID)
}

// farSchedule fires on the first day of the month six months from now: never
// within a test, whatever today is.
func farSchedule() string {
	return fmt.Sprintf("0 0 1 %d *", (int(time.Now().Month())+5)%12+1)
}

func crashSuite(t *testing.T, chains int, seed uint64, withJournal bool) {
	dir := t.TempDir()
	ta := newTimeArgs(crashScale)
	fx := fleet{
		clusters: crashClusters,
		buckets:  []string{bucketID},
		timings:  "snapshotQueued: 10s, snapshotInProgress: 20s, exportQueued: 10s, exportInProgress: 30s",
	}.write(t, dir)
	sim := startSim(t, fx, ta, 1)
	statePath := ""
	if withJournal {
		statePath = filepath.Join(dir, "state.db")
	}
	cfg := daemonConfig{simURL: sim.url, statePath: statePath, policies: crashPolicy("*/5 * * * *")}.write(t, dir, "config.yaml")

	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	minKills := max(15, chains/3)
	kills := map[string]int{}
	missed := 0
	budget := time.Now().Add(time.Duration(chains) * 4 * time.Second)
	for n := 0; ; n++ {
		fired := len(indexAtlas(sim.state()).snapshots)
		if fired >= chains && n >= minKills {
			t.Logf("%d kills over %d chains that reached Atlas; aims: %v; %d aims not reached in time (killed anyway)", n, fired, kills, missed)
			break
		}
		if time.Now().After(budget) {
			t.Fatalf("only %d chains reached Atlas after %d kills; the daemon is not making progress", fired, n)
		}
		d := startDaemon(t, cfg, ta)
		a := aims[rng.IntN(len(aims))]
		if a.match == nil {
			// The kill moment itself is the randomised input here, not a
			// synchronisation: any moment must be safe.
			<-time.After(time.Duration(rng.IntN(2000)) * time.Millisecond)
		} else if _, _, ok := d.waitLine(6*time.Second, 0, a.match); !ok {
			missed++
		} else {
			<-time.After(time.Duration(rng.IntN(15)) * time.Millisecond)
		}
		d.quiet.Store(true)
		d.kill()
		if code, _ := d.waitExit(time.Second); code == 0 {
			t.Fatalf("daemon exited cleanly before the kill (aim %s)", a.name)
		}
		kills[a.name]++
	}

	// Settle: the same policy with a schedule that will not fire again, so
	// every run in flight is carried to the end and no new one starts.
	settled := daemonConfig{simURL: sim.url, statePath: statePath, policies: crashPolicy(farSchedule())}.write(t, dir, "config.yaml")
	d := startDaemon(t, settled, ta)
	eventually(t, 90*time.Second, func() (bool, string) {
		st := d.status()
		if !st.Ready {
			// Serving starts before the engine re-attaches the journal's
			// runs: until then no target shows a run in flight.
			return false, "not ready: runs not yet re-attached"
		}
		for _, p := range st.Policies {
			for _, tg := range p.Targets {
				if tg.InFlight != nil {
					return false, fmt.Sprintf("run %s on %s still %s", tg.InFlight.ID, tg.Target, tg.InFlight.Stage)
				}
			}
		}
		idx := indexAtlas(sim.state())
		for id, snaps := range idx.snapshots {
			if snaps[0].Status != atlas.SnapshotCompleted {
				return false, "snapshot of " + id + " is " + string(snaps[0].Status)
			}
			if ex := idx.exports[id]; len(ex) == 0 || !ex[0].State.Terminal() {
				return false, "export of " + id + " not finished"
			}
		}
		return true, ""
	})
	d.stop()

	idx := indexAtlas(sim.state())
	checkAtlasExactlyOnce(t, idx)
	if !withJournal {
		return
	}
	j, err := journal.Open(statePath, journal.Options{})
	if err != nil {
		t.Fatalf("reopening the journal: %v", err)
	}
	defer j.Close()
	runs, err := j.History(journal.Query{Policy: "crash"})
	if err != nil {
		t.Fatalf("reading the journal: %v", err)
	}
	checkJournalAgrees(t, runs, idx)
}

// checkAtlasExactlyOnce: every marker has exactly one completed snapshot and
// exactly one successful export of that snapshot, and no slot has two runs.
func checkAtlasExactlyOnce(t *testing.T, idx atlasRuns) {
	t.Helper()
	for id, snaps := range idx.snapshots {
		if len(snaps) != 1 {
			t.Errorf("run %s has %d snapshots in Atlas: %v", id, len(snaps), snapshotIDs(snaps))
			continue
		}
		ex := idx.exports[id]
		switch {
		case len(ex) != 1:
			t.Errorf("run %s (snapshot %s) has %d exports in Atlas", id, snaps[0].ID, len(ex))
		case ex[0].SnapshotID != snaps[0].ID:
			t.Errorf("run %s exported snapshot %s, but its marked snapshot is %s", id, ex[0].SnapshotID, snaps[0].ID)
		case ex[0].State != atlas.ExportSuccessful:
			t.Errorf("run %s export %s is %s, want Successful", id, ex[0].ID, ex[0].State)
		}
	}
	checkOrphansAndSlots(t, idx)
	t.Logf("Atlas: %d marked snapshots, %d marked exports, %d distinct slots", len(idx.snapshots), len(idx.exports), len(idx.slots))
}

// checkJournalAgrees: no run is left in flight; every succeeded run names
// the snapshot and export Atlas holds for its marker; skipped runs left
// nothing in Atlas; and every marker in Atlas belongs to a journaled run.
func checkJournalAgrees(t *testing.T, runs []run.Run, idx atlasRuns) {
	t.Helper()
	byID := map[string]run.Run{}
	slots := map[string]run.ID{}
	stages := map[string]int{}
	for _, r := range runs {
		byID[string(r.ID)] = r
		stages[string(r.Stage)+"/"+r.Reason]++
		if !r.Manual {
			k := r.Target.String() + "|" + r.Slot.UTC().Format(time.RFC3339)
			if other, dup := slots[k]; dup {
				t.Errorf("slot %s has two runs in the journal: %s and %s", k, other, r.ID)
			}
			slots[k] = r.ID
		}
		snaps, exps := idx.snapshots[string(r.ID)], idx.exports[string(r.ID)]
		switch r.Stage {
		case run.StageSucceeded:
			if len(snaps) != 1 || snaps[0].ID != r.SnapshotID {
				t.Errorf("succeeded run %s names snapshot %q; Atlas has %v for its marker", r.ID, r.SnapshotID, snapshotIDs(snaps))
			}
			if len(exps) != 1 || exps[0].ID != r.ExportJobID {
				t.Errorf("succeeded run %s names export %q; Atlas has %d exports for its marker", r.ID, r.ExportJobID, len(exps))
			}
		case run.StageSkipped:
			if len(snaps)+len(exps) != 0 {
				t.Errorf("run %s was skipped (%s) but Atlas holds %d snapshots and %d exports for it", r.ID, r.Reason, len(snaps), len(exps))
			}
		default:
			t.Errorf("run %s ended %s{%s} %s; every chain should succeed", r.ID, r.Stage, r.Reason, r.Detail)
		}
	}
	for id := range idx.snapshots {
		if _, ok := byID[id]; !ok {
			t.Errorf("Atlas holds a snapshot marked %s that the journal does not know", id)
		}
	}
	keys := make([]string, 0, len(stages))
	for k := range stages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, stages[k]))
	}
	t.Logf("journal: %d runs (%s)", len(runs), strings.Join(parts, " "))
}

// checkOrphansAndSlots: every marked export has its marked snapshot, and no
// slot has two runs.
func checkOrphansAndSlots(t *testing.T, idx atlasRuns) {
	t.Helper()
	for id := range idx.exports {
		if len(idx.snapshots[id]) == 0 {
			t.Errorf("export for run %s has no marked snapshot", id)
		}
	}
	for slot, ids := range idx.slots {
		if len(ids) != 1 {
			t.Errorf("slot %s has %d runs in Atlas: %v", slot, len(ids), ids)
		}
	}
}

func snapshotIDs(snaps []atlas.Snapshot) []string {
	out := make([]string, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, s.ID)
	}
	return out
}
