package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Env is everything Load reads from outside the config text: environment
// variables, secret files and their modes. It is injected so tests (and
// the validate verb's tests) run without touching the real environment.
// A nil function behaves as "nothing there".
type Env struct {
	Getenv func(string) string
	// ReadFile returns the content of a regular file of at most limit
	// bytes; anything else is an error (see ReadRegularFile).
	ReadFile func(path string, limit int64) ([]byte, error)
	Stat     func(string) (fs.FileInfo, error)
	// MissingSecretOK makes a secret file that does not exist a warning
	// instead of an error. Offline validation sets it: it never uses the
	// credentials, a config is often checked (in CI, before installing)
	// where they are not, and systemd's LoadCredential= files exist only
	// while the service runs. Any other read failure stays an error.
	MissingSecretOK bool
}

// OSEnv returns the process environment and file system.
func OSEnv() Env {
	return Env{Getenv: os.Getenv, ReadFile: ReadRegularFile, Stat: os.Stat}
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

func (e Env) readFile(p string, limit int64) ([]byte, error) {
	if e.ReadFile == nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return e.ReadFile(p, limit)
}

// secretFilePath resolves a *File key: absolute paths as written; relative
// ones against $CREDENTIALS_DIRECTORY (systemd LoadCredential=) when set,
// else against the directory of the config file.
func (e Env) secretFilePath(p, configFile string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if dir := e.getenv(EnvCredentialDir); dir != "" {
		return filepath.Join(dir, p)
	}
	return filepath.Join(filepath.Dir(configFile), p)
}

// loadSecretFile reads one secret file for the *File key f. Errors name
// the file, never its content. A mode wider than 0640 is a warning.
func (d *decoder) loadSecretFile(env Env, f field) (Secret, string, bool) {
	p, ok := d.str(f)
	if !ok {
		return Secret{}, "", false
	}
	if p == "" {
		d.errorAt(f.val, f.path, "must name a file")
		return Secret{}, "", false
	}
	full := env.secretFilePath(p, d.file)
	data, err := env.readFile(full, MaxSecretSize)
	if err != nil && env.MissingSecretOK && errors.Is(err, fs.ErrNotExist) {
		d.warnAt(f.val, f.path, "secret file %q does not exist: not needed to validate, but run and validate -online fail unless it exists then", full)
		return Secret{}, full, true
	}
	if err != nil {
		d.errorAt(f.val, f.path, "cannot read secret file %q: %s", full, fileError(err))
		return Secret{}, full, false
	}
	v := strings.TrimRight(string(data), "\r\n")
	if v == "" {
		d.errorAt(f.val, f.path, "secret file %q is empty", full)
		return Secret{}, full, false
	}
	if env.Stat != nil {
		if fi, err := env.Stat(full); err == nil && fi.Mode().Perm()&^0o640 != 0 {
			d.warnAt(f.val, f.path, "secret file %q has mode %04o: restrict it to 0640 or narrower (chmod 600)", full, fi.Mode().Perm())
		}
	}
	return NewSecret(v), full, true
}

// fileError describes why a file could not be read, without any content.
func fileError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return fmt.Sprint(err)
}
