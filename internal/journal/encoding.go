package journal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// Keys are built so that byte order is the order History and Summaries
// need: string components are escaped and terminated (0x00 becomes
// 0x00 0xFF, the end is 0x00 0x01), which keeps lexicographic order and
// makes every component prefix unambiguous; times are 12 bytes that sort
// chronologically for any time.Time, including the zero time.

// appendComponent appends s in its order-preserving escaped form.
func appendComponent(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, s[i])
		if s[i] == 0 {
			dst = append(dst, 0xFF)
		}
	}
	return append(dst, 0x00, 0x01)
}

// timeKeyLen is the length of appendTime's output.
const timeKeyLen = 12

// appendTime appends t as big-endian seconds with the sign bit flipped
// (so negative Unix times sort first) followed by big-endian nanoseconds.
func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// parseTimeKey reads appendTime's output at the start of k (at least
// timeKeyLen bytes).
func parseTimeKey(k []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(k[8:]))).UTC()
}

// historyIndex is one ordering of runs: a bucket whose keys are
// prefix(run) + time(CreatedAt) + ID.
type historyIndex struct {
	bucket []byte
	prefix func(policy string, t run.Target) []byte
}

var (
	indexAll = historyIndex{bucket: []byte("history"), prefix: func(string, run.Target) []byte { return nil }}
	indexPol = historyIndex{bucket: []byte("history-by-policy"), prefix: func(p string, _ run.Target) []byte {
		return appendComponent(nil, p)
	}}
	indexTgt = historyIndex{bucket: []byte("history-by-target"), prefix: func(_ string, t run.Target) []byte {
		return appendComponent(appendComponent(nil, t.ProjectID), t.Cluster)
	}}
	indexPolTgt = historyIndex{bucket: []byte("history-by-policy-target"), prefix: func(p string, t run.Target) []byte {
		return targetKey(p, t)
	}}
	historyIndexes = []historyIndex{indexAll, indexPol, indexTgt, indexPolTgt}
)

// key is the index key of r in this index.
func (ix historyIndex) key(r run.Run) []byte {
	k := ix.prefix(r.Policy, r.Target)
	k = appendTime(k, r.CreatedAt)
	return append(k, r.ID...)
}

// indexFor picks the index that answers q with a prefix scan, and the
// prefix to scan.
func indexFor(q Query) (historyIndex, []byte) {
	switch {
	case q.Policy != "" && q.Target != nil:
		return indexPolTgt, indexPolTgt.prefix(q.Policy, *q.Target)
	case q.Policy != "":
		return indexPol, indexPol.prefix(q.Policy, run.Target{})
	case q.Target != nil:
		return indexTgt, indexTgt.prefix("", *q.Target)
	}
	return indexAll, nil
}

// targetKey identifies a (policy, target) pair; summaries are stored under it.
func targetKey(policy string, t run.Target) []byte {
	return appendComponent(appendComponent(appendComponent(nil, policy), t.ProjectID), t.Cluster)
}

// prefixEnd is the smallest key greater than every key starting with
// prefix. Prefixes built by appendComponent end in 0x01, so incrementing
// the last byte never carries.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	end[len(end)-1]++
	return end
}

// Every value backupd stores starts with a CRC-32C of the key and the
// payload. bbolt checksums only its meta pages; this makes a flipped bit
// in a record, an index entry or a key detectable when the journal is
// opened, instead of being read back as a plausible wrong run.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const crcLen = 4

func checksum(key, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, payload)
}

// seal returns the stored form of payload under key.
func seal(key, payload []byte) []byte {
	v := make([]byte, crcLen, crcLen+len(payload))
	binary.BigEndian.PutUint32(v, checksum(key, payload))
	return append(v, payload...)
}

// unseal checks a stored value and returns its payload (aliasing v).
func unseal(bucket, key, v []byte) ([]byte, error) {
	if len(v) < crcLen {
		return nil, damagef("%s entry %q: value of %d bytes is too short for its checksum", bucket, key, len(v))
	}
	payload := v[crcLen:]
	if binary.BigEndian.Uint32(v) != checksum(key, payload) {
		return nil, damagef("%s entry %q: checksum mismatch", bucket, key)
	}
	return payload, nil
}
