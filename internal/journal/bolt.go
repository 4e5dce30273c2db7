package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/backupd/backupd/internal/run"
)

// SchemaVersion is the layout of the buckets below. A journal with a higher
// version is refused (TooNewError), never misread.
const SchemaVersion uint32 = 1

// Buckets. Every value is sealed (CRC-32C of key and payload first).
var (
	bucketMeta      = []byte("meta")      // "schema" -> uint32 SchemaVersion
	bucketRuns      = []byte("runs")      // run ID -> JSON run.Run
	bucketActive    = []byte("active")    // run ID -> empty: the non-terminal runs
	bucketSummaries = []byte("summaries") // targetKey -> JSON summaryRecord
	bucketMarks     = []byte("marks")     // mark key -> JSON Mark
	keySchema       = []byte("schema")
	// keyPrunedThrough -> appendTime of the newest CreatedAt Prune deleted.
	// Optional: a journal that was never pruned has none, and an older
	// backupd ignores it, so the schema version stays 1.
	keyPrunedThrough = []byte("prunedThrough")
	// The rollup (rollup.go): record key -> encodeDayRecord, and its day
	// index, day + record key -> empty. Added after schema 1 was out: a
	// journal without them gets them at its first open (see openRW), an
	// older backupd ignores them, so the schema version stays 1.
	bucketRollup     = []byte("rollup")
	bucketRollupDays = []byte("rollup-days")
	// keyRollupSince -> appendTime of Horizon.Since; keyRollupPruned ->
	// appendTime of Horizon.PrunedBefore (absent until a prune deletes a
	// record).
	keyRollupSince  = []byte("rollupSince")
	keyRollupPruned = []byte("rollupPrunedBefore")
)

// optionalBuckets are sealed buckets a journal of schema 1 may lack: they
// are created at open.
func optionalBuckets() [][]byte { return [][]byte{bucketRollup, bucketRollupDays} }

// allBuckets is every bucket a journal of this schema has.
func allBuckets() [][]byte {
	b := [][]byte{bucketMeta, bucketRuns, bucketActive, bucketSummaries, bucketMarks}
	for _, ix := range historyIndexes {
		b = append(b, ix.bucket)
	}
	return b
}

// maxIDLen bounds run IDs and mark keys well below bbolt's key limit.
const maxIDLen = 1024

// pruneBatch is how many runs one Prune transaction deletes, so a large
// prune does not hold the writer lock (and every Put) for long, and its
// commit, which reads every page it changes again, maps few pages of the
// file at once (see pageReleaser): ~3 randomly placed leaves per run. 16
// runs a transaction mapped 8 MiB at the peak of BenchmarkFleetRSS, 4
// runs 3.3 MiB.
const pruneBatch = 4

// appendFillPercent is how full bbolt packs split pages of the history
// indexes (default 0.5).
const appendFillPercent = 0.9

// Options tune Open.
type Options struct {
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// can then lose or corrupt committed runs.
	NoSync bool
	// Timeout is how long Open waits for the file lock held by another
	// process before failing with InUseError. Zero means one second.
	Timeout time.Duration
}

// DefaultTimeout is Options.Timeout when unset.
const DefaultTimeout = time.Second

// Bolt is the Journal in one bbolt file (state.path). Its writes are
// group-committed: concurrent Puts share one transaction and one fsync
// (see committer). It keeps the pages of the file it has read from
// staying resident in the process (see pageReleaser).
type Bolt struct {
	db         *bolt.DB
	path       string
	pruneBatch int // runs deleted per Prune transaction (pruneBatch)
	w          committer
	rel        pageReleaser
}

var _ Journal = (*Bolt)(nil)

// Open opens the journal at path, creating the file (mode 0600) if it does
// not exist. Its directory must exist: a missing directory usually means a
// mistyped state.path or a missing systemd StateDirectory=, and creating it
// would hide that. An existing file is checked page by page before it is
// used; if it is damaged, from a newer backupd, or locked by another
// process, Open fails with CorruptError, TooNewError or InUseError and
// leaves the file exactly as it was.
func Open(path string, opts Options) (*Bolt, error) {
	if path == "" {
		return nil, errors.New("open journal: empty path (use NewMemory for a journal without a file)")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("open journal %s: negative lock timeout %v", path, opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open journal %s: directory %s does not exist: create it (systemd: StateDirectory=backupd) or correct state.path", path, dir)
		}
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("open journal %s: %s is not a directory", path, dir)
	}

	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return create(path, opts)
	case err != nil:
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("open journal %s: it is a %s, not a regular file; state.path must name a file", path, fileKind(st.Mode()))
	case st.Size() == 0:
		// An empty file holds nothing to lose (bbolt creates files this way
		// and a crash can leave one); it is initialised like a new one.
		return openRW(path, opts)
	}

	// Cheap check without the lock first: bbolt maps the file even to take
	// a read-only lock, and must never map a file shorter than its pages.
	if err := preflight(path); err != nil {
		return nil, err
	}
	if err := check(path, opts); err != nil {
		return nil, err
	}
	return openRW(path, opts)
}

