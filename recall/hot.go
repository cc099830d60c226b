package recall

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
)

// HotConfig tunes the hot-list job.
type HotConfig struct {
	// Interval is how often the lists are rebuilt on the timer (spikes
	// rebuild them sooner).
	Interval time.Duration
	// ListSize is how many videos each region's list keeps.
	ListSize int
	// Weights per event type over the day window; impressions are the
	// denominator, not a weight.
	Weights [event.NumTypes]float64
	// QualityWeight scales the catalog quality in [0,1] against engagement;
	// it orders videos nobody has engaged with yet.
	QualityWeight float64
	// FreshnessHalfLife halves a video's freshness factor; FreshnessFloor is
	// the factor an old video keeps, so a lasting hit still ranks.
	FreshnessHalfLife time.Duration
	FreshnessFloor    float64
	// Smoothing is the prior that keeps a video with a handful of
	// impressions from looking like a hit (feature.DefaultSmoothing).
	Smoothing feature.Smoothing
}

// DefaultHotConfig returns the documented defaults.
func DefaultHotConfig() HotConfig {
	return HotConfig{
		Interval:          15 * time.Minute,
		ListSize:          500,
		Weights:           defaultEngagementWeights(),
		QualityWeight:     2,
		FreshnessHalfLife: 72 * time.Hour,
		FreshnessFloor:    0.3,
		Smoothing:         feature.DefaultSmoothing(),
	}
}

// Validate reports the first setting that cannot work.
func (c HotConfig) Validate() error {
	switch {
	case c.ListSize <= 0:
		return errors.New("recall: hot list_size must be > 0")
	case !anyPositive(c.Weights):
		return errors.New("recall: hot weights must weight some event type positively")
	case c.QualityWeight < 0:
		return errors.New("recall: hot quality_weight must be >= 0")
	case c.FreshnessHalfLife < 0:
		return errors.New("recall: hot freshness_half_life must be >= 0 (0: no decay)")
	case c.FreshnessFloor < 0 || c.FreshnessFloor > 1:
		return errors.New("recall: hot freshness_floor must be in [0,1]")
	case c.Smoothing.Strength < 0 || c.Smoothing.PriorCTR < 0 || c.Smoothing.PriorCompletion < 0 || c.Smoothing.PriorInteraction < 0:
		return errors.New("recall: hot smoothing priors and strength must be >= 0")
	}
	return nil
}

func anyPositive(w [event.NumTypes]float64) bool {
	for _, x := range w {
		if x > 0 {
			return true
		}
	}
	return false
}

// HotJob builds the hot lists: per region (and one global list under the
// empty region) the top ListSize videos allowed there, by smoothed
// engagement per impression over the last day, catalog quality and
// freshness. The lists go to the ListStore, shared by replicas when it is
// Redis.
type HotJob struct {
	cfg      HotConfig
	catalog  *catalog.Catalog
	features feature.Store
	store    ListStore
	runner   *jobRunner
	now      func() time.Time
}

// hotStatsBatch is how many videos' stats are read per feature.Store call.
const hotStatsBatch = 512

// NewHotJob returns the hot-list job; logger and reg may be nil.
func NewHotJob(cfg HotConfig, cat *catalog.Catalog, features feature.Store, store ListStore, logger *zap.Logger, reg prometheus.Registerer) (*HotJob, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &HotJob{
		cfg: cfg, catalog: cat, features: features, store: store,
		runner: newJobRunner("hotlist", logger, reg),
		now:    time.Now,
	}, nil
}

// Name is "hotlist", the admin job name.
func (j *HotJob) Name() string { return "hotlist" }

// Run rebuilds every hot list once.
func (j *HotJob) Run(ctx context.Context) (JobResult, error) {
	return j.runner.run(ctx, j.build)
}

type hotScore struct {
	video *catalog.Video
	score float64
}

