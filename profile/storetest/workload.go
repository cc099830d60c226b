package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"reelfeed/event"
	"reelfeed/profile"
)

// Workload shape: a catalog where each category has its own tag pool, and
// users who mostly watch a few favourite categories, so a user's distinct
// interests grow like a real user's rather than like uniform noise.
const (
	workloadVideos     = 50_000
	workloadCategories = 40
	workloadTagsPerCat = 25
	workloadUploaders  = 8_000
	favouriteShare     = 0.8
)

// typeMix is the share of each event type in the workload, roughly what a
// short-video feed reports: mostly impressions and plays.
var typeMix = []struct {
	t     event.Type
	share float64
}{
	{event.Impression, 0.50}, {event.Play, 0.18}, {event.Complete, 0.10}, {event.Skip, 0.10},
	{event.Like, 0.06}, {event.Comment, 0.02}, {event.Share, 0.02}, {event.Follow, 0.01}, {event.Dislike, 0.01},
}

type workloadVideo struct {
	id, category, uploader string
	tags                   []string
}

// Workload generates a deterministic, enriched event stream for benchmarks
// and load measurements.
type Workload struct {
	rng        *rand.Rand
	users      []string
	videos     []workloadVideo
	byCategory [][]int
	start      time.Time
	seq        int
	runID      string
}

// NewWorkload returns a generator over users users, its events starting two
// hours before now, one millisecond apart.
func NewWorkload(seed uint64, users int) *Workload {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &Workload{
		rng:        rng,
		users:      make([]string, users),
		videos:     make([]workloadVideo, workloadVideos),
		byCategory: make([][]int, workloadCategories),
		start:      time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond),
		runID:      strconv.FormatUint(rng.Uint64(), 36),
	}
	for i := range w.users {
		w.users[i] = fmt.Sprintf("user-%06d", i)
	}
	for i := range w.videos {
		c := rng.IntN(workloadCategories)
		tags := make([]string, 3)
		for j := range tags {
			tags[j] = fmt.Sprintf("c%02d-tag%02d", c, rng.IntN(workloadTagsPerCat))
		}
		w.videos[i] = workloadVideo{
			id:       fmt.Sprintf("video-%06d", i),
			category: fmt.Sprintf("cat%02d", c),
			uploader: fmt.Sprintf("up%05d", rng.IntN(workloadUploaders)),
			tags:     tags,
		}
		w.byCategory[c] = append(w.byCategory[c], i)
	}
	return w
}

// Users returns the user ids the workload draws from.
func (w *Workload) Users() []string { return w.users }

// Batch returns n fresh events (unique ids) for users drawn uniformly.
func (w *Workload) Batch(n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = w.Event(w.rng.IntN(len(w.users)))
	}
	return out
}

// Event returns one fresh event for the user with index user.
func (w *Workload) Event(user int) event.Event {
	cat := w.rng.IntN(workloadCategories)
	if w.rng.Float64() < favouriteShare {
		cat = (user*7 + w.rng.IntN(3)*13) % workloadCategories // the user's three favourites
	}
	pool := w.byCategory[cat]
	v := &w.videos[pool[w.rng.IntN(len(pool))]]
	typ := event.Impression
	r := w.rng.Float64()
	for _, m := range typeMix {
		if r < m.share {
			typ = m.t
			break
		}
		r -= m.share
	}
	w.seq++
	return event.Event{
		ID:         w.runID + "-" + strconv.Itoa(w.seq),
		UserID:     w.users[user],
		VideoID:    v.id,
		Type:       typ,
		TS:         w.start.Add(time.Duration(w.seq) * time.Millisecond),
		Category:   v.category,
		Tags:       v.tags,
		UploaderID: v.uploader,
	}
}

// Load applies events in batches of batch until every user has about
// perUser events, and returns how many were applied.
func Load(ctx context.Context, s profile.Store, w *Workload, perUser, batch int) (int, error) {
	total, sent, applied := perUser*len(w.users), 0, 0
	for sent < total {
		evs := make([]event.Event, 0, min(batch, total-sent))
		for i := 0; i < cap(evs); i++ {
			evs = append(evs, w.Event((sent+i)%len(w.users)))
		}
		n, err := s.Apply(ctx, evs)
		applied += n
		if err != nil {
			return applied, err
		}
		sent += len(evs)
	}
	return applied, nil
}

// ApplyBatch and ApplyUsers are the shape of the Apply benchmark: batches of
// 500 events spread over 10k users.
const (
	ApplyBatch = 500
	ApplyUsers = 10_000
)

// BenchApply measures Apply on s, already warmed with 10 events per user,
// and reports events/s.
func BenchApply(b *testing.B, s profile.Store) {
	ctx := context.Background()
	w := NewWorkload(1, ApplyUsers)
	if _, err := Load(ctx, s, w, 10, ApplyBatch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		evs := w.Batch(ApplyBatch)
		b.StartTimer()
		n, err := s.Apply(ctx, evs)
		if err != nil {
			b.Fatal(err)
		}
		if n != len(evs) {
			b.Fatalf("applied %d of %d fresh events", n, len(evs))
		}
	}
	b.ReportMetric(float64(b.N*ApplyBatch)/b.Elapsed().Seconds(), "events/s")
}

// BenchGet measures Get on s holding users users with about 50 events each,
// and reports gets/s.
func BenchGet(b *testing.B, s profile.Store, users int) {
	ctx := context.Background()
	w := NewWorkload(2, users)
	if _, err := Load(ctx, s, w, 50, ApplyBatch); err != nil {
		b.Fatal(err)
	}
	ids := w.Users()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p, err := s.Get(ctx, ids[i%len(ids)], now)
		if err != nil {
			b.Fatal(err)
		}
		if p.Counts.Total() == 0 {
			b.Fatal("benchmark user has no events")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