func fileKind(m os.FileMode) string {
	if m.IsDir() {
		return "directory"
	}
	return "special file (" + m.Type().String() + ")"
}

// create makes a new journal file and makes its directory entry durable.
func create(path string, opts Options) (*Bolt, error) {
	b, err := openRW(path, opts)
	if err != nil {
		return nil, err
	}
	if !opts.NoSync {
		if err := syncDir(filepath.Dir(path)); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("open journal %s: %w", path, err)
		}
	}
	return b, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// preflight checks the meta pages and the file size without taking the lock.
func preflight(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	if _, err := readMeta(f, st.Size()); err != nil {
		return attribute(path, "open", err)
	}
	return nil
}

// check verifies an existing file under a shared lock, read-only. A bbolt
// database without any bucket passes: it is a journal whose first start
// stopped before its buckets were created.
func check(path string, opts Options) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.Timeout})
	if err != nil {
		return openError(path, opts, err)
	}
	defer db.Close()

	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	prefetchForCheck(f, st.Size())
	sealed := make(map[string]bool)
	for _, name := range append(allBuckets(), optionalBuckets()...) {
		sealed[string(name)] = true
	}
	err = checkFile(f, st.Size(), func(buckets [][]byte, k, v []byte) error {
		if len(buckets) == 1 && sealed[string(buckets[0])] {
			_, err := unseal(buckets[0], k, v)
			return err
		}
		return nil
	})
	if err != nil {
		return attribute(path, "check", err)
	}

	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return damagef("a bbolt database without backupd's %q bucket", bucketMeta)
			}
			return nil
		}
		v, err := schemaOf(meta)
		if err != nil {
			return err
		}
		if v > SchemaVersion {
			return &TooNewError{Path: path, Version: v, Supported: SchemaVersion}
		}
		for _, name := range allBuckets() {
			if tx.Bucket(name) == nil {
				return damagef("bucket %q is missing", name)
			}
		}
		return nil
	})
	if err != nil {
		return attribute(path, "check", err)
	}
	return nil
}

func schemaOf(meta *bolt.Bucket) (uint32, error) {
	raw := meta.Get(keySchema)
	if raw == nil {
		return 0, damagef("no schema version in bucket %q", bucketMeta)
	}
	p, err := unseal(bucketMeta, keySchema, raw)
	if err != nil {
		return 0, err
	}
	if len(p) != 4 {
		return 0, damagef("schema version is %d bytes long", len(p))
	}
	return binary.BigEndian.Uint32(p), nil
}

// openRW opens the file for writing and gives a journal without buckets
// (new or empty file) its buckets and schema version.
func openRW(path string, opts Options) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, openError(path, opts, err)
	}
	b := &Bolt{db: db, path: path, pruneBatch: pruneBatch, rel: pageReleaser{budget: defaultReleaseBudget}}
	b.w = committer{db: db, max: maxCommitBatch, begin: b.rel.maybeRelease}
	var initialised bool
	err = db.View(func(tx *bolt.Tx) error {
		initialised = tx.Bucket(bucketMeta) != nil
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, b.wrap("open", err)
	}
	if !initialised {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets() {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return tx.Bucket(bucketMeta).Put(keySchema, seal(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)))
		})
		if err != nil {
			_ = db.Close()
			return nil, b.wrap("initialise", err)
		}
	}
	var hasRollup bool
	err = db.View(func(tx *bolt.Tx) error {
		hasRollup = tx.Bucket(bucketRollup) != nil && tx.Bucket(bucketRollupDays) != nil
		return nil
	})
	if err == nil && !hasRollup {
		err = db.Update(addRollup)
	}
	if err != nil {
		_ = db.Close()
		return nil, b.wrap("add the rollup", err)
	}
	return b, nil
}

