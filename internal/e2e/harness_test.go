package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
	"github.com/backupd/backupd/internal/run"
)

// The fleet and credentials every suite uses. The secrets are distinctive
// so the leak checks can search for them.
const (
	projectID    = "5f0a1b2c3d4e5f60718293a4"
	bucketID     = "5f0a1b2c3d4e5f60718293b5"
	bucket2ID    = "5f0a1b2c3d4e5f60718293c6"
	iamRoleID    = "5f0a1b2c3d4e5f60718293d7"
	clientID     = "mdb_sa_id_e2e"
	clientSecret = "mdb_sa_sk_E2E-TOPSECRET-client-secret-4b1d"
	adminToken   = "e2e-TOPSECRET-admin-token-9f3c2a71"
)

// pollEvery is how often eventually re-checks a condition.
const pollEvery = 40 * time.Millisecond

// eventually polls cond until it reports true, failing the test with cond's
// last explanation after timeout. Polling is deliberate here and only here:
// the daemon and the simulator are separate processes on their own (scaled)
// clocks, so there is no shared clock to advance and no in-process event to
// wait on; what they expose is HTTP state, which has to be asked for.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	if msg, ok := poll(timeout, cond); !ok {
		t.Fatalf("condition not met within %s: %s", timeout, msg)
	}
}

// poll is eventually without failing: it reports the last explanation and
// whether cond held before timeout.
func poll(timeout time.Duration, cond func() (bool, string)) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return msg, true
		}
		select {
		case <-deadline.C:
			return msg, false
		case <-tick.C:
		}
	}
}

// timeArgs are the -time-scale and -time-anchor flags every process of one
// test shares, so the daemon and the simulator agree on a clock that runs
// Scale times faster than real time.
type timeArgs struct {
	Scale  float64
	Anchor int64
}

func newTimeArgs(scale float64) timeArgs {
	return timeArgs{Scale: scale, Anchor: time.Now().Unix()}
}

func (ta timeArgs) flags() []string {
	return []string{"-time-scale", strconv.FormatFloat(ta.Scale, 'f', -1, 64), "-time-anchor", strconv.FormatInt(ta.Anchor, 10)}
}

// sim converts a duration of the shared clock to real time.
func (ta timeArgs) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / ta.Scale)
}

// proc is one child process whose stdout and stderr lines are collected as
// they arrive, so tests can wait for a line instead of sleeping.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever a line arrives
	exited  chan struct{} // closed once the process has been waited for
	state   *os.ProcessState
	// quiet keeps the output out of the failure log (killed daemons of the
	// crash suite, whose every restart would otherwise be dumped).
	quiet atomic.Bool
}

// childEnv is the test's environment without anything that would change how
// backupd behaves: its own variables, Atlas credentials and systemd's.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BACKUPD_"), strings.HasPrefix(k, "MONGODB_ATLAS_"),
			k == "NOTIFY_SOCKET", k == "WATCHDOG_USEC", k == "WATCHDOG_PID", k == "CREDENTIALS_DIRECTORY", k == "LISTEN_FDS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// startProc starts the backupd binary with args. The process is killed (if
// still running) when the test ends, and its output is logged if the test
// failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcOf(t, binary, name, args...)
}

// startProcOf is startProc with another build of backupd (the HA suite's).
func startProcOf(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: stdout pipe: %v", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("%s: stderr pipe: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: starting %s %s: %v", name, bin, strings.Join(args, " "), err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go p.read(stdout, &readers)
	go p.read(stderr, &readers)
	go func() {
		readers.Wait() // all output read before Wait, as os/exec requires
		_ = cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() && !p.quiet.Load() {
			p.dumpFailure()
		}
	})
	return p
}

func (p *proc) read(r io.Reader, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line beyond 4 MiB: keep the pipe drained
}

