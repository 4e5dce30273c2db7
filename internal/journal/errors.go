package journal

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels for errors.Is, so callers (start-up, readiness) can tell an
// operator what to do without parsing messages.
var (
	// ErrCorrupt: the file is not a readable backupd journal.
	ErrCorrupt = errors.New("journal is not readable")
	// ErrInUse: another process holds the journal's file lock.
	ErrInUse = errors.New("journal is in use")
	// ErrTooNew: the journal was written by a newer backupd.
	ErrTooNew = errors.New("journal schema is newer than this backupd")
)

// CorruptError reports a journal file that cannot be trusted. Its message
// tells the operator how to recover; backupd never repairs, truncates or
// overwrites such a file itself.
type CorruptError struct {
	Path  string
	Cause error // what was found, e.g. "page 12: checksum mismatch"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s is not a readable backupd journal (%v): stop backupd, move the file aside (mv %s %s.broken) and start again — in-flight runs are then recovered from the markers backupd leaves in Atlas",
		e.Path, e.Cause, e.Path, e.Path)
}

// Unwrap returns the cause.
func (e *CorruptError) Unwrap() error { return e.Cause }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// InUseError reports that the file lock could not be taken within the
// Open timeout.
type InUseError struct {
	Path    string
	Timeout time.Duration
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("journal %s is locked (in use by another backupd process?): gave up after waiting %v; stop the other process or give this one its own state.path", e.Path, e.Timeout)
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// TooNewError reports a journal whose schema version this binary does not
// know; it is refused rather than misread.
type TooNewError struct {
	Path      string
	Version   uint32 // found in the file
	Supported uint32 // newest this binary understands
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("journal %s has schema version %d but this backupd understands up to %d: it was written by a newer backupd; run that version, or move the file aside (mv %s %s.old) to start with an empty journal",
		e.Path, e.Version, e.Supported, e.Path, e.Path)
}

// Is makes errors.Is(err, ErrTooNew) true.
func (e *TooNewError) Is(target error) bool { return target == ErrTooNew }

// damage is found corruption before it is attributed to a file: the
// store's methods turn it into a *CorruptError naming the path.
type damage struct{ msg string }

func (d *damage) Error() string { return d.msg }

func damagef(format string, args ...any) error {
	return &damage{msg: fmt.Sprintf(format, args...)}
}
