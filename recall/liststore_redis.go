package recall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisListStore is the ListStore replicas share. Each list is one packed
// string value written with a single SET, so a reader gets the old list or
// the new one, never a mix, and it works unchanged on Redis Cluster. A set
// per namespace indexes the keys, so ReplaceAll can delete lists a job no
// longer produces.
//
// Reads go through a small in-process cache with a short TTL: the hot list
// is read on every feed request, and a list a little stale is fine for
// recall. When Redis fails, an expired cached list is served rather than
// nothing.
type RedisListStore struct {
	client redis.UniversalClient
	prefix string
	cache  *listCache // nil: every read goes to Redis
}

// Writes are pipelined in batches this size: large enough to amortise round
// trips, small enough not to hold a big reply buffer.
const listStorePipelineBatch = 512

// NewRedisListStore returns a store keeping lists under keys starting with
// prefix; cacheTTL <= 0 disables the read cache. The client stays the
// caller's: Close does not close it.
func NewRedisListStore(client redis.UniversalClient, prefix string, cacheTTL time.Duration) *RedisListStore {
	s := &RedisListStore{client: client, prefix: prefix}
	if cacheTTL > 0 {
		s.cache = newListCache(cacheTTL)
	}
	return s
}

func (s *RedisListStore) listKey(namespace, key string) string {
	return s.prefix + "list:" + namespace + ":" + key
}

func (s *RedisListStore) indexKey(namespace string) string {
	return s.prefix + "listidx:" + namespace
}

func (s *RedisListStore) Put(ctx context.Context, namespace, key string, items []Scored) error {
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
	pipe := s.client.Pipeline()
	if len(norm) == 0 {
		pipe.Del(ctx, s.listKey(namespace, key))
		pipe.SRem(ctx, s.indexKey(namespace), key)
	} else {
		// Index first: an index entry without a list is harmless, a list
		// missing from the index would never be swept.
		pipe.SAdd(ctx, s.indexKey(namespace), key)
		pipe.Set(ctx, s.listKey(namespace, key), encodeScored(norm), 0)
	}
	_, err = pipe.Exec(ctx)
	if s.cache != nil {
		s.cache.invalidate(listCacheKey{namespace, key})
	}
	if err != nil {
		return fmt.Errorf("recall: put list %s/%s: %w", namespace, key, err)
	}
	return nil
}

func (s *RedisListStore) Get(ctx context.Context, namespace, key string, n int) ([]Scored, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	ck := listCacheKey{namespace, key}
	var gen uint64
	if s.cache != nil {
		var items []Scored
		var fresh bool
		items, fresh, gen = s.cache.lookup(ck, time.Now())
		if fresh {
			return headOf(items, n), nil
		}
	}
	val, err := s.client.Get(ctx, s.listKey(namespace, key)).Result()
	items, err := s.decodeReply(ctx, ck, gen, val, err)
	if err != nil {
		return nil, err
	}
	return headOf(items, n), nil
}

// decodeReply turns one GET reply into a list, caching it, or falls back to
// a stale cached copy when Redis failed.
func (s *RedisListStore) decodeReply(ctx context.Context, ck listCacheKey, gen uint64, val string, err error) ([]Scored, error) {
	var items []Scored
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		if s.cache != nil && ctx.Err() == nil {
			if stale, ok := s.cache.stale(ck); ok {
				return stale, nil
			}
		}
		return nil, fmt.Errorf("recall: get list %s/%s: %w", ck.namespace, ck.key, err)
	default:
		if items, err = decodeScored(val); err != nil {
			return nil, fmt.Errorf("recall: list %s/%s: %w", ck.namespace, ck.key, err)
		}
	}
	if s.cache != nil {
		s.cache.store(ck, items, gen, time.Now())
	}
	return items, nil
}

