package catalog

import (
	"context"
	"slices"
	"sort"
	"sync"
)

// Catalog is the in-memory catalog: videos, users and posting lists. It is
// safe for concurrent use; readers never block each other.
//
// Videos live in slots; an update or delete empties the old slot and the
// posting lists skip empty slots. Lists stay sorted by insertion (a binary
// search and a memmove per list), so readers never wait on a re-sort; they
// are compacted when more than a quarter of the slots are garbage.
type Catalog struct {
	mu    sync.RWMutex
	slots []*Video
	// published (unix ns) and quality by slot: the merge compares these
	// without touching the videos themselves.
	published []int64
	quality   []float64
	byID      map[string]int32
	users     map[string]*User
	garbage   int
	// bulk defers ordering while a large replay loads (see BeginBulk).
	bulk bool

	lists map[listKey]*postingList
	all   postingList // every slot
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
	slots []int32 // quality desc, then newest first
	fresh []int32 // newest first
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
	slot := c.appendSlot(v)
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
}

func (c *Catalog) insertByQuality(l *postingList, slot int32) {
	if c.bulk {
		l.slots = append(l.slots, slot)
		l.fresh = append(l.fresh, slot)
		return
	}
	i := sort.Search(len(l.slots), func(i int) bool { return !c.lessQuality(l.slots[i], slot) })
	l.slots = slices.Insert(l.slots, i, slot)
	j := sort.Search(len(l.fresh), func(i int) bool { return !c.lessFresh(l.fresh[i], slot) })
	l.fresh = slices.Insert(l.fresh, j, slot)
}

func (c *Catalog) lessFresh(a, b int32) bool { return c.published[a] > c.published[b] }

// BeginBulk starts a bulk load (the catalog stream's replay at start):
// inserts append without ordering, so loading n videos costs O(n log n)
// instead of O(n²). Searches return unordered results until EndBulk.
func (c *Catalog) BeginBulk() {
	c.mu.Lock()
	c.bulk = true
	c.mu.Unlock()
}

// EndBulk orders every list once and returns to sorted insertion.
func (c *Catalog) EndBulk() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.bulk {
		return
	}
	c.bulk = false
	order := func(l *postingList) {
		slices.SortFunc(l.slots, func(a, b int32) int { return cmpBy(c.lessQuality, a, b) })
		slices.SortFunc(l.fresh, func(a, b int32) int { return cmpBy(c.lessFresh, a, b) })
	}
	order(&c.all)
	for _, l := range c.lists {
		order(l)
	}
}

func cmpBy(less func(a, b int32) bool, a, b int32) int {
	switch {
	case less(a, b):
		return -1
	case less(b, a):
		return 1
	}
	return 0
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
	c.published = c.published[:0]
	c.quality = c.quality[:0]
	c.byID = make(map[string]int32, len(live))
	c.lists = map[listKey]*postingList{}
	c.all = postingList{}
	c.garbage = 0
	for _, v := range live {
		c.index(c.appendSlot(v), v)
	}
}

func (c *Catalog) appendSlot(v *Video) int32 {
	slot := int32(len(c.slots))
	c.slots = append(c.slots, v)
	c.published = append(c.published, v.PublishedAt.UnixNano())
	c.quality = append(c.quality, v.Quality)
	c.byID[v.ID] = slot
	return slot
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

// lessQuality orders slots by quality desc, then newest first. Empty
// slots never reach it: lists are merged past them.
func (c *Catalog) lessQuality(a, b int32) bool {
	if qa, qb := c.quality[a], c.quality[b]; qa != qb {
		return qa > qb
	}
	return c.published[a] > c.published[b]
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

	fresh := q.Sort == SortByFresh
	less := c.lessQuality
	if fresh {
		less = c.lessFresh
	}
	order := func(l *postingList) []int32 {
		if fresh {
			return l.fresh
		}
		return l.slots
	}
	var lists [][]int32
	if len(keys) == 0 {
		lists = [][]int32{order(&c.all)}
	} else {
		for _, k := range keys {
			if l := c.lists[k]; l != nil {
				lists = append(lists, order(l))
			}
		}
	}
	// k-way merge of lists sorted the same way (a heap of list heads),
	// deduplicated.
	out := make([]*Video, 0, min(q.Limit, 1024))
	var seen map[int32]struct{}
	if len(lists) > 1 {
		seen = make(map[int32]struct{}, min(q.Limit, 1024))
	}
	h := mergeHeap{less: less, slots: c.slots}
	for _, l := range lists {
		h.push(l)
	}
	for len(out) < q.Limit && len(h.heads) > 0 {
		slot := h.pop()
		if seen != nil {
			if _, dup := seen[slot]; dup {
				continue
			}
			seen[slot] = struct{}{}
		}
		v := c.slots[slot]
		if fresh && !q.PublishedAfter.IsZero() && v.PublishedAt.Before(q.PublishedAfter) {
			break // newest first: nothing older can match
		}
		if match(v) {
			out = append(out, v)
		}
	}
	return out
}

// mergeHeap is a binary min-heap of posting-list cursors, ordered by their
// current slot; empty slots (deleted videos) are skipped.
type mergeHeap struct {
	heads [][]int32
	less  func(a, b int32) bool
	slots []*Video
}

func (h *mergeHeap) skipEmpty(l []int32) []int32 {
	for len(l) > 0 && h.slots[l[0]] == nil {
		l = l[1:]
	}
	return l
}

func (h *mergeHeap) push(l []int32) {
	if l = h.skipEmpty(l); len(l) == 0 {
		return
	}
	h.heads = append(h.heads, l)
	for i := len(h.heads) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(h.heads[i][0], h.heads[parent][0]) {
			break
		}
		h.heads[i], h.heads[parent] = h.heads[parent], h.heads[i]
		i = parent
	}
}

// pop returns the best slot and advances its list.
func (h *mergeHeap) pop() int32 {
	top := h.heads[0]
	slot := top[0]
	if rest := h.skipEmpty(top[1:]); len(rest) > 0 {
		h.heads[0] = rest
	} else {
		last := len(h.heads) - 1
		h.heads[0] = h.heads[last]
		h.heads = h.heads[:last]
	}
	for i, n := 0, len(h.heads); ; {
		l, r, best := 2*i+1, 2*i+2, i
		if l < n && h.less(h.heads[l][0], h.heads[best][0]) {
			best = l
		}
		if r < n && h.less(h.heads[r][0], h.heads[best][0]) {
			best = r
		}
		if best == i {
			break
		}
		h.heads[i], h.heads[best] = h.heads[best], h.heads[i]
		i = best
	}
	return slot
}