// addRollup gives a journal without the rollup its buckets. Its runs that
// ended before are not in it: Horizon.Since is set past the newest run's
// creation, so the report reads the older runs from History (while they
// are held) and the newer ones from the rollup, each once.
func addRollup(tx *bolt.Tx) error {
	for _, name := range optionalBuckets() {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	var since time.Time
	if k, _ := tx.Bucket(indexAll.bucket).Cursor().Last(); k != nil {
		if len(k) < timeKeyLen {
			return damagef("index %s has a malformed key %q", indexAll.bucket, k)
		}
		since = parseTimeKey(k).Add(time.Nanosecond)
	}
	return tx.Bucket(bucketMeta).Put(keyRollupSince, seal(keyRollupSince, appendTime(nil, since)))
}

// openError explains a bbolt Open failure.
func openError(path string, opts Options, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return &InUseError{Path: path, Timeout: opts.Timeout}
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return &CorruptError{Path: path, Cause: err}
	}
	return fmt.Errorf("open journal %s: %w", path, err)
}

// attribute turns found damage into a CorruptError for path and passes
// other errors through with context.
func attribute(path, op string, err error) error {
	var d *damage
	var tooNew *TooNewError
	switch {
	case errors.As(err, &d):
		return &CorruptError{Path: path, Cause: err}
	case errors.As(err, &tooNew):
		return err
	}
	return fmt.Errorf("journal %s: %s: %w", path, op, err)
}

func (b *Bolt) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var d *damage
	if errors.As(err, &d) {
		return &CorruptError{Path: b.path, Cause: fmt.Errorf("%s: %w", op, err)}
	}
	return fmt.Errorf("journal %s: %s: %w", b.path, op, err)
}

// Path is the journal's file.
func (b *Bolt) Path() string { return b.path }

// Close unlocks and closes the file. Calls after Close fail.
func (b *Bolt) Close() error {
	return b.wrap("close", b.db.Close())
}

// Put implements Journal. The run is checked and encoded before it joins
// a group commit, so a run that cannot be stored fails alone.
func (b *Bolt) Put(r run.Run) error {
	if err := checkID("run id", string(r.ID)); err != nil {
		return fmt.Errorf("journal %s: put run: %w", b.path, err)
	}
	stored, payload, err := encodeRun(r)
	if err != nil {
		return fmt.Errorf("journal %s: put run %s: %w", b.path, r.ID, err)
	}
	err = b.w.write(func(tx *bolt.Tx) error { return putTx(tx, &b.rel, stored, payload) })
	return b.wrap("put run "+string(r.ID), err)
}

// encodeRun returns r as stored (its payload) and as a reader gets it back
// (decoded from the payload). Indexes and summaries are built from the
// decoded form, so summaries built on Put and data read later agree.
func encodeRun(r run.Run) (stored run.Run, payload []byte, err error) {
	payload, err = json.Marshal(r)
	if err != nil {
		return run.Run{}, nil, fmt.Errorf("encode: %w", err)
	}
	if err := json.Unmarshal(payload, &stored); err != nil {
		return run.Run{}, nil, fmt.Errorf("decode: %w", err)
	}
	return stored, payload, nil
}

// putRun encodes r and stores it in the caller's transaction, without
// releasing mapped pages (tests and benchmarks that build journals).
func putRun(tx *bolt.Tx, r run.Run) error {
	stored, payload, err := encodeRun(r)
	if err != nil {
		return err
	}
	return putTx(tx, nil, stored, payload)
}

