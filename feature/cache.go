package feature

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"reelfeed/event"
)

const (
	cacheShards = 64
	// defaultCacheEntries bounds the Redis backend's cache: a few feed
	// requests' worth of candidates per second is far below it.
	defaultCacheEntries = 100_000
	// cacheEvictDivisor: a full shard with nothing expired drops this
	// fraction of its entries at once, so inserts into a full cache do not
	// each pay for a scan.
	cacheEvictDivisor = 8
)

// statsCache holds recently fetched series in front of Redis. Entries are
// immutable once stored, so readers share them without copying the series.
type statsCache struct {
	ttl      time.Duration
	perShard int
	seed     maphash.Seed
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
	_       [64]byte // keeps neighbouring shards' locks off one cache line
}

// cacheEntry is a fetched series plus its window sums for the minute it was
// fetched in, which is the minute nearly every read within the TTL asks for.
type cacheEntry struct {
	fetched   time.Time
	series    *series
	minute    int64
	hour, day event.Counts
}

func newStatsCache(ttl time.Duration, entries int) *statsCache {
	c := &statsCache{ttl: ttl, perShard: max(entries/cacheShards, 1), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]*cacheEntry)
	}
	return c
}

func (c *statsCache) shard(id string) *cacheShard {
	return &c.shards[maphash.String(c.seed, id)&(cacheShards-1)]
}

// get fills dst's counters from a fresh entry for id and reports whether
// there was one.
func (c *statsCache) get(id string, now time.Time, nowMinute int64, dst *Stats) bool {
	sh := c.shard(id)
	sh.mu.Lock()
	e := sh.entries[id]
	sh.mu.Unlock()
	if e == nil || now.Sub(e.fetched) >= c.ttl {
		return false
	}
	if e.minute == nowMinute {
		dst.Hour, dst.Day = e.hour, e.day
	} else {
		dst.Hour, dst.Day = e.series.windows(nowMinute)
	}
	dst.Lifetime = e.series.life
	return true
}

func (c *statsCache) put(id string, e *cacheEntry) {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.entries[id]; ok {
		if !old.fetched.After(e.fetched) {
			sh.entries[id] = e
		}
		return
	}
	if len(sh.entries) >= c.perShard {
		c.evict(sh, e.fetched)
	}
	sh.entries[strings.Clone(id)] = e
}

// evict makes room in a full shard: expired entries first, else an
// arbitrary slice of live ones (map order is unspecified, close to random).
func (c *statsCache) evict(sh *cacheShard, now time.Time) {
	for id, e := range sh.entries {
		if now.Sub(e.fetched) >= c.ttl {
			delete(sh.entries, id)
		}
	}
	if len(sh.entries) < c.perShard {
		return
	}
	drop := len(sh.entries) - c.perShard + max(c.perShard/cacheEvictDivisor, 1)
	for id := range sh.entries {
		if drop <= 0 {
			break
		}
		delete(sh.entries, id)
		drop--
	}
}

func (c *statsCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

func (c *statsCache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		sh.mu.Unlock()
	}
}
