package profile

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"reelfeed/event"
)

// memShards spreads users over independently locked shards so the ingest
// consumer and many concurrent feed reads rarely wait on each other.
const memShards = 64

// pruneChunk is how many users Prune handles per lock acquisition, so the
// long-term job never stalls reads on a shard for long.
const pruneChunk = 256

// Memory is the in-process Store: the embedded single-binary default.
type Memory struct {
	cfg     Config
	decay   decay
	symbols *symbols
	shards  [memShards]memShard
}

type memShard struct {
	mu    sync.RWMutex
	users map[string]*memUser
	_     [64 - 32]byte // keep neighbouring shards' locks off one cache line
}

type memUser struct {
	counts event.Counts
	last   int64 // unix ms of the latest event; valid when counts.Total() > 0
	// Keys are symbol hashes (see symbols).
	interests [numKinds]map[uint64]interest
	played    map[uint64]int64
	positive  map[uint64]int64
	shown     map[uint64]int64
	// seen maps an applied event id's hash to the user's event clock when it
	// was applied (the latest event time seen by then), so its age does not
	// depend on arrival order or on the wall clock.
	seen map[uint64]int64
}

// NewMemory returns an empty in-memory store. Unset Config fields take their
// DefaultConfig values.
func NewMemory(cfg Config) *Memory {
	cfg = cfg.withDefaults()
	m := &Memory{cfg: cfg, decay: newDecay(cfg), symbols: newSymbols()}
	for i := range m.shards {
		m.shards[i].users = make(map[string]*memUser)
	}
	return m
}

func (m *Memory) shard(userID string) *memShard {
	return &m.shards[idHash(userID)%memShards]
}

// Apply applies events in order; each event and its dedupe mark are applied
// under the user's shard lock, so readers never see half an event.
func (m *Memory) Apply(ctx context.Context, events []event.Event) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validate(events); err != nil {
		return 0, err
	}
	applied := 0
	for i := range events {
		e := &events[i]
		sh := m.shard(e.UserID)
		sh.mu.Lock()
		u := sh.users[e.UserID]
		if u == nil {
			u = &memUser{}
			sh.users[e.UserID] = u
		}
		if m.applyOne(u, e) {
			applied++
		}
		sh.mu.Unlock()
	}
	return applied, nil
}

func (m *Memory) applyOne(u *memUser, e *event.Event) bool {
	id := idHash(e.ID)
	if _, dup := u.seen[id]; dup {
		return false
	}
	ts := e.TS.UnixMilli()
	if u.counts.Total() == 0 || ts > u.last {
		u.last = ts
	}
	u.seen = putTimed(u.seen, id, u.last, maxDedupeMarks, m.hashName)
	u.counts[e.Type]++

	if w := m.cfg.Weights[e.Type]; w != 0 {
		eachInterestKey(e, func(kind int, key string) {
			u.interests[kind] = m.addInterest(u.interests[kind], key, w, ts)
		})
	}
	if e.VideoID == "" {
		return true
	}
	sets := setsOf(e.Type)
	if sets == 0 {
		return true
	}
	video := m.symbols.hash(e.VideoID)
	put := func(set map[uint64]int64, limit int) map[uint64]int64 {
		if _, known := set[video]; !known {
			m.symbols.register(video, e.VideoID)
		}
		return putTimed(set, video, ts, limit, m.symbolName)
	}
	if sets&setPlayed != 0 {
		u.played = put(u.played, m.cfg.MaxPlayed)
	}
	if sets&setPositive != 0 {
		u.positive = put(u.positive, m.cfg.MaxPlayed)
	}
	if sets&setShown != 0 {
		u.shown = put(u.shown, m.cfg.MaxShown)
	}
	return true
}

func (m *Memory) addInterest(in map[uint64]interest, name string, w float64, ts int64) map[uint64]interest {
	if in == nil {
		in = make(map[uint64]interest, 4)
	}
	key := m.symbols.hash(name)
	cur, ok := in[key]
	if !ok {
		m.symbols.register(key, name)
	}
	in[key] = m.decay.merge(cur, ok, w, ts)
	limit := m.cfg.MaxInterests
	if len(in) > limit+slack(limit) {
		for _, k := range weakest(m.decay, maps.All(in), m.symbolName, len(in), limit) {
			delete(in, k)
		}
	}
	return in
}

// putTimed records key at time at (keeping the later time of a repeat) and
// trims the set to its limit newest entries once it overshoots by the slack.
func putTimed[K comparable](set map[K]int64, key K, at int64, limit int, name func(K) string) map[K]int64 {
	if set == nil {
		set = make(map[K]int64, 4)
	}
	if old, ok := set[key]; !ok || at > old {
		set[key] = at
	}
	if len(set) > limit+slack(limit) {
		for _, k := range oldest(set, limit, name) {
			delete(set, k)
		}
	}
	return set
}

