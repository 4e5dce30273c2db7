package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// The journal checks the whole bbolt file before bbolt is allowed to map it
// read-write. bbolt trusts its pages: a flipped byte in a page header or
// element can make it panic, fault on a wild pointer (which Go cannot
// recover from), loop forever, or hand out pages still in use. The checker
// here reads the file with ReadAt and bounds-checks everything, so damage
// becomes an error naming the page instead of a crash or a slowly spreading
// corruption. It follows bbolt's documented on-disk format (file format
// version 2, native byte order), the same invariants `bbolt check` uses:
//   - a valid meta page with a high-water mark that fits in the file;
//   - every page reachable from the root is inside the file, says its own
//     id, has a known type, is referenced once and is not on the freelist;
//   - elements and keys lie inside their page, packed the way bbolt writes
//     them; keys ascend within a page and stay within the range their
//     parent branch gives them;
//   - the freelist lists only pages below the high-water mark, once each,
//     and every page is either reachable or free;
//   - every value in a backupd bucket carries a valid CRC (see seal).

const (
	boltMagic         = 0xED0CDAED
	boltFormat        = 2
	pageHeaderSize    = 16
	elementSize       = 16
	metaEnd           = pageHeaderSize + 64 // header + meta struct
	metaChecksumAt    = pageHeaderSize + 56 // the checksum covers the meta before it
	flagBranch        = 0x01
	flagLeaf          = 0x02
	flagFreelist      = 0x10
	elemBucket        = 0x01
	bucketHeaderSize  = 16
	noFreelist        = ^uint64(0)
	maxTreeDepth      = 64
	minPageSize       = 1024
	maxPageSize       = 1024 << 14 // bbolt probes page sizes up to 16 MiB
	firstMetaReadSize = 0x1000
)

var native = binary.NativeEndian

// boltMeta is the meta page bbolt would use.
type boltMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// parseMeta validates the meta page at the start of page the way bbolt
// does (magic, format version, FNV-64a checksum).
func parseMeta(page []byte) (boltMeta, error) {
	if len(page) < metaEnd {
		return boltMeta{}, errors.New("meta page cut short")
	}
	m := page[pageHeaderSize:metaEnd]
	switch {
	case native.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, errors.New("invalid database")
	case native.Uint32(m[4:]) != boltFormat:
		return boltMeta{}, errors.New("unsupported bbolt file format version")
	}
	h := fnv.New64a()
	_, _ = h.Write(page[pageHeaderSize:metaChecksumAt])
	if h.Sum64() != native.Uint64(page[metaChecksumAt:]) {
		return boltMeta{}, errors.New("meta page checksum error")
	}
	return boltMeta{
		pageSize: uint64(native.Uint32(m[8:])),
		root:     native.Uint64(m[16:]),
		freelist: native.Uint64(m[32:]),
		pgid:     native.Uint64(m[40:]),
		txid:     native.Uint64(m[48:]),
	}, nil
}

// readAtMost reads up to n bytes at off, fewer at the end of the file.
func readAtMost(r io.ReaderAt, off int64, n int) ([]byte, error) {
	buf := make([]byte, n)
	got, err := r.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read at offset %d: %w", off, err)
	}
	return buf[:got], nil
}

// readMeta finds the meta page bbolt would use (the valid one with the
// highest transaction id) and checks that the file holds every page below
// its high-water mark, so mapping the file can never touch bytes past its
// end. It returns damage, or an I/O error.
func readMeta(r io.ReaderAt, size int64) (boltMeta, error) {
	first, err := readAtMost(r, 0, firstMetaReadSize)
	if err != nil {
		return boltMeta{}, err
	}
	// Page size: from meta 0, else by probing for meta 1 as bbolt does.
	var pageSize uint64
	if m, err := parseMeta(first); err == nil {
		pageSize = m.pageSize
	} else {
		for i := 0; i <= 14 && pageSize == 0; i++ {
			pos := int64(minPageSize) << i
			if pos >= size-minPageSize {
				break
			}
			b, err := readAtMost(r, pos, firstMetaReadSize)
			if err != nil {
				return boltMeta{}, err
			}
			if m, err := parseMeta(b); err == nil {
				pageSize = m.pageSize
			}
		}
	}
	if pageSize == 0 {
		_, err := parseMeta(first)
		return boltMeta{}, damagef("no valid meta page: %v", err)
	}
	if pageSize < minPageSize || pageSize > maxPageSize {
		return boltMeta{}, damagef("meta page gives an impossible page size %d", pageSize)
	}
	second, err := readAtMost(r, int64(pageSize), metaEnd)
	if err != nil {
		return boltMeta{}, err
	}
	m0, err0 := parseMeta(first)
	m1, err1 := parseMeta(second)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return boltMeta{}, damagef("both meta pages are invalid: %v; %v", err0, err1)
	case err1 != nil || (err0 == nil && m0.txid >= m1.txid):
		m = m0
	default:
		m = m1
	}
	switch {
	case m.pageSize != pageSize:
		return boltMeta{}, damagef("meta pages disagree on the page size (%d, %d)", pageSize, m.pageSize)
	case m.pgid < 3 || m.pgid > uint64(size)/pageSize:
		return boltMeta{}, damagef("file is %d bytes but its meta page needs %d pages of %d bytes (truncated?)", size, m.pgid, pageSize)
	case m.root < 2 || m.root >= m.pgid:
		return boltMeta{}, damagef("root page %d is outside the file's %d pages", m.root, m.pgid)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid):
		return boltMeta{}, damagef("freelist page %d is outside the file's %d pages", m.freelist, m.pgid)
	}
	return m, nil
}

