package feed

import (
	"cmp"
	"math"
	"slices"

	"reelfeed/catalog"
	"reelfeed/filter"
	"reelfeed/rank"
)

// How an item got on the page (ItemDebug.Via).
const (
	viaSlot        = "slot"
	viaBest        = "best"
	viaBackfillHot = "backfill:hot"
	viaBackfillCat = "backfill:catalog"
	viaRemaining   = "remaining"
	viaReadmitted  = "readmitted"
)

// backfillBranch is the branch credited for items the fill stage found
// outside the recall results (hot backfill, catalog scan).
const backfillBranch = "backfill"

// pick is one item placed on the page.
type pick struct {
	cand   filter.Candidate
	item   rank.Item
	branch string // branch credited on the page
	via    string
	scored bool // item.Score comes from the ranker (fill picks are scored at the end)
}

// page assembles one page: never a video twice, and at most capCategory
// items of one category, capUploader of one uploader, capSpecial of kinds
// other than "video" — unless the fill stage has to relax the caps to
// fill the page at all.
type page struct {
	count                                int
	capCategory, capUploader, capSpecial int
	byCategory, byUploader               map[string]int
	special                              int
	chosen                               map[string]struct{}
	picks                                []pick
}

func (p *page) reset(count int, caps CapConfig) {
	p.count = count
	p.capCategory = capOf(caps.Category, count)
	p.capUploader = capOf(caps.Uploader, count)
	p.capSpecial = capOf(caps.Special, count)
	if p.byCategory == nil {
		p.byCategory, p.byUploader, p.chosen = map[string]int{}, map[string]int{}, map[string]struct{}{}
	}
	clear(p.byCategory)
	clear(p.byUploader)
	clear(p.chosen)
	p.special = 0
	clear(p.picks)
	p.picks = p.picks[:0]
}

// capOf turns a share of the page into a count, at least 1.
func capOf(share float64, count int) int {
	return max(1, int(math.Ceil(share*float64(count)-1e-9)))
}

func (p *page) full() bool { return len(p.picks) >= p.count }

func (p *page) has(id string) bool { _, ok := p.chosen[id]; return ok }

// fits reports whether v would stay within every cap.
func (p *page) fits(v *catalog.Video) bool {
	if p.byCategory[v.Category] >= p.capCategory || p.byUploader[v.UploaderID] >= p.capUploader {
		return false
	}
	return v.Kind == catalog.KindVideo || v.Kind == "" || p.special < p.capSpecial
}

// offer adds the pick when the page has room, the video is not on it yet
// and (when capped) it fits the caps; it reports whether it was added.
func (p *page) offer(pk pick, capped bool) bool {
	v := pk.item.Video
	if p.full() || p.has(v.ID) || (capped && !p.fits(v)) {
		return false
	}
	p.chosen[v.ID] = struct{}{}
	p.byCategory[v.Category]++
	p.byUploader[v.UploaderID]++
	if v.Kind != catalog.KindVideo && v.Kind != "" {
		p.special++
	}
	p.picks = append(p.picks, pk)
	return true
}

// scaleSlots turns a slot plan into reserved slots per branch for a page
// of count items, by largest remainder. raw[i] is branch i's plan entry;
// planTotal also counts entries naming branches this service does not run,
// whose share of the page goes to the best remaining candidates.
func scaleSlots(dst, raw []int, planTotal, count int) []int {
	dst = dst[:0]
	if planTotal <= 0 {
		return append(dst, make([]int, len(raw))...)
	}
	known, assigned := 0, 0
	for _, n := range raw {
		share := n * count / planTotal
		dst = append(dst, share)
		known += n
		assigned += share
	}
	target := (known*count + planTotal/2) / planTotal // the known branches' rounded share
	for assigned < target {
		best, bestRem := -1, -1
		for i, n := range raw {
			if rem := n * count % planTotal; n > 0 && rem > bestRem && dst[i]*planTotal < n*count {
				best, bestRem = i, rem
			}
		}
		if best < 0 {
			break
		}
		dst[best]++
		assigned++
	}
	return dst
}

// rankedOrder writes the indices of items by descending score (ties: the
// merge order, i.e. the better recall rank).
func rankedOrder(dst []int32, pairs []scoredIndex, items []rank.Item) ([]int32, []scoredIndex) {
	// Sort (score, index) pairs, not indexes into items: a comparison then
	// reads 16 adjacent bytes instead of two items hundreds of bytes apart.
	pairs = pairs[:0]
	for i := range items {
		pairs = append(pairs, scoredIndex{items[i].Score, int32(i)})
	}
	slices.SortFunc(pairs, func(a, b scoredIndex) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.index, b.index)
	})
	dst = dst[:0]
	for _, p := range pairs {
		dst = append(dst, p.index)
	}
	return dst, pairs
}

type scoredIndex struct {
	score float64
	index int32
}

// selectRanked places ranked candidates on the page. First each branch's
// reserved slots go to that branch's best-scored candidates — a video
// several branches proposed takes a slot of the branch credited at merge
// when it has one left, else of any other branch that proposed it, and is
// credited to the branch whose slot it took. Then the rest of the page goes
// to the best remaining candidates whatever their branch. used marks the
// candidates placed.
func selectRanked(pg *page, cands []filter.Candidate, items []rank.Item, order []int32, slots []int,
	names []string, index map[string]int, used []bool) {
	free := 0
	for _, n := range slots {
		free += n
	}
	for _, i := range order {
		if free == 0 || pg.full() {
			break
		}
		c := &cands[i]
		b := slotBranch(c, slots, index)
		if b < 0 {
			continue
		}
		if pg.offer(pick{cand: *c, item: items[i], branch: names[b], via: viaSlot, scored: true}, true) {
			slots[b]--
			free--
			used[i] = true
		}
	}
	for _, i := range order {
		if pg.full() {
			break
		}
		if used[i] {
			continue
		}
		c := &cands[i]
		if pg.offer(pick{cand: *c, item: items[i], branch: c.Branch, via: viaBest, scored: true}, true) {
			used[i] = true
		}
	}
}

// slotBranch picks the branch whose reserved slot c takes: its credited
// branch if that has slots left, else the lowest-numbered other proposing
// branch with slots left; -1 when none has.
func slotBranch(c *filter.Candidate, slots []int, index map[string]int) int {
	if b, ok := index[c.Branch]; ok && slots[b] > 0 {
		return b
	}
	for b := range slots {
		if slots[b] > 0 && c.Branches&(1<<b) != 0 {
			return b
		}
	}
	return -1
}

// orderPage sorts the page by score, readmitted (already shown) items last.
func orderPage(picks []pick) {
	slices.SortStableFunc(picks, func(a, b pick) int {
		if a.cand.Readmitted != b.cand.Readmitted {
			if a.cand.Readmitted {
				return 1
			}
			return -1
		}
		return cmp.Compare(b.item.Score, a.item.Score)
	})
}
