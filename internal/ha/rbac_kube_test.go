package ha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/ha"
	"github.com/backupd/backupd/internal/ha/hatest"
	"gopkg.in/yaml.v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
)

// The shipped Kubernetes example, read as it is.
const kubeExample = "../../deploy/kubernetes"

// TestKubeShippedRoleSuffices runs the election as the sidecar's service
// account under RBAC (not AlwaysAllow), with the Role and RoleBinding of
// deploy/kubernetes/rbac.yaml applied as shipped, on the Lease the example's
// ha: section names in the kustomization's namespace. The Role must allow
// everything client-go's Lease lock does (create the Lease the first time,
// read and renew it, release it on a graceful stop, take it over) and no
// more: another Lease and a listing stay forbidden.
func TestKubeShippedRoleSuffices(t *testing.T) {
	ns, lease, sa := shippedElection(t)
	user := "system:serviceaccount:" + ns + ":" + sa
	c := hatest.StartRBAC(t, user)
	admin, as := c.RestConfig(), c.UserConfig(user)
	leases := func(rc *rest.Config) coordinationv1.LeaseInterface {
		cl, err := coordinationv1.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		return cl.Leases(ns)
	}
	get := func(rc *rest.Config, name string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := leases(rc).Get(ctx, name, metav1.GetOptions{})
		return err
	}

	// RBAC is in force: before the Role, the account may not even read.
	if err := get(as, lease); !apierrors.IsForbidden(err) {
		t.Fatalf("reading the Lease before the Role is applied: %v, want forbidden (is RBAC on?)", err)
	}
	apply(t, admin, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}})
	for _, doc := range yamlDocs(t, filepath.Join(kubeExample, "rbac.yaml")) {
		switch doc["kind"] {
		case "Role":
			apply(t, admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/roles", doc)
		case "RoleBinding":
			apply(t, admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/rolebindings", doc)
		}
	}
	// The authorizer sees new bindings through its informers, shortly.
	waitFor(t, 30*time.Second, "the Role to take effect", func() bool { return apierrors.IsNotFound(get(as, lease)) })

	cfg := testHA
	cfg.Namespace, cfg.LeaseName = ns, lease
	rs := []*replica{startReplicaOn(t, cfg, as, "pod-a", ha.Hooks{}), startReplicaOn(t, cfg, as, "pod-b", ha.Hooks{})}
	holder := func() (string, time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l, err := leases(admin).Get(ctx, lease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil {
			return "", time.Time{}
		}
		return *l.Spec.HolderIdentity, l.Spec.RenewTime.Time
	}
	var first *replica
	waitFor(t, takeoverLimit, "a leader (the Lease created)", func() bool {
		ls := leaders(rs)
		if len(ls) != 1 {
			return false
		}
		first = ls[0]
		h, _ := holder()
		return h == first.id
	})
	_, renewed := holder()
	waitFor(t, 3*maxRetryWait, "a renewal (the Lease updated)", func() bool {
		h, at := holder()
		return h == first.id && at.After(renewed)
	})
	if _, done, err := first.e.Fence(context.Background()); err != nil {
		t.Fatalf("the leader's fence: %v", err)
	} else {
		done()
	}

	stopped := time.Now()
	first.stop() // releases the Lease: an update
	next := rs[0]
	if next == first {
		next = rs[1]
	}
	waitFor(t, maxRetryWait+time.Second, "the other to take the released Lease", func() bool {
		h, _ := holder()
		return next.e.Leading() && h == next.id
	})
	t.Logf("as %s: created, renewed, released and took over Lease %s/%s; takeover %v after the graceful stop",
		user, ns, lease, time.Since(stopped).Round(time.Millisecond))

	if err := get(as, lease+"-other"); !apierrors.IsForbidden(err) {
		t.Errorf("reading another Lease: %v, want forbidden (the Role names one Lease)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := leases(as).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Leases: %v, want forbidden", err)
	}
}

// shippedElection reads the example's namespace (kustomization.yaml), the
// Lease its config's ha: section names (configmap.yaml) and the sidecar's
// service account (deployment.yaml).
func shippedElection(t *testing.T) (namespace, lease, serviceAccount string) {
	t.Helper()
	k := yamlDocs(t, filepath.Join(kubeExample, "kustomization.yaml"))[0]
	namespace, _ = k["namespace"].(string)
	cm := yamlDocs(t, filepath.Join(kubeExample, "configmap.yaml"))[0]
	text, _ := cm["data"].(map[string]any)["config.yaml"].(string)
	var cfg struct {
		HA struct {
			Lease struct{ Namespace, Name string }
		}
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("configmap.yaml's config.yaml: %v", err)
	}
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					ServiceAccountName string `yaml:"serviceAccountName"`
				}
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(kubeExample, "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &dep); err != nil {
		t.Fatalf("deployment.yaml: %v", err)
	}
	lease, serviceAccount = cfg.HA.Lease.Name, dep.Spec.Template.Spec.ServiceAccountName
	if namespace == "" || lease == "" || serviceAccount == "" || cfg.HA.Lease.Namespace != namespace {
		t.Fatalf("the example names namespace %q, Lease %s/%s, service account %q", namespace, cfg.HA.Lease.Namespace, lease, serviceAccount)
	}
	return namespace, lease, serviceAccount
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// apply creates obj at path on the API server, as the admin.
func apply(t *testing.T, rc *rest.Config, path string, obj map[string]any) {
	t.Helper()
	body, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(rc.Host, "/")+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("creating %v at %s: %v", obj["kind"], path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("creating %v at %s: %s %s", obj["kind"], path, resp.Status, msg)
	}
}
