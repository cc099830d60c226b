package world

import (
	"math/rand/v2"
	"sort"
	"time"

	"reelfeed/event"
)

// Exposure is one video a user was shown before the run, and what they did.
type Exposure struct {
	Video    *Video
	At       time.Time // when it was shown; the view ended Response.Watch() later
	Response Response
}

// Events are the exposure's impression followed by the reactions.
func (x Exposure) Events(userID string) []event.Event {
	return append([]event.Event{Impression(userID, x.Video, "", x.At)}, x.Response.Events(userID, x.Video, "", x.At.Add(x.Response.Watch()))...)
}

const historyTasteShare = 0.55 // share of past exposures a previous recommender aimed at the user's taste

// History returns what a starting user was shown before the run, oldest
// first: a mix of videos from categories they like (a previous recommender
// did some targeting) and popular categories, from the starting catalog,
// with the reactions the user's starting taste produced. It is a pure
// function of the seed and the user, whenever it is called; users who join
// during the run have none.
func (w *World) History(u *User) []Exposure {
	if u.JoinRound >= 0 || w.cfg.HistoryPerUser == 0 {
		return nil
	}
	rng := RNG(w.cfg.Seed, streamHistory, uint64(u.Index))
	n := w.cfg.HistoryPerUser/2 + rng.IntN(w.cfg.HistoryPerUser+1)
	liked := make([]float64, len(u.initial))
	for c, t := range u.initial {
		liked[c] = t * t
	}
	followed := map[int]bool{}
	for i, cr := range w.Creators {
		if u.following(cr.ID) {
			followed[i] = true
		}
	}
	seen := map[int]bool{}
	begin, end := w.cfg.Start.Add(-w.cfg.HistorySpan), w.cfg.Start.Add(-time.Minute)
	out := make([]Exposure, 0, n)
	for len(out) < n {
		v := w.pickHistoryVideo(u, liked, seen, rng)
		if v == nil {
			break
		}
		seen[v.Index] = true
		lo := v.Meta.PublishedAt.Add(time.Minute)
		if lo.Before(begin) {
			lo = begin
		}
		r := respond(w.appeal(u, v, u.initial[v.Category]), u.creators[v.Creator], v.Meta.DurationMs, followed[v.Creator], rng)
		hi := end.Add(-r.Watch())
		at := lo
		if hi.After(lo) {
			at = lo.Add(time.Duration(rng.Float64() * float64(hi.Sub(lo))))
		}
		at = at.Truncate(time.Millisecond)
		if r.Follow {
			followed[v.Creator] = true
		}
		out = append(out, Exposure{Video: v, At: at, Response: r})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func (w *World) pickHistoryVideo(u *User, liked []float64, seen map[int]bool, rng *rand.Rand) *Video {
	for attempt := 0; attempt < 64; attempt++ {
		var c int
		if rng.Float64() < historyTasteShare {
			c = pickWeighted(rng, liked)
		} else {
			c = w.catPop.pick(rng)
		}
		if c < 0 || w.initialIn[c] == 0 {
			continue
		}
		v := w.byCategory[c][rng.IntN(w.initialIn[c])]
		// The previous recommender favoured better videos, as platforms do:
		// that is what makes "popular" a real baseline.
		if seen[v.Index] || !v.Meta.AllowedIn(u.Meta.Region) || rng.Float64() > v.Meta.Quality {
			continue
		}
		return v
	}
	return nil
}
