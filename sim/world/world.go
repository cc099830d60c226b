// Package world is the simulator's hidden ground truth: creators, a catalog of
// short videos, users whose tastes the recommender cannot see, how those
// tastes drift round by round, and the response model that turns "this user
// was shown this video" into watch time and interactions.
//
// Everything is reproducible from Config.Seed: two worlds generated from the
// same Config and advanced through the same rounds are identical, and no
// draw depends on what a recommender served.
package world

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"reelfeed/catalog"
)

// Config sizes a world and places it in time.
type Config struct {
	Seed int64
	// Users present at the start, each with a history.
	Users int
	// Videos in the catalog at the start.
	Videos int
	// HistoryPerUser is the mean number of videos a starting user was shown
	// before the run (0: no history).
	HistoryPerUser int
	// NewUserRate is how many users join per round, as a share of Users.
	NewUserRate float64
	// UploadRate is how many videos are uploaded per round, as a share of Videos.
	UploadRate float64
	// Start is when the first round begins; the catalog and every history
	// event lie before it.
	Start time.Time
	// HistorySpan is how far back histories reach (default 72h).
	HistorySpan time.Duration
	// CatalogSpan is how far back the starting catalog was published (default 30 days).
	CatalogSpan time.Duration
}

// Creator uploads videos, mostly in one category.
type Creator struct {
	ID       string
	Category int
	Region   string
	// Quality is the mean quality of the creator's videos.
	Quality   float64
	signature []int // tags the creator uses on most videos
}

// Video is one catalog item: its API shape plus the indices the model uses.
type Video struct {
	Index    int
	Meta     catalog.Video
	Category int
	Tags     []int
	Creator  int
	// Round is the round the video was uploaded in; -1: in the starting catalog.
	Round int
}

// User is one simulated person: the attributes the app declares (Meta) and
// the hidden taste only the simulator knows.
type User struct {
	Index int
	Meta  catalog.User
	// JoinRound is the round the user signed up in; -1: present from the
	// start, with a history.
	JoinRound int
	// Activity is the chance the user opens the app in a round.
	Activity float64
	// Active says whether the user opens the app in the current round.
	Active bool

	categories []float64 // hidden taste per category in [0,1]; drifts
	initial    []float64 // categories as generated, for the history
	tags       map[int]float64
	creators   map[int]float64
	burst      int // category of a passing interest, -1 for none
	burstUntil int // first round the passing interest is over
}

// Changes is what one round brought.
type Changes struct {
	Round     int
	From, To  time.Time
	NewVideos []*Video
	NewUsers  []*User
	// Active lists every user who opens the app this round, by index.
	Active []*User
}

// World is the whole simulated population and catalog.
type World struct {
	cfg      Config
	Creators []Creator
	Videos   []*Video
	Users    []*User

	tags       []string // tag index → name
	catTags    [][]int  // category → its own tag indices
	generic    []int
	byCategory [][]*Video
	initialIn  []int // per category, how many of byCategory are starting videos
	byID       map[string]*Video
	creatorsIn [][]int // category → creators whose home it is

	catPop      cumulative
	creatorPick cumulative
	evo         *rand.Rand
	nextRound   int
}

// Generate builds the starting world for cfg.
func Generate(cfg Config) (*World, error) {
	switch {
	case cfg.Users < 0:
		return nil, errors.New("world: users must be >= 0")
	case cfg.Videos < 1:
		return nil, errors.New("world: need at least one video")
	case cfg.HistoryPerUser < 0:
		return nil, errors.New("world: history per user must be >= 0")
	case cfg.NewUserRate < 0 || cfg.UploadRate < 0:
		return nil, errors.New("world: rates must be >= 0")
	case cfg.Start.IsZero():
		return nil, errors.New("world: start time required")
	}
	if cfg.HistorySpan <= 0 {
		cfg.HistorySpan = 72 * time.Hour
	}
	if cfg.CatalogSpan <= 0 {
		cfg.CatalogSpan = 30 * 24 * time.Hour
	}
	w := &World{cfg: cfg, byID: make(map[string]*Video, cfg.Videos), evo: RNG(cfg.Seed, streamEvolve)}
	w.buildVocabulary()
	gen := RNG(cfg.Seed, streamGenerate)
	w.generateCreators(gen)
	for i := 0; i < cfg.Videos; i++ {
		// Skewed towards recent uploads, and never in the last hour, so
		// history events can follow publication.
		age := time.Hour + time.Duration(math.Pow(gen.Float64(), 2)*float64(cfg.CatalogSpan-time.Hour))
		w.addVideo(gen, w.creatorPick.pick(gen), cfg.Start.Add(-age), -1)
	}
	for c := range w.byCategory {
		w.initialIn[c] = len(w.byCategory[c])
	}
	for i := 0; i < cfg.Users; i++ {
		w.addUser(gen, -1)
	}
	return w, nil
}

