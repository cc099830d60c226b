package recall

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/catalog"
	"reelfeed/event"
)

// I2IConfig tunes the item-to-item job and the "i2i" branch.
type I2IConfig struct {
	// Interval is how often the job runs on its timer.
	Interval time.Duration
	// Window is how much of the event log is replayed.
	Window time.Duration
	// HalfLife halves the weight of an engagement as it ages.
	HalfLife time.Duration
	// Weights per event type: which behaviours count as positive and how
	// much; a negative weight (dislike) cancels positives on the same video.
	Weights [event.NumTypes]float64
	// TopK is how many neighbours are kept per video.
	TopK int
	// SessionGap and PairSpan bound co-engagement: two videos pair up only
	// when one user engaged with both within SessionGap of each other and at
	// most PairSpan positions apart in that user's history (SessionGap <= 0:
	// no time bound).
	SessionGap time.Duration
	PairSpan   int
	// MaxItemsPerUser keeps only a user's latest positive videos, bounding
	// the pairs a heavy user (or a bot) contributes.
	MaxItemsPerUser int
	// PopularityPenalty is the exponent on the neighbour's norm in
	// co / (|i|^(1-p) · |j|^p): 0.5 is cosine, above it favours less popular
	// neighbours over the videos everyone watches.
	PopularityPenalty float64
	// Shrinkage damps pairs seen by few users: similarity is multiplied by
	// n / (n + Shrinkage) for n co-engaging users.
	Shrinkage float64
	// Workers is the job's parallelism (0: half the CPUs).
	Workers int

	// Seeds is how many of the user's latest positive videos the branch
	// expands; SeedHalfLife halves an older seed's say in the result.
	Seeds        int
	SeedHalfLife time.Duration
}

// DefaultI2IConfig returns the documented defaults.
func DefaultI2IConfig() I2IConfig {
	return I2IConfig{
		Interval:          time.Hour,
		Window:            7 * 24 * time.Hour,
		HalfLife:          3 * 24 * time.Hour,
		Weights:           defaultPositiveWeights(),
		TopK:              30,
		SessionGap:        24 * time.Hour,
		PairSpan:          20,
		MaxItemsPerUser:   200,
		PopularityPenalty: 0.6,
		Shrinkage:         2,
		Seeds:             20,
		SeedHalfLife:      24 * time.Hour,
	}
}

// Validate reports the first setting that cannot work.
func (c I2IConfig) Validate() error {
	switch {
	case c.Window <= 0:
		return errors.New("recall: i2i window must be > 0")
	case c.HalfLife < 0 || c.SeedHalfLife < 0:
		return errors.New("recall: i2i half_life and seed_half_life must be >= 0 (0: no decay)")
	case !anyPositive(c.Weights):
		return errors.New("recall: i2i weights must weight some event type positively")
	case c.TopK <= 0:
		return errors.New("recall: i2i top_k must be > 0")
	case c.PairSpan <= 0:
		return errors.New("recall: i2i pair_span must be > 0")
	case c.MaxItemsPerUser < 0:
		return errors.New("recall: i2i max_items_per_user must be >= 0 (0: unbounded)")
	case c.PopularityPenalty < 0 || c.PopularityPenalty > 1:
		return errors.New("recall: i2i popularity_penalty must be in [0,1]")
	case c.Shrinkage < 0:
		return errors.New("recall: i2i shrinkage must be >= 0")
	case c.Workers < 0:
		return errors.New("recall: i2i workers must be >= 0 (0: half the CPUs)")
	case c.Seeds <= 0:
		return errors.New("recall: i2i seeds must be > 0")
	}
	return nil
}

// defaultPositiveWeights is the collaborative-filtering weighting: only what
// shows a user liked a video counts, and a dislike cancels it.
func defaultPositiveWeights() [event.NumTypes]float64 {
	var w [event.NumTypes]float64
	w[event.Complete] = 1
	w[event.Like] = 1.5
	w[event.Comment] = 1.5
	w[event.Share] = 2
	w[event.Dislike] = -3
	return w
}

// I2IJob builds item-to-item neighbours from co-engagement: videos the same
// users engaged with positively close together in time. It writes each
// video's TopK neighbours to the ListStore (namespace "i2i").
type I2IJob struct {
	cfg    I2IConfig
	log    EventLog
	store  ListStore
	runner *jobRunner
	now    func() time.Time
}

