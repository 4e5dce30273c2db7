package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/policy/policytest"
)

// TestVerbsRefuseSpecialConfigFiles: validate and run given a FIFO,
// /dev/zero, a directory or an oversized file as -config exit 2 at once
// with the located error, instead of hanging or running out of memory.
func TestVerbsRefuseSpecialConfigFiles(t *testing.T) {
	vars := map[string]string{policy.EnvClientID: "id", policy.EnvClientSecret: "s"}
	for _, sf := range policytest.SpecialFiles(t, policy.MaxConfigSize, []byte(validateGood)) {
		t.Run(sf.Name, func(t *testing.T) {
			want := sf.Path + ":1: cannot read the config file: "
			code, out, errOut := validateRun(t, validateTestEnv(vars), "-config", sf.Path)
			if code != exitUsage || out != "" || !strings.Contains(errOut, want) || !strings.Contains(errOut, sf.Want) {
				t.Fatalf("validate: exit %d, stdout %q, stderr %q; want 2 and %q %q", code, out, errOut, want, sf.Want)
			}
			env := OSEnv()
			env.Policy = validateTestEnv(vars)
			env.Getenv = func(k string) string { return vars[k] }
			var stdout, stderr bytes.Buffer
			code = Run(context.Background(), []string{"-config", sf.Path}, &stdout, &stderr, env)
			if code != exitUsage || !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), sf.Want) {
				t.Fatalf("run: exit %d, stderr %q; want 2 and %q %q", code, stderr.String(), want, sf.Want)
			}
		})
	}
}

// TestTriggerRefusesSpecialTokenFiles: -token-file is read like a secret
// named in the config: regular files of at most policy.MaxSecretSize.
func TestTriggerRefusesSpecialTokenFiles(t *testing.T) {
	srv, bodies := fakeDaemon(t, "tok")
	for _, sf := range policytest.SpecialFiles(t, policy.MaxSecretSize, []byte("tok")) {
		t.Run(sf.Name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Trigger(context.Background(), []string{"-addr", srv.URL, "-token-file", sf.Path, "-policy", "nightly"}, &out, &errOut, OSEnv())
			if code != exitUsage || !strings.Contains(errOut.String(), "reading the admin token") || !strings.Contains(errOut.String(), sf.Want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), sf.Want)
			}
		})
	}
	if len(*bodies) != 0 {
		t.Fatalf("a trigger was sent: %v", *bodies)
	}
}
