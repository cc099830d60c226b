package profile

import (
	"hash/maphash"
	"strings"
	"sync"
)

// symbols maps the 64-bit hashes the memory store keys on back to the
// strings (tags, categories, uploaders, video ids). Keying every user's maps
// by a hash keeps each key one word, shares one copy of each string across
// all users, and lets Apply touch this table only when a user meets a key
// for the first time. Hashes are seeded per store; two distinct strings
// colliding (odds ~n²/2⁶⁵, 1e-8 for a million strings) would share an entry.
// The table grows with the distinct strings ever seen — the catalog's
// vocabulary, not the event stream.
type symbols struct {
	seed  maphash.Seed
	mu    sync.RWMutex
	names map[uint64]string
}

func newSymbols() *symbols {
	return &symbols{seed: maphash.MakeSeed(), names: make(map[uint64]string)}
}

func (s *symbols) hash(name string) uint64 { return maphash.String(s.seed, name) }

// register records name under h, its hash, unless already known.
func (s *symbols) register(h uint64, name string) {
	s.mu.RLock()
	_, ok := s.names[h]
	s.mu.RUnlock()
	if ok {
		return
	}
	s.mu.Lock()
	if _, ok := s.names[h]; !ok {
		s.names[h] = strings.Clone(name) // do not pin the decoded event's buffer
	}
	s.mu.Unlock()
}

// resolver returns a name lookup valid until release is called; it holds
// the read lock so a Get resolves all its keys with one lock round trip.
func (s *symbols) resolver() (name func(uint64) string, release func()) {
	s.mu.RLock()
	return func(h uint64) string { return s.names[h] }, s.mu.RUnlock
}
