// Package hatest runs a real kube-apiserver, backed by a real etcd, for the
// tests of leader election: a fake clientset would agree with whatever we
// believe about the Lease API, the real server holds us to it.
//
// The binaries come from the environment: BACKUPD_KUBE_APISERVER (built by
// tools/kubeapiserver/build.sh) and BACKUPD_ETCD (Debian's etcd-server).
// Without them the tests skip, so `go test ./...` passes on a plain clone;
// with them, anything that goes wrong fails the test.
package hatest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// Environment variables naming the binaries.
const (
	EnvKubeAPIServer = "BACKUPD_KUBE_APISERVER"
	EnvEtcd          = "BACKUPD_ETCD"
)

// How long a process gets to become ready or to stop. The CI machine has two
// cores shared with the rest of the suite; kube-apiserver is ready in about
// 3 s when idle.
const (
	readyTimeout = 90 * time.Second
	stopTimeout  = 15 * time.Second
)

const token = "backupd-hatest-token"

// Cluster is a running etcd and kube-apiserver, stopped at the end of the test.
type Cluster struct {
	t       testing.TB
	dir     string
	apiBin  string
	apiPort int
	apiArgs []string
	caPEM   []byte

	// users are the tokens of StartRBAC's users, by user name.
	users map[string]string

	mu  sync.Mutex
	api *proc
}

// Start starts etcd and kube-apiserver for t, or skips t when the binaries
// are not configured. Every request is allowed (AlwaysAllow).
func Start(t testing.TB) *Cluster {
	t.Helper()
	return start(t, nil)
}

// StartRBAC is Start with RBAC authorization, as in a real cluster, and a
// token for each of users (UserConfig), who may do only what Roles bound to
// them allow. RestConfig stays an all-powerful user (system:masters), to set
// the Roles up.
func StartRBAC(t testing.TB, users ...string) *Cluster {
	t.Helper()
	return start(t, users)
}

func start(t testing.TB, rbacUsers []string) *Cluster {
	t.Helper()
	apiBin, etcdBin := os.Getenv(EnvKubeAPIServer), os.Getenv(EnvEtcd)
	if apiBin == "" || etcdBin == "" {
		t.Skipf("needs a real API server: set %s and %s (run tools/kubeapiserver/build.sh; apt-get install etcd-server), as .ci/run does", EnvKubeAPIServer, EnvEtcd)
	}
	dir := t.TempDir()
	c := &Cluster{t: t, dir: dir, apiBin: apiBin}
	authz := "AlwaysAllow"
	if rbacUsers != nil {
		authz = "RBAC"
		c.users = map[string]string{}
		for i, u := range rbacUsers {
			c.users[u] = fmt.Sprintf("backupd-hatest-user-%d", i)
		}
	}
	etcdURL := c.startEtcd(etcdBin)
	c.writeCredentials()
	c.apiPort = freePort(t)
	c.apiArgs = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=" + authz,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		// The leases are all these tests need; nothing else should cost CPU.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
	c.StartAPIServer()
	return c
}

// RestConfig is a connection to the API server as an all-powerful user.
func (c *Cluster) RestConfig() *rest.Config {
	return &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(c.apiPort),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		Timeout:         5 * time.Second,
	}
}

// UserConfig is a connection to the API server as user, one of
// StartRBAC's users.
func (c *Cluster) UserConfig(user string) *rest.Config {
	c.t.Helper()
	tok, ok := c.users[user]
	if !ok {
		c.t.Fatalf("hatest: no token for user %q (name it in StartRBAC)", user)
	}
	rc := c.RestConfig()
	rc.BearerToken = tok
	return rc
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port and etcd, and waits until it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		c.t.Fatalf("kube-apiserver is already running")
	}
	p := startProc(c.t, c.dir, "kube-apiserver", c.apiBin, c.apiArgs...)
	c.api = p
	c.waitReady(p)
}

