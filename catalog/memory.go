package catalog

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// Catalog is the in-memory catalog: videos, users and posting lists. It is
// safe for concurrent use; readers never block each other.
//
// Videos live in slots; an update or delete empties the old slot and the
// posting lists skip empty slots, so writes never rewrite lists in place.
// Lists are re-sorted lazily on the first read after a write, and compacted
// when more than a quarter of the slots are garbage.
type Catalog struct {
	mu      sync.RWMutex
	slots   []*Video
	byID    map[string]int32
	users   map[string]*User
	garbage int

	lists      map[listKey]*postingList
	all   postingList // every slot, by quality
	fresh []int32     // every slot, newest first
}

type listKind uint8

const (
	listTag listKind = iota
	listCategory
	listUploader
	listRegion
)

type listKey struct {
	kind listKind
	val  string
}

// postingList is kept sorted (quality desc, then newest first) on every
// insert: a binary search and a memmove cost microseconds, where a lazy
// re-sort of a large list would stall every reader for milliseconds.
type postingList struct {
	slots []int32
}

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{byID: map[string]int32{}, users: map[string]*User{}, lists: map[listKey]*postingList{}}
}

// Name identifies the memory index in metrics and debug output.
func (c *Catalog) Name() string { return "memory" }

// Upsert inserts or replaces a video. The video must not be modified after.
func (c *Catalog) Upsert(v *Video) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[v.ID]; ok {
		c.slots[old] = nil
		c.garbage++
	}
	slot := int32(len(c.slots))
	c.slots = append(c.slots, v)
	c.byID[v.ID] = slot
	c.index(slot, v)
	c.maybeCompact()
}

func (c *Catalog) index(slot int32, v *Video) {
	add := func(k listKind, val string) {
		key := listKey{k, val}
		l := c.lists[key]
		if l == nil {
			l = &postingList{}
			c.lists[key] = l
		}
		c.insertByQuality(l, slot)
	}
	for _, t := range v.Tags {
		add(listTag, t)
	}
	add(listCategory, v.Category)
	add(listUploader, v.UploaderID)
	if len(v.Regions) == 0 {
		add(listRegion, "") // global
	}
	for _, r := range v.Regions {
		add(listRegion, r)
	}
	c.insertByQuality(&c.all, slot)
	i := sort.Search(len(c.fresh), func(i int) bool {
		o := c.slots[c.fresh[i]]
		return o == nil || !o.PublishedAt.After(v.PublishedAt)
	})
	c.fresh = slices.Insert(c.fresh, i, slot)
}

func (c *Catalog) insertByQuality(l *postingList, slot int32) {
	i := sort.Search(len(l.slots), func(i int) bool { return !c.lessQuality(l.slots[i], slot) })
	l.slots = slices.Insert(l.slots, i, slot)
}

// Delete removes a video; it reports whether it existed.
func (c *Catalog) Delete(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	slot, ok := c.byID[id]
	if !ok {
		return false
	}
	delete(c.byID, id)
	c.slots[slot] = nil
	c.garbage++
	c.maybeCompact()
	return true
}

func (c *Catalog) maybeCompact() {
	if c.garbage < 1024 || c.garbage*4 < len(c.slots) {
		return
	}
	live := make([]*Video, 0, len(c.byID))
	for _, v := range c.slots {
		if v != nil {
			live = append(live, v)
		}
	}
	c.slots = c.slots[:0]
	c.byID = make(map[string]int32, len(live))
	c.lists = map[listKey]*postingList{}
	c.all = postingList{}
	c.fresh = nil
	c.garbage = 0
	for _, v := range live {
		slot := int32(len(c.slots))
		c.slots = append(c.slots, v)
		c.byID[v.ID] = slot
		c.index(slot, v)
	}
}

// Get returns a video by id.
func (c *Catalog) Get(id string) (*Video, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	slot, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	return c.slots[slot], true
}

// Len is the number of live videos.
func (c *Catalog) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byID)
}

// PutUser stores a user's declared attributes.
func (c *Catalog) PutUser(u *User) {
	c.mu.Lock()
	c.users[u.ID] = u
	c.mu.Unlock()
}

// User returns a user's declared attributes.
func (c *Catalog) User(id string) (*User, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	u, ok := c.users[id]
	return u, ok
}

// UserCount is the number of users with declared attributes.
func (c *Catalog) UserCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.users)
}

// Each calls fn for every live video until fn returns false. fn must not
// call back into the catalog's write methods.
func (c *Catalog) Each(fn func(*Video) bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, v := range c.slots {
		if v != nil && !fn(v) {
			return
		}
	}
}

