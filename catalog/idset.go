package catalog

import "github.com/cespare/xxhash/v2"

// IDKey is the 64-bit hash the hot path uses in place of a video id: a
// per-request membership test on it reads neither the id's bytes nor a
// shared map, each of which costs a cache miss per candidate. Two ids
// sharing a key (odds about n·m/2⁶⁴ for a set of n checked m times) would
// be treated as one.
func IDKey(id string) uint64 {
	if k := xxhash.Sum64String(id); k != 0 {
		return k
	}
	return 1 // 0 marks an empty IDSet slot
}

// Key returns IDKey(v.ID), computed once when the video was normalised or
// indexed.
func (v *Video) Key() uint64 {
	if v.key != 0 {
		return v.key
	}
	return IDKey(v.ID)
}

// IDSet is a set of video keys (IDKey) for one request: open addressing
// in a flat table, so a lookup is a few probes in memory the request
// already touched. The zero value is an empty set; Reset keeps the table
// for reuse.
type IDSet struct {
	slots []uint64 // 0: empty; length a power of two, at most half full
	n     int
}

// Reset empties the set and sizes it for about n keys.
func (s *IDSet) Reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if cap(s.slots) >= size && cap(s.slots) <= 4*size {
		s.slots = s.slots[:size]
		clear(s.slots)
	} else {
		s.slots = make([]uint64, size)
	}
	s.n = 0
}

// Len is the number of keys in the set.
func (s *IDSet) Len() int { return s.n }

// Add inserts key (an IDKey, never 0).
func (s *IDSet) Add(key uint64) {
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case key:
			return
		case 0:
			s.slots[i] = key
			s.n++
			return
		}
	}
}

// Has reports whether key is in the set.
func (s *IDSet) Has(key uint64) bool {
	if s.n == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case key:
			return true
		case 0:
			return false
		}
	}
}

// HasVideo reports whether v's key is in the set.
func (s *IDSet) HasVideo(v *Video) bool { return s.Has(v.Key()) }

func (s *IDSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(16, 2*len(old)))
	s.n = 0
	for _, k := range old {
		if k != 0 {
			s.Add(k)
		}
	}
}
