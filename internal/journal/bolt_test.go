package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/run"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// buildJournal writes a closed journal with n runs (one per hour, every
// fourth still active, each with a findable Detail) and a mark.
func buildJournal(t *testing.T, path string, n int) []run.Run {
	t.Helper()
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var rs []run.Run
	for i := range n {
		tgt := []run.Target{tgtA, tgtB, tgtC}[i%3]
		r := mk(fmt.Sprintf("run-%03d", i), "nightly", tgt, at(i), run.StageSucceeded)
		if i%4 == 0 {
			r.Stage = run.StageSnapshotting
		}
		r.SnapshotStatus, r.SnapshotBytes = "completed", int64(1000+i)
		r.Detail = fmt.Sprintf("detail-of-%03d", i)
		mustPut(t, j, r)
		rs = append(rs, r)
	}
	if err := j.SetMark("nightly/a", Mark{LastSlot: at(n), Schedule: "0 2 * * *"}); err != nil {
		t.Fatal(err)
	}
	return rs
}

// wantCorrupt checks the operator-facing corruption error and that the
// file was left untouched.
// damageAt flips the first byte of needle in the file at path, under the
// journal's feet: its record no longer matches its checksum.
func damageAt(t *testing.T, path, needle string) {
	t.Helper()
	_, off := pageOf(t, readFile(t, path), needle)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("N"), int64(off)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func wantCorrupt(t *testing.T, path string, err error, before []byte) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v; want ErrCorrupt", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"journal " + path + " is not a readable backupd journal (",
		"stop backupd, move the file aside (mv " + path + " " + path + ".broken) and start again",
		"recovered from the markers backupd leaves in Atlas",
	} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q lacks %q", msg, want)
		}
	}
	if after := readFile(t, path); !bytes.Equal(after, before) {
		t.Fatalf("Open changed the damaged file (%d bytes -> %d)", len(before), len(after))
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rs := buildJournal(t, path, 12)
	j := openBoltAt(t, path)
	for _, r := range rs {
		got, found, err := j.Get(r.ID)
		if err != nil || !found || !reflect.DeepEqual(withoutStages(got), r) {
			t.Fatalf("Get(%s) after reopen = %+v, %v, %v", r.ID, got, found, err)
		}
	}
	if a := active(t, j); fmt.Sprint(a) != "[run-000 run-004 run-008]" {
		t.Fatalf("Active after reopen = %v", a)
	}
	if h := history(t, j, Query{Target: &tgtB, Limit: 2}); fmt.Sprint(h) != "[run-010 run-007]" {
		t.Fatalf("History after reopen = %v", h)
	}
	s := summaries(t, j)
	if len(s) != 3 || s[0].Last == nil || s[0].Last.ID != "run-009" || s[0].LastSnapshotBytes != 1009 {
		t.Fatalf("Summaries after reopen = %+v", s)
	}
	if m, found, _ := j.Mark("nightly/a"); !found || m.Schedule != "0 2 * * *" || !m.LastSlot.Equal(at(12)) {
		t.Fatalf("Mark after reopen = %+v, %v", m, found)
	}
}

func TestNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	j := openBoltAt(t, path)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("new journal has mode %v; want 0600", perm)
	}
	if j.Path() != path {
		t.Fatalf("Path = %q", j.Path())
	}
}

func TestEmptyFileIsInitialised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeFile(t, path, nil)
	j := openBoltAt(t, path)
	mustPut(t, j, mk("r1", "nightly", tgtA, at(0), run.StagePending))
}

func TestBoltWithoutBucketsIsInitialised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	j := openBoltAt(t, path)
	mustPut(t, j, mk("r1", "nightly", tgtA, at(0), run.StagePending))
}

func TestOpenPathProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	_, err := Open(filepath.Join(missing, "state.db"), Options{})
	if err == nil || !strings.Contains(err.Error(), "directory "+missing+" does not exist") {
		t.Fatalf("missing directory: err = %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created the missing directory: %v", err)
	}

	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "it is a directory, not a regular file") {
		t.Fatalf("directory as path: err = %v", err)
	}
	if _, err := Open(os.DevNull, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("device as path: err = %v", err)
	}
	if _, err := Open("", Options{}); err == nil || !strings.Contains(err.Error(), "NewMemory") {
		t.Fatalf("empty path: err = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "x.db"), Options{Timeout: -time.Second}); err == nil {
		t.Fatal("negative timeout accepted")
	}
	file := filepath.Join(dir, "file")
	writeFile(t, file, []byte("x"))
	if _, err := Open(filepath.Join(file, "state.db"), Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file as directory: err = %v", err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	first := openBoltAt(t, path)
	mustPut(t, first, mk("r1", "nightly", tgtA, at(0), run.StagePending))
	_, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by another backupd process?") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: err = %v; want ErrInUse naming the file", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatal("a locked journal must not be reported corrupt")
	}
	// The holder is unaffected.
	if _, found, err := first.Get("r1"); err != nil || !found {
		t.Fatalf("first journal after a refused second open: %v, %v", found, err)
	}
}

