package recall

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"reelfeed/event"
)

// cfInteractions is a window of the event log reduced to what the
// collaborative-filtering jobs (i2i, user-CF) need: per user, the videos they
// engaged with positively, one entry per video, weighted by behaviour and
// recency. Ids are interned to dense indexes so the jobs work on arrays.
type cfInteractions struct {
	videoIDs []string
	userIDs  []string
	// items holds each user's positive videos, oldest first, at most
	// maxItemsPerUser (the latest).
	items [][]cfItem
	// engaged holds each user's videos with any event but an impression,
	// sorted by index; only filled when asked for (user-CF excludes them).
	engaged [][]int32
	events  int64
}

type cfItem struct {
	video int32
	ts    int32   // seconds since the window start
	w     float32 // behaviour weight decayed by recency; always > 0
}

type cfReplayOptions struct {
	since, now      time.Time
	weights         [event.NumTypes]float64
	halfLife        time.Duration
	maxItemsPerUser int
	keepEngaged     bool
}

// cfRawEvent is one replayed event before aggregation: 12 bytes, since
// a replay holds millions of them at once.
type cfRawEvent struct {
	video int32
	ts    int32
	typ   event.Type
}

// replayCFInteractions replays the log since opt.since and aggregates it.
// Per (user, video) each event type counts once whatever its repeats (a
// client retry replayed past the stream's dedupe window changes nothing),
// the pair's weight is the sum of its types' weights (a dislike cancels a
// complete), decayed by the age of its latest event.
func replayCFInteractions(ctx context.Context, log EventLog, opt cfReplayOptions) (*cfInteractions, error) {
	il := &cfInteractions{}
	userIndex := map[string]int32{}
	videoIndex := map[string]int32{}
	var raw [][]cfRawEvent
	nowSec := opt.now.Sub(opt.since).Seconds()

	err := log.Replay(ctx, opt.since, func(e event.Event) error {
		il.events++
		if il.events%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if e.Type == event.Impression || !e.Type.Valid() || e.TS.Before(opt.since) {
			return nil
		}
		if opt.weights[e.Type] == 0 && !opt.keepEngaged {
			return nil
		}
		u, ok := userIndex[e.UserID]
		if !ok {
			u = int32(len(il.userIDs))
			userIndex[e.UserID] = u
			il.userIDs = append(il.userIDs, e.UserID)
			raw = append(raw, nil)
		}
		v, ok := videoIndex[e.VideoID]
		if !ok {
			v = int32(len(il.videoIDs))
			videoIndex[e.VideoID] = v
			il.videoIDs = append(il.videoIDs, e.VideoID)
		}
		ts := min(e.TS.Sub(opt.since).Seconds(), nowSec)
		raw[u] = append(raw[u], cfRawEvent{video: v, ts: int32(ts), typ: e.Type})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay events: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	il.items = make([][]cfItem, len(raw))
	if opt.keepEngaged {
		il.engaged = make([][]int32, len(raw))
	}
	decayPerSec := 0.0
	if opt.halfLife > 0 {
		decayPerSec = 1 / opt.halfLife.Seconds()
	}
	for u, evs := range raw {
		if u%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		il.aggregateUser(u, evs, &opt, nowSec, decayPerSec)
		raw[u] = nil // release as we go: raw is the biggest thing alive
	}
	return il, nil
}

func (il *cfInteractions) aggregateUser(u int, evs []cfRawEvent, opt *cfReplayOptions, nowSec, decayPerSec float64) {
	slices.SortFunc(evs, func(a, b cfRawEvent) int {
		if c := cmp.Compare(a.video, b.video); c != 0 {
			return c
		}
		return cmp.Compare(a.ts, b.ts)
	})
	var items []cfItem
	var engaged []int32
	for start := 0; start < len(evs); {
		end := start
		var seen [event.NumTypes]bool
		var weight float64
		latest := int32(-1)
		for ; end < len(evs) && evs[end].video == evs[start].video; end++ {
			r := evs[end]
			if w := opt.weights[r.typ]; w != 0 {
				if !seen[r.typ] {
					seen[r.typ] = true
					weight += w
				}
				latest = max(latest, r.ts)
			}
		}
		video := evs[start].video
		start = end
		if opt.keepEngaged {
			engaged = append(engaged, video)
		}
		if weight <= 0 {
			continue
		}
		w := weight * math.Exp2(-(nowSec-float64(latest))*decayPerSec)
		if w <= 0 || math.IsNaN(w) {
			continue
		}
		items = append(items, cfItem{video: video, ts: latest, w: float32(w)})
	}
	slices.SortFunc(items, func(a, b cfItem) int {
		if c := cmp.Compare(a.ts, b.ts); c != 0 {
			return c
		}
		return cmp.Compare(a.video, b.video)
	})
	if m := opt.maxItemsPerUser; m > 0 && len(items) > m {
		items = slices.Clone(items[len(items)-m:])
	}
	il.items[u] = items
	if opt.keepEngaged {
		il.engaged[u] = engaged
	}
}

// jobWorkers is how many goroutines a job's parallel phase uses: configured,
// or half the CPUs so a job never starves the feed it runs beside.
func jobWorkers(configured int) int {
	if configured > 0 {
		return configured
	}
	return max(runtime.GOMAXPROCS(0)/2, 1)
}

// cfRanked is an index (video or user) with a score.
type cfRanked struct {
	idx   int32
	score float32
}

// cfBetter orders by score, then by lower index, so results do not depend
// on map or goroutine order.
func cfBetter(a, b cfRanked) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.idx < b.idx
}

// cfTopK keeps the k best of what it is offered in a min-heap: O(log k)
// per offer, k entries of memory.
type cfTopK struct {
	k    int
	heap []cfRanked // heap[0] is the worst kept
}

func newCFTopK(k int) *cfTopK {
	return &cfTopK{k: k, heap: make([]cfRanked, 0, k)}
}

func (t *cfTopK) reset() { t.heap = t.heap[:0] }

func (t *cfTopK) offer(idx int32, score float32) {
	r := cfRanked{idx, score}
	if len(t.heap) < t.k {
		t.heap = append(t.heap, r)
		t.up(len(t.heap) - 1)
		return
	}
	// Most offers lose to the worst kept; reject them before any swapping.
	if t.k == 0 || score < t.heap[0].score || !cfBetter(r, t.heap[0]) {
		return
	}
	t.heap[0] = r
	t.down(0)
}

func (t *cfTopK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !cfBetter(t.heap[p], t.heap[i]) {
			return
		}
		t.heap[p], t.heap[i] = t.heap[i], t.heap[p]
		i = p
	}
}