// NumCategories is the number of content categories.
func (w *World) NumCategories() int { return len(categorySpecs) }

// CategoryVideos lists the published videos of category c, oldest first.
// The slice is the world's own: read it, do not modify it.
func (w *World) CategoryVideos(c int) []*Video { return w.byCategory[c] }

// Video looks a video up by id.
func (w *World) Video(id string) (*Video, bool) {
	v, ok := w.byID[id]
	return v, ok
}

// Advance moves the world into round r, whose simulated time runs from
// `from` to `to`: new uploads, sign-ups, taste drift, passing interests and
// who opens the app. Rounds must be advanced in order from 0.
func (w *World) Advance(r int, from, to time.Time) (Changes, error) {
	if r != w.nextRound {
		return Changes{}, fmt.Errorf("world: advance to round %d, expected %d", r, w.nextRound)
	}
	if to.Before(from) {
		return Changes{}, errors.New("world: round ends before it starts")
	}
	w.nextRound++
	ch := Changes{Round: r, From: from, To: to}
	for i := w.perRound(w.cfg.Videos, w.cfg.UploadRate); i > 0; i-- {
		at := from.Add(time.Duration(w.evo.Float64() * float64(to.Sub(from))))
		ch.NewVideos = append(ch.NewVideos, w.addVideo(w.evo, w.creatorPick.pick(w.evo), at, r))
	}
	for i := w.perRound(w.cfg.Users, w.cfg.NewUserRate); i > 0; i-- {
		ch.NewUsers = append(ch.NewUsers, w.addUser(w.evo, r))
	}
	for _, u := range w.Users {
		w.evolve(u, r)
		if u.Active {
			ch.Active = append(ch.Active, u)
		}
	}
	return ch, nil
}

// perRound turns a per-round rate into a whole count, carrying the
// fraction as a coin flip so the mean is exact.
func (w *World) perRound(base int, rate float64) int {
	e := float64(base) * rate
	n := int(e)
	if w.evo.Float64() < e-float64(n) {
		n++
	}
	return n
}

const (
	driftPerRound = 0.03 // std-dev of a category weight's random walk per round
	burstChance   = 0.08 // chance per round that a passing interest starts
	burstStrength = 0.9  // how much the user likes the category while it lasts
)

func (w *World) evolve(u *User, r int) {
	for c := range u.categories {
		u.categories[c] = clamp01(u.categories[c] + driftPerRound*w.evo.NormFloat64())
	}
	if u.burst >= 0 && r >= u.burstUntil {
		u.burst = -1
	}
	if u.burst < 0 && w.evo.Float64() < burstChance {
		weights := make([]float64, len(u.categories))
		for c, t := range u.categories {
			if t < 0.5 {
				weights[c] = categorySpecs[c].pop
			}
		}
		if c := pickWeighted(w.evo, weights); c >= 0 {
			u.burst, u.burstUntil = c, r+1+w.evo.IntN(3)
		}
	}
	u.Active = u.JoinRound == r || (u.JoinRound < r && w.evo.Float64() < u.Activity)
}

// Favourites names the categories the user currently likes most, strongest
// first (a passing interest included): for explaining a demo, never for
// recommending.
func (w *World) Favourites(u *User, n int) []string {
	idx := make([]int, len(u.categories))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return u.effectiveCategory(idx[a]) > u.effectiveCategory(idx[b])
	})
	out := make([]string, 0, n)
	for _, c := range idx[:min(n, len(idx))] {
		out = append(out, categorySpecs[c].name)
	}
	return out
}

func (w *World) buildVocabulary() {
	seen := map[string]bool{}
	add := func(t string) int {
		if seen[t] {
			panic("world: duplicate tag " + t) // the vocabulary tables are wrong
		}
		seen[t] = true
		w.tags = append(w.tags, t)
		return len(w.tags) - 1
	}
	pops := make([]float64, len(categorySpecs))
	w.catTags = make([][]int, len(categorySpecs))
	for c, spec := range categorySpecs {
		for _, t := range spec.tags {
			w.catTags[c] = append(w.catTags[c], add(t))
		}
		pops[c] = spec.pop
	}
	for _, t := range genericTags {
		w.generic = append(w.generic, add(t))
	}
	w.catPop = newCumulative(pops)
	w.byCategory = make([][]*Video, len(categorySpecs))
	w.initialIn = make([]int, len(categorySpecs))
	w.creatorsIn = make([][]int, len(categorySpecs))
}

