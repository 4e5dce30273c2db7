package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/policy/policytest"
)

// osTestEnv reads the real file system, with vars as the environment.
func osTestEnv(vars map[string]string) Env {
	env := OSEnv()
	env.Getenv = func(k string) string { return vars[k] }
	return env
}

// loadIssues loads path and returns its rendered issues (nil when valid).
func loadIssues(t *testing.T, path string, env Env) []string {
	t.Helper()
	_, err := Load(path, env)
	if err == nil {
		return nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load returned %T, want *Errors: %v", err, err)
	}
	var out []string
	for _, is := range errs.List {
		out = append(out, is.String())
	}
	return out
}

// TestLoadRefusesSpecialConfigFiles: a FIFO must not hang the load,
// /dev/zero must not exhaust memory, and an oversized file is refused
// before it is parsed; each is one error located at the file.
func TestLoadRefusesSpecialConfigFiles(t *testing.T) {
	env := osTestEnv(map[string]string{EnvClientID: "id", EnvClientSecret: "s"})
	for _, sf := range policytest.SpecialFiles(t, MaxConfigSize, []byte(base)) {
		t.Run(sf.Name, func(t *testing.T) {
			issues := loadIssues(t, sf.Path, env)
			if len(issues) != 1 || !strings.HasPrefix(issues[0], sf.Path+":1: cannot read the config file: ") || !strings.Contains(issues[0], sf.Want) {
				t.Fatalf("issues = %q, want one %q at %s:1", issues, sf.Want, sf.Path)
			}
		})
	}
}

// TestLoadRefusesSpecialSecretFiles: a *File key naming a special or
// oversized file is an error located at that key's value, also where a
// missing one is only a warning (MissingSecretOK, offline validate).
func TestLoadRefusesSpecialSecretFiles(t *testing.T) {
	for _, sf := range policytest.SpecialFiles(t, MaxSecretSize, []byte("s")) {
		for _, key := range []string{"clientSecretFile", "adminTokenFile"} {
			t.Run(sf.Name+"/"+key, func(t *testing.T) {
				dir := t.TempDir()
				good := filepath.Join(dir, "good-secret")
				if err := os.WriteFile(good, []byte("secret\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				secretPath, tokenPath := good, good
				line, path := 4, "atlas.auth.serviceAccount.clientSecretFile"
				if key == "adminTokenFile" {
					tokenPath, line, path = sf.Path, 6, "server.adminTokenFile"
				} else {
					secretPath = sf.Path
				}
				text := fmt.Sprintf("atlas:\n  auth:\n    serviceAccount:\n      clientSecretFile: %s\nserver:\n  adminTokenFile: %s\n%s", secretPath, tokenPath, base)
				cfgPath := filepath.Join(dir, "config.yaml")
				if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				col := len("      clientSecretFile: ") + 1
				if key == "adminTokenFile" {
					col = len("  adminTokenFile: ") + 1
				}
				want := fmt.Sprintf("%s:%d:%d: %s: cannot read secret file %q: ", cfgPath, line, col, path, sf.Path)
				env := osTestEnv(map[string]string{EnvClientID: "id"})
				// Offline validate tolerates only a missing file, not these.
				for _, missingOK := range []bool{false, true} {
					env.MissingSecretOK = missingOK
					issues := loadIssues(t, cfgPath, env)
					if len(issues) != 1 || !strings.HasPrefix(issues[0], want) || !strings.Contains(issues[0], sf.Want) {
						t.Fatalf("MissingSecretOK %v: issues = %q, want one starting %q containing %q", missingOK, issues, want, sf.Want)
					}
				}
			})
		}
	}
}

// TestReadRegularFileLimit: a file of exactly the limit is read whole.
func TestReadRegularFileLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadRegularFile(path, 5); err != nil || string(data) != "12345" {
		t.Fatalf("ReadRegularFile(limit 5) = %q, %v", data, err)
	}
	if _, err := ReadRegularFile(path, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadRegularFile(limit 4) = %v, want ErrTooLarge", err)
	}
}