func (j *HotJob) build(ctx context.Context, res *JobResult) error {
	now := j.now()
	var videos []*catalog.Video
	j.catalog.Each(func(v *catalog.Video) bool {
		videos = append(videos, v)
		return true
	})
	res.Videos = len(videos)

	ranked := make([]hotScore, 0, len(videos))
	ids := make([]string, 0, hotStatsBatch)
	for start := 0; start < len(videos); start += hotStatsBatch {
		batch := videos[start:min(start+hotStatsBatch, len(videos))]
		ids = ids[:0]
		for _, v := range batch {
			ids = append(ids, v.ID)
		}
		stats, err := j.features.Get(ctx, nil, ids, now)
		if err != nil {
			return fmt.Errorf("read video stats: %w", err)
		}
		if len(stats) != len(batch) {
			return fmt.Errorf("feature store returned %d stats for %d videos", len(stats), len(batch))
		}
		for i, v := range batch {
			ranked = append(ranked, hotScore{video: v, score: j.score(v, &stats[i], now)})
		}
	}
	slices.SortFunc(ranked, func(a, b hotScore) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.video.ID, b.video.ID)
	})

	lists := j.regionLists(ranked)
	res.Regions = len(lists) - 1
	res.Lists = len(lists)
	for _, l := range lists {
		res.Items += len(l)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := j.store.ReplaceAll(ctx, hotNamespace, maps.All(lists)); err != nil {
		return fmt.Errorf("store hot lists: %w", err)
	}
	return nil
}