// NewI2IJob returns the item-to-item job; logger and reg may be nil.
func NewI2IJob(cfg I2IConfig, log EventLog, store ListStore, logger *zap.Logger, reg prometheus.Registerer) (*I2IJob, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &I2IJob{cfg: cfg, log: log, store: store, runner: newJobRunner("i2i", logger, reg), now: time.Now}, nil
}

// Name is "i2i", the admin job name.
func (j *I2IJob) Name() string { return "i2i" }

// Run rebuilds every video's neighbours once.
func (j *I2IJob) Run(ctx context.Context) (JobResult, error) {
	return j.runner.run(ctx, j.build)
}

// i2iPosting locates one engagement: user u's item at position pos.
type i2iPosting struct{ user, pos int32 }

func (j *I2IJob) build(ctx context.Context, res *JobResult) error {
	now := j.now()
	il, err := replayCFInteractions(ctx, j.log, cfReplayOptions{
		since: now.Add(-j.cfg.Window), now: now,
		weights: j.cfg.Weights, halfLife: j.cfg.HalfLife,
		maxItemsPerUser: j.cfg.MaxItemsPerUser,
	})
	if err != nil {
		return err
	}
	res.Events = il.events
	nv := len(il.videoIDs)

	// Postings: who engaged with each video, in CSR form (one flat array).
	offsets := make([]int32, nv+1)
	for _, items := range il.items {
		if len(items) > 0 {
			res.Users++
		}
		for _, it := range items {
			offsets[it.video+1]++
		}
	}
	for v := range nv {
		offsets[v+1] += offsets[v]
	}
	postings := make([]i2iPosting, offsets[nv])
	fill := slices.Clone(offsets[:nv])
	norm2 := make([]float64, nv)
	for u, items := range il.items {
		for p, it := range items {
			postings[fill[it.video]] = i2iPosting{int32(u), int32(p)}
			fill[it.video]++
			norm2[it.video] += float64(it.w) * float64(it.w)
		}
	}
	fill = nil
	// Similarity is co / (|i|^(1-p) · |j|^p); both powers are per video.
	penalty := j.cfg.PopularityPenalty
	seedNorm := make([]float32, nv)
	neighbourNorm := make([]float32, nv)
	for v, n2 := range norm2 {
		if n2 > 0 {
			res.Videos++
			n := math.Sqrt(n2)
			seedNorm[v] = float32(math.Pow(n, 1-penalty))
			neighbourNorm[v] = float32(math.Pow(n, penalty))
		}
	}
	norm2 = nil
	// Inverse user frequency: a user who engaged with many videos says less
	// about any one pair of them.
	iuf := make([]float32, len(il.items))
	for u, items := range il.items {
		iuf[u] = float32(1 / math.Log1p(float64(len(items))))
	}

	neighbours := make([][]cfRanked, nv)
	var pairs atomic.Int64
	var next atomic.Int64
	const chunk = 256
	gapSec := int32(math.MaxInt32)
	if j.cfg.SessionGap > 0 {
		gapSec = int32(min(j.cfg.SessionGap.Seconds(), math.MaxInt32))
	}
	span := int32(j.cfg.PairSpan)
	shrink := float32(j.cfg.Shrinkage)
	topK := j.cfg.TopK

	var wg sync.WaitGroup
	for range jobWorkers(j.cfg.Workers) {
		wg.Go(func() {
			acc := make([]float32, nv)
			support := make([]int32, nv)
			var touched []int32
			top := newCFTopK(topK)
			var found int64
			defer func() { pairs.Add(found) }()
			for ctx.Err() == nil {
				start := int(next.Add(chunk)) - chunk
				if start >= nv {
					return
				}
				for i := start; i < min(start+chunk, nv); i++ {
					touched = touched[:0]
					for _, up := range postings[offsets[i]:offsets[i+1]] {
						items := il.items[up.user]
						seed := items[up.pos]
						lo, hi := max(up.pos-span, 0), min(up.pos+span+1, int32(len(items)))
						for q := lo; q < hi; q++ {
							other := items[q]
							if q == up.pos || other.ts-seed.ts > gapSec || seed.ts-other.ts > gapSec {
								continue
							}
							if support[other.video] == 0 {
								touched = append(touched, other.video)
							}
							acc[other.video] += iuf[up.user] * seed.w * other.w
							support[other.video]++
						}
					}
					found += int64(len(touched))
					top.reset()
					for _, nb := range touched {
						n := float32(support[nb])
						sim := acc[nb] / (seedNorm[i] * neighbourNorm[nb]) * (n / (n + shrink))
						top.offer(nb, sim)
						acc[nb], support[nb] = 0, 0
					}
					if len(top.heap) > 0 {
						neighbours[i] = top.sorted()
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	res.Pairs = pairs.Load()
	if err := storeLists(ctx, j.store, i2iNamespace, il.videoIDs, neighbours, il.videoIDs, res); err != nil {
		return fmt.Errorf("store neighbours: %w", err)
	}
	return nil
}

// I2ISource is the "i2i" branch: neighbours of the videos the user most
// recently engaged with positively.
type I2ISource struct {
	cfg     I2IConfig
	store   ListStore
	catalog *catalog.Catalog
}

// NewI2ISource returns the i2i branch over the lists I2IJob writes.
func NewI2ISource(cfg I2IConfig, store ListStore, cat *catalog.Catalog) (*I2ISource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &I2ISource{cfg: cfg, store: store, catalog: cat}, nil
}

// Name is "i2i".
func (s *I2ISource) Name() string { return "i2i" }

// InProcess implements InProcess: true when the lists are kept in memory.
func (s *I2ISource) InProcess() bool {
	_, local := s.store.(*MemoryListStore)
	return local
}

type i2iSeed struct {
	id string
	at time.Time
}

// Recall sums, over the user's latest positive videos (the seeds), each
// neighbour's similarity weighted by the seed's recency, and returns the
// best quota videos that are not seeds, not played, still in the catalog and
// allowed in the request's region; videos already shown to the user come
// after every unseen one.
func (s *I2ISource) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 || req.Profile == nil || len(req.Profile.Positive) == 0 {
		return nil, ctx.Err()
	}
	seeds := latestSeeds(req.Profile.Positive, s.cfg.Seeds)
	keys := make([]string, len(seeds))
	for i, sd := range seeds {
		keys[i] = sd.id
	}
	lists, err := s.store.GetMany(ctx, i2iNamespace, keys, s.cfg.TopK)
	if err != nil {
		return nil, fmt.Errorf("i2i neighbours: %w", err)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	scores := make(map[string]float64, len(seeds)*max(s.cfg.TopK, 8))
	for i, sd := range seeds {
		weight := 1.0
		if hl := s.cfg.SeedHalfLife; hl > 0 {
			weight = math.Exp2(-float64(max(now.Sub(sd.at), 0)) / float64(hl))
		}
		for _, nb := range lists[i] {
			scores[nb.ID] += weight * nb.Score
		}
	}
	ranked := make([]i2iScore, 0, len(scores))
	for id, score := range scores {
		if _, ok := req.Profile.Positive[id]; ok {
			continue
		}
		if _, ok := req.Profile.Played[id]; ok {
			continue
		}
		_, shown := req.Profile.Shown[id]
		ranked = append(ranked, i2iScore{id: id, score: score, shown: shown})
	}
	slices.SortFunc(ranked, func(a, b i2iScore) int {
		if a.shown != b.shown {
			if b.shown {
				return -1
			}
			return 1
		}
		// Scores are finite sums of finite list scores: plain comparisons
		// are enough and much cheaper than cmp.Compare's NaN handling.
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	// Catalog lookups only until the quota is filled.
	out := req.candidates(min(quota, len(ranked)))
	for _, r := range ranked {
		if len(out) == quota {
			break
		}
		v, ok := s.catalog.Get(r.id)
		if !ok || !v.AllowedIn(req.Region) {
			continue
		}
		out = append(out, Candidate{Video: v, Branch: "i2i", Score: r.score})
	}
	return out, nil
}

type i2iScore struct {
	id    string
	score float64
	shown bool
}

// latestSeeds returns the n most recent entries of positive, newest first.
func latestSeeds(positive map[string]time.Time, n int) []i2iSeed {
	seeds := make([]i2iSeed, 0, min(n, len(positive)))
	newer := func(a, b i2iSeed) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	}
	for id, at := range positive {
		sd := i2iSeed{id, at}
		if len(seeds) == n {
			if at.Before(seeds[n-1].at) || newer(sd, seeds[n-1]) >= 0 {
				continue // older than every seed kept: the common case
			}
			seeds = seeds[:n-1]
		}
		i, _ := slices.BinarySearchFunc(seeds, sd, newer)
		seeds = slices.Insert(seeds, i, sd)
	}
	return seeds
}