// putTx writes r (encoded as payload) and keeps every index and the
// summary consistent, in the caller's transaction. It reads only what can
// change: an index entry, the active index or the summary is looked at
// when r differs from the stored version in a way that moves it, so most
// stage changes of a run in flight touch nothing but the run's own record
// (fewer pages read, and no summary decoded). Each lookup of a key is
// counted in rel (nil: none); the transaction's next release of mapped
// pages comes at the start of a later one.
func putTx(tx *bolt.Tx, rel *pageReleaser, r run.Run, payload []byte) error {
	runs, active := tx.Bucket(bucketRuns), tx.Bucket(bucketActive)
	id := []byte(r.ID)
	rel.note(1)
	var old *run.Run
	if v := runs.Get(id); v != nil {
		o, err := decodeRun(id, v)
		if err != nil {
			return err
		}
		old = &o
	}
	// The stage history is the journal's: callers (the engine) put runs
	// without it, so it is carried over from the stored version here.
	if hist := run.StageHistory(old, r); !run.SameStages(hist, r.Stages) {
		r.Stages = hist
		var err error
		if payload, err = json.Marshal(r); err != nil {
			return fmt.Errorf("encode stage history: %w", err)
		}
	}
	for _, ix := range historyIndexes {
		bk := tx.Bucket(ix.bucket)
		// New keys land at the end of their prefix (runs are created in
		// time order), so pages that split are not written to again: pack
		// them instead of leaving them half empty.
		bk.FillPercent = appendFillPercent
		k := ix.key(r)
		if old != nil {
			if ok := ix.key(*old); !bytes.Equal(ok, k) {
				if err := bk.Delete(ok); err != nil {
					return fmt.Errorf("unindex previous version: %w", err)
				}
			} else {
				continue
			}
		}
		rel.note(1)
		if err := bk.Put(k, seal(k, nil)); err != nil {
			return fmt.Errorf("index in %s: %w", ix.bucket, err)
		}
	}
	if err := runs.Put(id, seal(id, payload)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// The active index holds exactly the stored runs that are not
	// terminal, so it changes only when that does.
	wasActive, isActive := old != nil && !old.Stage.Terminal(), !r.Stage.Terminal()
	if wasActive != isActive {
		rel.note(1)
	}
	switch {
	case isActive && !wasActive:
		if err := active.Put(id, seal(id, nil)); err != nil {
			return fmt.Errorf("enter active index: %w", err)
		}
	case wasActive && !isActive:
		if err := active.Delete(id); err != nil {
			return fmt.Errorf("leave active index: %w", err)
		}
	}
	if err := updateRollup(tx, rel, old, r); err != nil {
		return err
	}
	if !summaryMayChange(old, r) {
		return nil
	}
	rel.note(1)
	return updateSummary(tx.Bucket(bucketSummaries), old, r)
}

func updateSummary(bk *bolt.Bucket, old *run.Run, r run.Run) error {
	key := targetKey(r.Policy, r.Target)
	s := summaryRecord{Summary: Summary{Policy: r.Policy, Target: r.Target}}
	if v := bk.Get(key); v != nil {
		p, err := unseal(bucketSummaries, key, v)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(p, &s); err != nil {
			return damagef("summary of %s on %s: %v", r.Policy, r.Target, err)
		}
	}
	if !s.apply(old, r) {
		return nil
	}
	p, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := bk.Put(key, seal(key, p)); err != nil {
		return fmt.Errorf("store summary: %w", err)
	}
	return nil
}

func decodeRun(id, v []byte) (run.Run, error) {
	p, err := unseal(bucketRuns, id, v)
	if err != nil {
		return run.Run{}, err
	}
	var r run.Run
	if err := json.Unmarshal(p, &r); err != nil {
		return run.Run{}, damagef("run %s: %v", id, err)
	}
	if string(r.ID) != string(id) {
		return run.Run{}, damagef("run stored under %s says it is %s", id, r.ID)
	}
	return r, nil
}

// getTx reads a run that an index says exists.
func getTx(tx *bolt.Tx, id []byte, index []byte) (run.Run, error) {
	v := tx.Bucket(bucketRuns).Get(id)
	if v == nil {
		return run.Run{}, damagef("index %s lists run %s, which is missing", index, id)
	}
	return decodeRun(id, v)
}

// Get implements Journal.
func (b *Bolt) Get(id run.ID) (r run.Run, found bool, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		b.rel.touch(tx, 1)
		v := tx.Bucket(bucketRuns).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		r, err = decodeRun([]byte(id), v)
		return err
	})
	if err != nil {
		return run.Run{}, false, b.wrap("get run "+string(id), err)
	}
	return r, found, nil
}

// Active implements Journal.
func (b *Bolt) Active() ([]run.Run, error) {
	var out []run.Run
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketActive).ForEach(func(k, v []byte) error {
			b.rel.touch(tx, 1)
			if _, err := unseal(bucketActive, k, v); err != nil {
				return err
			}
			r, err := getTx(tx, k, bucketActive)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, b.wrap("list active runs", err)
	}
	slices.SortFunc(out, func(a, b run.Run) int {
		if newer(a, b) {
			return 1
		}
		return -1
	})
	return out, nil
}

