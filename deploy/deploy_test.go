// Package deploy_test checks the deployment artefacts under deploy/ against
// the contract in DESIGN.md: the systemd unit, the container image, the
// Kubernetes sidecar example, the Prometheus rules and the Grafana dashboard.
// It needs no external tool, so it runs with every `go test ./...`; the
// tool-based checks (systemd-analyze, promtool) live in deploy/check.sh.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/backupd/backupd/internal/drillmetrics"
	"github.com/backupd/backupd/internal/metrics"
	"github.com/backupd/backupd/internal/monitor"
	"github.com/backupd/backupd/internal/notify"
)

// contractMetrics is the metrics table of DESIGN.md: name -> is a histogram.
var contractMetrics = map[string]bool{
	"backupd_build_info":                     false,
	"backupd_policy_info":                    false,
	"backupd_runs_total":                     false,
	"backupd_runs_skipped_total":             false,
	"backupd_stage_duration_seconds":         true,
	"backupd_last_success_timestamp_seconds": false,
	"backupd_last_run_success":               false,
	"backupd_next_run_timestamp_seconds":     false,
	"backupd_schedule_interval_seconds":      false,
	"backupd_inflight_runs":                  false,
	"backupd_snapshot_size_bytes":            false,
	"backupd_atlas_requests_total":           false,
	"backupd_atlas_request_duration_seconds": true,
	"backupd_atlas_rate_limited_total":       false,
	"backupd_config_reloads_total":           false,
}

const (
	listenPort     = "9469"
	configPath     = "/etc/backupd/config.yaml"
	stateDir       = "/var/lib/backupd"
	buildinfoVar   = "github.com/backupd/backupd/internal/buildinfo.Version"
	unitPath       = "systemd/backupd.service"
	systemdConfig  = "systemd/config.yaml"
	dockerfilePath = "container/Dockerfile"
	rulesPath      = "prometheus/backupd.rules.yaml"
	rulesTestPath  = "prometheus/backupd.rules.test.yaml"
	dashboardPath  = "grafana/backupd.json"
	dashTestPath   = "grafana/backupd.dashboard.test.yaml"
	kubernetesDir  = "kubernetes"
)

// readFile reads a file under deploy/ or fails the test.
func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return b
}

// decodeAll decodes every document of a multi-document YAML stream.
func decodeAll(name string, data []byte) ([]yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s document %d: %w", name, len(docs)+1, err)
		}
		docs = append(docs, n)
	}
}

func TestEveryYAMLFileParses(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking deploy/: %v", err)
	}
	if len(files) < 8 {
		t.Fatalf("found only %d YAML files under deploy/: %v", len(files), files)
	}
	for _, f := range files {
		docs, err := decodeAll(f, readFile(t, filepath.ToSlash(f)))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
}