// output is everything the process printed so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits until a line at index from or later satisfies match. It
// returns the line's index and text; ok is false when timeout passed or the
// process exited without printing such a line.
func (p *proc) waitLine(timeout time.Duration, from int, match func(string) bool) (int, string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				line := p.lines[i]
				p.mu.Unlock()
				return i, line, true
			}
		}
		from = len(p.lines)
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
			// Lines read before the exit are all in; look once more.
			p.mu.Lock()
			for i := from; i < len(p.lines); i++ {
				if match(p.lines[i]) {
					line := p.lines[i]
					p.mu.Unlock()
					return i, line, true
				}
			}
			p.mu.Unlock()
			return -1, "", false
		case <-deadline.C:
			return -1, "", false
		}
	}
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL (if the process still runs) and waits for it to be reaped.
func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: sending %s: %v", p.name, sig, err)
	}
}

// waitExit waits for the process to exit and returns its exit code; ok is
// false if it was still running after timeout.
func (p *proc) waitExit(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.exited:
	case <-time.After(timeout):
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.ExitCode(), true
}

// failureLines is how many lines of a failed test's process are logged.
const failureLines = 400

// dumpFailure logs what a failed test needs from the process's output: the
// last failureLines lines that say what the process did. The access log of
// the test's own polling (status, runs, metrics, the simulator's admin API)
// is left out: it is most of the output and said nothing about why a run
// stalled (issue 15: a flake whose last 80 lines were all status polls). The
// whole output is written to a file kept after the test, named in the log,
// so nothing is lost.
func (p *proc) dumpFailure() {
	p.mu.Lock()
	all := slices.Clone(p.lines)
	p.mu.Unlock()
	var keep []string
	for _, l := range all {
		if !pollingNoise(l) {
			keep = append(keep, l)
		}
	}
	dropped := len(keep) > failureLines
	keep = keep[max(0, len(keep)-failureLines):]
	where := "(not kept: " + "%v)"
	if f, err := os.CreateTemp("", "backupd-e2e-"+strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name()+"-"+p.name)+"-*.log"); err == nil {
		_, werr := f.WriteString(strings.Join(all, "\n") + "\n")
		if cerr := f.Close(); werr == nil && cerr == nil {
			where = f.Name()
		} else {
			where = fmt.Sprintf(where, errors.Join(werr, cerr))
		}
	} else {
		where = fmt.Sprintf(where, err)
	}
	note := ""
	if dropped {
		note = ", earlier ones left out"
	}
	p.t.Logf("%s printed %d lines (all of them in %s); the last %d without the test's own polling%s:\n%s",
		p.name, len(all), where, len(keep), note, strings.Join(keep, "\n"))
}

// pollingNoise reports whether l is a debug access-log line of a request
// the tests send to watch the process (GET of status, runs, metrics, health
// or the simulator's /_sim/ state).
func pollingNoise(l string) bool {
	if !strings.Contains(l, `"msg":"http request"`) && !strings.Contains(l, `"msg":"sim request"`) {
		return false
	}
	if !strings.Contains(l, `"method":"GET"`) {
		return false
	}
	for _, path := range []string{`"/api/v1/status`, `"/api/v1/runs`, `"/metrics`, `"/healthz`, `"/readyz`, `"/_sim/`} {
		if strings.Contains(l, `"path":`+path) {
			return true
		}
	}
	return false
}

func (p *proc) dumpTail(n int) {
	p.mu.Lock()
	lines := p.lines[max(0, len(p.lines)-n):]
	p.mu.Unlock()
	p.t.Logf("last %d lines of %s:\n%s", len(lines), p.name, strings.Join(lines, "\n"))
}

