package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestExampleValidatesOnAFreshMachine: `backupd validate -config
// config.example.yaml`, as its header says to run it, passes on a machine
// with none of the secrets in place (no $CREDENTIALS_DIRECTORY, no Atlas
// variables, an empty HOME): offline validation never uses them, so a
// missing secret file is a warning naming it. run and validate -online do
// use them, and refuse the same file with the located error.
func TestExampleValidatesOnAFreshMachine(t *testing.T) {
	const example = "../../config.example.yaml"
	vars := map[string]string{"HOME": t.TempDir()}
	env := validateTestEnv(vars)
	code, out, errOut := validateRun(t, env, "-config", example)
	if code != exitOK || !strings.Contains(out, example+": valid (4 policies") {
		t.Fatalf("validate: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, key := range []string{"atlas.auth.serviceAccount.clientSecretFile", "server.adminTokenFile"} {
		if !strings.Contains(errOut, "warning: "+example+":") || !strings.Contains(errOut, key+": secret file ") || !strings.Contains(errOut, "does not exist") {
			t.Errorf("validate: no warning for the missing %s:\n%s", key, errOut)
		}
	}

	code, _, errOut = validateRun(t, env, "-config", example, "-online")
	if code != exitUsage || !strings.Contains(errOut, "atlas.auth.serviceAccount.clientSecretFile: cannot read secret file") {
		t.Fatalf("validate -online: exit %d, want 2 and the missing secret located:\n%s", code, errOut)
	}
	cliEnv := OSEnv()
	cliEnv.Policy = env
	cliEnv.Getenv = func(k string) string { return vars[k] }
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"-config", example}, &stdout, &stderr, cliEnv); code != exitUsage || !strings.Contains(stderr.String(), "server.adminTokenFile: cannot read secret file") {
		t.Fatalf("run: exit %d, want 2 and the missing secret located:\n%s", code, stderr.String())
	}
}