func (s *RedisListStore) GetMany(ctx context.Context, namespace string, keys []string, n int) ([][]Scored, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	out := make([][]Scored, len(keys))
	misses := make([]int, 0, len(keys))
	gens := make([]uint64, len(keys))
	now := time.Now()
	for i, k := range keys {
		if s.cache != nil {
			items, fresh, gen := s.cache.lookup(listCacheKey{namespace, k}, now)
			if fresh {
				out[i] = headOf(items, n)
				continue
			}
			gens[i] = gen
		}
		misses = append(misses, i)
	}
	if len(misses) == 0 {
		return out, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(misses))
	for j, i := range misses {
		cmds[j] = pipe.Get(ctx, s.listKey(namespace, keys[i]))
	}
	// Exec reports the first failed command, and a missing key (redis.Nil)
	// counts as one; each reply is judged on its own below.
	_, _ = pipe.Exec(ctx)
	for j, i := range misses {
		val, err := cmds[j].Result()
		items, err := s.decodeReply(ctx, listCacheKey{namespace, keys[i]}, gens[i], val, err)
		if err != nil {
			return nil, err
		}
		out[i] = headOf(items, n)
	}
	return out, nil
}

func (s *RedisListStore) ReplaceAll(ctx context.Context, namespace string, lists iter.Seq2[string, []Scored]) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkNamespace(namespace); err != nil {
		return err
	}
	if s.cache != nil {
		defer s.cache.invalidateNamespace(namespace)
	}
	indexKey := s.indexKey(namespace)
	written := map[string]struct{}{}
	pipe := s.client.Pipeline()
	flush := func() error {
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	var failed error
	var normalizer scoredNormalizer
	for key, items := range lists {
		norm, err := normalizer.normalize(items)
		if err != nil {
			failed = fmt.Errorf("list %q: %w", key, err)
			break
		}
		if len(norm) == 0 {
			continue // not in written: swept below like any key no longer produced
		}
		written[key] = struct{}{}
		pipe.SAdd(ctx, indexKey, key)
		pipe.Set(ctx, s.listKey(namespace, key), encodeScored(norm), 0)
		if pipe.Len() >= 2*listStorePipelineBatch {
			if failed = flush(); failed != nil {
				break
			}
		}
	}
	if failed == nil {
		failed = flush()
	}
	if failed != nil {
		return fmt.Errorf("recall: replace lists %s: %w", namespace, failed)
	}

	var stale []string
	it := s.client.SScan(ctx, indexKey, 0, "", 1000).Iterator()
	for it.Next(ctx) {
		if _, ok := written[it.Val()]; !ok {
			stale = append(stale, it.Val())
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("recall: replace lists %s: scan index: %w", namespace, err)
	}
	for start := 0; start < len(stale); start += listStorePipelineBatch {
		batch := stale[start:min(start+listStorePipelineBatch, len(stale))]
		for _, key := range batch {
			pipe.Del(ctx, s.listKey(namespace, key))
		}
		members := make([]any, len(batch))
		for i, key := range batch {
			members[i] = key
		}
		pipe.SRem(ctx, indexKey, members...)
		if err := flush(); err != nil {
			return fmt.Errorf("recall: replace lists %s: delete stale: %w", namespace, err)
		}
	}
	return nil
}

func (s *RedisListStore) Ping(ctx context.Context) error {
	return s.client.Ping(ctx).Err()
}

// Close drops the read cache; the Redis client belongs to the caller.
func (s *RedisListStore) Close() error {
	if s.cache != nil {
		s.cache.clear()
	}
	return nil
}

// listFormatV1 tags the packed encoding: uvarint count, then per entry
// uvarint id length, id bytes, float64 score bits little endian.
const listFormatV1 byte = 1

func encodeScored(items []Scored) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, it := range items {
		size += binary.MaxVarintLen64 + len(it.ID) + 8
	}
	buf := make([]byte, 0, size)
	buf = append(buf, listFormatV1)
	buf = binary.AppendUvarint(buf, uint64(len(items)))
	for _, it := range items {
		buf = binary.AppendUvarint(buf, uint64(len(it.ID)))
		buf = append(buf, it.ID...)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(it.Score))
	}
	return buf
}

