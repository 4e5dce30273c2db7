package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/buildinfo"
)

// TestVerbsRejectStrayArguments: an argument no verb takes is a usage
// error (exit 2) naming it, not silently ignored: `backupd demo 10m`
// does not run a 45 s demo.
func TestVerbsRejectStrayArguments(t *testing.T) {
	for name, verb := range map[string]func(args []string, stdout, stderr *bytes.Buffer) int{
		"demo":      func(a []string, o, e *bytes.Buffer) int { return Demo(context.Background(), a, o, e, OSEnv()) },
		"atlas-sim": func(a []string, o, e *bytes.Buffer) int { return AtlasSim(context.Background(), a, o, e, OSEnv()) },
		"version":   func(a []string, o, e *bytes.Buffer) int { return Version(a, o, e) },
	} {
		var out, errOut bytes.Buffer
		if code := verb([]string{"10m"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), `unexpected argument "10m"`) {
			t.Errorf("%s 10m: exit %d, stderr %q; want 2 naming the argument", name, code, errOut.String())
		}
	}
}

// TestVersionJSON: version -o json carries the same version as the line,
// the toolchain and the VCS stamp.
func TestVersionJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Version([]string{"-o", "json"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var v versionInfo
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version != buildinfo.String() || !strings.HasPrefix(v.Go, "go") || v.VCS != buildinfo.ReadVCS() {
		t.Fatalf("version -o json = %s (%v)", out.String(), err)
	}
	out.Reset()
	if code := Version(nil, &out, &errOut); code != exitOK || !strings.HasPrefix(out.String(), "backupd "+buildinfo.String()+" (go") {
		t.Fatalf("version = %q", out.String())
	}
}