// ---- systemd ---------------------------------------------------------------

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, ";"):
		case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
			section = s[1 : len(s)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(s, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", name, line, s)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitPath)
	svc := u["Service"]
	if svc == nil {
		t.Fatalf("%s has no [Service] section", unitPath)
	}
	want := map[string]string{
		"Type":                    "notify",
		"ExecStart":               "/usr/local/bin/backupd run -config " + configPath,
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"WatchdogSec":             "60",
		"Restart":                 "on-failure",
		"TimeoutStopSec":          "15",
		"DynamicUser":             "yes",
		"StateDirectory":          "backupd",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"PrivateUsers":            "yes",
		"ProtectHome":             "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"ProcSubset":              "pid",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"UMask":                   "0077",
	}
	for k, v := range want {
		got, ok := svc[k]
		if !ok {
			t.Errorf("%s: [Service] lacks %s=%s", unitPath, k, v)
			continue
		}
		if len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s=%q, want exactly %q", unitPath, k, got, v)
		}
	}
	if got, want := svc["SystemCallFilter"], []string{"@system-service", "~@privileged @resources"}; !slices.Equal(got, want) {
		t.Errorf("%s: SystemCallFilter=%q, want %q", unitPath, got, want)
	}
	// fleetbench measures the daemon with the unit's memory limit.
	bench, err := os.ReadFile("../cmd/fleetbench/main.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`defaultGoMemLimit = "([^"]+)"`).FindSubmatch(bench)
	if m == nil {
		t.Fatal("cmd/fleetbench/main.go has no defaultGoMemLimit")
	}
	if got, want := svc["Environment"], []string{"GOMEMLIMIT=" + string(m[1])}; !slices.Equal(got, want) {
		t.Errorf("%s: Environment=%q, want %q (fleetbench's -gomemlimit default)", unitPath, got, want)
	}
	// Atlas is on the public internet: an IP deny list without an allow
	// list would cut the daemon off.
	if deny := svc["IPAddressDeny"]; len(deny) > 0 && len(svc["IPAddressAllow"]) == 0 {
		t.Errorf("%s: IPAddressDeny=%q without IPAddressAllow blocks Atlas", unitPath, deny)
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("%s: WantedBy=%q, want multi-user.target", unitPath, got)
	}

	creds := map[string]string{}
	for _, c := range svc["LoadCredential"] {
		id, p, ok := strings.Cut(c, ":")
		if !ok || !path.IsAbs(p) {
			t.Errorf("%s: LoadCredential=%q is not ID:/absolute/path", unitPath, c)
			continue
		}
		creds[id] = p
	}
	for _, id := range []string{"client-secret", "admin-token"} {
		if creds[id] == "" {
			t.Errorf("%s: no LoadCredential=%s:...", unitPath, id)
		}
	}

	// The example config must name exactly those credentials, by relative
	// path (resolved against $CREDENTIALS_DIRECTORY), and use StateDirectory.
	cfg := decodeConfig(t, systemdConfig, readFile(t, systemdConfig))
	for field, p := range cfg.secretFiles() {
		if _, ok := creds[p]; !ok {
			t.Errorf("%s: %s=%q is not a credential the unit loads (%v)", systemdConfig, field, p, keys(creds))
		}
	}
	if cfg.State.Path != stateDir+"/state.db" {
		t.Errorf("%s: state.path=%q, want %s/state.db (StateDirectory=backupd)", systemdConfig, cfg.State.Path, stateDir)
	}
	if host, port, err := net.SplitHostPort(cfg.Server.Listen); err != nil || port != listenPort || host != "127.0.0.1" {
		t.Errorf("%s: server.listen=%q, want 127.0.0.1:%s", systemdConfig, cfg.Server.Listen, listenPort)
	}
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// backupdConfig is the part of the backupd config schema the deployment
// artefacts depend on.
type backupdConfig struct {
	Atlas struct {
		Auth struct {
			ServiceAccount *struct {
				ClientSecretFile string `yaml:"clientSecretFile"`
			} `yaml:"serviceAccount"`
			APIKey *struct {
				PrivateKeyFile string `yaml:"privateKeyFile"`
			} `yaml:"apiKey"`
		} `yaml:"auth"`
	} `yaml:"atlas"`
	Server struct {
		Listen         string `yaml:"listen"`
		AdminTokenFile string `yaml:"adminTokenFile"`
	} `yaml:"server"`
	State struct {
		Path string `yaml:"path"`
	} `yaml:"state"`
	HA *struct {
		Lease struct {
			Namespace string `yaml:"namespace"`
			Name      string `yaml:"name"`
		} `yaml:"lease"`
		Identity   string `yaml:"identity"`
		Kubeconfig string `yaml:"kubeconfig"`
	} `yaml:"ha"`
	Policies []struct {
		Name string `yaml:"name"`
	} `yaml:"policies"`
}

func decodeConfig(t *testing.T, name string, data []byte) backupdConfig {
	t.Helper()
	var c backupdConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("parsing backupd config %s: %v", name, err)
	}
	if len(c.Policies) == 0 {
		t.Errorf("%s: no policies", name)
	}
	secrets := c.secretFiles()
	if len(secrets) < 2 {
		t.Errorf("%s: want a client secret file and server.adminTokenFile, got %v", name, secrets)
	}
	for field, p := range secrets {
		if p == "" || path.IsAbs(p) || strings.Contains(p, "/") {
			t.Errorf("%s: %s=%q: want a bare credential name, resolved against $CREDENTIALS_DIRECTORY", name, field, p)
		}
	}
	return c
}

// secretFiles returns the configured secret file paths by config key.
func (c backupdConfig) secretFiles() map[string]string {
	m := map[string]string{}
	if sa := c.Atlas.Auth.ServiceAccount; sa != nil {
		m["atlas.auth.serviceAccount.clientSecretFile"] = sa.ClientSecretFile
	}
	if k := c.Atlas.Auth.APIKey; k != nil {
		m["atlas.auth.apiKey.privateKeyFile"] = k.PrivateKeyFile
	}
	if c.Server.AdminTokenFile != "" {
		m["server.adminTokenFile"] = c.Server.AdminTokenFile
	}
	return m
}

// ---- container image -------------------------------------------------------

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, name string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = line
		}
		if cont, ok := strings.CutSuffix(s, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(s)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s:%d: instruction ends with a line continuation", name, start)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, dockerfilePath)
	var froms []instruction
	final := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in)
			final = i
		}
		if in.cmd == "HEALTHCHECK" {
			t.Errorf("%s:%d: no HEALTHCHECK: orchestrators probe /healthz and /readyz", dockerfilePath, in.line)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("%s: want a multi-stage build, found %d FROM", dockerfilePath, len(froms))
	}
	if f := froms[0].args; !regexp.MustCompile(`^golang:(1\.26|\$\{GO_VERSION\})\S* AS build$`).MatchString(f) {
		t.Errorf("%s:%d: builder FROM %q, want golang:1.26 AS build", dockerfilePath, froms[0].line, f)
	}
	if f := froms[len(froms)-1].args; f != "gcr.io/distroless/static-debian12:nonroot" && f != "scratch" {
		t.Errorf("%s:%d: final FROM %q, want distroless static nonroot or scratch", dockerfilePath, froms[len(froms)-1].line, f)
	}
	// The GO_VERSION build arg, when used, must default to 1.26.
	for _, in := range ins {
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "GO_VERSION=") && in.args != "GO_VERSION=1.26" {
			t.Errorf("%s:%d: ARG %s, want GO_VERSION=1.26", dockerfilePath, in.line, in.args)
		}
	}

	var build string
	for _, in := range ins[:final] {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	// The image carries leader election (issue 16): the ha tag by default.
	haTag := false
	for _, in := range ins[:final] {
		haTag = haTag || (in.cmd == "ARG" && in.args == "TAGS=ha")
	}
	if !haTag {
		t.Errorf("%s: no ARG TAGS=ha: the image must build with leader election", dockerfilePath)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-tags "${TAGS}"`, `-ldflags "-s -w -X ` + buildinfoVar + "=${VERSION}\"", "./cmd/backupd"} {
		if !strings.Contains(build, want) {
			t.Errorf("%s: the go build step lacks %s: %q", dockerfilePath, want, build)
		}
	}

	last := map[string]string{}
	for _, in := range ins[final:] {
		last[in.cmd] = in.args
	}
	wantFinal := map[string]string{
		"USER":       "nonroot:nonroot",
		"EXPOSE":     listenPort,
		"ENTRYPOINT": `["/backupd"]`,
		"CMD":        `["run", "-config", "` + configPath + `"]`,
	}
	for cmd, want := range wantFinal {
		if got := last[cmd]; got != want {
			t.Errorf("%s: final stage %s %q, want %q", dockerfilePath, cmd, got, want)
		}
	}
	// ENTRYPOINT and CMD must be exec form (JSON), so signals reach backupd.
	for _, cmd := range []string{"ENTRYPOINT", "CMD"} {
		var v []string
		if err := json.Unmarshal([]byte(last[cmd]), &v); err != nil {
			t.Errorf("%s: %s is not exec (JSON) form: %v", dockerfilePath, cmd, err)
		}
	}
}

// ---- Kubernetes ------------------------------------------------------------

type objectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type rbacRule struct {
	APIGroups     []string `yaml:"apiGroups"`
	Resources     []string `yaml:"resources"`
	ResourceNames []string `yaml:"resourceNames"`
	Verbs         []string `yaml:"verbs"`
}

type rbacRef struct {
	APIGroup  string `yaml:"apiGroup"`
	Kind      string `yaml:"kind"`
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

type k8sObject struct {
	file       string
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	Spec       yaml.Node         `yaml:"spec"`
	Resources  []string          `yaml:"resources"`
	Namespace  string            `yaml:"namespace"` // Kustomization
	Rules      []rbacRule        `yaml:"rules"`     // Role
	RoleRef    rbacRef           `yaml:"roleRef"`   // RoleBinding
	Subjects   []rbacRef         `yaml:"subjects"`  // RoleBinding
	// AutomountServiceAccountToken is a ServiceAccount's.
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	SecurityContext securityContext `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type deploymentSpec struct {
	Replicas *int `yaml:"replicas"`
	Strategy struct {
		Type          string `yaml:"type"`
		RollingUpdate *struct {
			MaxSurge       any `yaml:"maxSurge"`
			MaxUnavailable any `yaml:"maxUnavailable"`
		} `yaml:"rollingUpdate"`
	} `yaml:"strategy"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     struct {
			ServiceAccountName            string          `yaml:"serviceAccountName"`
			AutomountServiceAccountToken  *bool           `yaml:"automountServiceAccountToken"`
			TerminationGracePeriodSeconds *int            `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               securityContext `yaml:"securityContext"`
			Containers                    []container     `yaml:"containers"`
			Volumes                       []struct {
				Name      string `yaml:"name"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
				Secret *struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
				EmptyDir              *yaml.Node `yaml:"emptyDir"`
				PersistentVolumeClaim *yaml.Node `yaml:"persistentVolumeClaim"`
				Projected             *struct {
					Sources []struct {
						ServiceAccountToken *struct {
							Path string `yaml:"path"`
						} `yaml:"serviceAccountToken"`
					} `yaml:"sources"`
				} `yaml:"projected"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

type serviceMonitorSpec struct {
	JobLabel string `yaml:"jobLabel"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Endpoints []struct {
		Port string `yaml:"port"`
		Path string `yaml:"path"`
	} `yaml:"endpoints"`
}

func loadKubernetes(t *testing.T) []k8sObject {
	t.Helper()
	entries, err := os.ReadDir(kubernetesDir)
	if err != nil {
		t.Fatalf("listing %s: %v", kubernetesDir, err)
	}
	var objs []k8sObject
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".yaml" {
			continue
		}
		name := kubernetesDir + "/" + e.Name()
		docs, err := decodeAll(name, readFile(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for i := range docs {
			var o k8sObject
			if err := docs[i].Decode(&o); err != nil {
				t.Fatalf("%s: decoding object %d: %v", name, i+1, err)
			}
			if o.APIVersion == "" || o.Kind == "" {
				t.Errorf("%s: object %d has no apiVersion/kind", name, i+1)
			}
			o.file = e.Name()
			objs = append(objs, o)
		}
	}
	return objs
}

// only returns the single object of a kind, failing the test otherwise.
func only(t *testing.T, objs []k8sObject, kind string) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s in %s, found %d", kind, kubernetesDir, len(found))
	}
	return found[0]
}

func decodeSpec(t *testing.T, o k8sObject, into any) {
	t.Helper()
	if err := o.Spec.Decode(into); err != nil {
		t.Fatalf("%s: decoding %s %s spec: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestKubernetesSidecar(t *testing.T) {
	objs := loadKubernetes(t)

	dep := only(t, objs, "Deployment")
	var ds deploymentSpec
	decodeSpec(t, dep, &ds)
	pod := ds.Template.Spec
	// Several replicas, rolled one by one: the Lease picks the one that acts.
	if ds.Replicas == nil || *ds.Replicas != 3 {
		t.Errorf("Deployment: replicas %v, want 3 (a sidecar in every replica, one leader)", ds.Replicas)
	}
	if ds.Strategy.Type != "RollingUpdate" {
		t.Errorf("Deployment: strategy %q, want RollingUpdate", ds.Strategy.Type)
	} else if ru := ds.Strategy.RollingUpdate; ru == nil || fmt.Sprint(ru.MaxUnavailable) != "0" {
		t.Errorf("Deployment: rollingUpdate %+v, want maxUnavailable 0 (replace one pod at a time, never fewer ready)", ru)
	}
	if !subset(ds.Selector.MatchLabels, ds.Template.Metadata.Labels) {
		t.Errorf("Deployment: selector %v does not match the pod labels %v", ds.Selector.MatchLabels, ds.Template.Metadata.Labels)
	}
	// A graceful stop of the leader waits for its fenced Atlas requests
	// (at most the fence window, 13.5 s of the default 15 s lease), then
	// parks runs and releases the Lease: give it the lease and more.
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("Deployment: terminationGracePeriodSeconds %v leaves backupd no time to hand the Lease over", g)
	}
	if len(pod.Containers) < 2 {
		t.Errorf("Deployment: want the app container and the backupd sidecar, got %d containers", len(pod.Containers))
	}
	var b *container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "backupd" {
			b = &pod.Containers[i]
		}
	}
	if b == nil {
		t.Fatal("Deployment: no container named backupd")
	}

	if want := []string{"run", "-config", configPath}; !slices.Equal(b.Args, want) {
		t.Errorf("backupd container: args %q, want %q", b.Args, want)
	}
	portName := ""
	for _, p := range b.Ports {
		if fmt.Sprint(p.ContainerPort) == listenPort {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("backupd container: no containerPort %s", listenPort)
	}
	for name, pr := range map[string]struct {
		p    *probe
		path string
	}{"livenessProbe": {b.LivenessProbe, "/healthz"}, "readinessProbe": {b.ReadinessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("backupd container: no %s httpGet", name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("backupd container: %s path %q, want %q", name, pr.p.HTTPGet.Path, pr.path)
		}
		if port := fmt.Sprint(pr.p.HTTPGet.Port); port != listenPort && port != portName {
			t.Errorf("backupd container: %s port %q is not the backupd port", name, port)
		}
	}

	sc := b.SecurityContext
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot)
	if !nonRoot {
		t.Error("backupd container: runAsNonRoot is not true")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("backupd container: readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("backupd container: allowPrivilegeEscalation is not false")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("backupd container: capabilities.drop %q, want [ALL]", sc.Capabilities.Drop)
	}
	if b.Resources.Requests["cpu"] == "" || b.Resources.Requests["memory"] == "" || b.Resources.Limits["memory"] == "" {
		t.Errorf("backupd container: want cpu and memory requests and a memory limit, got %+v", b.Resources)
	}

	// Volumes: the config from a ConfigMap in these manifests, the
	// credentials from a Secret at $CREDENTIALS_DIRECTORY, the state dir
	// writable.
	env := map[string]string{}
	for _, e := range b.Env {
		env[e.Name] = e.Value
	}
	mounts := map[string]string{} // mountPath -> volume
	for _, m := range b.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumeOf := func(mountPath string) (name string, ok bool) {
		name, ok = mounts[mountPath]
		return name, ok
	}
	findVolume := func(name string) int {
		for i, v := range pod.Volumes {
			if v.Name == name {
				return i
			}
		}
		return -1
	}

	cfgVol, ok := volumeOf(configPath)
	if !ok {
		t.Fatalf("backupd container: nothing mounted at %s", configPath)
	}
	i := findVolume(cfgVol)
	if i < 0 || pod.Volumes[i].ConfigMap == nil {
		t.Fatalf("backupd container: %s is not mounted from a ConfigMap volume", configPath)
	}
	var cm *k8sObject
	for j := range objs {
		if objs[j].Kind == "ConfigMap" && objs[j].Metadata.Name == pod.Volumes[i].ConfigMap.Name {
			cm = &objs[j]
		}
	}
	if cm == nil {
		t.Fatalf("ConfigMap %q used by the Deployment is not in %s", pod.Volumes[i].ConfigMap.Name, kubernetesDir)
	}
	cfgText, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml key", cm.Metadata.Name)
	}
	cfg := decodeConfig(t, cm.file+": ConfigMap "+cm.Metadata.Name, []byte(cfgText))
	if host, port, err := net.SplitHostPort(cfg.Server.Listen); err != nil || port != listenPort || (host != "0.0.0.0" && host != "" && host != "::") {
		t.Errorf("sidecar config: server.listen %q, want 0.0.0.0:%s so probes and Prometheus reach it", cfg.Server.Listen, listenPort)
	}
	if dir := path.Dir(cfg.State.Path); cfg.State.Path == "" || mounts[dir] == "" {
		t.Errorf("sidecar config: state.path %q is not on a mounted volume (mounts %v)", cfg.State.Path, keys(mounts))
	} else if v := findVolume(mounts[dir]); v < 0 || (pod.Volumes[v].EmptyDir == nil && pod.Volumes[v].PersistentVolumeClaim == nil) {
		t.Errorf("sidecar config: the state directory %s is not an emptyDir or PVC volume", dir)
	}

	checkHA(t, objs, pod.ServiceAccountName, pod.AutomountServiceAccountToken, b, cfg)
	haVolume := ""
	for _, v := range pod.Volumes {
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil && src.ServiceAccountToken.Path == "token" {
					haVolume = v.Name
				}
			}
		}
	}
	if haVolume == "" || mounts[serviceAccountDir] != haVolume {
		t.Errorf("backupd container: %s is not a projected serviceAccountToken volume (mounts %v): in-cluster credentials cannot load", serviceAccountDir, mounts)
	}
	for _, c := range pod.Containers {
		for _, m := range c.VolumeMounts {
			if c.Name != "backupd" && m.Name == haVolume {
				t.Errorf("container %s mounts the backupd service account token %s: only the sidecar may talk to the API", c.Name, m.Name)
			}
		}
	}

	credDir := env["CREDENTIALS_DIRECTORY"]
	if credDir == "" {
		t.Fatal("backupd container: CREDENTIALS_DIRECTORY is not set, relative secret paths cannot resolve")
	}
	v := findVolume(mounts[credDir])
	if mounts[credDir] == "" || v < 0 || pod.Volumes[v].Secret == nil {
		t.Errorf("backupd container: CREDENTIALS_DIRECTORY %s is not a mounted Secret", credDir)
	}

	// Service and ServiceMonitor wire Prometheus to the port, with job="backupd".
	svc := only(t, objs, "Service")
	var ss serviceSpec
	decodeSpec(t, svc, &ss)
	if !subset(ss.Selector, ds.Template.Metadata.Labels) {
		t.Errorf("Service %s: selector %v does not select the pod labels %v", svc.Metadata.Name, ss.Selector, ds.Template.Metadata.Labels)
	}
	svcPort := ""
	for _, p := range ss.Ports {
		if tp := fmt.Sprint(p.TargetPort); tp == portName || tp == listenPort {
			svcPort = p.Name
		}
	}
	if svcPort == "" {
		t.Errorf("Service %s: no port targets the backupd container port", svc.Metadata.Name)
	}
	sm := only(t, objs, "ServiceMonitor")
	if sm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor: apiVersion %q, want monitoring.coreos.com/v1", sm.APIVersion)
	}
	var sms serviceMonitorSpec
	decodeSpec(t, sm, &sms)
	if !subset(sms.Selector.MatchLabels, svc.Metadata.Labels) {
		t.Errorf("ServiceMonitor: selector %v does not select Service labels %v", sms.Selector.MatchLabels, svc.Metadata.Labels)
	}
	if job := svc.Metadata.Labels[sms.JobLabel]; job != "backupd" {
		t.Errorf("ServiceMonitor: jobLabel %q gives job=%q, the alert rules expect job=\"backupd\"", sms.JobLabel, job)
	}
	if len(sms.Endpoints) != 1 || sms.Endpoints[0].Port != svcPort || sms.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor: endpoints %+v, want port %q path /metrics", sms.Endpoints, svcPort)
	}

	// The kustomization lists every manifest.
	k := only(t, objs, "Kustomization")
	var manifests []string
	for _, o := range objs {
		if o.Kind != "Kustomization" && !slices.Contains(manifests, o.file) {
			manifests = append(manifests, o.file)
		}
	}
	sort.Strings(manifests)
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if !slices.Equal(got, manifests) {
		t.Errorf("kustomization.yaml resources %v, want %v", got, manifests)
	}
}