// setSchema rewrites the schema version of a closed journal.
func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, seal(keySchema, binary.BigEndian.AppendUint32(nil, v)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	buildJournal(t, path, 2)
	setSchema(t, path, SchemaVersion+1)
	before := readFile(t, path)
	_, err := Open(path, Options{})
	want := fmt.Sprintf("journal %s has schema version %d but this backupd understands up to %d", path, SchemaVersion+1, SchemaVersion)
	if !errors.Is(err, ErrTooNew) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v; want ErrTooNew %q", err, want)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Fatal("Open changed a journal from a newer backupd")
	}
	// The current version opens.
	setSchema(t, path, SchemaVersion)
	openBoltAt(t, path)
}

func TestForeignBoltFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("someone-else"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	_, err = Open(path, Options{})
	wantCorrupt(t, path, err, before)
	if !strings.Contains(err.Error(), `without backupd's "meta" bucket`) {
		t.Fatalf("err = %v; want it to say what is missing", err)
	}
}

// pageOf returns the page size and the offset of needle in the file.
func pageOf(t *testing.T, file []byte, needle string) (pageSize, off int) {
	t.Helper()
	m, err := readMeta(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	off = bytes.Index(file, []byte(needle))
	if off < 0 {
		t.Fatalf("%q not in file", needle)
	}
	return int(m.pageSize), off
}

func TestCorruptFilesAreRefusedUntouched(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	buildJournal(t, pristine, 40)
	good := readFile(t, pristine)
	m, err := readMeta(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	ps := int(m.pageSize)
	hwm := int(m.pgid) * ps

	flip := func(offsets ...int) func([]byte) []byte {
		return func(b []byte) []byte {
			for _, o := range offsets {
				b[o] ^= 0xFF
			}
			return b
		}
	}
	// Every copy of the run's record: a page freed by a later commit may
	// still hold an old copy, which no check reads (bbolt writes pages
	// anew), and the first copy in the file is not always the live one.
	var inDetail []int
	for off := 0; ; {
		i := bytes.Index(good[off:], []byte("detail-of-017"))
		if i < 0 {
			break
		}
		inDetail = append(inDetail, off+i+3)
		off += i + 1
	}
	if len(inDetail) == 0 {
		t.Fatal("detail-of-017 not in the file")
	}
	garbage := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		cause  string
	}{
		{"garbage", func([]byte) []byte { return garbage }, "no valid meta page"},
		{"a text file", func([]byte) []byte { return []byte("atlas:\n  baseURL: https://cloud.mongodb.com\n") }, "no valid meta page"},
		{"truncated to part of a page", func(b []byte) []byte { return b[:3000] }, "truncated?"},
		{"truncated to half", func(b []byte) []byte { return b[:hwm/2] }, "truncated?"},
		{"truncated by one page", func(b []byte) []byte { return b[:hwm-ps] }, "truncated?"},
		{"both meta pages", flip(pageHeaderSize, ps+pageHeaderSize), "no valid meta page"},
		{"byte in a run record", flip(inDetail...), "checksum mismatch"},
		{"root page id", flip(int(m.root) * ps), "identifies itself as page"},
		{"root page type", flip(int(m.root)*ps + 8), "unknown type"},
		{"root page element count", flip(int(m.root)*ps + 11), "elements, more than it holds"},
		{"freelist page type", flip(int(m.freelist)*ps + 8), "freelist page"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".db")
			bad := c.mutate(bytes.Clone(good))
			writeFile(t, path, bad)
			_, err := Open(path, Options{})
			wantCorrupt(t, path, err, bad)
			if !strings.Contains(err.Error(), c.cause) {
				t.Fatalf("err = %v; want cause %q", err, c.cause)
			}
		})
	}
}

