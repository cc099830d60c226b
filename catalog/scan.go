package catalog

import (
	"math"
	"time"
)

// SearchVideos is Search returning the videos themselves, for in-process
// callers that would otherwise look every id up again. It returns nil when
// q.Limit <= 0.
func (c *Catalog) SearchVideos(q Query) []*Video {
	if q.Limit <= 0 {
		return nil
	}
	out := make([]*Video, 0, min(q.Limit, 1024))
	c.ScanVideos(q, func(v *Video) bool {
		out = append(out, v)
		return true
	})
	return out
}

// ScanVideos calls visit with each video matching q, in q's order and each
// video once (the order and videos SearchVideos returns), until visit
// returns false or q.Limit videos were visited. q.Limit <= 0 means no limit:
// the scan ends when visit returns false or the matches run out. Callers
// that skip some matches (videos a user saw) scan once instead of widening
// a search and reading its head again.
//
// Videos whose key (Video.Key) is in any of the exclude sets are skipped
// without being read: a user's already-seen videos cost a recall scan one
// array read each.
//
// visit runs under the catalog's read lock. It must not call back into the
// catalog: a write method (Upsert, Delete, PutUser, BeginBulk, EndBulk)
// deadlocks, and so can a read method when a writer queues in between. It
// should be quick, as writers wait for the scan to end.
func (c *Catalog) ScanVideos(q Query, visit func(*Video) bool, exclude ...*IDSet) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var buf [32][]int32 // enough for the branches' queries without allocating
	m := mergeHeap{heads: c.appendLists(buf[:0], &q), order: c.order(q.Sort)}
	m.init()
	f := c.filter(&q)
	d := dedupe{prev: -1}
	if c.bulk && len(m.heads) > 1 {
		d.seen = map[int32]struct{}{} // unordered lists: duplicates need not be adjacent
	}
	for visited := 0; len(m.heads) > 0; {
		slot := m.pop()
		if d.dup(slot) {
			continue
		}
		if f.beyondFresh(slot) {
			return
		}
		if !f.match(slot) || excluded(c.slots[slot].key, exclude) {
			continue
		}
		if !visit(c.slots[slot].video) {
			return
		}
		if visited++; visited == q.Limit {
			return
		}
	}
}

func excluded(key uint64, sets []*IDSet) bool {
	for _, s := range sets {
		if s != nil && s.Has(key) {
			return true
		}
	}
	return false
}

// appendLists appends the posting lists q reads, in q's order, to dst:
// every slot when q names no tag, category or uploader.
func (c *Catalog) appendLists(dst [][]int32, q *Query) [][]int32 {
	fresh := q.Sort == SortByFresh
	add := func(l *postingList) {
		if fresh {
			dst = append(dst, l.fresh)
		} else {
			dst = append(dst, l.slots)
		}
	}
	if len(q.Tags)+len(q.Categories)+len(q.Uploaders) == 0 {
		add(&c.all)
		return dst
	}
	for _, keys := range [...]struct {
		kind listKind
		vals []string
	}{{listTag, q.Tags}, {listCategory, q.Categories}, {listUploader, q.Uploaders}} {
		for _, val := range keys.vals {
			if l := c.lists[listKey{keys.kind, val}]; l != nil {
				add(l)
			}
		}
	}
	return dst
}

// dedupe drops slots the merge already produced. Every list is sorted by the
// same strict total order (slotOrder), so a slot present in several lists
// comes out of the merge in consecutive pops and remembering the last one
// is enough; only lists left unordered by a bulk load need a set.
type dedupe struct {
	prev int32
	seen map[int32]struct{}
}

func (d *dedupe) dup(slot int32) bool {
	if slot == d.prev {
		return true
	}
	d.prev = slot
	if d.seen == nil {
		return false
	}
	if _, ok := d.seen[slot]; ok {
		return true
	}
	d.seen[slot] = struct{}{}
	return false
}

