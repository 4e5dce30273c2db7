package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Size caps for the files backupd reads at start and on every reload. A
// config or credential larger than this is a mistake (a device, a log, a
// binary named by accident), and reading it whole could exhaust memory.
const (
	MaxConfigSize int64 = 4 << 20  // 4 MiB
	MaxSecretSize int64 = 16 << 10 // 16 KiB
)

var (
	// ErrNotRegular means a path names a device, FIFO, socket or directory:
	// reading /dev/zero never ends and a FIFO blocks until a writer comes.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge means a file holds more than the cap for its kind.
	ErrTooLarge = errors.New("file too large")
)

// ReadRegularFile reads the regular file at path (symbolic links are
// followed), refusing anything else and any file larger than limit bytes.
// It never blocks: the open is non-blocking, so a FIFO without a writer is
// refused at once instead of hanging a start, a validate or a reload.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, fileKind(fi.Mode()))}
	}
	if fi.Size() > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, fi.Size(), limit)}
	}
	// The file may grow after the stat: read at most one byte past the
	// cap to tell "exactly at the limit" from "over it".
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
	}
	return data, nil
}

// fileKind names a non-regular file's type for the refusal message.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}
