//go:build linux && (amd64 || arm64)

package journal

import (
	"os"
	"syscall"
)

// dropMapped drops this process's mapping of the pages in [addr,
// addr+length) of bbolt's shared, read-only file mapping (MADV_DONTNEED).
// The pages stay in the page cache; later reads map them again from there.
func dropMapped(addr, length uintptr) error {
	if length == 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, length, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

// posix_fadvise advice values (linux/fadvise.h).
const (
	fadvRandom   = 1
	fadvWillNeed = 3
)

// prefetchChunk is the size of each read-ahead request prefetchForCheck
// makes.
const prefetchChunk = 1 << 20

// prefetchForCheck readies f (size bytes) for the checker's page-by-page
// reads without filling the page cache with large folios.
//
// Readahead, which sequential reads get by default, caches the file in
// large folios, and a later fault on bbolt's memory map then maps a whole
// folio: ~580 KiB per random lookup was measured after a cold start,
// against 64 KiB (the kernel's fault-around) when the file was cached in
// small pages. So the checker's descriptor gets no readahead
// (POSIX_FADV_RANDOM), and the file is requested up front in 1 MiB pieces
// (POSIX_FADV_WILLNEED), which reads into small pages and keeps a cold
// start fast: 256 MiB took 0.18 s here, against 0.59 s with readahead and
// 3.3 s with neither. Pages already cached are skipped. The advice is only
// a hint; if the kernel refuses it the check reads the file as before.
func prefetchForCheck(f *os.File, size int64) {
	fd := f.Fd()
	_, _, _ = syscall.Syscall6(syscall.SYS_FADVISE64, fd, 0, 0, fadvRandom, 0, 0)
	for off := int64(0); off < size; off += prefetchChunk {
		n := min(prefetchChunk, size-off)
		_, _, _ = syscall.Syscall6(syscall.SYS_FADVISE64, fd, uintptr(off), uintptr(n), fadvWillNeed, 0, 0)
	}
}