// slotFilter is a query's region and time bounds over the per-slot arrays,
// so matching a slot reads neither the video nor its region strings.
type slotFilter struct {
	// Unbounded and unrestricted queries skip reading the arrays: each read
	// is a likely cache miss, as lists visit slots in no memory order.
	timeBounded, regionLimited bool
	after, before              int64 // inclusive unix ns bounds on published
	// freshCutoff: the merge is newest first, so the first slot older than
	// after ends it.
	freshCutoff bool
	region      regionTest
	slots       []slotEntry
}

func (c *Catalog) filter(q *Query) slotFilter {
	f := slotFilter{after: math.MinInt64, before: math.MaxInt64, region: c.regionIDs.test(q.Region),
		slots: c.slots}
	f.timeBounded = !q.PublishedAfter.IsZero() || !q.PublishedBefore.IsZero()
	f.regionLimited = f.region.bits != regionsEverywhere
	if !q.PublishedAfter.IsZero() {
		f.after = unixNanos(q.PublishedAfter)
		f.freshCutoff = q.Sort == SortByFresh && !c.bulk
	}
	if !q.PublishedBefore.IsZero() {
		f.before = unixNanos(q.PublishedBefore)
	}
	return f
}

// beyondFresh reports that no slot after this one can match.
func (f *slotFilter) beyondFresh(slot int32) bool {
	return f.freshCutoff && f.slots[slot].published < f.after
}

func (f *slotFilter) match(slot int32) bool {
	e := &f.slots[slot]
	if f.timeBounded && (e.published < f.after || e.published > f.before) {
		return false
	}
	return !f.regionLimited || f.region.allows(e.regions, e.video)
}

// unixNanos is t in unix nanoseconds, clamped where UnixNano would wrap
// around (before 1678, after 2262): an unset PublishedAt must stay oldest.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minUnixNanoTime):
		return math.MinInt64
	case t.After(maxUnixNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var minUnixNanoTime, maxUnixNanoTime = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// slotOrder is the order of a posting list: quality desc (unless byFresh),
// then newest first, then the later slot (the later insert) first. The slot
// makes the order strict and total, which the merge's dedupe relies on.
type slotOrder struct {
	byFresh bool
	slots   []slotEntry
}

func (c *Catalog) order(s SortOrder) slotOrder {
	return slotOrder{byFresh: s == SortByFresh, slots: c.slots}
}

func (o slotOrder) before(a, b int32) bool {
	ea, eb := &o.slots[a], &o.slots[b]
	if !o.byFresh && ea.quality != eb.quality {
		return ea.quality > eb.quality
	}
	if ea.published != eb.published {
		return ea.published > eb.published
	}
	return a > b
}

func (o slotOrder) compare(a, b int32) int {
	switch {
	case a == b:
		return 0
	case o.before(a, b):
		return -1
	}
	return 1
}

// mergeHeap is a binary min-heap of posting-list cursors, ordered by their
// current slot; empty slots (deleted videos) are skipped.
type mergeHeap struct {
	heads [][]int32
	order slotOrder
}

func (h *mergeHeap) skipEmpty(l []int32) []int32 {
	for len(l) > 0 && h.order.slots[l[0]].video == nil {
		l = l[1:]
	}
	return l
}

// init drops exhausted lists and orders the rest into a heap.
func (h *mergeHeap) init() {
	live := h.heads[:0]
	for _, l := range h.heads {
		if l = h.skipEmpty(l); len(l) > 0 {
			live = append(live, l)
		}
	}
	h.heads = h.heads[:len(live)]
	for i := len(h.heads)/2 - 1; i >= 0; i-- {
		h.down(i)
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
	h.down(0)
	return slot
}

// down moves the head at i below its better children.
func (h *mergeHeap) down(i int) {
	for n := len(h.heads); ; {
		l, r, best := 2*i+1, 2*i+2, i
		if l < n && h.order.before(h.heads[l][0], h.heads[best][0]) {
			best = l
		}
		if r < n && h.order.before(h.heads[r][0], h.heads[best][0]) {
			best = r
		}
		if best == i {
			break
		}
		h.heads[i], h.heads[best] = h.heads[best], h.heads[i]
		i = best
	}
}
