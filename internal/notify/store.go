package notify

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/internal/journal"
)

// Delivery is one request waiting to be sent: a webhook's payload or a
// ping. It is what the store keeps, so it never holds the URL (a secret):
// the URL is looked up by Sink in the configuration at each attempt.
type Delivery struct {
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"`   // KindWebhook or KindPing
	Sink   string `json:"sink"`   // the webhook's name, or the ping's policy
	Signal string `json:"signal"` // a webhook's event, or a ping's start | success | fail
	Run    string `json:"run"`
	Body   []byte `json:"body"`
	// Attempts made so far; NextAt is when the next one is due.
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"nextAt"`
	CreatedAt time.Time `json:"createdAt"`
}

// Store keeps the deliveries not yet sent across restarts.
type Store interface {
	// Load returns every stored delivery, oldest (lowest Seq) first.
	Load() ([]Delivery, error)
	// Save writes ds (new or updated) and removes the deliveries whose Seq
	// is in gone, in one durable step.
	Save(ds []Delivery, gone []uint64) error
	Close() error
}

// NewMemoryStore returns a store that keeps nothing across restarts (a
// daemon without state.path).
func NewMemoryStore() Store { return &memStore{m: map[uint64]Delivery{}} }

type memStore struct {
	mu sync.Mutex
	m  map[uint64]Delivery
}

func (s *memStore) Load() ([]Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, 0, len(s.m))
	for _, d := range s.m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Seq < out[k].Seq })
	return out, nil
}

func (s *memStore) Save(ds []Delivery, gone []uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.m[d.Seq] = d
	}
	for _, q := range gone {
		delete(s.m, q)
	}
	return nil
}

func (s *memStore) Close() error { return nil }

var bucketDeliveries = []byte("deliveries")

// StorePath is where the store of a journal at statePath lives: a sibling
// file, so its writes never queue behind (or ahead of) the journal's.
func StorePath(statePath string) string { return statePath + ".notify" }

// boltStore keeps deliveries in their own bbolt file, one key per
// delivery (its Seq, big-endian, so keys sort oldest first).
type boltStore struct {
	db *bolt.DB
}

// OpenStore opens (creating, mode 0600) the bbolt store at path. A file
// that is damaged is moved aside to path+".damaged" and a new one is
// started: pending notifications are not worth refusing to start for,
// and the returned warning says what was lost.
func OpenStore(path string) (Store, string, error) {
	warning := ""
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		if err := journal.CheckBoltFile(path); err != nil {
			var ce *journal.CorruptError
			if !errors.As(err, &ce) {
				return nil, "", fmt.Errorf("checking the notify store: %w", err)
			}
			if err := os.Rename(path, path+".damaged"); err != nil {
				return nil, "", fmt.Errorf("moving the damaged notify store aside: %w", err)
			}
			warning = fmt.Sprintf("the notify store %s was damaged (%v): moved to %s.damaged; its pending notifications are lost", path, err, path)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, "", fmt.Errorf("opening the notify store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketDeliveries)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, "", fmt.Errorf("initialising the notify store %s: %w", path, err)
	}
	return &boltStore{db: db}, warning, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Load skips records it cannot decode (counted in the error it returns
// alongside what it could read): one bad record must not hold back the rest.
func (s *boltStore) Load() ([]Delivery, error) {
	var out []Delivery
	bad := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeliveries).ForEach(func(k, v []byte) error {
			var d Delivery
			if len(k) != 8 || json.Unmarshal(v, &d) != nil || d.Seq != binary.BigEndian.Uint64(k) {
				bad++
				return nil
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the notify store: %w", err)
	}
	if bad > 0 {
		return out, fmt.Errorf("the notify store holds %d records that cannot be read; they are skipped", bad)
	}
	return out, nil
}

func (s *boltStore) Save(ds []Delivery, gone []uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		for _, d := range ds {
			v, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(d.Seq), v); err != nil {
				return err
			}
		}
		for _, q := range gone {
			if err := b.Delete(seqKey(q)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing the notify store: %w", err)
	}
	return nil
}

func (s *boltStore) Close() error { return s.db.Close() }

// LazyStore is the bbolt store at path for a daemon whose configuration
// has no notify: section (yet): it creates no file until there is
// something to keep, so a daemon that never notifies leaves no
// state.db.notify next to its journal, and a reload that adds notify gets
// its store on the first delivery. Load reads a file an earlier run left
// (its deliveries keep their sequence numbers) and creates none. warn
// receives OpenStore's warning about a damaged file.
func LazyStore(path string, warn func(string)) Store {
	return &lazyStore{path: path, warn: warn}
}

type lazyStore struct {
	mu   sync.Mutex
	path string
	warn func(string)
	s    Store // nil until opened
}

// open opens the file store; create says whether it may create the file.
// It reports false (and no error) when the file is absent and create is
// false.
func (l *lazyStore) open(create bool) (bool, error) {
	if l.s != nil {
		return true, nil
	}
	if !create {
		if _, err := os.Stat(l.path); errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
	}
	s, warning, err := OpenStore(l.path)
	if err != nil {
		return false, err
	}
	if warning != "" && l.warn != nil {
		l.warn(warning)
	}
	l.s = s
	return true, nil
}

func (l *lazyStore) Load() ([]Delivery, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, err := l.open(false)
	if !ok {
		return nil, err
	}
	return l.s.Load()
}

func (l *lazyStore) Save(ds []Delivery, gone []uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil && len(ds) == 0 {
		return nil // nothing to keep, and nothing stored to remove
	}
	if _, err := l.open(true); err != nil {
		return err
	}
	return l.s.Save(ds, gone)
}

func (l *lazyStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		return nil
	}
	return l.s.Close()
}