var errCorruptList = errors.New("corrupt packed list")

// decodeScored parses a packed list. Ids are substrings of s, so a whole
// list costs two allocations however long it is.
func decodeScored(s string) ([]Scored, error) {
	if len(s) == 0 || s[0] != listFormatV1 {
		return nil, errCorruptList
	}
	n, off, ok := stringUvarint(s, 1)
	// Every entry takes at least 9 bytes: refuse counts the value cannot hold
	// before allocating for them.
	if !ok || n > uint64(len(s)-off)/9 {
		return nil, errCorruptList
	}
	out := make([]Scored, n)
	for i := range out {
		var idLen uint64
		idLen, off, ok = stringUvarint(s, off)
		if !ok || idLen > uint64(len(s)-off) || len(s)-off-int(idLen) < 8 {
			return nil, errCorruptList
		}
		out[i].ID = s[off : off+int(idLen)]
		off += int(idLen)
		out[i].Score = math.Float64frombits(stringUint64LE(s, off))
		off += 8
	}
	if off != len(s) {
		return nil, errCorruptList
	}
	return out, nil
}

func stringUvarint(s string, off int) (v uint64, next int, ok bool) {
	var shift uint
	for i := off; i < len(s) && i-off < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			return v | uint64(b)<<shift, i + 1, true
		}
		v |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, off, false
}

func stringUint64LE(s string, off int) uint64 {
	_ = s[off+7]
	return uint64(s[off]) | uint64(s[off+1])<<8 | uint64(s[off+2])<<16 | uint64(s[off+3])<<24 |
		uint64(s[off+4])<<32 | uint64(s[off+5])<<40 | uint64(s[off+6])<<48 | uint64(s[off+7])<<56
}

// listCacheMaxEntries bounds the read cache: the hot lists and the i2i
// neighbour lists of the videos being watched right now fit many times over,
// while a scan over every user's user-CF list cannot grow it without bound.
const listCacheMaxEntries = 1 << 16

type listCacheKey struct{ namespace, key string }

type listCacheEntry struct {
	items   []Scored
	expires time.Time
}

type listCache struct {
	ttl     time.Duration
	mu      sync.RWMutex
	entries map[listCacheKey]listCacheEntry
	// gen changes on every invalidation, so a read that raced a write does
	// not cache the list it read before the write.
	gen uint64
}

func newListCache(ttl time.Duration) *listCache {
	return &listCache{ttl: ttl, entries: map[listCacheKey]listCacheEntry{}}
}

func (c *listCache) lookup(k listCacheKey, now time.Time) (items []Scored, fresh bool, gen uint64) {
	c.mu.RLock()
	e, ok := c.entries[k]
	gen = c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.items, true, gen
	}
	return nil, false, gen
}

func (c *listCache) stale(k listCacheKey) ([]Scored, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	return e.items, ok
}

func (c *listCache) store(k listCacheKey, items []Scored, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= listCacheMaxEntries {
		c.evictLocked(now)
	}
	c.entries[k] = listCacheEntry{items: items, expires: now.Add(c.ttl)}
}

// evictLocked drops expired entries, then, if that was not enough, about
// half of the rest (map order is random, so the choice is too).
func (c *listCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < listCacheMaxEntries*3/4 {
		return
	}
	drop := true
	for k := range c.entries {
		if drop {
			delete(c.entries, k)
		}
		drop = !drop
	}
}

func (c *listCache) invalidate(k listCacheKey) {
	c.mu.Lock()
	delete(c.entries, k)
	c.gen++
	c.mu.Unlock()
}

func (c *listCache) invalidateNamespace(namespace string) {
	c.mu.Lock()
	for k := range c.entries {
		if k.namespace == namespace {
			delete(c.entries, k)
		}
	}
	c.gen++
	c.mu.Unlock()
}

func (c *listCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.gen++
	c.mu.Unlock()
}