// simProc is a running `backupd atlas-sim -admin`.
type simProc struct {
	*proc
	url string
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+)`)

// startSim starts the simulator on a free port with fixture and waits until
// it prints its address.
func startSim(t *testing.T, fixture string, ta timeArgs, speed float64) *simProc {
	t.Helper()
	args := append([]string{"atlas-sim", "-listen", "127.0.0.1:0", "-admin", "-fixture", fixture,
		"-lifecycle-scale", strconv.FormatFloat(speed, 'f', -1, 64)}, ta.flags()...)
	p := startProc(t, "atlas-sim", args...)
	_, line, ok := p.waitLine(30*time.Second, 0, listeningRE.MatchString)
	if !ok {
		p.dumpTail(40)
		t.Fatal("atlas-sim did not print its address")
	}
	return &simProc{proc: p, url: listeningRE.FindStringSubmatch(line)[1]}
}

// admin sends one request to the simulator's /_sim/ API and decodes the
// answer into out (when non-nil).
func (s *simProc) admin(method, path string, body, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatalf("encoding %s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	code, data, err := httpDo(method, s.url+path, "", rd)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code/100 != 2 {
		s.t.Fatalf("%s %s: %d %s", method, path, code, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("decoding %s %s: %v: %.300s", method, path, err, data)
		}
	}
}

func (s *simProc) state() atlassim.AdminState {
	s.t.Helper()
	var st atlassim.AdminState
	s.admin("GET", "/_sim/state", nil, &st)
	return st
}

func (s *simProc) calls(withLog bool) atlassim.AdminCalls {
	s.t.Helper()
	var c atlassim.AdminCalls
	path := "/_sim/calls"
	if withLog {
		path += "?log=true"
	}
	s.admin("GET", path, nil, &c)
	return c
}

// daemonProc is a running `backupd run`.
type daemonProc struct {
	*proc
	url    string // http://host:port of server.listen
	config string
}

var startedMsg = `"msg":"backupd started"`

// startDaemon runs `backupd run -config cfg` and waits for its "backupd
// started" line, which carries the address it listens on.
func startDaemon(t *testing.T, cfg string, ta timeArgs) *daemonProc {
	t.Helper()
	return startDaemonOf(t, binary, "backupd run", cfg, ta)
}

// startDaemonOf is startDaemon with another build of backupd, under a name
// for the failure log.
func startDaemonOf(t *testing.T, bin, name, cfg string, ta timeArgs) *daemonProc {
	t.Helper()
	p := startProcOf(t, bin, name, append([]string{"run", "-config", cfg}, ta.flags()...)...)
	_, line, ok := p.waitLine(60*time.Second, 0, func(l string) bool { return strings.Contains(l, startedMsg) })
	if !ok {
		p.dumpTail(60)
		t.Fatalf("%s did not log \"backupd started\"", name)
	}
	var started struct {
		Listen string `json:"listen"`
	}
	if err := json.Unmarshal([]byte(line), &started); err != nil || started.Listen == "" {
		t.Fatalf("cannot read the listen address from %q: %v", line, err)
	}
	return &daemonProc{proc: p, url: "http://" + started.Listen, config: cfg}
}

// get fetches a daemon path and returns its status and body.
func (d *daemonProc) get(path string) (int, []byte) {
	d.t.Helper()
	code, body, err := httpDo("GET", d.url+path, "", nil)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

func (d *daemonProc) status() run.Status {
	d.t.Helper()
	code, body := d.get("/api/v1/status")
	if code != http.StatusOK {
		d.t.Fatalf("GET /api/v1/status: %d %s", code, body)
	}
	var st run.Status
	if err := json.Unmarshal(body, &st); err != nil {
		d.t.Fatalf("decoding /api/v1/status: %v", err)
	}
	return st
}

// runs returns up to 1000 runs of a policy ("" = all), newest first.
func (d *daemonProc) runs(policy string) []run.Run {
	d.t.Helper()
	code, body := d.get("/api/v1/runs?limit=1000&policy=" + policy)
	if code != http.StatusOK {
		d.t.Fatalf("GET /api/v1/runs: %d %s", code, body)
	}
	var out struct {
		Runs []run.Run `json:"runs"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		d.t.Fatalf("decoding /api/v1/runs: %v", err)
	}
	return out.Runs
}

func (d *daemonProc) metrics() metricSet {
	d.t.Helper()
	code, body := d.get("/metrics")
	if code != http.StatusOK {
		d.t.Fatalf("GET /metrics: %d", code)
	}
	return parseMetrics(string(body))
}

