package catalog

import (
	"context"
	"math"
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
	mu sync.RWMutex
	// slots holds each video with what searches order and filter on, side
	// by side: a posting list visits slots in no memory order, so a search
	// step costs one cache miss here instead of one per array.
	slots     []slotEntry
	regionIDs regionIDs
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
	slots []int32 // quality desc, then newest first (slotOrder)
	fresh []int32 // newest first (slotOrder)
	// name is the list's tag, category, uploader or region: indexed videos
	// share this one copy (see index).
	name string
}

// slotEntry is one video and its search keys. A slot emptied by an update or
// delete has a nil video and stays until compaction.
type slotEntry struct {
	video     *Video
	key       uint64  // video.Key(): exclusion sets are tested without reading the video
	published int64   // unix ns, clamped (unixNanos)
	quality   float64 // NaN stored as -Inf (orderableQuality)
	regions   uint64  // region mask (regions.go)
}

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{byID: map[string]int32{}, users: map[string]*User{}, lists: map[listKey]*postingList{},
		regionIDs: regionIDs{}}
}

// Name identifies the memory index in metrics and debug output.
func (c *Catalog) Name() string { return "memory" }

// Upsert inserts or replaces a video. The catalog takes v over: it points
// v's tags, category and uploader at shared copies of equal strings, and v
// must not be modified, or upserted into another catalog, afterwards.
func (c *Catalog) Upsert(v *Video) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[v.ID]; ok {
		c.slots[old].video = nil
		c.garbage++
	}
	slot := c.appendSlot(v)
	c.index(slot, v)
	c.maybeCompact()
}

// index adds the slot to the video's posting lists. It also points the
// video's tags, category and uploader at the lists' own copies of those
// strings: the ranking stage hashes them for every candidate, and one
// shared copy per distinct value stays in cache where a copy per video
// would cost a miss each (and the memory of a copy each).
func (c *Catalog) index(slot int32, v *Video) {
	add := func(k listKind, val string) string {
		key := listKey{k, val}
		l := c.lists[key]
		if l == nil {
			l = &postingList{name: val}
			c.lists[key] = l
		}
		c.insertByQuality(l, slot)
		return l.name
	}
	for i, t := range v.Tags {
		v.Tags[i] = add(listTag, t)
	}
	v.Category = add(listCategory, v.Category)
	v.UploaderID = add(listUploader, v.UploaderID)
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
	byQuality, byFresh := c.order(SortByQuality), c.order(SortByFresh)
	i := sort.Search(len(l.slots), func(i int) bool { return !byQuality.before(l.slots[i], slot) })
	l.slots = slices.Insert(l.slots, i, slot)
	j := sort.Search(len(l.fresh), func(i int) bool { return !byFresh.before(l.fresh[i], slot) })
	l.fresh = slices.Insert(l.fresh, j, slot)
}

// BeginBulk starts a bulk load (the catalog stream's replay at start):
// inserts append without ordering, so loading n videos costs O(n log n)
// instead of O(n²). Searches return unordered results (each match once)
// until EndBulk.
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
	byQuality, byFresh := c.order(SortByQuality), c.order(SortByFresh)
	order := func(l *postingList) {
		slices.SortFunc(l.slots, byQuality.compare)
		slices.SortFunc(l.fresh, byFresh.compare)
	}
	order(&c.all)
	for _, l := range c.lists {
		order(l)
	}
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
	c.slots[slot].video = nil
	c.garbage++
	c.maybeCompact()
	return true
}

func (c *Catalog) maybeCompact() {
	if c.garbage < 1024 || c.garbage*4 < len(c.slots) {
		return
	}
	live := make([]*Video, 0, len(c.byID))
	for _, sl := range c.slots {
		if sl.video != nil {
			live = append(live, sl.video)
		}
	}
	c.slots = c.slots[:0]
	c.regionIDs = regionIDs{} // re-interned from live videos: regions nobody lists give their bits back
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
	v.slot = slot
	if !v.derived {
		v.derive() // decoded from the stream: never normalised in this process
	}
	c.slots = append(c.slots, slotEntry{video: v, key: v.key, published: unixNanos(v.PublishedAt),
		quality: orderableQuality(v.Quality), regions: c.regionIDs.mask(v.Regions)})
	c.byID[v.ID] = slot
	return slot
}

// orderableQuality maps NaN (Validate rejects it, Upsert does not) below
// every quality: a NaN compares unequal yet neither greater nor smaller,
// which would break the strict order posting lists and the merge rely on.
func orderableQuality(q float64) float64 {
	if math.IsNaN(q) {
		return math.Inf(-1)
	}
	return q
}

// Current replaces each video in vs by the catalog's current version of
// it, or nil when it is no longer in the catalog. Recall results may hold
// pointers from before an update or delete; a pointer that is still
// current is confirmed by its slot, without looking its id up.
func (c *Catalog) Current(vs []*Video) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, v := range vs {
		if v == nil {
			continue
		}
		if s := v.slot; s >= 0 && int(s) < len(c.slots) && c.slots[s].video == v {
			continue
		}
		vs[i] = nil
		if slot, ok := c.byID[v.ID]; ok {
			vs[i] = c.slots[slot].video
		}
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
	return c.slots[slot].video, true
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
	for _, sl := range c.slots {
		if sl.video != nil && !fn(sl.video) {
			return
		}
	}
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
