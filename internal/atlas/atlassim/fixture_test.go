package atlassim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// TestExampleFixtureIsTheDemoFleet keeps testdata/fixture.yaml (the
// documented example) and DemoFixture identical.
func TestExampleFixtureIsTheDemoFleet(t *testing.T) {
	f, err := LoadFixture(filepath.Join("testdata", "fixture.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fromFile := New(Options{Clock: clock.NewFake(t0), Seed: 1})
	if err := f.Apply(fromFile); err != nil {
		t.Fatal(err)
	}
	builtIn := New(Options{Clock: clock.NewFake(t0), Seed: 1})
	if err := DemoFixture().Apply(builtIn); err != nil {
		t.Fatal(err)
	}
	if a, b := fromFile.Describe(), builtIn.Describe(); a != b {
		t.Errorf("testdata/fixture.yaml and DemoFixture differ:\n%s\nvs\n%s", a, b)
	}
	for _, name := range []string{"prod-main", "prod-shards", "analytics"} {
		a, b := fromFile.Snapshots(DemoProjectID, name), builtIn.Snapshots(DemoProjectID, name)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s snapshots differ: %+v vs %+v", name, a, b)
		}
	}
	if len(fromFile.FlexSnapshots(DemoProjectID, "flex-prod")) != 3 {
		t.Errorf("flex-prod snapshots = %+v", fromFile.FlexSnapshots(DemoProjectID, "flex-prod"))
	}
}

func TestDescribe(t *testing.T) {
	s := New(Options{Clock: clock.NewFake(t0), Speed: 60})
	if err := DemoFixture().Apply(s); err != nil {
		t.Fatal(err)
	}
	d := s.Describe()
	for _, want := range []string{
		"speed 60x", DemoProjectID, "prod-shards", "SHARDED", "shards=2", "prod-archive", "paused", "sandbox", "backup-disabled",
		"flex-prod", "snapshots=3", DemoBucketID, "backupd-demo-exports", DemoClientID, DemoPublicKey, "100 requests per project",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe lacks %q:\n%s", want, d)
		}
	}
	for _, secret := range []string{DemoClientSecret, DemoPrivateKey} {
		if strings.Contains(d, secret) {
			t.Errorf("Describe shows a secret:\n%s", d)
		}
	}
	f := DemoFixture()
	printed := fmt.Sprintf("%v %+v %#v %s", f.ServiceAccounts, f.APIKeys[0], f.ServiceAccounts[0], f.APIKeys)
	if strings.Contains(printed, DemoClientSecret) || strings.Contains(printed, DemoPrivateKey) {
		t.Errorf("printing credentials shows a secret: %s", printed)
	}
}

func TestLoadFixtureErrors(t *testing.T) {
	const project = "projects:\n  - id: 32b6e34b3d91647abb20e7b8\n"
	cases := []struct {
		name string
		yaml string
		want string // substring, with FILE standing for the path
	}{
		{"unknown top-level key", "projcts: []\n", "FILE:1: field projcts not found"},
		{"unknown cluster key", project + "    clusters:\n      - {name: a, tier: M10, size: big}\n", "FILE:4: field size not found"},
		{"wrong type", project + "    clusters:\n      - {name: a, shards: many}\n", "FILE:4: cannot unmarshal"},
		{"bad duration", project + "    seedSnapshots:\n      - {cluster: a, age: yesterday}\n", "FILE:4:"},
		{"syntax error", "projects: [\n", "FILE:"},
		{"bad project id", "projects:\n  - id: 123\n", "FILE:2: projects[0].id: add project \"123\""},
		{"bad cluster type", project + "    clusters:\n      - name: a\n        type: RING\n", "FILE:4: projects[0].clusters[0]: add cluster"},
		{"duplicate cluster", project + "    clusters:\n      - {name: a}\n      - {name: a}\n", "FILE:5: projects[0].clusters[1]"},
		{"bucket without role", project + "    buckets:\n      - {bucketName: exports, cloudProvider: AWS}\n", "FILE:4: projects[0].buckets[0]"},
		{"seed on unknown cluster", project + "    seedSnapshots:\n      - {cluster: ghost}\n", "FILE:4: projects[0].seedSnapshots[0]"},
		{"seed with negative age", project + "    clusters: [{name: a}]\n    seedSnapshots:\n      - {cluster: a, age: -1h}\n", "FILE:5: projects[0].seedSnapshots[0]: age must not be negative"},
		{"flex seed bad status", project + "    flexClusters: [{name: f}]\n    seedFlexSnapshots:\n      - {flexCluster: f, status: done}\n", "FILE:5: projects[0].seedFlexSnapshots[0]"},
		{"service account without secret", "serviceAccounts:\n  - {clientID: x}\n", "FILE:2: serviceAccounts[0]: clientID and clientSecret are required"},
		{"negative rate limit", "rateLimit: {capacity: -1}\n", "FILE:1: rateLimit"},
		{"negative timing", "timings: {exportQueued: -5s}\n", "FILE:1: timings"},
		{"bad restore end", "failures: {clusterRestores: 1, clusterRestoreEnd: lost}\n", "FILE:1: failures.clusterRestoreEnd: fail cluster restores: end \"lost\""},
		{"negative restore failures", "failures:\n  clusterRestores: -2\n", "FILE:2: failures.clusterRestores: clusterRestores -2 must not be negative"},
		{"two documents", "projects: []\n---\nprojects: []\n", "FILE:2: only one YAML document"},
		{"empty file", "", "the file is empty"},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("f%d.yaml", i))
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFixture(path)
			if err == nil {
				t.Fatal("accepted")
			}
			if want := strings.ReplaceAll(tc.want, "FILE", path); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q\nlacks %q", err, want)
			}
		})
	}
	if _, err := LoadFixture(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestFixtureAppliesSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	yaml := `projects:
  - id: 32b6e34b3d91647abb20e7b8
    clusters: [{name: c, backupEnabled: false}]
rateLimit: {capacity: 7}
timings: {snapshotQueued: 1s, snapshotInProgress: 2s}
failures: {clusterRestores: 2, clusterRestoreEnd: expired}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFixture(path)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	s := New(Options{Clock: clk})
	if err := f.Apply(s); err != nil {
		t.Fatal(err)
	}
	d := s.Describe()
	if !strings.Contains(d, "7 requests per project, refilling 7 per minute") || !strings.Contains(d, "snapshot queued 1s, inProgress 2s") || !strings.Contains(d, "backup-disabled") {
		t.Errorf("settings not applied:\n%s", d)
	}
	if err := s.SetBackupEnabled(DemoProjectID, "c", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SeedSnapshot(DemoProjectID, "c", SeedSnapshot{Type: atlas.SnapshotOnDemand, Status: atlas.SnapshotQueued}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * 1e9)
	if st := s.Snapshots(DemoProjectID, "c")[0].Status; st != atlas.SnapshotCompleted {
		t.Errorf("fixture timings not used: %s after 3s", st)
	}
	s.mu.Lock()
	n, end := s.failClusterRestores, s.clusterRestoreEnd
	s.mu.Unlock()
	if n != 2 || end != atlas.RestoreExpired {
		t.Errorf("fixture failures: %d restores end %q, want 2 expired", n, end)
	}
	// Applying twice collides on the project id, with a located error.
	if err := f.Apply(s); err == nil || !strings.Contains(err.Error(), path+":2: projects[0].id") {
		t.Errorf("second Apply: %v", err)
	}
}
