package journal

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// bbolt reads the file through a read-only shared memory map, and every
// page a transaction reads stays mapped into the process: it counts in
// its RSS (RssFile) until the mapping goes away. A fleet touches pages all
// over the file (runs, summaries and the per-target indexes are keyed in
// random order for it), and Linux maps the cached neighbours of a faulted
// page with it (64 KiB at a time), so within an hour of steady writes
// nearly the whole file was resident: 285 MiB for 100,000 runs
// (docs/benchmarks.md).
//
// The journal therefore counts the keys its transactions look up and,
// once releaseBudget have accumulated, tells the kernel the mapped pages
// are not needed (madvise MADV_DONTNEED). On a shared file mapping that
// only drops the process's page-table entries: the pages stay in the page
// cache and the next access maps them again from there, with the same
// contents. A release runs inside an open transaction, so bbolt cannot
// remap the file meanwhile: it remaps only while holding its mmap lock
// exclusively, which every read transaction holds shared, or in a write
// transaction's commit, after the caller's function has returned.
//
// Reads release as they go. Writes release at the start of a transaction,
// not in the middle: committing reads every changed page again (bbolt
// copies the unchanged entries of a changed leaf out of the map), so
// pages dropped mid-transaction would only be faulted back in. What one
// commit maps is bounded instead by the writes it takes (maxCommitBatch,
// pruneBatch).

// defaultReleaseBudget is how many key lookups (each faults in a leaf and
// maybe a branch page, 64 KiB or more with its neighbours) the journal
// lets accumulate between releases. Measured with BenchmarkFleetRSS: with
// commits of 4 writes, 8 lookups put the peak at 5.3 MiB, 16 at 6.1.
const defaultReleaseBudget = 8

// pageReleaser decides when to drop the mapping's pages.
type pageReleaser struct {
	budget   int64 // lookups between releases; <= 0 never releases
	used     atomic.Int64
	releases atomic.Int64 // releases done, for tests and benchmarks
}

// note counts n key lookups. A nil p does nothing.
func (p *pageReleaser) note(n int) {
	if p != nil {
		p.used.Add(int64(n))
	}
}

// maybeRelease drops the mapped pages if the budget is used up. tx must
// be open: it pins the mapping. A nil p does nothing.
func (p *pageReleaser) maybeRelease(tx *bolt.Tx) {
	if p == nil || p.budget <= 0 || p.used.Load() < p.budget {
		return
	}
	p.used.Store(0)
	// Advice that fails leaves pages mapped, which costs memory, never
	// correctness; there is nothing better to do with the error.
	if dropMapped(tx.DB().Info().Data, uintptr(tx.Size())) == nil {
		p.releases.Add(1)
	}
}

// touch counts n key lookups by the read transaction tx and releases the
// mapped pages if the budget is used up.
func (p *pageReleaser) touch(tx *bolt.Tx, n int) {
	p.note(n)
	p.maybeRelease(tx)
}
