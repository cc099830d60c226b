package sim

import (
	"context"
	"fmt"
	"sort"

	"reelfeed/event"
	"reelfeed/sim/world"
)

// policy decides what a simulated user is served. The server policy asks
// reelfeed; the others are computed here, from what the simulator observed
// (popular) or from the hidden truth (oracle), to put reelfeed's numbers
// between a floor and a ceiling.
type policy interface {
	name() string
	// start loads the starting world (catalog, users, history).
	start(ctx context.Context, w *world.World, history [][]world.Exposure) error
	// beginRound publishes the round's uploads and sign-ups.
	beginRound(ctx context.Context, ch world.Changes) error
	// recommend returns up to count videos for u; seen holds the video
	// indices u was already shown. Called concurrently for different users.
	recommend(ctx context.Context, u *world.User, seen map[int]struct{}, round, count int) (recommendation, error)
	// feedback reports the user's reactions (never impressions: the feed
	// publishes those itself). Called concurrently for different users.
	feedback(ctx context.Context, u *world.User, events []event.Event) error
	// endRound sees every session of the round, in user order.
	endRound(ctx context.Context, ch world.Changes, sessions []*session) error
}

type recommendation struct {
	requestID string
	videos    []*world.Video
	foreign   int // served ids the simulated world does not know
}

func eligible(v *world.Video, u *world.User, seen map[int]struct{}) bool {
	if _, ok := seen[v.Index]; ok {
		return false
	}
	return v.Meta.AllowedIn(u.Meta.Region)
}

// clientPolicy holds what the three client-side policies share: they need
// no server, so loading and feedback are no-ops.
type clientPolicy struct{ seed int64 }

func (clientPolicy) start(context.Context, *world.World, [][]world.Exposure) error { return nil }
func (clientPolicy) beginRound(context.Context, world.Changes) error               { return nil }
func (clientPolicy) feedback(context.Context, *world.User, []event.Event) error    { return nil }
func (clientPolicy) endRound(context.Context, world.Changes, []*session) error     { return nil }

func (p clientPolicy) requestID(name string, u *world.User, round int) string {
	return fmt.Sprintf("sim-%s-%d-r%d-%s", name, p.seed, round, u.Meta.ID)
}

// streamRandomPolicy labels the random policy's draws (see world.RNG).
const streamRandomPolicy uint64 = 101

type randomPolicy struct {
	clientPolicy
	w *world.World
}

func (p *randomPolicy) name() string { return PolicyRandom }

func (p *randomPolicy) start(_ context.Context, w *world.World, _ [][]world.Exposure) error {
	p.w = w
	return nil
}

func (p *randomPolicy) recommend(_ context.Context, u *world.User, seen map[int]struct{}, round, count int) (recommendation, error) {
	rng := world.RNG(p.seed, streamRandomPolicy, uint64(u.Index), uint64(round))
	videos := p.w.Videos
	picked := make(map[int]struct{}, count)
	out := make([]*world.Video, 0, count)
	take := func(v *world.Video) {
		if _, dup := picked[v.Index]; !dup && eligible(v, u, seen) {
			picked[v.Index] = struct{}{}
			out = append(out, v)
		}
	}
	for attempt := 0; attempt < 20*count && len(out) < count; attempt++ {
		take(videos[rng.IntN(len(videos))])
	}
	// A nearly exhausted catalog: walk it from a random place instead.
	for i, off := 0, rng.IntN(len(videos)); i < len(videos) && len(out) < count; i++ {
		take(videos[(off+i)%len(videos)])
	}
	return recommendation{requestID: p.requestID(PolicyRandom, u, round), videos: out}, nil
}

// popularPolicy serves the videos with the most positive engagement the
// simulator has observed so far (history included), the same list for
// everyone minus what each user has seen.
type popularPolicy struct {
	clientPolicy
	w       *world.World
	score   []float64
	ranking []*world.Video
}

func (p *popularPolicy) name() string { return PolicyPopular }

func (p *popularPolicy) start(_ context.Context, w *world.World, history [][]world.Exposure) error {
	p.w = w
	for _, h := range history {
		for _, x := range h {
			p.observe(x.Video, x.Response)
		}
	}
	p.rerank()
	return nil
}

func (p *popularPolicy) observe(v *world.Video, r world.Response) {
	for len(p.score) <= v.Index {
		p.score = append(p.score, 0)
	}
	for _, did := range []bool{!r.Skip, r.Complete, r.Like, r.Comment, r.Share, r.Follow} {
		if did {
			p.score[v.Index]++
		}
	}
}

func (p *popularPolicy) rerank() {
	p.ranking = append(p.ranking[:0], p.w.Videos...)
	score := func(v *world.Video) float64 {
		if v.Index < len(p.score) {
			return p.score[v.Index]
		}
		return 0
	}
	sort.SliceStable(p.ranking, func(i, j int) bool { return score(p.ranking[i]) > score(p.ranking[j]) })
}

func (p *popularPolicy) recommend(_ context.Context, u *world.User, seen map[int]struct{}, round, count int) (recommendation, error) {
	out := make([]*world.Video, 0, count)
	for _, v := range p.ranking {
		if len(out) == count {
			break
		}
		if eligible(v, u, seen) {
			out = append(out, v)
		}
	}
	return recommendation{requestID: p.requestID(PolicyPopular, u, round), videos: out}, nil
}

func (p *popularPolicy) endRound(_ context.Context, _ world.Changes, sessions []*session) error {
	for _, s := range sessions {
		for _, it := range s.items {
			p.observe(it.video, it.response)
		}
	}
	p.rerank()
	return nil
}

// oraclePolicy serves each user the unseen videos with the highest hidden
// appeal right now: no recommender can do better in expectation.
type oraclePolicy struct {
	clientPolicy
	w *world.World
}

func (p *oraclePolicy) name() string { return PolicyOracle }

func (p *oraclePolicy) start(_ context.Context, w *world.World, _ [][]world.Exposure) error {
	p.w = w
	return nil
}

type scored struct {
	v *world.Video
	a float64
}

func (p *oraclePolicy) recommend(_ context.Context, u *world.User, seen map[int]struct{}, round, count int) (recommendation, error) {
	cats := make([]scored, p.w.NumCategories())
	for c := range cats {
		cats[c] = scored{a: p.w.AppealBound(u, c)}
	}
	order := make([]int, len(cats))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return cats[order[i]].a > cats[order[j]].a })

	best := make([]scored, 0, count+1) // ascending by appeal, then by index
	for _, c := range order {
		if len(best) == count && cats[c].a < best[0].a {
			break // no video of this or any later category can enter
		}
		for _, v := range p.w.CategoryVideos(c) {
			if !eligible(v, u, seen) {
				continue
			}
			s := scored{v, p.w.Appeal(u, v)}
			if len(best) == count && !better(s, best[0]) {
				continue
			}
			i := sort.Search(len(best), func(i int) bool { return better(best[i], s) })
			best = append(best, scored{})
			copy(best[i+1:], best[i:])
			best[i] = s
			if len(best) > count {
				best = best[1:]
			}
		}
	}
	out := make([]*world.Video, len(best))
	for i, s := range best {
		out[len(best)-1-i] = s.v
	}
	return recommendation{requestID: p.requestID(PolicyOracle, u, round), videos: out}, nil
}

// better orders by appeal, ties to the older video, so results never
// depend on scan order.
func better(a, b scored) bool {
	if a.a != b.a {
		return a.a > b.a
	}
	return a.v.Index < b.v.Index
}