// trigger asks the admin API to run a policy now on all its targets.
func (d *daemonProc) trigger(policy string) []run.Run {
	d.t.Helper()
	code, body, err := httpDo("POST", d.url+"/api/v1/policies/"+policy+"/trigger", adminToken, nil)
	if err != nil || code/100 != 2 {
		d.t.Fatalf("triggering %s: %d %s %v", policy, code, body, err)
	}
	var out struct {
		Runs []run.Run `json:"runs"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		d.t.Fatalf("decoding the trigger answer: %v", err)
	}
	return out.Runs
}

// stop sends SIGTERM and requires exit code 0 within 10 s, as DESIGN.md promises.
func (d *daemonProc) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	code, ok := d.waitExit(10 * time.Second)
	if !ok {
		d.t.Fatal("backupd did not exit within 10s of SIGTERM")
	}
	if code != 0 {
		d.t.Fatalf("backupd exited %d after SIGTERM, want 0", code)
	}
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

func httpDo(method, url, token string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		return 0, nil, fmt.Errorf("building %s %s: %w", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading %s %s: %w", method, url, err)
	}
	return resp.StatusCode, data, nil
}

// cliResult is one finished CLI invocation.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the binary to completion (one minute at most).
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			res.code = ee.ExitCode()
		} else {
			t.Fatalf("backupd %s: %v", strings.Join(args, " "), err)
		}
	}
	return res
}

// metricSet is a parsed Prometheus text exposition.
type metricSet []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)`)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseMetrics(text string) metricSet {
	var out metricSet
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelRE.FindAllStringSubmatch(m[3], -1) {
			s.labels[l[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\n`, "\n").Replace(l[2])
		}
		out = append(out, s)
	}
	return out
}

// sum adds the samples of name whose labels include match; found is false
// when no sample matched.
func (ms metricSet) sum(name string, match map[string]string) (total float64, found bool) {
	for _, s := range ms {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
			found = true
		}
	}
	return total, found
}

// writeFile writes content to dir/name with mode 0600 and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fleet describes the simulator fixture of one test.
type fleet struct {
	clusters []string // "name" or "name:SHARDED"
	flex     []string
	// flexSeeds are flex clusters that get one COMPLETED snapshot.
	flexSeeds []string
	buckets   []string // bucket ids
	timings   string   // YAML mapping body of timings, e.g. "snapshotQueued: 5s"
	// serviceAccounts are client IDs besides clientID, each with the secret
	// secretOf gives it (one per replica in the HA suite).
	serviceAccounts []string
}

// secretOf is the client secret of an extra service account of a fleet.
func secretOf(clientID string) string { return clientSecret + "-" + clientID }

func (f fleet) write(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "projects:\n  - id: %s\n    name: e2e\n    clusters:\n", projectID)
	for _, c := range f.clusters {
		name, typ, _ := strings.Cut(c, ":")
		if typ == "" {
			typ = "REPLICASET"
		}
		fmt.Fprintf(&b, "      - {name: %s, type: %s, tier: M10}\n", name, typ)
	}
	if len(f.flex) > 0 {
		b.WriteString("    flexClusters:\n")
		for _, n := range f.flex {
			fmt.Fprintf(&b, "      - {name: %s}\n", n)
		}
	}
	if len(f.buckets) > 0 {
		b.WriteString("    buckets:\n")
		for i, id := range f.buckets {
			fmt.Fprintf(&b, "      - {id: %s, bucketName: e2e-exports-%d, cloudProvider: AWS, iamRoleId: %s}\n", id, i, iamRoleID)
		}
	}
	if len(f.flexSeeds) > 0 {
		b.WriteString("    seedFlexSnapshots:\n")
		for _, n := range f.flexSeeds {
			fmt.Fprintf(&b, "      - {flexCluster: %s, status: COMPLETED, age: 3h}\n", n)
		}
	}
	fmt.Fprintf(&b, "serviceAccounts:\n  - {clientID: %s, clientSecret: %s}\n", clientID, clientSecret)
	for _, id := range f.serviceAccounts {
		fmt.Fprintf(&b, "  - {clientID: %s, clientSecret: %s}\n", id, secretOf(id))
	}
	if f.timings != "" {
		fmt.Fprintf(&b, "timings: {%s}\n", f.timings)
	}
	return writeFile(t, dir, "fixture.yaml", b.String())
}

// daemonConfig is what a test varies in the config it writes.
type daemonConfig struct {
	simURL    string
	statePath string // "" = memory-only journal
	listen    string // default 127.0.0.1:0
	rpm       int    // default 600
	discovery string // atlas.discoveryInterval; default 10m
	policies  string // the YAML list under policies:, indented by two spaces
	clientID  string // default clientID, with clientSecret; else secretOf(clientID)
	extra     string // top-level YAML sections appended as they are (ha:)
}

// write writes the config (and the secret files it names) into dir as name.
func (c daemonConfig) write(t *testing.T, dir, name string) string {
	t.Helper()
	id, secret := clientID, clientSecret
	if c.clientID != "" {
		id, secret = c.clientID, secretOf(c.clientID)
	}
	secretFile := writeFile(t, dir, "client-secret", secret+"\n")
	tokenFile := writeFile(t, dir, "admin-token", adminToken+"\n")
	if c.listen == "" {
		c.listen = "127.0.0.1:0"
	}
	if c.rpm == 0 {
		c.rpm = 600
	}
	if c.discovery == "" {
		c.discovery = "10m"
	}
	cfg := fmt.Sprintf(`atlas:
  baseURL: %s
  auth:
    serviceAccount:
      clientID: %s
      clientSecretFile: %s
  requestsPerMinute: %d
  timeout: 20s
  discoveryInterval: %s
server:
  listen: %q
  adminTokenFile: %s
state:
  path: %q
log: {level: debug, format: json}
defaults:
  timeouts: {wait: 12h, snapshot: 12h, export: 12h, restore: 12h}
policies:
%s%s`, c.simURL, id, secretFile, c.rpm, c.discovery, c.listen, tokenFile, c.statePath, c.policies, c.extra)
	return writeFile(t, dir, name, cfg)
}

// atlasRuns indexes what the simulator holds by backupd run id: the
// snapshots whose description carries backupd:<run> and the exports whose
// customData carries backupd.run=<run>.
type atlasRuns struct {
	snapshots map[string][]atlas.Snapshot
	exports   map[string][]atlas.ExportJob
	// slots maps policy|cluster|slot of scheduled (not manual) markers to
	// the run ids that carry it: more than one is a slot run twice.
	slots map[string][]string
}

var markerRE = regexp.MustCompile(`backupd:([0-9a-f]{20}) policy=(\S+) slot=(\S+?)( manual)?\]`)

func indexAtlas(st atlassim.AdminState) atlasRuns {
	out := atlasRuns{snapshots: map[string][]atlas.Snapshot{}, exports: map[string][]atlas.ExportJob{}, slots: map[string][]string{}}
	for _, p := range st.Projects {
		for _, c := range p.Clusters {
			for _, s := range c.Snapshots {
				m := markerRE.FindStringSubmatch(s.Description)
				if m == nil {
					continue
				}
				out.snapshots[m[1]] = append(out.snapshots[m[1]], s)
				if k := m[2] + "|" + c.Name + "|" + m[3]; m[4] == "" && !slices.Contains(out.slots[k], m[1]) {
					out.slots[k] = append(out.slots[k], m[1])
				}
			}
			for _, e := range c.Exports {
				if id := exportRun(e.CustomData); id != "" {
					out.exports[id] = append(out.exports[id], e)
				}
			}
		}
	}
	return out
}

// exportRun returns the backupd.run label of an export ("" if none).
func exportRun(customData []atlas.Label) string {
	for _, l := range customData {
		if l.Key == "backupd.run" {
			return l.Value
		}
	}
	return ""
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
