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

// Recall implements Source. Only categories the user has shown no
// interest in are walked: the pool keeps its videos grouped by category,
// so an active user's known categories cost nothing.
func (e *Explore) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, ctx.Err()
	}
	pool := e.pools.get(req.Region, req.Now)
	if len(pool.videos) == 0 {
		return nil, ctx.Err()
	}
	p := req.Profile
	var unknownBuf [64]int
	unknown := unknownBuf[:0]
	for i, g := range pool.groups {
		if p.ShortTerm.Categories[g.category] <= 0 && p.LongTerm.Categories[g.category] <= 0 {
			unknown = append(unknown, i)
		}
	}
	if len(unknown) == 0 {
		return nil, ctx.Err()
	}
	perCategory := max(1, int(float64(quota)*e.cfg.MaxCategoryShare))
	out := req.candidates(quota)

	// Visit the unknown categories, and each category's videos, in a
	// random order without materialising a permutation: start anywhere,
	// step by a stride coprime with the length.
	rng := rand.New(rand.NewPCG(requestSeed(req.UserID, req.Now), 0x9e3779b97f4a7c15))
	n := len(unknown)
	for i, at, stride := 0, rng.IntN(n), coprimeStride(rng, n); i < n && len(out) < quota; i, at = i+1, (at+stride)%n {
		videos := pool.groups[unknown[at]].videos
		m := len(videos)
		taken := 0
		for j, k, step := 0, rng.IntN(m), coprimeStride(rng, m); j < m && taken < perCategory && len(out) < quota; j, k = j+1, (k+step)%m {
			v := videos[k]
			if req.unwanted(v) {
				continue
			}
			taken++
			out = append(out, Candidate{Video: v, Branch: e.Name(), Score: v.Quality})
		}
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
	byRegion map[string]*qualityPool
}

type qualityPool struct {
	videos []*catalog.Video // quality order, or as arranged
	groups []categoryGroup  // the same videos by category, first seen first
	built  time.Time
}

type categoryGroup struct {
	category string
	videos   []*catalog.Video
}

func newQualityPools(cat *catalog.Catalog, size int, ttl time.Duration, arrange func([]*catalog.Video) []*catalog.Video) *qualityPools {
	return &qualityPools{cat: cat, size: size, ttl: ttl, arrange: arrange, byRegion: map[string]*qualityPool{}}
}

// get returns the region's pool as of now; callers must not modify it.
func (q *qualityPools) get(region string, now time.Time) *qualityPool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.byRegion[region]; ok && now.Sub(p.built) < q.ttl && !now.Before(p.built) {
		return p
	}
	videos := q.cat.SearchVideos(catalog.Query{Region: region, Sort: catalog.SortByQuality, Limit: q.size})
	if q.arrange != nil {
		videos = q.arrange(videos)
	}
	if len(q.byRegion) >= maxPoolRegions {
		clear(q.byRegion)
	}
	p := &qualityPool{videos: videos, groups: groupByCategory(videos), built: now}
	q.byRegion[region] = p
	return p
}

func groupByCategory(videos []*catalog.Video) []categoryGroup {
	var groups []categoryGroup
	index := map[string]int{}
	for _, v := range videos {
		i, ok := index[v.Category]
		if !ok {
			i = len(groups)
			index[v.Category] = i
			groups = append(groups, categoryGroup{category: v.Category})
		}
		groups[i].videos = append(groups[i].videos, v)
	}
	return groups
}