// History implements Journal. It walks the index matching q backwards from
// q.Before and stops after q.Limit runs.
func (b *Bolt) History(q Query) ([]run.Run, error) {
	ix, prefix := indexFor(q)
	var out []run.Run
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(ix.bucket).Cursor()
		var k []byte
		switch {
		case !q.Before.IsZero():
			// The key of (Before, BeforeID) itself, when it exists, is
			// found and stepped over by the Prev below.
			k, _ = c.Seek(append(appendTime(bytes.Clone(prefix), q.Before), q.BeforeID...))
		case len(prefix) > 0:
			k, _ = c.Seek(prefixEnd(prefix))
		}
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
			if len(k) <= len(prefix)+timeKeyLen {
				return damagef("index %s has a malformed key %q", ix.bucket, k)
			}
			b.rel.touch(tx, 1)
			r, err := getTx(tx, k[len(prefix)+timeKeyLen:], ix.bucket)
			if err != nil {
				return err
			}
			if !q.Since.IsZero() && r.CreatedAt.Before(q.Since) {
				break
			}
			if q.Keep != nil && !q.Keep(r) {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, b.wrap("read history", err)
	}
	return out, nil
}

// Summaries implements Journal.
func (b *Bolt) Summaries() ([]Summary, error) {
	var out []Summary
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSummaries).ForEach(func(k, v []byte) error {
			if len(out)%4 == 0 { // summaries are read in key order, ~3 a page
				b.rel.touch(tx, 1)
			}
			p, err := unseal(bucketSummaries, k, v)
			if err != nil {
				return err
			}
			var s summaryRecord
			if err := json.Unmarshal(p, &s); err != nil {
				return damagef("summary %q: %v", k, err)
			}
			out = append(out, s.clone())
			return nil
		})
	})
	if err != nil {
		return nil, b.wrap("read summaries", err)
	}
	return out, nil
}

// Mark implements Journal.
func (b *Bolt) Mark(key string) (m Mark, found bool, err error) {
	if err := checkID("mark key", key); err != nil {
		return Mark{}, false, fmt.Errorf("journal %s: read mark: %w", b.path, err)
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		b.rel.touch(tx, 1)
		v := tx.Bucket(bucketMarks).Get([]byte(key))
		if v == nil {
			return nil
		}
		p, err := unseal(bucketMarks, []byte(key), v)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(p, &m); err != nil {
			return damagef("mark %q: %v", key, err)
		}
		found = true
		return nil
	})
	if err != nil {
		return Mark{}, false, b.wrap("read mark "+key, err)
	}
	return m, found, nil
}

// SetMark implements Journal.
func (b *Bolt) SetMark(key string, m Mark) error {
	if err := checkID("mark key", key); err != nil {
		return fmt.Errorf("journal %s: set mark: %w", b.path, err)
	}
	p, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("journal %s: set mark %s: encode: %w", b.path, key, err)
	}
	err = b.w.write(func(tx *bolt.Tx) error {
		b.rel.note(1)
		return tx.Bucket(bucketMarks).Put([]byte(key), seal([]byte(key), p))
	})
	return b.wrap("set mark "+key, err)
}

// DeleteMark implements Journal.
func (b *Bolt) DeleteMark(key string) error {
	if err := checkID("mark key", key); err != nil {
		return fmt.Errorf("journal %s: delete mark: %w", b.path, err)
	}
	err := b.w.write(func(tx *bolt.Tx) error {
		b.rel.note(1)
		return tx.Bucket(bucketMarks).Delete([]byte(key))
	})
	return b.wrap("delete mark "+key, err)
}

