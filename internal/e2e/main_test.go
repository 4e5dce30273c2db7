package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// binary is the backupd binary TestMain built for every test of the
// package; "" when `go` is not on PATH (the tests then skip). moduleDir is
// the module root it was built in.
var binary, moduleDir string

// tracked makes the first test of the process open the sources once.
var (
	tracked    sync.Once
	trackedErr error
)

// TestMain builds ./cmd/backupd once, without -race: the suites test the
// shipped binary, and the race detector would only slow the daemon down.
func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	if _, err := exec.LookPath("go"); err != nil {
		return m.Run() // every test skips: see requireBinary
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "backupd-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: creating a directory for the binary: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "backupd")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/backupd")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/backupd in %s: %v\n%s", root, err, msg)
		return 1
	}
	binary, moduleDir = out, root
	return m.Run()
}

// trackSources opens every file the binary is built from. `go test` caches
// a package's result keyed on its own imports and on the files the tests
// opened (from m.Run on, so not in TestMain itself); the binary is built by a
// child process, so without this a change to, say, the engine would leave a
// stale cached PASS here.
func trackSources(root string) error {
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) || name == "go.mod" || name == "go.sum" {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the sources of ./cmd/backupd: %w", err)
	}
	return nil
}

// moduleRoot walks up from the working directory to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("finding the module root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// requireBinary skips the test when TestMain could not build (no `go`).
func requireBinary(t *testing.T) {
	t.Helper()
	if binary == "" {
		t.Skip("`go` is not on PATH: cannot build ./cmd/backupd for the process-level suites")
	}
	tracked.Do(func() { trackedErr = trackSources(moduleDir) })
	if trackedErr != nil {
		t.Fatal(trackedErr)
	}
}
