package atlas

import (
	"errors"
	"fmt"
	"io"
)

// Bounds on what one Atlas answer, and one listing, may hold. Atlas never
// sends this much for these operations (a snapshot is about 1 KiB, a cluster a
// few KiB, a page 500 of them), so more is a broken proxy or a hostile
// endpoint. Reading it would cost the daemon memory it does not have: two
// 100 MB snapshot answers took it to 490 MB before these bounds. An answer
// over its bound fails the call with a *BoundError (see OverBound).
//
// Bytes alone do not bound memory: `{},` is 3 bytes of JSON but a 352-byte
// Snapshot once decoded, so the array elements of an answer are bounded too.
const (
	// MaxObjectBytes bounds the answer of a call that returns one object:
	// a snapshot, export job, restore job, export bucket or cluster.
	MaxObjectBytes = 1 << 20
	// MaxObjectElements bounds the array elements (at any depth) of one
	// object: links, members, snapshot ids, replication specs.
	MaxObjectElements = 10_000
	// MaxPageBytes bounds one page of a list (at most 500 items).
	MaxPageBytes = 8 << 20
	// MaxPageElements bounds the array elements of one page: 500 results
	// with up to 99 nested elements each.
	MaxPageElements = 50_000
	// MaxListingPages bounds the pages of one listing: 50,000 items at 500
	// a page. A server whose "next" never ends stops here.
	MaxListingPages = 100
	// MaxListingBytes bounds all pages of one listing together.
	MaxListingBytes = 16 << 20
	// MaxListingElements bounds the array elements of all pages of one listing.
	MaxListingElements = 100_000
)

// caps are the bounds a Client applies; tests shrink them.
type caps struct {
	objectBytes, pageBytes, listingBytes          int64
	objectElements, pageElements, listingElements int
	listingPages                                  int
}

func defaultCaps() caps {
	return caps{
		objectBytes: MaxObjectBytes, objectElements: MaxObjectElements,
		pageBytes: MaxPageBytes, pageElements: MaxPageElements,
		listingBytes: MaxListingBytes, listingElements: MaxListingElements,
		listingPages: MaxListingPages,
	}
}

// object is the bound of one answer of op that returns a single object.
func (c caps) object(op string) answerBound {
	return answerBound{op: op, bytes: c.objectBytes, elements: c.objectElements}
}

// page is the bound of page n of a listing that has left of its own bound:
// the page's bound, or what the listing has left when that is less.
func (c caps) page(op string, n int, left answerUse) answerBound {
	b := answerBound{op: op, page: n, bytes: c.pageBytes, elements: c.pageElements}
	if left.bytes < b.bytes {
		b.bytes, b.listingBytes = max(left.bytes, 0), c.listingBytes
	}
	if left.elements < b.elements {
		b.elements, b.listingElements = max(left.elements, 0), c.listingElements
	}
	return b
}

// answerBound is what one 2xx answer may hold.
type answerBound struct {
	op       string
	page     int // page number within a listing; 0 for single objects
	bytes    int64
	elements int
	// listingBytes and listingElements are set when the listing's bound,
	// not the page's, is the smaller: the error then names the listing's.
	listingBytes    int64
	listingElements int
}

// answerUse is what an answer took of its bound.
type answerUse struct {
	bytes    int64
	elements int
}

func (b answerBound) overBytes() *BoundError {
	if b.listingBytes > 0 {
		return &BoundError{Operation: b.op, Listing: true, Limit: b.listingBytes, Unit: "bytes", Page: b.page}
	}
	return &BoundError{Operation: b.op, Limit: b.bytes, Unit: "bytes", Page: b.page}
}

func (b answerBound) overElements() *BoundError {
	if b.listingElements > 0 {
		return &BoundError{Operation: b.op, Listing: true, Limit: int64(b.listingElements), Unit: "array elements", Page: b.page}
	}
	return &BoundError{Operation: b.op, Limit: int64(b.elements), Unit: "array elements", Page: b.page}
}

