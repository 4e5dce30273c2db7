// Package policytest makes the files a config or secret path must never
// be read from, for the tests of every package that reads them.
package policytest

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SpecialFile is one file backupd must refuse to read, and the words the
// refusal must contain.
type SpecialFile struct {
	Name string // what the case is, for subtest names
	Path string
	Want string // a substring of the located error
}

// SpecialFiles creates, in a new temporary directory, a FIFO without a
// writer (reading it blocks forever), a symbolic link to /dev/zero
// (reading it never ends), a directory, and a regular file one line longer
// than limit that starts with valid (so only its size is wrong).
func SpecialFiles(t testing.TB, limit int64, valid []byte) []SpecialFile {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, oversized(limit, valid), 0o600); err != nil {
		t.Fatal(err)
	}
	return []SpecialFile{
		{Name: "fifo", Path: fifo, Want: "not a regular file (a FIFO)"},
		{Name: "dev-zero", Path: zero, Want: "not a regular file (a character device)"},
		{Name: "directory", Path: sub, Want: "not a regular file (a directory)"},
		{Name: "oversized", Path: big, Want: "file too large"},
	}
}

// oversized pads valid past limit: with YAML comment lines when valid ends
// in a newline (a config), else with more of its last byte (a secret).
func oversized(limit int64, valid []byte) []byte {
	var b bytes.Buffer
	b.Write(valid)
	pad := []byte("# padding to exceed the size limit\n")
	if len(valid) > 0 && valid[len(valid)-1] != '\n' {
		pad = valid[len(valid)-1:]
	}
	for int64(b.Len()) <= limit {
		b.Write(pad)
	}
	return b.Bytes()
}