// visitFunc receives every plain key/value pair with the names of the
// buckets that hold it (outermost first). Slices are only valid during the
// call.
type visitFunc func(path [][]byte, key, value []byte) error

// page states in checker.seen
const (
	pageUnseen = iota
	pageInUse
	pageFree
)

// checker walks one file. Buffers are kept per tree depth: a page stays
// intact while its subtrees are read into deeper buffers.
type checker struct {
	r     io.ReaderAt
	meta  boltMeta
	seen  []uint8
	bufs  [][]byte
	path  [][]byte
	visit visitFunc
}

// checkFile verifies the bbolt file in r (size bytes) and calls visit for
// every value. It returns damage, an I/O error, or what visit returned.
func checkFile(r io.ReaderAt, size int64, visit visitFunc) error {
	m, err := readMeta(r, size)
	if err != nil {
		return err
	}
	c := &checker{r: r, meta: m, seen: make([]uint8, m.pgid), visit: visit}
	if m.freelist != noFreelist {
		if err := c.checkFreelist(); err != nil {
			return err
		}
	}
	root, err := c.readPage(m.root, 0)
	if err != nil {
		return err
	}
	if err := c.walk(root, m.root, 0, nil, nil); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		for id := uint64(2); id < m.pgid; id++ {
			if c.seen[id] == pageUnseen {
				return damagef("page %d is neither in use nor on the freelist", id)
			}
		}
	}
	return nil
}

// buf returns the buffer of the given depth with length n.
func (c *checker) buf(depth, n int) []byte {
	for len(c.bufs) <= depth {
		c.bufs = append(c.bufs, nil)
	}
	if cap(c.bufs[depth]) < n {
		c.bufs[depth] = make([]byte, n)
	}
	return c.bufs[depth][:n]
}

// readPage reads page id with its overflow pages and marks them in use.
func (c *checker) readPage(id uint64, depth int) ([]byte, error) {
	hwm := c.meta.pgid
	if id < 2 || id >= hwm {
		return nil, damagef("a reference to page %d points outside the file's %d pages", id, hwm)
	}
	ps := int(c.meta.pageSize)
	p := c.buf(depth, ps)
	if err := c.readFull(p, id); err != nil {
		return nil, err
	}
	if got := native.Uint64(p[0:]); got != id {
		return nil, damagef("page %d identifies itself as page %d", id, got)
	}
	overflow := uint64(native.Uint32(p[12:]))
	if overflow >= hwm-id {
		return nil, damagef("page %d claims %d overflow pages, past the file's %d pages", id, overflow, hwm)
	}
	if overflow > 0 {
		p = c.buf(depth, ps*int(overflow+1))
		if err := c.readFull(p, id); err != nil {
			return nil, err
		}
	}
	for i := id; i <= id+overflow; i++ {
		switch c.seen[i] {
		case pageInUse:
			return nil, damagef("page %d is referenced twice", i)
		case pageFree:
			return nil, damagef("page %d is in use and on the freelist", i)
		}
		c.seen[i] = pageInUse
	}
	return p, nil
}

func (c *checker) readFull(p []byte, id uint64) error {
	off := int64(id) * int64(c.meta.pageSize)
	if n, err := c.r.ReadAt(p, off); n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			return damagef("page %d is cut short by the end of the file", id)
		}
		return fmt.Errorf("read page %d: %w", id, err)
	}
	return nil
}

func (c *checker) checkFreelist() error {
	id := c.meta.freelist
	p, err := c.readPage(id, 0)
	if err != nil {
		return err
	}
	if flags := native.Uint16(p[8:]); flags != flagFreelist {
		return damagef("freelist page %d has type %#x", id, flags)
	}
	start, count := uint64(pageHeaderSize), uint64(native.Uint16(p[10:]))
	if count == 0xFFFF { // the real count is the first element
		count = native.Uint64(p[pageHeaderSize:])
		start += 8
	}
	if count > (uint64(len(p))-start)/8 {
		return damagef("freelist page %d claims %d entries, more than it holds", id, count)
	}
	for i := range count {
		free := native.Uint64(p[start+8*i:])
		if free < 2 || free >= c.meta.pgid {
			return damagef("freelist page %d lists page %d, outside the file's %d pages", id, free, c.meta.pgid)
		}
		if c.seen[free] != pageUnseen {
			return damagef("freelist page %d lists page %d twice or lists a page in use", id, free)
		}
		c.seen[free] = pageFree
	}
	return nil
}