// symbolName resolves a key for eviction tie-breaks, which are rare enough
// that taking the lock per name costs nothing.
func (m *Memory) symbolName(h uint64) string {
	name, release := m.symbols.resolver()
	defer release()
	return name(h)
}

func (m *Memory) hashName(h uint64) string { return strconv.FormatUint(h, 16) }

// Get returns the user's profile decayed to now.
func (m *Memory) Get(ctx context.Context, userID string, now time.Time) (*Profile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nowMs := now.UnixMilli()
	sh := m.shard(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[userID]
	if u == nil {
		return newProfile(userID), nil
	}
	var sizes [numKinds]int
	for kind, in := range u.interests {
		sizes[kind] = min(len(in), m.cfg.MaxInterests)
	}
	p := sizedProfile(userID, sizes, min(len(u.played), m.cfg.MaxPlayed),
		min(len(u.positive), m.cfg.MaxPlayed), min(len(u.shown), m.cfg.MaxShown))
	p.Counts = u.counts
	if u.counts.Total() > 0 {
		p.LastEvent = fromMillis(u.last)
	}
	name, release := m.symbols.resolver()
	defer release()
	short, long := p.ShortTerm.kindMaps(), p.LongTerm.kindMaps()
	for kind, in := range u.interests {
		entries := func(yield func(string, interest) bool) {
			for h, c := range in {
				if !yield(name(h), c) {
					return
				}
			}
		}
		m.decay.read(entries, nowMs, m.cfg.MaxInterests, short[kind], long[kind])
	}
	readTimed(p.Played, u.played, name, nowMs-m.cfg.PlayedTTL.Milliseconds(), m.cfg.MaxPlayed)
	readTimed(p.Positive, u.positive, name, nowMs-m.cfg.PlayedTTL.Milliseconds(), m.cfg.MaxPlayed)
	readTimed(p.Shown, u.shown, name, nowMs-m.cfg.ShownTTL.Milliseconds(), m.cfg.MaxShown)
	return p, nil
}

// readTimed copies the limit newest entries of set that are not older than
// since into dst.
func readTimed(dst map[string]time.Time, set map[uint64]int64, name func(uint64) string, since int64, limit int) {
	for h, at := range set {
		if at >= since {
			dst[name(h)] = fromMillis(at)
		}
	}
	if len(set) > limit {
		for _, h := range oldest(set, limit, name) {
			delete(dst, name(h))
		}
	}
}

// Prune deletes what no read at or after now can show: interests decayed
// below the floor or out of the long window, set entries past their TTL,
// dedupe marks older than DedupeTTL, and users with no event for the whole
// retention (the longest window or TTL). It returns the users visited.
func (m *Memory) Prune(ctx context.Context, now time.Time) (int, error) {
	nowMs := now.UnixMilli()
	visited := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		ids := slices.Collect(maps.Keys(sh.users))
		sh.mu.RUnlock()
		for chunk := range slices.Chunk(ids, pruneChunk) {
			if err := ctx.Err(); err != nil {
				return visited, err
			}
			sh.mu.Lock()
			for _, id := range chunk {
				u := sh.users[id]
				if u == nil {
					continue
				}
				visited++
				if m.pruneUser(u, nowMs) {
					delete(sh.users, id)
				}
			}
			sh.mu.Unlock()
		}
	}
	return visited, nil
}

// pruneUser prunes u in place and reports whether the whole user expired.
func (m *Memory) pruneUser(u *memUser, now int64) (expired bool) {
	if u.last < now-m.cfg.retention().Milliseconds() {
		return true
	}
	for kind, in := range u.interests {
		maps.DeleteFunc(in, func(_ uint64, c interest) bool { return m.decay.prunable(c, now) })
		if len(in) == 0 {
			u.interests[kind] = nil
		}
	}
	u.played = pruneTimed(u.played, now-m.cfg.PlayedTTL.Milliseconds())
	u.positive = pruneTimed(u.positive, now-m.cfg.PlayedTTL.Milliseconds())
	u.shown = pruneTimed(u.shown, now-m.cfg.ShownTTL.Milliseconds())
	u.seen = pruneTimed(u.seen, now-m.cfg.DedupeTTL.Milliseconds())
	return false
}

func pruneTimed[K comparable](set map[K]int64, since int64) map[K]int64 {
	maps.DeleteFunc(set, func(_ K, at int64) bool { return at < since })
	if len(set) == 0 {
		return nil // drop the emptied map's buckets too
	}
	return set
}

// Ping always succeeds: there is nothing to reach.
func (m *Memory) Ping(ctx context.Context) error { return ctx.Err() }

// Close releases nothing; the store stays usable until garbage collected.
func (m *Memory) Close() error { return nil }

var _ Store = (*Memory)(nil)
