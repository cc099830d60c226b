package recall

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"reelfeed/catalog"
)

// ExploreConfig tunes the explore branch.
type ExploreConfig struct {
	// PoolSize is how many of a region's highest-quality videos explore
	// samples from; PoolTTL how long that pool is reused.
	PoolSize int           `json:"pool_size" mapstructure:"pool_size"`
	PoolTTL  time.Duration `json:"pool_ttl" mapstructure:"pool_ttl"`
	// MaxCategoryShare caps one category's share of the branch, so
	// exploring means several new directions, not one.
	MaxCategoryShare float64 `json:"max_category_share" mapstructure:"max_category_share"`
}

// DefaultExploreConfig returns the documented defaults.
func DefaultExploreConfig() ExploreConfig {
	return ExploreConfig{PoolSize: 2000, PoolTTL: time.Minute, MaxCategoryShare: 0.25}
}

// Explore recalls random high-quality videos from categories the user has
// shown no interest in, so the engine keeps learning what else they like.
// Randomness comes from a generator seeded per request by (user, time):
// reproducible in tests, different from one request to the next.
type Explore struct {
	pools *qualityPools
	cfg   ExploreConfig
}

// NewExplore returns the explore branch over cat.
func NewExplore(cat *catalog.Catalog, cfg ExploreConfig) (*Explore, error) {
	if cfg.PoolSize <= 0 || cfg.PoolTTL <= 0 || !(cfg.MaxCategoryShare > 0 && cfg.MaxCategoryShare <= 1) {
		return nil, fmt.Errorf("recall: explore config invalid: pool_size and pool_ttl > 0, max_category_share in (0,1]")
	}
	if cat == nil {
		return nil, fmt.Errorf("recall: a catalog is required")
	}
	return &Explore{pools: newQualityPools(cat, cfg.PoolSize, cfg.PoolTTL, nil), cfg: cfg}, nil
}

var _ Source = (*Explore)(nil)

// Name implements Source.
func (*Explore) Name() string { return "explore" }

// InProcess implements InProcess: the pools come from the in-memory catalog.
func (*Explore) InProcess() bool { return true }

// Recall implements Source.
func (e *Explore) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, ctx.Err()
	}
	pool := e.pools.get(req.Region, req.Now)
	n := len(pool)
	if n == 0 {
		return nil, ctx.Err()
	}
	p := req.Profile
	known := func(category string) bool {
		return p.ShortTerm.Categories[category] > 0 || p.LongTerm.Categories[category] > 0
	}
	perCategory := max(1, int(float64(quota)*e.cfg.MaxCategoryShare))
	taken := make(map[string]int)
	out := make([]Candidate, 0, quota)

	// Walk the pool in a random order without materialising a permutation:
	// start anywhere, step by a stride coprime with n.
	rng := rand.New(rand.NewPCG(requestSeed(req.UserID, req.Now), 0x9e3779b97f4a7c15))
	start := rng.IntN(n)
	stride := coprimeStride(rng, n)
	for i, idx := 0, start; i < n && len(out) < quota; i, idx = i+1, (idx+stride)%n {
		v := pool[idx]
		if known(v.Category) || taken[v.Category] >= perCategory ||
			req.Seen(v) || v.UploaderID == req.UserID {
			continue
		}
		taken[v.Category]++
		out = append(out, Candidate{Video: v, Branch: e.Name(), Score: v.Quality})
	}
	return out, ctx.Err()
}

// requestSeed derives a per-request seed from the user and the request time.
func requestSeed(user string, now time.Time) uint64 {
	h := fnv.New64a()
	h.Write([]byte(user))
	return h.Sum64() ^ uint64(now.UnixNano())
}

// coprimeStride picks a random step in [1, n) coprime with n (1 when n ≤ 2).
func coprimeStride(rng *rand.Rand, n int) int {
	if n <= 2 {
		return 1
	}
	for {
		s := 1 + rng.IntN(n-1)
		if exploreGCD(s, n) == 1 {
			return s
		}
	}
}

func exploreGCD(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maxPoolRegions bounds the pools kept: regions come from requests, and a
// client inventing regions must not grow memory without limit.
const maxPoolRegions = 512

// qualityPools caches, per region, the region's highest-quality videos
// (optionally reordered by arrange). A pool is rebuilt after ttl; it may
// hold videos deleted since, which the feed's deleted filter removes.
type qualityPools struct {
	cat     *catalog.Catalog
	size    int
	ttl     time.Duration
	arrange func([]*catalog.Video) []*catalog.Video

	mu       sync.Mutex
	byRegion map[string]qualityPool
}

type qualityPool struct {
	videos []*catalog.Video
	built  time.Time
}

func newQualityPools(cat *catalog.Catalog, size int, ttl time.Duration, arrange func([]*catalog.Video) []*catalog.Video) *qualityPools {
	return &qualityPools{cat: cat, size: size, ttl: ttl, arrange: arrange, byRegion: map[string]qualityPool{}}
}

// get returns the region's pool as of now; callers must not modify it.
func (q *qualityPools) get(region string, now time.Time) []*catalog.Video {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.byRegion[region]; ok && now.Sub(p.built) < q.ttl && !now.Before(p.built) {
		return p.videos
	}
	videos := q.cat.SearchVideos(catalog.Query{Region: region, Sort: catalog.SortByQuality, Limit: q.size})
	if q.arrange != nil {
		videos = q.arrange(videos)
	}
	if len(q.byRegion) >= maxPoolRegions {
		clear(q.byRegion)
	}
	q.byRegion[region] = qualityPool{videos: videos, built: now}
	return videos
}