func (w *World) generateCreators(rng *rand.Rand) {
	n := max(4, w.cfg.Videos/25)
	productivity := make([]float64, n)
	regionShares := make([]float64, len(regionSpecs))
	for i, r := range regionSpecs {
		regionShares[i] = r.share
	}
	for i := 0; i < n; i++ {
		c := w.catPop.pick(rng)
		own := w.catTags[c]
		a := rng.IntN(len(own))
		b := (a + 1 + rng.IntN(len(own)-1)) % len(own)
		w.Creators = append(w.Creators, Creator{
			ID:        fmt.Sprintf("s%d-c%05d", w.cfg.Seed, i),
			Category:  c,
			Region:    regionSpecs[pickWeighted(rng, regionShares)].code,
			Quality:   clamp(0.5+0.2*rng.NormFloat64(), 0.05, 0.95),
			signature: []int{own[a], own[b]},
		})
		w.creatorsIn[c] = append(w.creatorsIn[c], i)
		// Log-normal output: a few creators upload much of the catalog.
		productivity[i] = math.Exp(0.8 * rng.NormFloat64())
	}
	w.creatorPick = newCumulative(productivity)
}

func (w *World) addVideo(rng *rand.Rand, creator int, published time.Time, round int) *Video {
	cr := &w.Creators[creator]
	idx := len(w.Videos)
	c := cr.Category
	if rng.Float64() > 0.85 {
		c = w.catPop.pick(rng)
	}
	tags := make([]int, 0, 4)
	if c == cr.Category && rng.Float64() < 0.8 {
		tags = append(tags, cr.signature[rng.IntN(len(cr.signature))])
	}
	for n := 1 + rng.IntN(2); n > 0; n-- {
		tags = appendUnique(tags, w.catTags[c][rng.IntN(len(w.catTags[c]))])
	}
	if rng.Float64() < 0.4 {
		tags = appendUnique(tags, w.generic[rng.IntN(len(w.generic))])
	}
	names := make([]string, len(tags))
	for i, t := range tags {
		names[i] = w.tags[t]
	}
	quality := math.Round(clamp(cr.Quality+0.15*rng.NormFloat64(), 0.01, 0.99)*1000) / 1000
	// Log-normal durations around 25 s, as on short-video apps.
	duration := time.Duration(clamp(25*math.Exp(0.6*rng.NormFloat64()), 5, 180) * float64(time.Second)).Round(time.Millisecond)
	regions := []string{}
	if rng.Float64() < 0.15 {
		regions = []string{cr.Region}
	}
	category := categorySpecs[c].name
	v := &Video{
		Index:    idx,
		Category: c,
		Tags:     tags,
		Creator:  creator,
		Round:    round,
		Meta: catalog.Video{
			ID:          fmt.Sprintf("s%d-v%07d", w.cfg.Seed, idx),
			UploaderID:  cr.ID,
			Title:       fmt.Sprintf("%s %s #%d", titleCase(names[0]), category, idx),
			Description: fmt.Sprintf("A %s video by %s. #%s", category, cr.ID, strings.Join(names, " #")),
			Tags:        names,
			Category:    category,
			DurationMs:  duration.Milliseconds(),
			PublishedAt: published.UTC().Truncate(time.Millisecond),
			Regions:     regions,
			Kind:        catalog.KindVideo,
			Quality:     quality,
		},
	}
	w.Videos = append(w.Videos, v)
	w.byCategory[c] = append(w.byCategory[c], v)
	w.byID[v.Meta.ID] = v
	return v
}

