package ha_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/ha/hatest"
)

// TestCostOfLeaderElection measures what linking leader election costs
// (docs/benchmarks.md, "Leader election cost"): the binary's size and the
// idle daemon's memory for the lean build, the -tags ha build without ha:,
// and the -tags ha build leading a real Lease. It builds both binaries as
// the image does and runs each against the simulator for a while; it runs
// only when BACKUPD_HA_COST=1 (it takes a minute and wants a quiet machine),
// and the ha: on case needs the real API server (hatest).
func TestCostOfLeaderElection(t *testing.T) {
	if os.Getenv("BACKUPD_HA_COST") != "1" {
		t.Skip("set BACKUPD_HA_COST=1 to measure (docs/benchmarks.md)")
	}
	dir := t.TempDir()
	build := func(name string, tags ...string) string {
		out := filepath.Join(dir, name)
		args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		cmd := exec.Command("go", append(args, "github.com/backupd/backupd/cmd/backupd")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", tags, err, b)
		}
		return out
	}
	// BACKUPD_HA_COST_BINS=lean,ha names binaries built already (the same
	// flags), which saves two builds on a loaded machine.
	var lean, withHA string
	if bins := strings.Split(os.Getenv("BACKUPD_HA_COST_BINS"), ","); len(bins) == 2 {
		lean, withHA = bins[0], bins[1]
	} else {
		lean, withHA = build("backupd-lean"), build("backupd-ha", "ha")
	}

	const project, id, secret = "32b6e34b3d91647abb20e7b8", "mdb_sa_id_cost", "mdb_sa_sk_cost-secret"
	sim := atlassim.New(atlassim.Options{Clock: clock.Real(), Seed: 1})
	if err := sim.AddProject(project); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddCluster(project, atlassim.ClusterSpec{Name: "prod-a", Type: atlas.ClusterReplicaSet, Tier: "M10", State: atlas.ClusterIdle, BackupEnabled: true}); err != nil {
		t.Fatal(err)
	}
	sim.AddServiceAccount(id, secret)
	srv := httptest.NewServer(sim)
	defer srv.Close()

	c := hatest.Start(t)
	rc := c.RestConfig()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: t, user: {token: %q}}]
contexts: [{name: t, context: {cluster: t, user: t}}]
current-context: t
`, rc.Host, base64.StdEncoding.EncodeToString(rc.CAData), rc.BearerToken)), 0o600); err != nil {
		t.Fatal(err)
	}

	type result struct {
		name     string
		size     int64
		rss, hwm string
	}
	var results []result
	measure := func(name, bin string, ha bool) {
		cdir := t.TempDir()
		port := freeTCPPort(t)
		cfg := fmt.Sprintf(`atlas:
  baseURL: %s
server:
  listen: 127.0.0.1:%d
state:
  path: %s
log: {level: warn, format: json}
policies:
  - name: hourly
    schedule: "0 * * * *"
    targets: [{projectID: %s, clusters: ["prod-*"]}]
    snapshot: {retentionInDays: 1}
`, srv.URL, port, filepath.Join(cdir, "state.db"), project)
		if ha {
			cfg = fmt.Sprintf("ha:\n  lease: {namespace: default, name: cost}\n  identity: cost-a\n  kubeconfig: %s\n", kubeconfig) + cfg
		}
		path := filepath.Join(cdir, "config.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "-config", path)
		cmd.Env = append(os.Environ(), "MONGODB_ATLAS_CLIENT_ID="+id, "MONGODB_ATLAS_CLIENT_SECRET="+secret, "GOMEMLIMIT=40MiB")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		want := "backupd_build_info"
		if ha {
			want = "backupd_ha_leading 1"
		}
		for {
			if body, err := get(ctx, base+"/metrics"); err == nil && strings.Contains(body, want) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %q never appeared on /metrics", name, want)
			case <-time.After(200 * time.Millisecond):
			}
		}
		time.Sleep(20 * time.Second) // idle: renewals (ha), upkeep, no slot due
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(bin)
		r := result{name: name, size: st.Size()}
		for _, l := range strings.Split(string(status), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "VmRSS:":
				r.rss = f[1] + " kB"
			case len(f) >= 2 && f[0] == "VmHWM:":
				r.hwm = f[1] + " kB"
			}
		}
		results = append(results, r)
	}
	measure("lean build, no ha:", lean, false)
	measure("-tags ha, no ha:", withHA, false)
	measure("-tags ha, ha: leading", withHA, true)
	for _, r := range results {
		t.Logf("%-24s binary %6.1f MB  idle VmRSS %s  VmHWM %s", r.name, float64(r.size)/1e6, r.rss, r.hwm)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