// regionLists deals ranked videos out to the lists they may appear in, best
// first, until every list is full: the global list (key "") takes every
// video, a region's list the videos allowed there.
func (j *HotJob) regionLists(ranked []hotScore) map[string][]Scored {
	size := j.cfg.ListSize
	lists := map[string][]Scored{"": make([]Scored, 0, min(size, len(ranked)))}
	for _, h := range ranked {
		for _, r := range h.video.Regions {
			if _, ok := lists[r]; !ok {
				lists[r] = make([]Scored, 0, min(size, len(ranked)))
			}
		}
	}
	regions := make([]string, 0, len(lists)-1)
	for r := range lists {
		if r != "" {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)

	open := len(lists)
	add := func(key string, h hotScore) {
		l := lists[key]
		if len(l) >= size {
			return
		}
		l = append(l, Scored{ID: h.video.ID, Score: h.score})
		lists[key] = l
		if len(l) == size {
			open--
		}
	}
	for _, h := range ranked {
		if open == 0 {
			break
		}
		add("", h)
		if len(h.video.Regions) == 0 {
			for _, r := range regions {
				add(r, h)
			}
			continue
		}
		for _, r := range h.video.Regions {
			add(r, h)
		}
	}
	return lists
}

// score is the hot score of one video. Engagement is weighted and divided by
// impressions with the Smoothing prior, so a video shown a lot without being
// watched does not win on exposure alone; that rate (relative to the prior)
// scales the log of the engagement volume, so a real hit beats a video with
// one lucky play. Quality orders videos without engagement; freshness decays
// both towards FreshnessFloor.
func (j *HotJob) score(v *catalog.Video, st *feature.Stats, now time.Time) float64 {
	c := st.Day
	// Every complete was played and every play was shown, even when the app
	// did not report the impression.
	c[event.Play] = max(c[event.Play], c[event.Complete])
	c[event.Impression] = max(c[event.Impression], c[event.Play])

	var engaged float64
	for t, w := range j.cfg.Weights {
		if event.Type(t) != event.Impression {
			engaged += w * float64(c[t])
		}
	}
	engagement := 0.0
	if engaged > 0 {
		lift := 1.0
		if prior := j.priorEngagementPerImpression(); prior > 0 {
			s := j.cfg.Smoothing.Strength
			perImpression := (engaged + prior*s) / (float64(c[event.Impression]) + s)
			lift = perImpression / prior
		}
		engagement = lift * math.Log1p(engaged)
	}

	fresh := 1.0
	if hl := j.cfg.FreshnessHalfLife; hl > 0 {
		age := max(now.Sub(v.PublishedAt), 0)
		floor := j.cfg.FreshnessFloor
		fresh = floor + (1-floor)*math.Exp2(-float64(age)/float64(hl))
	}
	return (j.cfg.QualityWeight*v.Quality + engagement) * fresh
}

// priorEngagementPerImpression is the weighted engagement an average
// impression earns under the Smoothing priors: it plays with PriorCTR, then
// completes with PriorCompletion and interacts (like, comment, share, at
// their mean weight) with PriorInteraction.
func (j *HotJob) priorEngagementPerImpression() float64 {
	s, w := j.cfg.Smoothing, j.cfg.Weights
	interact := (w[event.Like] + w[event.Comment] + w[event.Share]) / 3
	return s.PriorCTR * (w[event.Play] + s.PriorCompletion*w[event.Complete] + s.PriorInteraction*interact)
}

// HotSource is the "hot" branch: the warmed list of the user's region, then
// the global one, cheap enough to read on every request and for backfill.
type HotSource struct {
	store   ListStore
	catalog *catalog.Catalog

	mu       sync.Mutex
	resolved map[string]*resolvedList // by list key (region)
}

// resolvedList is a hot list's videos looked up once per version of the
// list: lists change every few minutes, requests come hundreds a second.
// A video updated or deleted since is corrected by the feed's deleted
// filter, which confirms every candidate against the catalog.
type resolvedList struct {
	src    *Scored // identity of the list version: its first element
	n      int
	videos []*catalog.Video // nil until the version is read again; an entry is nil when not in the catalog
}

// NewHotSource returns the hot branch over the lists HotJob writes.
func NewHotSource(store ListStore, cat *catalog.Catalog) *HotSource {
	return &HotSource{store: store, catalog: cat, resolved: map[string]*resolvedList{}}
}

// videos returns the catalog videos of list, the hot list stored under
// key, once the same version of the list was read twice (a store that
// hands out a fresh copy per read gets nil: resolving a whole list would
// cost more than the items one request reads). nil: resolve item by item.
func (s *HotSource) videos(key string, list []Scored) []*catalog.Video {
	if len(list) == 0 {
		return nil
	}
	s.mu.Lock()
	r := s.resolved[key]
	s.mu.Unlock()
	same := r != nil && r.src == &list[0] && r.n == len(list)
	if same && r.videos != nil {
		return r.videos
	}
	next := &resolvedList{src: &list[0], n: len(list)}
	if same {
		next.videos = make([]*catalog.Video, len(list))
		for i := range list {
			next.videos[i], _ = s.catalog.Get(list[i].ID)
		}
	}
	s.mu.Lock()
	s.resolved[key] = next // keys are stored lists' keys, so the map stays as small as the store
	s.mu.Unlock()
	return next.videos
}

// Name is "hot".
func (s *HotSource) Name() string { return "hot" }

// InProcess implements InProcess: true when the lists are kept in memory.
func (s *HotSource) InProcess() bool {
	_, local := s.store.(*MemoryListStore)
	return local
}

// Recall returns up to quota hot videos allowed in the request's region:
// the region's list first, then the global one. Videos the user played or
// that were deleted are skipped; videos already shown to the user come only
// after every unseen one, so backfill still fills a page for a user who has
// seen the whole hot list.
func (s *HotSource) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, ctx.Err()
	}
	regional, err := s.store.Get(ctx, hotNamespace, req.Region, 0)
	if err != nil {
		return nil, fmt.Errorf("hot list %q: %w", req.Region, err)
	}
	// The region's list, then the global one (read only when needed).
	scored := [2][]Scored{regional}
	lists := [2][]*catalog.Video{s.videos(req.Region, regional)}
	globalRead := req.Region == "" // the region's list is the global one
	out := req.candidates(quota)
	// have dedupes across lists and passes; the common case, one pass over
	// the region's list filling the quota, never needs it.
	var have map[*catalog.Video]struct{}
	for pass, takeShown := range []bool{false, true} {
		for i := range 2 {
			if len(out) == quota {
				return out, nil
			}
			if i == 1 && !globalRead {
				globalRead = true
				global, err := s.store.Get(ctx, hotNamespace, "", 0)
				if err != nil && len(out) == 0 {
					return nil, fmt.Errorf("global hot list: %w", err)
				}
				scored[1], lists[1] = global, s.videos("", global)
			}
			if (pass > 0 || i > 0) && have == nil {
				have = make(map[*catalog.Video]struct{}, quota)
				for _, c := range out {
					have[c.Video] = struct{}{}
				}
			}
			for k := range scored[i] {
				if len(out) == quota {
					break
				}
				var v *catalog.Video
				if lists[i] != nil {
					v = lists[i][k]
				} else {
					v, _ = s.catalog.Get(scored[i][k].ID)
				}
				if v == nil || req.played(v) || (!takeShown && req.shown(v)) {
					continue
				}
				if _, ok := have[v]; ok {
					continue
				}
				if !v.AllowedIn(req.Region) {
					continue
				}
				out = append(out, Candidate{Video: v, Branch: "hot", Score: scored[i][k].Score})
				if have != nil {
					have[v] = struct{}{}
				}
			}
		}
	}
	return out, nil
}
