package feed

import (
	"sync"
	"time"

	"reelfeed/catalog"
)

// servedShards spreads users over independently locked shards.
const servedShards = 32

// servedCache remembers, per user, what this process served recently.
// Impressions reach the profile store asynchronously (bus, consumer), so
// without it a user scrolling fast would get the same videos on the next
// page. Memory is bounded: per user by a ring of perUser ids, and in users
// by two generations per shard — when the current generation fills up it
// becomes the previous one and the old previous one is dropped, so users
// not seen for a while age out without any per-entry bookkeeping.
type servedCache struct {
	ttl      time.Duration
	perUser  int
	genLimit int // users per shard generation
	shards   [servedShards]servedShard
}

type servedShard struct {
	mu        sync.Mutex
	cur, prev map[string]*servedUser
}

type servedUser struct {
	mu   sync.Mutex
	at   map[string]time.Time
	ring []servedEntry // insertion order, for eviction
	next int
}

type servedEntry struct {
	id string
	at time.Time
}

func newServedCache(cfg RecentlyServedConfig) *servedCache {
	c := &servedCache{ttl: cfg.TTL, perUser: cfg.PerUser, genLimit: max(1, cfg.MaxUsers/(2*servedShards))}
	for i := range c.shards {
		c.shards[i].cur = map[string]*servedUser{}
	}
	return c
}

func (c *servedCache) shard(userID string) *servedShard {
	var h uint32 = 2166136261
	for i := 0; i < len(userID); i++ {
		h = (h ^ uint32(userID[i])) * 16777619
	}
	return &c.shards[h%servedShards]
}

// user returns the user's entry, creating it when create is set.
func (c *servedCache) user(userID string, create bool) *servedUser {
	sh := c.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u, ok := sh.cur[userID]; ok {
		return u
	}
	u, ok := sh.prev[userID]
	if !ok {
		if !create {
			return nil
		}
		u = &servedUser{at: make(map[string]time.Time, 16)}
	}
	if len(sh.cur) >= c.genLimit {
		sh.prev, sh.cur = sh.cur, make(map[string]*servedUser, c.genLimit)
	}
	sh.cur[userID] = u
	return u
}

// record notes that ids were served to the user at now.
func (c *servedCache) record(userID string, ids []string, now time.Time) {
	if len(ids) == 0 {
		return
	}
	u := c.user(userID, true)
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, id := range ids {
		u.at[id] = now
		if len(u.ring) < c.perUser {
			u.ring = append(u.ring, servedEntry{id, now})
			continue
		}
		old := u.ring[u.next]
		if t, ok := u.at[old.id]; ok && t.Equal(old.at) && old.id != id {
			delete(u.at, old.id) // not re-served since: forget it
		}
		u.ring[u.next] = servedEntry{id, now}
		u.next = (u.next + 1) % c.perUser
	}
}

// servedView is one request's read of a user's entry; it implements
// filter.ServedLog, ignoring what is older than the cache TTL.
type servedView struct {
	user   *servedUser
	cutoff time.Time
}

func (v *servedView) LastServed(videoID string) (time.Time, bool) {
	if v.user == nil {
		return time.Time{}, false
	}
	v.user.mu.Lock()
	t, ok := v.user.at[videoID]
	v.user.mu.Unlock()
	if !ok || t.Before(v.cutoff) {
		return time.Time{}, false
	}
	return t, true
}

// addKeys adds the catalog keys of what was served since the view's cutoff.
func (v *servedView) addKeys(set *catalog.IDSet) {
	if v.user == nil {
		return
	}
	v.user.mu.Lock()
	defer v.user.mu.Unlock()
	for id, at := range v.user.at {
		if !at.Before(v.cutoff) {
			set.Add(catalog.IDKey(id))
		}
	}
}