// ---- Prometheus rules ------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

var metricRef = regexp.MustCompile(`\bbackupd_[a-z0-9_]+`)

// checkMetricNames reports every backupd_ name in expr that is not in the
// DESIGN.md metrics table (histogram _bucket/_count/_sum included) nor one
// of the monitor's families (DESIGN.md "Beyond orchestration" leaves their
// names to the monitor; monitor.Metrics lists them). It returns the table's
// names it found.
func checkMetricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	var names []string
	for _, n := range metricRef.FindAllString(expr, -1) {
		if slices.Contains(monitor.Metrics(), n) || slices.Contains(notify.Metrics(), n) || slices.Contains(drillmetrics.Names(), n) || slices.Contains(metrics.HANames(), n) {
			continue
		}
		base := n
		if _, ok := contractMetrics[n]; !ok {
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(n, suf); ok && contractMetrics[b] {
					base = b
				}
			}
		}
		if _, ok := contractMetrics[base]; !ok {
			t.Errorf("%s: %s is not a metric of the DESIGN.md table", where, n)
			continue
		}
		names = append(names, base)
	}
	return names
}

func TestPrometheusRules(t *testing.T) {
	var rf ruleFile
	if err := yaml.Unmarshal(readFile(t, rulesPath), &rf); err != nil {
		t.Fatalf("parsing %s: %v", rulesPath, err)
	}
	alerts := map[string]bool{}
	records := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := rulesPath + ": " + r.Alert + r.Record
			checkMetricNames(t, where, r.Expr)
			if r.Record != "" {
				records[r.Record] = true
				continue
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q, want critical, warning or info", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs summary and description annotations", where)
			}
		}
	}
	for _, want := range []string{"BackupdNoRecentSuccess", "BackupdLastRunFailed", "BackupdExportLagging", "BackupdDrillOverdue", "BackupdDrillFailed",
		"BackupdAtlasRateLimited", "BackupdAtlasUnreachable", "BackupdConfigReloadFailed", "BackupdDown",
		// The monitor's (issue 12 item 4).
		"BackupdNativeSnapshotOverdue", "BackupdNativeSnapshotFailed", "BackupdNativeBackupDisabled",
		"BackupdNativeScheduleBelowCompliance", "BackupdNativeFlexSnapshotStale", "BackupdMonitorReadStale"} {
		if !alerts[want] {
			t.Errorf("%s: no alert %s", rulesPath, want)
		}
	}

	// Every alert has a promtool test where it fires and one where it does
	// not; every recording rule has an expression test.
	var rt ruleTests
	if err := yaml.Unmarshal(readFile(t, rulesTestPath), &rt); err != nil {
		t.Fatalf("parsing %s: %v", rulesTestPath, err)
	}
	if !slices.Equal(rt.RuleFiles, []string{path.Base(rulesPath)}) {
		t.Errorf("%s: rule_files %v, want [%s]", rulesTestPath, rt.RuleFiles, path.Base(rulesPath))
	}
	firing, quiet, recordTested := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
		for _, e := range tc.PromQLExprTest {
			for r := range records {
				if strings.Contains(e.Expr, r) {
					recordTested[r] = true
				}
			}
		}
	}
	for a := range alerts {
		if !firing[a] || !quiet[a] {
			t.Errorf("%s: alert %s needs a firing and a non-firing test (firing %v, non-firing %v)", rulesTestPath, a, firing[a], quiet[a])
		}
	}
	for r := range records {
		if !recordTested[r] {
			t.Errorf("%s: recording rule %s has no promql_expr_test", rulesTestPath, r)
		}
	}
}

