package rank

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/profile"
)

// simWorld is a small synthetic population for tests: users with hidden
// category tastes (partly visible through their profiles), videos with a
// hidden quality, and an outcome model mixing both, so there is something
// real for the models to learn through the production feature pipeline.
type simWorld struct {
	rng        *rand.Rand
	users      []simUser
	videos     []*catalog.Video
	quality    map[string]float64
	categories []string
	start      time.Time
}

type simUser struct {
	user    *catalog.User
	profile *profile.Profile
	taste   map[string]float64 // category → hidden preference
}

func newSimWorld(seed uint64, nUsers, nVideos int) *simWorld {
	w := &simWorld{
		rng:        rand.New(rand.NewPCG(seed, 17)),
		quality:    map[string]float64{},
		categories: []string{"music", "sports", "comedy", "food", "travel", "games", "pets", "news"},
		start:      time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	for i := range nVideos {
		cat := w.categories[w.rng.IntN(len(w.categories))]
		v := &catalog.Video{
			ID:          fmt.Sprintf("v%d", i),
			UploaderID:  fmt.Sprintf("up%d", w.rng.IntN(50)),
			Category:    cat,
			Tags:        []string{cat + "-" + fmt.Sprint(w.rng.IntN(5)), "t" + fmt.Sprint(w.rng.IntN(40))},
			DurationMs:  int64(3000 + w.rng.IntN(300000)),
			PublishedAt: w.start.Add(-time.Duration(w.rng.IntN(30*24)) * time.Hour),
			Kind:        catalog.KindVideo,
		}
		w.videos = append(w.videos, v)
		w.quality[v.ID] = w.rng.Float64()
	}
	genders := []string{"f", "m", ""}
	for i := range nUsers {
		u := simUser{
			user: &catalog.User{ID: fmt.Sprintf("u%d", i), Age: 14 + w.rng.IntN(50), Gender: genders[w.rng.IntN(3)],
				Region: []string{"eu", "us", "asia"}[w.rng.IntN(3)], Device: []string{"ios", "android"}[w.rng.IntN(2)]},
			taste: map[string]float64{},
		}
		p := emptyProfile(u.user.ID)
		for _, c := range w.categories {
			t := w.rng.NormFloat64()
			u.taste[c] = t
			// The profile sees a noisy version of the taste, for most users.
			if w.rng.Float64() < 0.7 {
				p.LongTerm.Categories[c] = math.Max(0, 5*t+w.rng.NormFloat64())
				p.ShortTerm.Categories[c] = math.Max(0, 2*t+w.rng.NormFloat64())
			}
		}
		if w.rng.Float64() < 0.3 {
			u.user.Follows = []string{fmt.Sprintf("up%d", w.rng.IntN(50))}
		}
		u.profile = p
		w.users = append(w.users, u)
	}
	return w
}

func emptyProfile(id string) *profile.Profile {
	in := func() profile.Interests {
		return profile.Interests{Tags: map[string]float64{}, Categories: map[string]float64{}, Uploaders: map[string]float64{}}
	}
	return &profile.Profile{UserID: id, ShortTerm: in(), LongTerm: in(),
		Played: map[string]time.Time{}, Positive: map[string]time.Time{}, Shown: map[string]time.Time{}}
}

// stats gives a video counters consistent with its hidden quality.
func (w *simWorld) stats(v *catalog.Video) feature.Stats {
	q := w.quality[v.ID]
	var day event.Counts
	day[event.Impression] = 200
	day[event.Play] = int64(40 + 120*q)
	day[event.Complete] = int64(float64(day[event.Play]) * (0.1 + 0.6*q))
	day[event.Like] = int64(float64(day[event.Play]) * 0.1 * q)
	return feature.Stats{VideoID: v.ID, Day: day, Lifetime: day}
}

// impression draws one (query, item, label) with the hidden outcome model.
func (w *simWorld) impression(i int) (*Query, Item, float32) {
	u := w.users[w.rng.IntN(len(w.users))]
	v := w.videos[w.rng.IntN(len(w.videos))]
	q := &Query{UserID: u.user.ID, Profile: u.profile, User: u.user, Region: u.user.Region, Device: u.user.Device,
		Now: w.start.Add(time.Duration(i) * time.Second)}
	it := Item{Video: v, Stats: w.stats(v), Branch: "hot"}
	z := -1.0 + 1.5*u.taste[v.Category] + 2*(w.quality[v.ID]-0.5)
	if u.user.Gender == "f" && v.Category == "pets" || u.user.Gender == "m" && v.Category == "games" {
		z += 1
	}
	if len(u.user.Follows) > 0 && u.user.Follows[0] == v.UploaderID {
		z += 1
	}
	var label float32
	if w.rng.Float64() < 1/(1+math.Exp(-z)) {
		label = 1
	}
	return q, it, label
}

// samples logs n impressions through the production feature path.
func (w *simWorld) samples(n int) []Sample {
	fx := NewFeatureExtractor(feature.DefaultSmoothing())
	out := make([]Sample, n)
	for i := range out {
		q, it, label := w.impression(i)
		out[i] = Sample{UserID: q.UserID, VideoID: it.Video.ID, TS: q.Now, Label: label,
			Reason: map[float32]string{0: ReasonTimeout, 1: "complete"}[label], Features: fx.Log(q, &it)}
	}
	return out
}