// walk checks one branch or leaf page (or an inline bucket's page) whose
// keys must lie in [lo, hi) (nil: unbounded), and everything below it.
// id names the page in messages; depth is its buffer's depth.
func (c *checker) walk(p []byte, id uint64, depth int, lo, hi []byte) error {
	if depth > maxTreeDepth {
		return damagef("page %d: tree deeper than %d levels", id, maxTreeDepth)
	}
	if len(p) < pageHeaderSize {
		return damagef("page %d: inline bucket shorter than a page header", id)
	}
	flags, count := native.Uint16(p[8:]), uint64(native.Uint16(p[10:]))
	if count > (uint64(len(p))-pageHeaderSize)/elementSize {
		return damagef("page %d claims %d elements, more than it holds", id, count)
	}
	// bbolt writes the element array first and then every key (and value)
	// back to back in element order; data must start right after the
	// array, so a changed count or offset cannot hide or invent elements.
	var prev []byte
	data := uint64(pageHeaderSize) + count*elementSize
	for i := range count {
		at := pageHeaderSize + i*elementSize
		e := p[at : at+elementSize]
		var pos, ksize, vsize uint64
		switch flags {
		case flagBranch:
			pos, ksize = uint64(native.Uint32(e[0:])), uint64(native.Uint32(e[4:]))
		case flagLeaf:
			pos, ksize, vsize = uint64(native.Uint32(e[4:])), uint64(native.Uint32(e[8:])), uint64(native.Uint32(e[12:]))
		default:
			return damagef("page %d has unknown type %#x", id, flags)
		}
		if at+pos != data {
			return damagef("page %d element %d: data at offset %d, expected %d", id, i, at+pos, data)
		}
		kv, err := slice(p, data, ksize+vsize)
		if err != nil {
			return damagef("page %d element %d: %v", id, i, err)
		}
		data += ksize + vsize
		key, value := kv[:ksize], kv[ksize:]
		if err := keyInRange(key, prev, lo, hi); err != nil {
			return damagef("page %d element %d: %v", id, i, err)
		}
		prev = key

		if flags == flagBranch {
			next := hi
			if i+1 < count { // the next element's key follows this one
				ne := p[at+elementSize : at+2*elementSize]
				if next, err = slice(p, data, uint64(native.Uint32(ne[4:]))); err != nil {
					return damagef("page %d element %d: %v", id, i+1, err)
				}
			}
			childID := native.Uint64(e[8:])
			child, err := c.readPage(childID, depth+1)
			if err != nil {
				return err
			}
			if err := c.walk(child, childID, depth+1, key, next); err != nil {
				return err
			}
			continue
		}
		switch native.Uint32(e[0:]) {
		case 0:
			if err := c.visit(c.path, key, value); err != nil {
				return err
			}
		case elemBucket:
			if err := c.walkBucket(id, depth, key, value); err != nil {
				return err
			}
		default:
			return damagef("page %d element %d has unknown flags %#x", id, i, native.Uint32(e[0:]))
		}
	}
	if flags == flagBranch && count == 0 {
		return damagef("branch page %d is empty", id)
	}
	return nil
}

// walkBucket checks the bucket stored as value under key on page id.
func (c *checker) walkBucket(id uint64, depth int, key, value []byte) error {
	if len(value) < bucketHeaderSize {
		return damagef("page %d: bucket %q has a %d-byte header", id, key, len(value))
	}
	c.path = append(c.path, key)
	defer func() { c.path = c.path[:len(c.path)-1] }()
	root := native.Uint64(value[0:])
	if root == 0 { // inline bucket: its leaf page follows the header
		inline := value[bucketHeaderSize:]
		if len(inline) >= pageHeaderSize && native.Uint16(inline[8:]) != flagLeaf {
			return damagef("page %d: inline bucket %q is not a leaf", id, key)
		}
		return c.walk(inline, id, depth+1, nil, nil)
	}
	p, err := c.readPage(root, depth+1)
	if err != nil {
		return err
	}
	return c.walk(p, root, depth+1, nil, nil)
}

// slice returns p[off:off+n] or an error if it leaves p.
func slice(p []byte, off, n uint64) ([]byte, error) {
	if off > uint64(len(p)) || n > uint64(len(p))-off {
		return nil, fmt.Errorf("%d bytes at offset %d lie outside the page", n, off)
	}
	return p[off : off+n], nil
}

// keyInRange checks key against its predecessor on the page and the range
// the parent branch gives the page.
func keyInRange(key, prev, lo, hi []byte) error {
	switch {
	case prev != nil && string(key) <= string(prev):
		return fmt.Errorf("key %q does not sort after %q", key, prev)
	case lo != nil && string(key) < string(lo):
		return fmt.Errorf("key %q sorts before its parent's %q", key, lo)
	case hi != nil && string(key) >= string(hi):
		return fmt.Errorf("key %q sorts after its parent's next key %q", key, hi)
	}
	return nil
}
