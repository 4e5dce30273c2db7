package policy

import (
	"errors"
	"io/fs"
	"testing"
	"time"
)

// fakeFS is an in-memory file system for Env: contents and modes by path.
type fakeFS struct {
	files map[string]string
	modes map[string]fs.FileMode
}

type fakeInfo struct {
	name string
	mode fs.FileMode
}

func (f fakeInfo) Name() string       { return f.name }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }

// testEnv builds an Env from variables and files (mode 0600 unless set).
func testEnv(vars map[string]string, ffs fakeFS) Env {
	return Env{
		Getenv: func(k string) string { return vars[k] },
		ReadFile: func(p string, limit int64) ([]byte, error) {
			v, ok := ffs.files[p]
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
			}
			if int64(len(v)) > limit {
				return nil, &fs.PathError{Op: "read", Path: p, Err: ErrTooLarge}
			}
			return []byte(v), nil
		},
		Stat: func(p string) (fs.FileInfo, error) {
			if _, ok := ffs.files[p]; !ok {
				return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
			}
			m, ok := ffs.modes[p]
			if !ok {
				m = 0o600
			}
			return fakeInfo{name: p, mode: m}, nil
		},
	}
}

// saEnv provides service-account credentials through the environment, so
// test configs can omit the atlas section.
var saEnv = testEnv(map[string]string{EnvClientID: "mdb_sa_id_test", EnvClientSecret: "env-secret-value"}, fakeFS{})

// parseIssues parses text as cfg.yaml and returns the config and the
// rendered issues (nil when valid).
func parseIssues(t *testing.T, text string, env Env) (*Config, []string) {
	t.Helper()
	cfg, err := Parse([]byte(text), "cfg.yaml", env)
	if err == nil {
		return cfg, nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse returned %T, want *Errors: %v", err, err)
	}
	if cfg != nil {
		t.Fatalf("Parse returned a config together with errors")
	}
	var out []string
	for _, is := range errs.List {
		out = append(out, is.String())
	}
	return nil, out
}

func mustParse(t *testing.T, text string, env Env) *Config {
	t.Helper()
	cfg, issues := parseIssues(t, text, env)
	if issues != nil {
		t.Fatalf("unexpected errors:\n%s", joinLines(issues))
	}
	return cfg
}

func joinLines(s []string) string {
	out := ""
	for _, l := range s {
		out += l + "\n"
	}
	return out
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