// Prune implements Journal. It deletes the rollup's records of the days
// wholly older than maxAge first (pruneBatch per transaction). Then it finds the newest history key to delete
// below (the older of the age cutoff and the keepRuns-th newest terminal
// run), then deletes terminal runs below it, oldest first, pruneBatch per
// transaction.
func (b *Bolt) Prune(now time.Time, keepRuns int, maxAge time.Duration) (int, error) {
	var cutoff []byte
	if maxAge > 0 {
		cutoff = appendTime(nil, now.Add(-maxAge))
	}
	if keepRuns > 0 {
		err := b.db.View(func(tx *bolt.Tx) error {
			active := tx.Bucket(bucketActive)
			c := tx.Bucket(indexAll.bucket).Cursor()
			kept, visited := 0, 0
			for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
				if visited++; visited%64 == 0 { // keys are packed ~100 a page
					b.rel.touch(tx, 1)
				}
				if len(k) <= timeKeyLen {
					return damagef("index %s has a malformed key %q", indexAll.bucket, k)
				}
				if active.Get(k[timeKeyLen:]) != nil {
					continue
				}
				if kept++; kept == keepRuns {
					if bytes.Compare(k, cutoff) > 0 {
						cutoff = bytes.Clone(k)
					}
					break
				}
			}
			return nil
		})
		if err != nil {
			return 0, b.wrap("prune", err)
		}
	}
	if maxAge > 0 {
		// The rollup goes by age alone: the report's horizon.
		day := dayOf(now.Add(-maxAge))
		if _, err := b.inBatches(func(tx *bolt.Tx) (int, error) { return pruneRollupTx(tx, day, b.pruneBatch, &b.rel) }); err != nil {
			return 0, b.wrap("prune the rollup", err)
		}
	}
	if cutoff == nil {
		return 0, nil
	}
	removed, err := b.inBatches(func(tx *bolt.Tx) (int, error) { return pruneTx(tx, cutoff, b.pruneBatch, &b.rel) })
	return removed, b.wrap("prune", err)
}

// inBatches runs del in one write transaction after another until it
// deletes fewer than pruneBatch, and returns how many it deleted.
func (b *Bolt) inBatches(del func(tx *bolt.Tx) (int, error)) (int, error) {
	removed := 0
	for {
		n := 0
		err := b.db.Update(func(tx *bolt.Tx) error {
			var err error
			n, err = del(tx)
			return err
		})
		removed += n
		if err != nil || n < b.pruneBatch {
			return removed, err
		}
	}
}

// pruneTx deletes up to limit terminal runs whose history key sorts before
// cutoff.
func pruneTx(tx *bolt.Tx, cutoff []byte, limit int, rel *pageReleaser) (int, error) {
	rel.maybeRelease(tx)
	active := tx.Bucket(bucketActive)
	var ids [][]byte
	c := tx.Bucket(indexAll.bucket).Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) < 0 && len(ids) < limit; k, _ = c.Next() {
		if len(k) <= timeKeyLen {
			return 0, damagef("index %s has a malformed key %q", indexAll.bucket, k)
		}
		if active.Get(k[timeKeyLen:]) == nil {
			ids = append(ids, bytes.Clone(k[timeKeyLen:]))
		}
	}
	runs := tx.Bucket(bucketRuns)
	var newest time.Time
	for _, id := range ids {
		rel.note(len(historyIndexes) + 1) // the run and its index entries
		r, err := getTx(tx, id, indexAll.bucket)
		if err != nil {
			return 0, err
		}
		if r.CreatedAt.After(newest) {
			newest = r.CreatedAt
		}
		for _, ix := range historyIndexes {
			if err := tx.Bucket(ix.bucket).Delete(ix.key(r)); err != nil {
				return 0, fmt.Errorf("unindex run %s: %w", id, err)
			}
		}
		if err := runs.Delete(id); err != nil {
			return 0, fmt.Errorf("delete run %s: %w", id, err)
		}
	}
	if len(ids) > 0 {
		prev, err := prunedThroughTx(tx)
		if err != nil {
			return 0, err
		}
		if newest.After(prev) {
			if err := tx.Bucket(bucketMeta).Put(keyPrunedThrough, seal(keyPrunedThrough, appendTime(nil, newest))); err != nil {
				return 0, fmt.Errorf("record what was pruned: %w", err)
			}
		}
	}
	return len(ids), nil
}

// prunedThroughTx reads keyPrunedThrough (zero when absent).
func prunedThroughTx(tx *bolt.Tx) (time.Time, error) { return metaTime(tx, keyPrunedThrough) }

// PrunedThrough implements Journal.
func (b *Bolt) PrunedThrough() (time.Time, error) {
	var t time.Time
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		t, err = prunedThroughTx(tx)
		return err
	})
	if err != nil {
		return time.Time{}, b.wrap("read what was pruned", err)
	}
	return t, nil
}

// checkID rejects keys bbolt cannot store.
func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty %s", what)
	case len(id) > maxIDLen:
		return fmt.Errorf("%s of %d bytes is longer than %d", what, len(id), maxIDLen)
	}
	return nil
}