// BoundError reports an Atlas answer, or a listing, larger than the client
// accepts (the Max* constants). The call fails instead of truncating: a cut
// list would look complete to a caller that reconciles by listing.
type BoundError struct {
	Operation string
	Listing   bool   // the bound of a whole listing, not of one answer
	Limit     int64  // the bound that was exceeded
	Unit      string // "bytes", "array elements" or "pages"
	Page      int    // the page being read, for lists; 0 for single objects
	Note      string // what else is known, e.g. which page a "next" link repeats
}

// Error renders e.g. "answer of get_snapshot exceeds 1048576 bytes".
func (e *BoundError) Error() string {
	what := "answer"
	if e.Listing {
		what = "listing"
	}
	msg := fmt.Sprintf("%s of %s exceeds %d %s", what, e.Operation, e.Limit, e.Unit)
	if e.Page > 0 {
		msg += fmt.Sprintf(" (at page %d)", e.Page)
	}
	if e.Note != "" {
		msg += ": " + e.Note
	}
	return msg
}

// OverBound reports whether err comes from an answer or a listing that
// exceeded the client's bounds. Asking again soon will not help; the engine
// treats it as Atlas being unavailable and tries again after its backoff.
func OverBound(err error) bool {
	var b *BoundError
	return errors.As(err, &b)
}

// readAnswer reads body (declared bytes long, -1 if unknown) within b and
// decodes it into out. The body is read through a limit one byte past the
// bound, so no more than the bound is ever held, then its array elements are
// counted before json.Unmarshal allocates for them. (json.Decoder would
// buffer the whole value the same way before decoding it.)
func readAnswer(body io.Reader, declared int64, b answerBound, out any) (answerUse, error) {
	if declared > b.bytes {
		return answerUse{}, b.overBytes()
	}
	data, over, err := readAtMost(body, b.bytes, declared)
	if err != nil {
		return answerUse{}, fmt.Errorf("reading the body: %w", err)
	}
	if over {
		return answerUse{}, b.overBytes()
	}
	n := countElements(data, b.elements)
	if n > b.elements {
		return answerUse{}, b.overElements()
	}
	if err := decodeJSON(data, out); err != nil {
		return answerUse{}, err
	}
	return answerUse{bytes: int64(len(data)), elements: n}, nil
}

// readAtMost reads r to its end, or reports over once it has more than
// limit bytes. Unlike io.ReadAll it starts from the declared length when
// there is one and otherwise doubles its buffer, so what it allocates stays
// under twice the bound (io.ReadAll's smaller steps allocate several times it).
func readAtMost(r io.Reader, limit, declared int64) (data []byte, over bool, err error) {
	size := min(int64(64<<10), limit)
	if declared >= 0 {
		size = min(declared, limit)
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit || int64(len(buf)) == declared {
				// Full: one byte more tells "ends here" from "goes on".
				var one [1]byte
				n, err := io.ReadFull(r, one[:])
				switch {
				case n > 0 && int64(len(buf)) >= limit:
					return nil, true, nil
				case errors.Is(err, io.EOF):
					return buf, false, nil
				case err != nil:
					return nil, false, err
				}
				declared = -1 // it was wrong: go on as if unknown
				buf = append(buf, one[0])
				continue
			}
			next := make([]byte, len(buf), min(max(2*int64(cap(buf)), 512), limit))
			copy(next, buf)
			buf = next
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// countElements counts the array elements of a JSON text at every depth,
// stopping once the count passes limit. It does not validate the text:
// json.Unmarshal does that afterwards; it only has to be right for valid JSON.
func countElements(data []byte, limit int) int {
	var arrays []bool // per open container: is it an array
	n := 0
	first := false // just after '[' or an array's ',': the next value is an element
	inString, escaped := false, false
	for _, ch := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
			continue
		}
		switch ch {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if first && ch != ']' {
			if n++; n > limit {
				return n
			}
		}
		first = false
		switch ch {
		case '"':
			inString = true
		case '[':
			arrays = append(arrays, true)
			first = true
		case '{':
			arrays = append(arrays, false)
		case ']', '}':
			if len(arrays) > 0 {
				arrays = arrays[:len(arrays)-1]
			}
		case ',':
			first = len(arrays) > 0 && arrays[len(arrays)-1]
		}
	}
	return n
}