func (w *World) addUser(rng *rand.Rand, joinRound int) *User {
	idx := len(w.Users)
	age := 16 + rng.IntN(9) // 40% aged 16–24
	switch p := rng.Float64(); {
	case p < 0.35:
		age = 25 + rng.IntN(15)
	case p < 0.60:
		age = 40 + rng.IntN(31)
	}
	gender := "female"
	switch p := rng.Float64(); {
	case p < 0.48:
		gender = "male"
	case p < 0.52:
		gender = "other"
	}
	regionShares := make([]float64, len(regionSpecs))
	for i, r := range regionSpecs {
		regionShares[i] = r.share
	}
	region := regionSpecs[pickWeighted(rng, regionShares)]
	device := "android"
	switch p := rng.Float64(); {
	case p < 0.40:
		device = "ios"
	case p < 0.45:
		device = "web"
	}

	u := &User{
		Index:      idx,
		JoinRound:  joinRound,
		Activity:   0.5 + 0.5*rng.Float64(),
		categories: make([]float64, len(categorySpecs)),
		tags:       map[int]float64{},
		creators:   map[int]float64{},
		burst:      -1,
		Meta: catalog.User{
			ID:       fmt.Sprintf("s%d-u%07d", w.cfg.Seed, idx),
			Age:      age,
			Gender:   gender,
			Region:   region.code,
			Device:   device,
			Language: region.language,
		},
	}
	if joinRound >= 0 {
		u.Activity = 0.6 + 0.4*rng.Float64()
	}
	for c := range u.categories {
		u.categories[c] = 0.15 * rng.Float64()
	}
	// Two or three strong favourites, more likely the ones popular with the
	// user's age, gender and region.
	prefer := make([]float64, len(categorySpecs))
	for c, spec := range categorySpecs {
		prefer[c] = spec.pop * demographicBoost(spec.name, age, gender) * factor(region.boost, spec.name)
	}
	strengths := []float64{1.0, 0.7 + 0.2*rng.Float64(), 0.5 + 0.2*rng.Float64()}
	favourites := 2 + rng.IntN(2)
	for i := 0; i < favourites; i++ {
		c := pickWeighted(rng, prefer)
		prefer[c] = 0
		u.categories[c] = strengths[i]
		own := w.catTags[c]
		a := rng.IntN(len(own))
		b := (a + 1 + rng.IntN(len(own)-1)) % len(own)
		u.tags[own[a]] = 0.6 + 0.4*rng.Float64()
		u.tags[own[b]] = 0.6 + 0.4*rng.Float64()
		if cs := w.creatorsIn[c]; len(cs) > 0 && (i == 0 || rng.Float64() < 0.6) {
			cr := cs[rng.IntN(len(cs))]
			u.creators[cr] = 0.6 + 0.4*rng.Float64()
			if rng.Float64() < 0.5 {
				u.Meta.Follows = append(u.Meta.Follows, w.Creators[cr].ID)
			}
		}
	}
	liked := w.generic[rng.IntN(len(w.generic))]
	if rng.Float64() < 0.5 {
		u.tags[liked] = 0.5 + 0.5*rng.Float64()
	}
	if disliked := w.generic[rng.IntN(len(w.generic))]; disliked != liked && rng.Float64() < 0.4 {
		u.tags[disliked] = -(0.5 + 0.5*rng.Float64())
	}
	u.initial = append([]float64(nil), u.categories...)
	w.Users = append(w.Users, u)
	return u
}

// following reports whether the user declared they follow the creator.
func (u *User) following(creatorID string) bool {
	for _, f := range u.Meta.Follows {
		if f == creatorID {
			return true
		}
	}
	return false
}

// cumulative picks an index with probability proportional to its weight in
// O(log n), for the large weighted draws (creators per upload).
type cumulative []float64

func newCumulative(weights []float64) cumulative {
	c := make(cumulative, len(weights))
	sum := 0.0
	for i, x := range weights {
		sum += x
		c[i] = sum
	}
	return c
}

func (c cumulative) pick(rng *rand.Rand) int {
	x := rng.Float64() * c[len(c)-1]
	return min(sort.SearchFloat64s(c, x), len(c)-1)
}

// pickWeighted draws an index proportionally to weights, -1 when all are 0.
func pickWeighted(rng *rand.Rand, weights []float64) int {
	sum := 0.0
	for _, x := range weights {
		sum += x
	}
	if sum <= 0 {
		return -1
	}
	x := rng.Float64() * sum
	for i, wt := range weights {
		if x < wt {
			return i
		}
		x -= wt
	}
	for i := len(weights) - 1; i >= 0; i-- {
		if weights[i] > 0 {
			return i
		}
	}
	return -1
}

func appendUnique(s []int, x int) []int {
	for _, y := range s {
		if y == x {
			return s
		}
	}
	return append(s, x)
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "-", " ")
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

func clamp01(x float64) float64 { return clamp(x, 0, 1) }