func (c *Catalog) lessQuality(a, b int32) bool {
	va, vb := c.slots[a], c.slots[b]
	if va == nil || vb == nil {
		return va != nil
	}
	if va.Quality != vb.Quality {
		return va.Quality > vb.Quality
	}
	return va.PublishedAt.After(vb.PublishedAt)
}

func queryKeys(q *Query) []listKey {
	keys := make([]listKey, 0, len(q.Tags)+len(q.Categories)+len(q.Uploaders))
	for _, t := range q.Tags {
		keys = append(keys, listKey{listTag, t})
	}
	for _, t := range q.Categories {
		keys = append(keys, listKey{listCategory, t})
	}
	for _, t := range q.Uploaders {
		keys = append(keys, listKey{listUploader, t})
	}
	return keys
}

// Search implements Retriever over the posting lists.
func (c *Catalog) Search(ctx context.Context, q Query) ([]string, error) {
	vids := c.SearchVideos(q)
	ids := make([]string, len(vids))
	for i, v := range vids {
		ids[i] = v.ID
	}
	return ids, nil
}

// SearchVideos is Search returning the videos themselves, for in-process
// callers that would otherwise look every id up again.
func (c *Catalog) SearchVideos(q Query) []*Video {
	if q.Limit <= 0 {
		return nil
	}
	keys := queryKeys(&q)
	c.mu.RLock()
	defer c.mu.RUnlock()

	match := func(v *Video) bool {
		if v == nil || !v.AllowedIn(q.Region) {
			return false
		}
		if !q.PublishedAfter.IsZero() && v.PublishedAt.Before(q.PublishedAfter) {
			return false
		}
		if !q.PublishedBefore.IsZero() && v.PublishedAt.After(q.PublishedBefore) {
			return false
		}
		return true
	}

	if q.Sort == SortByFresh {
		return c.searchFresh(&q, keys, match)
	}

	var lists [][]int32
	if len(keys) == 0 {
		lists = [][]int32{c.all.slots}
	} else {
		for _, k := range keys {
			if l := c.lists[k]; l != nil {
				lists = append(lists, l.slots)
			}
		}
	}
	// k-way merge of quality-sorted lists, deduplicated.
	out := make([]*Video, 0, q.Limit)
	pos := make([]int, len(lists))
	var seen map[int32]struct{}
	if len(lists) > 1 {
		seen = make(map[int32]struct{}, q.Limit)
	}
	for len(out) < q.Limit {
		best := -1
		for i, l := range lists {
			for pos[i] < len(l) && c.slots[l[pos[i]]] == nil {
				pos[i]++
			}
			if pos[i] >= len(l) {
				continue
			}
			if best < 0 || c.lessQuality(l[pos[i]], lists[best][pos[best]]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		slot := lists[best][pos[best]]
		pos[best]++
		if seen != nil {
			if _, dup := seen[slot]; dup {
				continue
			}
			seen[slot] = struct{}{}
		}
		if v := c.slots[slot]; match(v) {
			out = append(out, v)
		}
	}
	return out
}

func (c *Catalog) searchFresh(q *Query, keys []listKey, match func(*Video) bool) []*Video {
	if len(keys) == 0 {
		out := make([]*Video, 0, q.Limit)
		for _, slot := range c.fresh {
			v := c.slots[slot]
			if v == nil {
				continue
			}
			if !q.PublishedAfter.IsZero() && v.PublishedAt.Before(q.PublishedAfter) {
				break // newest first: nothing older can match
			}
			if match(v) {
				out = append(out, v)
				if len(out) == q.Limit {
					break
				}
			}
		}
		return out
	}
	seen := map[int32]struct{}{}
	var out []*Video
	for _, k := range keys {
		l := c.lists[k]
		if l == nil {
			continue
		}
		for _, slot := range l.slots {
			if _, dup := seen[slot]; dup {
				continue
			}
			seen[slot] = struct{}{}
			if v := c.slots[slot]; match(v) {
				out = append(out, v)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Video) int { return b.PublishedAt.Compare(a.PublishedAt) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// Snapshot of stats for /metrics and debug.
type Stats struct {
	Videos, Users, Lists int
	Newest               time.Time
}

// Stats reports index sizes.
func (c *Catalog) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := Stats{Videos: len(c.byID), Users: len(c.users), Lists: len(c.lists)}
	for _, v := range c.slots {
		if v != nil && v.PublishedAt.After(s.Newest) {
			s.Newest = v.PublishedAt
		}
	}
	return s
}
