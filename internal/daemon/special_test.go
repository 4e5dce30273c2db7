package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/backupd/backupd/internal/policy"
	"github.com/backupd/backupd/internal/policy/policytest"
)

// TestReloadRefusesSpecialFiles: a reload (what SIGHUP runs) whose config
// or secret file is a FIFO, /dev/zero, a directory or oversized is rejected
// at once with a located error, the running configuration stays, and a
// later good reload is still processed.
func TestReloadRefusesSpecialFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startDaemon(t, flexPolicy)
		defer e.stop()
		ctx := context.Background()
		cfgPath := filepath.Join(e.dir, goodConfig)
		good, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		secretPath := filepath.Join(e.dir, "client-secret")
		failures := 0
		// replace points name at target and returns how to restore it.
		replace := func(name, target string) func() {
			saved, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, name); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := os.Remove(name); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(name, saved, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		reject := func(what, wantPrefix, want string) {
			t.Helper()
			err := e.d.Reload(ctx)
			var perrs *policy.Errors
			if !asErrors(err, &perrs) || len(perrs.List) != 1 || !strings.HasPrefix(perrs.List[0].String(), wantPrefix) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Reload(%s) = %v, want one error starting %q containing %q", what, err, wantPrefix, want)
			}
			failures++
			if !e.metric(t, fmt.Sprintf(`backupd_config_reloads_total{result="failure"} %d`, failures)) {
				t.Fatalf("rejected reload %s not counted", what)
			}
			if n := len(e.d.Config().Policies); n != 2 {
				t.Fatalf("after Reload(%s) the config has %d policies, want the old 2", what, n)
			}
		}
		for _, sf := range policytest.SpecialFiles(t, policy.MaxConfigSize, good) {
			restore := replace(cfgPath, sf.Path)
			reject("config "+sf.Name, cfgPath+":1: cannot read the config file: ", sf.Want)
			restore()
		}
		for _, sf := range policytest.SpecialFiles(t, policy.MaxSecretSize, []byte(secret)) {
			restore := replace(secretPath, sf.Path)
			reject("secret "+sf.Name, cfgPath+":7:25: atlas.auth.serviceAccount.clientSecretFile: cannot read secret file", sf.Want)
			restore()
		}

		// A good config without the flex policy is processed after them.
		writeConfig(t, e.dir, "")
		if err := e.d.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(e.d.Config().Policies); n != 1 || !e.metric(t, `backupd_config_reloads_total{result="success"} 1`) {
			t.Fatalf("good reload not applied: %d policies", n)
		}
	})
}