// StopAPIServer kills kube-apiserver, as a crash or partition would end it;
// the Lease stays in etcd.
func (c *Cluster) StopAPIServer() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api == nil {
		return
	}
	c.api.stop(c.t, syscall.SIGKILL)
	c.api = nil
}

func (c *Cluster) startEtcd(bin string) string {
	c.t.Helper()
	client, peer := freePort(c.t), freePort(c.t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	p := startProc(c.t, c.dir, "etcd", bin,
		"--name=hatest",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=hatest="+peerURL,
		"--unsafe-no-fsync", // a test's data need not survive a power cut
	)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	err := poll(ctx, p, func(ctx context.Context) error {
		return get(ctx, http.DefaultClient, clientURL+"/health", "")
	})
	if err != nil {
		c.t.Fatalf("etcd did not become healthy: %v\n%s", err, p.tail())
	}
	return clientURL
}

func (c *Cluster) waitReady(p *proc) {
	c.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", c.apiPort)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	start := time.Now()
	if err := poll(ctx, p, func(ctx context.Context) error { return get(ctx, client, url, token) }); err != nil {
		c.t.Fatalf("kube-apiserver did not become ready: %v\n%s", err, p.tail())
	}
	c.t.Logf("kube-apiserver ready after %v", time.Since(start).Round(time.Millisecond))
}

// writeCredentials writes the token file, the service account key pair the
// API server insists on, and a serving certificate for 127.0.0.1 whose
// certificate is also the client's trust root.
func (c *Cluster) writeCredentials() {
	c.t.Helper()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(c.dir, name), data, 0o600); err != nil {
			c.t.Fatalf("writing %s: %v", name, err)
		}
	}
	tokens := token + `,hatest,hatest-uid,"system:masters"` + "\n"
	for u, tok := range c.users {
		tokens += fmt.Sprintf("%s,%s,%s-uid\n", tok, u, tok)
	}
	write("tokens.csv", []byte(tokens))

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.t.Fatalf("generating the service account key: %v", err)
	}
	write("sa.key", pemBlock(c.t, "EC PRIVATE KEY", must(x509.MarshalECPrivateKey(saKey))))
	write("sa.pub", pemBlock(c.t, "PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&saKey.PublicKey))))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.t.Fatalf("generating the serving key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hatest kube-apiserver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		c.t.Fatalf("creating the serving certificate: %v", err)
	}
	c.caPEM = pemBlock(c.t, "CERTIFICATE", der)
	write("serving.crt", c.caPEM)
	write("serving.key", pemBlock(c.t, "EC PRIVATE KEY", must(x509.MarshalECPrivateKey(key))))
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(fmt.Sprintf("hatest: marshalling a freshly generated key: %v", err))
	}
	return b
}

func pemBlock(t testing.TB, typ string, der []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatalf("encoding %s: %v", typ, err)
	}
	return buf.Bytes()
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before ours binds; on loopback in a test run that has not been
// seen, and the process would then fail to start, which fails the test.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func get(ctx context.Context, client *http.Client, url, bearer string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(body.String()))
	}
	return nil
}

// poll calls check every 100 ms until it succeeds, ctx ends, or the process
// exits (which is reported at once instead of after the timeout).
func poll(ctx context.Context, p *proc, check func(context.Context) error) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-p.exited:
			t.Stop()
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-t.C:
		}
	}
}

// proc is a child process whose output goes to a file in the test's
// directory, quoted when it fails.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

func startProc(t testing.TB, dir, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating %s: %v", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting %s (%s): %v", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	return p
}

// stop sends SIGTERM, then SIGKILL if the process has not exited in time.
func (p *proc) stop(t testing.TB, sig os.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		t.Logf("%s did not stop on %v within %v; killing it", p.name, sig, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail is the end of the process's output, for failure messages.
func (p *proc) tail() string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.log, err)
	}
	const max = 4000
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return fmt.Sprintf("--- %s output (%s) ---\n%s", p.name, p.log, data)
}
