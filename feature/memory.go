package feature

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"reelfeed/event"
)

// memoryShards spreads videos over independent locks; a power of two so the
// shard is a mask of the hash.
const memoryShards = 64

// Memory is the in-process Store: videos sharded by id hash, each shard
// behind its own mutex. Reads are memoised per video for the reader's
// current minute and kept up to date by writes, so a Get of hundreds of ids
// is a lock per shard, then a map lookup and a copy per id.
type Memory struct {
	// Videos are keyed by a 128-bit hash of their id: seed gives the shard
	// and map key, checkSeed a second, independent 64 bits kept in the
	// entry (videos sharing a map key are chained). Comparing hashes
	// instead of strings saves a cache miss per lookup; the chance of two
	// ids colliding on all 128 bits (about n²/2^129 for n videos) is far
	// below that of a memory error.
	seed, checkSeed maphash.Seed
	now             func() time.Time // clock for dedupe expiry; events carry their own time
	shards          [memoryShards]memoryShard
}

type memoryShard struct {
	mu     sync.Mutex
	videos map[uint64]*memoryVideo // by maphash of the id under Memory.seed
	dedupe dedupeSet
	_      [64]byte // keeps neighbouring shards' locks off one cache line
}

// memoryVideo is a video's series plus its window sums for the minute they
// were last read at.
type memoryVideo struct {
	// What a read touches comes first and together, ending with series.life.
	check    uint64       // maphash of the id under Memory.checkSeed
	collided *memoryVideo // another video with the same map key, if any
	memoOK   bool
	memoMin  int64
	memoHour event.Counts
	memoDay  event.Counts
	series
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store. A DedupeTTL <= 0 means the
// default; CacheTTL does not apply (reads are always current).
func NewMemory(cfg Config) *Memory {
	cfg = normalize(cfg)
	m := &Memory{seed: maphash.MakeSeed(), checkSeed: maphash.MakeSeed(), now: time.Now}
	for i := range m.shards {
		m.shards[i].videos = make(map[uint64]*memoryVideo)
		m.shards[i].dedupe = newDedupeSet(cfg.DedupeTTL)
	}
	return m
}

func normalize(cfg Config) Config {
	if cfg.DedupeTTL <= 0 {
		cfg.DedupeTTL = DefaultConfig().DedupeTTL
	}
	if cfg.CacheTTL < 0 {
		cfg.CacheTTL = 0
	}
	return cfg
}

// key returns the video's map key (its low bits pick the shard) and check.
func (m *Memory) key(videoID string) (key, check uint64) {
	return maphash.String(m.seed, videoID), maphash.String(m.checkSeed, videoID)
}

func (m *Memory) shard(key uint64) *memoryShard {
	return &m.shards[key&(memoryShards-1)]
}

// Apply counts each event not applied before. An invalid event (no id, no
// video, unknown type) fails the whole batch before anything is applied.
func (m *Memory) Apply(ctx context.Context, events []event.Event) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validate(events); err != nil {
		return 0, err
	}
	now := m.now()
	applied := 0
	for i := range events {
		e := &events[i]
		applyKey := dedupeKey(e.VideoID, e.ID)
		minute := minuteOf(e.TS)
		key, check := m.key(e.VideoID)
		sh := m.shard(key)
		sh.mu.Lock()
		if sh.dedupe.markNew(applyKey, now) {
			v := sh.videos[key].find(check)
			if v == nil {
				v = &memoryVideo{check: check, collided: sh.videos[key]}
				sh.videos[key] = v
			}
			v.add(minute, e.Type)
			applied++
		}
		sh.mu.Unlock()
	}
	return applied, nil
}

// find returns the video with the given check among v and the videos
// sharing its map key (almost never more than v itself).
func (v *memoryVideo) find(check uint64) *memoryVideo {
	for v != nil && v.check != check {
		v = v.collided
	}
	return v
}

func (v *memoryVideo) add(minute int64, t event.Type) {
	a := v.series.add(minute, t)
	switch {
	case !v.memoOK:
	case a.advanced:
		v.memoOK = false
	default:
		if a.minute && minute >= v.memoMin-(hourWindowMinutes-1) {
			v.memoHour[t]++
		}
		if a.hour && hourOfMinute(minute) >= hourOfMinute(v.memoMin)-(dayWindowHours-1) {
			v.memoDay[t]++
		}
	}
}

func (v *memoryVideo) read(nowMinute int64, dst *Stats) {
	if !v.memoOK || v.memoMin != nowMinute {
		v.memoHour, v.memoDay = v.windows(nowMinute)
		v.memoMin, v.memoOK = nowMinute, true
	}
	dst.Hour, dst.Day, dst.Lifetime = v.memoHour, v.memoDay, v.life
}

// getStackIDs is the request size whose bookkeeping needs no heap.
const getStackIDs = 512

// Get appends stats for each id in order; unknown videos get zero
// counters. Ids are grouped by shard so each shard is locked once: a lock
// is a full memory fence, and between fences the lookups' cache misses
// overlap.
func (m *Memory) Get(ctx context.Context, dst []Stats, videoIDs []string, now time.Time) ([]Stats, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	nowMinute := minuteOf(now)
	all := slices.Grow(dst, len(videoIDs))[:len(dst)+len(videoIDs)]
	out := all[len(dst):]
	clear(out)

	var keyBuf, checkBuf [getStackIDs]uint64
	var orderBuf [getStackIDs]int32
	var foundBuf [getStackIDs]*memoryVideo
	keys, checks, order, found := keyBuf[:0], checkBuf[:0], orderBuf[:0], foundBuf[:0]
	if n := len(videoIDs); n > getStackIDs {
		keys, checks, order, found = make([]uint64, 0, n), make([]uint64, 0, n), make([]int32, 0, n), make([]*memoryVideo, 0, n)
	}
	keys, checks, order, found = keys[:len(videoIDs)], checks[:len(videoIDs)], order[:len(videoIDs)], found[:len(videoIDs)]

	// Counting sort of the ids by shard.
	var next [memoryShards + 1]int32
	for i, id := range videoIDs {
		out[i].VideoID = id
		keys[i], checks[i] = m.key(id)
		next[keys[i]&(memoryShards-1)+1]++
	}
	for s := 1; s <= memoryShards; s++ {
		next[s] += next[s-1]
	}
	for i, k := range keys {
		s := k & (memoryShards - 1)
		order[next[s]] = int32(i)
		next[s]++
	}
	// next[s] is now the end of shard s's run, and the start of s+1's.
	start := int32(0)
	for s := range m.shards {
		end := next[s]
		if start == end {
			continue
		}
		sh := &m.shards[s]
		run, runFound := order[start:end], found[start:end]
		sh.mu.Lock()
		// Look everything up first, then copy: each loop is short enough
		// for the CPU to overlap many of its cache misses.
		for k, i := range run {
			runFound[k] = sh.videos[keys[i]]
		}
		for k, i := range run {
			if v := runFound[k].find(checks[i]); v != nil {
				v.read(nowMinute, &out[i])
			}
		}
		sh.mu.Unlock()
		start = end
	}
	return all, nil
}

// Ping always succeeds: there is nothing to reach.
func (m *Memory) Ping(ctx context.Context) error { return ctx.Err() }

// Close is a no-op; the store stays usable.
func (m *Memory) Close() error { return nil }