// ---- Grafana dashboard -----------------------------------------------------

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Instant    bool   `json:"instant"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			Sort []struct {
				Field string `json:"field"`
				Desc  bool   `json:"desc"`
			} `json:"sort"`
		} `json:"options"`
	} `json:"transformations"`
}

// dashVar is a dashboard variable in a query.
var dashVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// promtoolValues replaces the dashboard variables in a query as
// deploy/check.sh does before promtool parses it, and as the dashboard's
// promtool tests (dashTestPath) write the queries.
func promtoolValues(expr string) string {
	return dashVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch name := strings.TrimPrefix(strings.TrimPrefix(v, "$"), "{"); name {
		case "__rate_interval":
			return "5m"
		case "__interval":
			return "1m"
		case "__range":
			return "1d"
		case "job":
			return "backupd"
		default:
			return ".*"
		}
	})
}

func TestGrafanaDashboard(t *testing.T) {
	dec := json.NewDecoder(bytes.NewReader(readFile(t, dashboardPath)))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("parsing %s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: needs uid and title", dashboardPath)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Errorf("%s: no Prometheus datasource variable named datasource", dashboardPath)
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		where := fmt.Sprintf("%s: panel %d %q", dashboardPath, p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: duplicate panel id", where)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: bad gridPos", where)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource is not the ${datasource} variable", where)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: a query's datasource is not ${datasource}", where)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: empty query", where)
			}
			for _, n := range checkMetricNames(t, where, tg.Expr) {
				used[n] = true
			}
		}
	}
	for m := range contractMetrics {
		if !used[m] {
			t.Errorf("%s: no panel shows %s", dashboardPath, m)
		}
	}

	// Every variable a query uses is the dashboard's own (or Grafana's),
	// and deploy/check.sh replaces it before promtool parses the query.
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	script := string(readFile(t, "check.sh"))
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range dashVar.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("%s: panel %q uses $%s, which is no variable of the dashboard", dashboardPath, p.Title, m[1])
				}
				if !strings.Contains(script, m[1]) {
					t.Errorf("deploy/check.sh does not replace $%s (panel %q) before promtool", m[1], p.Title)
				}
			}
		}
	}
}

// The monitor's panels (issue 12): fleet freshness at a glance, worst
// first, and per-cluster history with a cluster variable. Their queries
// are evaluated by promtool on a fleet with a stale and a never-read
// cluster in dashTestPath; this checks those tests are of the dashboard's
// current queries, so the two cannot drift apart.
func TestGrafanaMonitorPanels(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardPath), &d); err != nil {
		t.Fatalf("parsing %s: %v", dashboardPath, err)
	}
	var dt ruleTests
	if err := yaml.Unmarshal(readFile(t, dashTestPath), &dt); err != nil {
		t.Fatalf("parsing %s: %v", dashTestPath, err)
	}
	tested := map[string]bool{}
	for _, tc := range dt.Tests {
		for _, e := range tc.PromQLExprTest {
			tested[e.Expr] = true
		}
	}
	queries := map[string]bool{}
	byTitle := map[string]panel{}
	for _, p := range d.Panels {
		byTitle[p.Title] = p
		for _, tg := range p.Targets {
			queries[promtoolValues(tg.Expr)] = true
		}
	}
	for e := range tested {
		if !queries[e] {
			t.Errorf("%s tests %q, which is no query of %s (any more)", dashTestPath, e, dashboardPath)
		}
	}
	usesMonitor := func(expr string) bool {
		for _, n := range metricRef.FindAllString(expr, -1) {
			if slices.Contains(monitor.Metrics(), n) {
				return true
			}
		}
		return false
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if usesMonitor(tg.Expr) && !tested[promtoolValues(tg.Expr)] {
				t.Errorf("panel %q query %s: a monitor query without a promtool test in %s", p.Title, tg.RefID, dashTestPath)
			}
		}
	}

	fleet, ok := byTitle["Fleet freshness, worst first"]
	if !ok {
		t.Fatalf("%s: no panel \"Fleet freshness, worst first\"", dashboardPath)
	}
	if fleet.Type != "table" || len(fleet.Targets) == 0 || !fleet.Targets[0].Instant ||
		!strings.Contains(fleet.Targets[0].Expr, "time() - backupd_native_snapshot_due_timestamp_seconds") {
		t.Errorf("fleet freshness: want an instant table whose first query is the time past due, got %+v", fleet)
	}
	sortedDesc := false
	for _, tr := range fleet.Transformations {
		if tr.ID == "sortBy" && len(tr.Options.Sort) == 1 && tr.Options.Sort[0].Field == "past due" && tr.Options.Sort[0].Desc {
			sortedDesc = true
		}
	}
	if !sortedDesc {
		t.Error("fleet freshness: not sorted by \"past due\", descending (worst first)")
	}

	var history *panel
	for _, p := range d.Panels {
		if strings.HasPrefix(p.Title, "Age of the newest native snapshot") {
			history = &p
		}
	}
	if history == nil || history.Type != "timeseries" || len(history.Targets) == 0 ||
		!strings.Contains(history.Targets[0].Expr, `cluster=~"$cluster"`) ||
		!strings.Contains(history.Targets[0].Expr, "backupd_native_snapshot_newest_timestamp_seconds") {
		t.Errorf("%s: want a timeseries of the newest native snapshot's age filtered by $cluster, got %+v", dashboardPath, history)
	}
	hasCluster := false
	for _, v := range d.Templating.List {
		if v.Name == "cluster" && strings.Contains(v.Definition, "backupd_monitor_watch_start_timestamp_seconds") {
			hasCluster = true
		}
	}
	if !hasCluster {
		t.Errorf("%s: no cluster variable listing the monitor's watched clusters", dashboardPath)
	}
}

// serviceAccountDir is where rest.InClusterConfig reads the token and CA.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// checkHA holds the manifests to what leader election needs and to no more:
// the config names a Lease in the namespace the objects are applied to; the
// pod's service account is bound to a Role that allows only get and update
// on that Lease, and create (RBAC cannot limit create to a name); the
// identity is the pod name. (The image's ha tag is TestDockerfile's.)
func checkHA(t *testing.T, objs []k8sObject, saName string, automount *bool, b *container, cfg backupdConfig) {
	t.Helper()
	if cfg.HA == nil {
		t.Fatal("sidecar config: no ha: section, but the Deployment runs several replicas")
	}
	lease := cfg.HA.Lease
	if cfg.HA.Kubeconfig != "" || cfg.HA.Identity != "" {
		t.Errorf("sidecar config: ha.kubeconfig %q / ha.identity %q: in a cluster use in-cluster credentials and the pod name", cfg.HA.Kubeconfig, cfg.HA.Identity)
	}
	k := only(t, objs, "Kustomization")
	if k.Namespace != lease.Namespace {
		t.Errorf("kustomization.yaml: namespace %q, but ha.lease.namespace is %q: the Role would grant a Lease the replicas never use", k.Namespace, lease.Namespace)
	}
	for _, o := range objs {
		if o.Metadata.Namespace != "" && o.Metadata.Namespace != k.Namespace {
			t.Errorf("%s: %s %s in namespace %q, the kustomization's is %q", o.file, o.Kind, o.Metadata.Name, o.Metadata.Namespace, k.Namespace)
		}
	}

	sa := only(t, objs, "ServiceAccount")
	if saName != sa.Metadata.Name {
		t.Errorf("Deployment: serviceAccountName %q, want the ServiceAccount %q", saName, sa.Metadata.Name)
	}
	if automount == nil || *automount {
		t.Error("Deployment: automountServiceAccountToken must be false: only the sidecar mounts the token")
	}
	role := only(t, objs, "Role")
	var named, create bool
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) || !slices.Equal(r.Resources, []string{"leases"}) {
			t.Errorf("Role %s: rule %+v: want only coordination.k8s.io leases", role.Metadata.Name, r)
			continue
		}
		verbs := slices.Sorted(slices.Values(r.Verbs))
		switch {
		case slices.Equal(verbs, []string{"get", "update"}) && slices.Equal(r.ResourceNames, []string{lease.Name}):
			named = true
		case slices.Equal(verbs, []string{"create"}) && len(r.ResourceNames) == 0:
			create = true
		default:
			t.Errorf("Role %s: rule verbs %v on %v: want get and update on exactly %q, and create", role.Metadata.Name, r.Verbs, r.ResourceNames, lease.Name)
		}
	}
	if !named || !create {
		t.Errorf("Role %s: want get/update on Lease %q (resourceNames) and create on leases, got %+v", role.Metadata.Name, lease.Name, role.Rules)
	}
	rb := only(t, objs, "RoleBinding")
	if rb.RoleRef != (rbacRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Metadata.Name}) {
		t.Errorf("RoleBinding %s: roleRef %+v, want Role %s", rb.Metadata.Name, rb.RoleRef, role.Metadata.Name)
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa.Metadata.Name ||
		(rb.Subjects[0].Namespace != "" && rb.Subjects[0].Namespace != k.Namespace) {
		t.Errorf("RoleBinding %s: subjects %+v, want the ServiceAccount %s only", rb.Metadata.Name, rb.Subjects, sa.Metadata.Name)
	}

	podName := false
	for _, e := range b.Env {
		if e.Name == "POD_NAME" {
			podName = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}
	}
	if !podName {
		t.Error("backupd container: POD_NAME must come from the downward API (fieldRef metadata.name): it is the replica's identity in the Lease")
	}
}