func (t *cfTopK) down(i int) {
	n := len(t.heap)
	for {
		worst := i
		if l := 2*i + 1; l < n && cfBetter(t.heap[worst], t.heap[l]) {
			worst = l
		}
		if r := 2*i + 2; r < n && cfBetter(t.heap[worst], t.heap[r]) {
			worst = r
		}
		if worst == i {
			return
		}
		t.heap[i], t.heap[worst] = t.heap[worst], t.heap[i]
		i = worst
	}
}

// sorted returns a new slice of what was kept, best first.
func (t *cfTopK) sorted() []cfRanked {
	out := slices.Clone(t.heap)
	slices.SortFunc(out, func(a, b cfRanked) int {
		if cfBetter(a, b) {
			return -1
		}
		if cfBetter(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// cfLists yields ranked index lists as ListStore lists keyed by id,
// reusing one buffer (stores copy what they keep).
func cfLists(keys []string, lists [][]cfRanked, names []string) func(yield func(string, []Scored) bool) {
	return func(yield func(string, []Scored) bool) {
		var buf []Scored
		for i, l := range lists {
			if len(l) == 0 {
				continue
			}
			buf = buf[:0]
			for _, r := range l {
				buf = append(buf, Scored{ID: names[r.idx], Score: float64(r.score)})
			}
			if !yield(keys[i], buf) {
				return
			}
		}
	}
}

// storeLists counts a job's non-empty lists into res and replaces the
// namespace with them.
func storeLists(ctx context.Context, store ListStore, namespace string, keys []string, lists [][]cfRanked, names []string, res *JobResult) error {
	for _, l := range lists {
		if len(l) > 0 {
			res.Lists++
			res.Items += len(l)
		}
	}
	return store.ReplaceAll(ctx, namespace, cfLists(keys, lists, names))
}
