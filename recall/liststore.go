package recall

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
)

// Scored is one entry of a ranked list: a video id and its score.
type Scored struct {
	ID    string  `json:"id"`
	Score float64 `json:"score"`
}

// ListStore keeps ranked lists of videos under (namespace, key): the one
// storage shape the background jobs produce and the hot, i2i and user-CF
// branches read. Lists are kept ranked by score, highest first (ties keep
// the order they were written in), with at most one entry per video id.
// Readers never see half a list: a list is replaced as a whole.
//
// A returned list is shared with the store: callers must not modify it.
type ListStore interface {
	// Put replaces the list under (namespace, key); an empty list deletes it.
	Put(ctx context.Context, namespace, key string, items []Scored) error
	// Get returns the first n entries of the list (n <= 0: all of it); a
	// missing list is empty, not an error.
	Get(ctx context.Context, namespace, key string, n int) ([]Scored, error)
	// GetMany is Get for several keys in one round trip; the result is
	// aligned with keys.
	GetMany(ctx context.Context, namespace string, keys []string, n int) ([][]Scored, error)
	// ReplaceAll makes lists the namespace's whole content: every key it
	// yields is Put, and keys it does not yield are deleted once every list
	// is written. Each list is replaced atomically; a reader may see some
	// keys already replaced while others are not yet. When it fails part way
	// (a bad list, ctx ended), lists written so far may already be
	// replaced, and no key is deleted.
	ReplaceAll(ctx context.Context, namespace string, lists iter.Seq2[string, []Scored]) error
	// Ping checks the backend is reachable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Namespaces the background jobs write and the branches read.
const (
	hotNamespace    = "hot"
	i2iNamespace    = "i2i"
	userCFNamespace = "usercf"
)

var errBadNamespace = errors.New("recall: list namespace must be non-empty and contain no ':'")

func checkNamespace(namespace string) error {
	if namespace == "" || strings.ContainsRune(namespace, ':') {
		return fmt.Errorf("%w: %q", errBadNamespace, namespace)
	}
	return nil
}

// normalizeScored returns a ranked, deduplicated copy of items, so every
// backend stores (and every reader sees) the same order for the same input.
func normalizeScored(items []Scored) ([]Scored, error) {
	var n scoredNormalizer
	return n.normalize(items)
}

// scoredNormalizer normalizes many lists in a row (ReplaceAll) reusing one
// set for duplicate checks, instead of allocating one per list.
type scoredNormalizer struct {
	seen map[string]struct{}
}

func (n *scoredNormalizer) normalize(items []Scored) ([]Scored, error) {
	if len(items) == 0 {
		return nil, nil
	}
	for i, it := range items {
		if it.ID == "" {
			return nil, fmt.Errorf("recall: list item %d has an empty id", i)
		}
		if math.IsNaN(it.Score) || math.IsInf(it.Score, 0) {
			return nil, fmt.Errorf("recall: list item %d (%q) has a non-finite score", i, it.ID)
		}
	}
	out := slices.Clone(items)
	if !slices.IsSortedFunc(out, compareScoredDesc) {
		slices.SortStableFunc(out, compareScoredDesc)
	}
	if !n.hasDuplicateIDs(out) {
		return out, nil
	}
	if n.seen == nil {
		n.seen = make(map[string]struct{}, len(out))
	} else {
		clear(n.seen)
	}
	kept := out[:0]
	for _, it := range out {
		if _, dup := n.seen[it.ID]; dup {
			continue // the earlier entry has the higher score
		}
		n.seen[it.ID] = struct{}{}
		kept = append(kept, it)
	}
	return kept, nil
}

func compareScoredDesc(a, b Scored) int { return cmp.Compare(b.Score, a.Score) }

// hasDuplicateIDs avoids building a set for the common case, a list a job
// built without duplicates; lists the size of a neighbour list are checked
// pairwise, which is cheaper than hashing every id.
func (n *scoredNormalizer) hasDuplicateIDs(items []Scored) bool {
	if len(items) <= 48 {
		for i := range items {
			for j := i + 1; j < len(items); j++ {
				if items[i].ID == items[j].ID {
					return true
				}
			}
		}
		return false
	}
	if n.seen == nil {
		n.seen = make(map[string]struct{}, len(items))
	} else {
		clear(n.seen)
	}
	for _, it := range items {
		if _, dup := n.seen[it.ID]; dup {
			return true
		}
		n.seen[it.ID] = struct{}{}
	}
	return false
}

// headOf returns the first n entries (n <= 0: all), capped so a caller's
// append cannot write into the stored list.
func headOf(items []Scored, n int) []Scored {
	if n <= 0 || n > len(items) {
		n = len(items)
	}
	return items[:n:n]
}

// MemoryListStore is the in-process ListStore, the default when no Redis is
// configured. Reads never copy.
type MemoryListStore struct {
	mu    sync.RWMutex
	lists map[string]map[string][]Scored
}

// NewMemoryListStore returns an empty in-memory store.
func NewMemoryListStore() *MemoryListStore {
	return &MemoryListStore{lists: map[string]map[string][]Scored{}}
}

func (s *MemoryListStore) Put(ctx context.Context, namespace, key string, items []Scored) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkNamespace(namespace); err != nil {
		return err
	}
	norm, err := normalizeScored(items)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.lists[namespace]
	if len(norm) == 0 {
		delete(ns, key)
		return nil
	}
	if ns == nil {
		ns = map[string][]Scored{}
		s.lists[namespace] = ns
	}
	ns[key] = norm
	return nil
}

func (s *MemoryListStore) Get(ctx context.Context, namespace, key string, n int) ([]Scored, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	s.mu.RLock()
	items := s.lists[namespace][key]
	s.mu.RUnlock()
	return headOf(items, n), nil
}

func (s *MemoryListStore) GetMany(ctx context.Context, namespace string, keys []string, n int) ([][]Scored, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	out := make([][]Scored, len(keys))
	s.mu.RLock()
	ns := s.lists[namespace]
	for i, k := range keys {
		out[i] = headOf(ns[k], n)
	}
	s.mu.RUnlock()
	return out, nil
}

// ReplaceAll builds the new namespace aside and swaps it in, so in memory
// the replacement is atomic as a whole, stronger than the contract asks.
func (s *MemoryListStore) ReplaceAll(ctx context.Context, namespace string, lists iter.Seq2[string, []Scored]) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkNamespace(namespace); err != nil {
		return err
	}
	next := map[string][]Scored{}
	var failed error
	var normalizer scoredNormalizer
	written := 0
	for key, items := range lists {
		if written%1024 == 0 {
			if failed = ctx.Err(); failed != nil {
				break
			}
		}
		written++
		norm, err := normalizer.normalize(items)
		if err != nil {
			failed = fmt.Errorf("list %q: %w", key, err)
			break
		}
		if len(norm) > 0 {
			next[key] = norm
		}
	}
	if failed != nil {
		return failed
	}
	s.mu.Lock()
	s.lists[namespace] = next
	s.mu.Unlock()
	return nil
}

func (s *MemoryListStore) Ping(ctx context.Context) error { return ctx.Err() }

func (s *MemoryListStore) Close() error { return nil }