// TestOneDamagedMetaFallsBack documents bbolt's design, which the journal
// keeps: two meta pages are written alternately, and if the newest one is
// unreadable (a commit torn by a crash) the previous commit is used.
func TestOneDamagedMetaFallsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	buildJournal(t, path, 3)
	file := readFile(t, path)
	m, err := readMeta(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	newest := int(m.txid%2) * int(m.pageSize)
	file[newest+metaChecksumAt] ^= 0xFF
	writeFile(t, path, file)
	j := openBoltAt(t, path)
	if _, found, err := j.Mark("nightly/a"); err != nil || found {
		t.Fatalf("the last commit (SetMark) should be gone with its meta page: found=%v err=%v", found, err)
	}
	if _, found, err := j.Get("run-002"); err != nil || !found {
		t.Fatalf("earlier commits must survive: found=%v err=%v", found, err)
	}
}

func TestCorruptionFoundWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	j := openBoltAt(t, path)
	r := mk("r1", "nightly", tgtA, at(0), run.StagePending)
	r.Detail = "needle-in-the-file"
	mustPut(t, j, r)
	damageAt(t, path, r.Detail)
	_, _, err := j.Get("r1")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "mv "+path) {
		t.Fatalf("Get of a damaged record: err = %v; want CorruptError", err)
	}
	if _, err := j.Active(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Active over a damaged record: err = %v; want CorruptError", err)
	}
}

// snapshotOf renders everything a journal returns about rs (marks aside).
func snapshotOf(j Journal, rs []run.Run) (string, error) {
	var b strings.Builder
	a, err := j.Active()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "active %+v\n", a)
	for _, q := range []Query{{}, {Policy: "nightly", Target: &tgtB}, {Target: &tgtC, Limit: 3}, {Policy: "nightly", Before: at(7)}} {
		h, err := j.History(q)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "history %v\n", ids(h))
	}
	s, err := j.Summaries()
	if err != nil {
		return "", err
	}
	for _, x := range s {
		last := *x.Last
		x.Last = nil
		fmt.Fprintf(&b, "summary %+v last %+v\n", x, last)
	}
	for _, r := range rs {
		got, found, err := j.Get(r.ID)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "get %v %+v\n", found, got)
	}
	return b.String(), nil
}

// lineDiff lists the lines of got and want that differ.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "got  %s\nwant %s\n", gl, wl)
		}
	}
	return b.String()
}

// TestFlippedBytesNeverCrash flips bytes all over a small journal (headers,
// elements, keys, values, free space, both meta pages): Open must either
// refuse with a CorruptError, leaving the file alone, or open a journal
// that reads exactly what the undamaged one did.
func TestFlippedBytesNeverCrash(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	rs := buildJournal(t, pristine, 30)
	good := readFile(t, pristine)
	m, err := readMeta(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	ps := int(m.pageSize)
	var offsets []int
	for page := range int(m.pgid) {
		// Page header (id, flags, count, overflow), the first element
		// (or meta magic, page size, root, checksum), and two spots
		// further in. A one-off sweep of every byte of this file (106,496
		// flips) found no crash and no silently different read.
		for _, o := range []int{0, 8, 10, 12, 16, 20, 24, 28, 72, 1000 + 7*page, ps - 100} {
			offsets = append(offsets, page*ps+o)
		}
	}
	j := openBoltAt(t, pristine)
	want, err := snapshotOf(j, rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	good = readFile(t, pristine)

	path := filepath.Join(dir, "flipped.db")
	refused, opened := 0, 0
	for i, off := range offsets {
		bad := bytes.Clone(good)
		bad[off] ^= []byte{0x01, 0xFF, 0x40}[i%3]
		writeFile(t, path, bad)
		j, err := Open(path, Options{NoSync: true})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("offset %d: err = %v; want ErrCorrupt", off, err)
			}
			if !bytes.Equal(readFile(t, path), bad) {
				t.Fatalf("offset %d: Open changed a refused file", off)
			}
			refused++
			continue
		}
		opened++
		// What it reads is either refused as corrupt or exactly what the
		// undamaged journal holds.
		got, err := snapshotOf(j, rs)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("offset %d: opened journal fails with %v", off, err)
		}
		if err == nil && got != want {
			t.Fatalf("offset %d (page %d +%d): damaged journal reads differently:\n%s", off, off/ps, off%ps, lineDiff(got, want))
		}
		if err := j.Put(mk("new", "nightly", tgtA, at(99), run.StageSucceeded)); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("offset %d: Put: %v", off, err)
		}
		if err := j.Close(); err != nil {
			t.Fatalf("offset %d: Close: %v", off, err)
		}
	}
	t.Logf("%d flips: %d refused, %d opened (free space, slack, the older meta page, bucket sequence numbers)", len(offsets), refused, opened)
	if refused < len(offsets)/3 {
		t.Fatalf("only %d of %d flips refused", refused, len(offsets))
	}
}
