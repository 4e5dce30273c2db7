package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/policy"
)

// A binary built without the ha tag (nil factory) refuses an ha: section at
// validate, located at the section, naming the build that accepts it; a
// binary with the factory accepts the same file.
func TestValidateHAWithoutSupport(t *testing.T) {
	path := validateWriteConfig(t, "ha:\n  lease: {namespace: apps, name: backupd-leader}\n"+validateGood)
	env := validateTestEnv(map[string]string{policy.EnvClientID: "id", policy.EnvClientSecret: "s"})
	code, _, stderr := validateRun(t, env, "-config", path)
	if code != exitUsage || !strings.Contains(stderr, path+":1:1: ha: built without HA support: build with -tags ha") {
		t.Fatalf("lean validate = %d\n%s", code, stderr)
	}
	var out, errb bytes.Buffer
	built := func(policy.HA, leader.Options) (leader.Elector, error) { return nil, nil }
	code = Validate(context.Background(), []string{"-config", path}, &out, &errb, env, func() time.Time { return validateNow }, built)
	if code != exitOK {
		t.Fatalf("ha build validate = %d\n%s", code, errb.String())
	}
}
