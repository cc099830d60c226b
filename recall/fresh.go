package recall

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
)

// FreshBranch is the name of the fresh-upload branch. The feed's new-video
// quota filter keys on it.
const FreshBranch = "new"

// FreshConfig tunes the fresh-upload ("new") branch.
type FreshConfig struct {
	// MaxAge: uploads older than this no longer count as fresh.
	MaxAge time.Duration `json:"max_age" mapstructure:"max_age"`
	// ImpressionQuota is the exposure a fresh upload is guaranteed: until
	// its lifetime impressions reach it, the branch keeps proposing it.
	ImpressionQuota int64 `json:"impression_quota" mapstructure:"impression_quota"`
	// MaxScan bounds the fresh uploads examined per refresh, newest first.
	MaxScan int `json:"max_scan" mapstructure:"max_scan"`
	// Refresh is how long a region's pool of under-quota uploads is
	// reused: a new upload waits at most this long for its first slot.
	Refresh time.Duration `json:"refresh" mapstructure:"refresh"`
}

// DefaultFreshConfig returns the documented defaults.
func DefaultFreshConfig() FreshConfig {
	return FreshConfig{MaxAge: 48 * time.Hour, ImpressionQuota: 200, MaxScan: 600, Refresh: time.Second}
}

// Fresh gives new uploads guaranteed exposure: it proposes videos published
// within MaxAge whose lifetime impressions are still under the quota, least
// exposed first, so every upload gets a fair first audience and the feature
// store learns its CTR. The feed reserves slots for this branch.
type Fresh struct {
	cat   *catalog.Catalog
	stats feature.Store
	cfg   FreshConfig
	pools freshPools
}

// NewFresh returns the fresh-upload branch.
func NewFresh(cat *catalog.Catalog, stats feature.Store, cfg FreshConfig) (*Fresh, error) {
	if cat == nil || stats == nil {
		return nil, fmt.Errorf("recall: fresh branch needs a catalog and a feature store")
	}
	if cfg.MaxAge <= 0 || cfg.ImpressionQuota <= 0 || cfg.MaxScan <= 0 || cfg.Refresh < 0 {
		return nil, fmt.Errorf("recall: fresh config invalid: max_age, impression_quota and max_scan must be > 0, refresh >= 0")
	}
	return &Fresh{cat: cat, stats: stats, cfg: cfg}, nil
}

var _ Source = (*Fresh)(nil)

// Name implements Source.
func (*Fresh) Name() string { return FreshBranch }

// InProcess implements InProcess: true when impressions are counted in
// memory (the pool rebuild reads them).
func (f *Fresh) InProcess() bool {
	_, local := f.stats.(*feature.Memory)
	return local
}

// Recall implements Source. The under-quota pool is shared by every
// request of a region and refreshed at most every cfg.Refresh, so a
// request only skips what its user already saw; the feed's new-video
// quota filter re-checks live impressions for whatever this proposes.
func (f *Fresh) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, nil
	}
	pool, err := f.pools.get(ctx, f, req.Region, req.Now)
	if err != nil {
		return nil, err
	}
	out := req.candidates(min(quota, len(pool.cands)))
	for _, c := range pool.cands {
		if len(out) == quota {
			break
		}
		if req.unwanted(c.Video) {
			continue
		}
		out = append(out, c)
	}
	return out, ctx.Err()
}

// freshSnapshot is a region's under-quota fresh uploads, least exposed
// first, as of a moment.
type freshSnapshot struct {
	builtAt time.Time // wall clock
	asOf    time.Time // the business time it was computed for
	cands   []Candidate
}

func (s *freshSnapshot) current(ttl time.Duration, now time.Time) bool {
	if s == nil {
		return false
	}
	drift := now.Sub(s.asOf)
	return time.Since(s.builtAt) < ttl && drift < ttl && drift > -ttl
}

// maxFreshRegions bounds the cached pools: the region comes from the
// request, so an unbounded map would let callers grow memory at will.
const maxFreshRegions = 1024

// freshPools caches one snapshot per region. Refreshing is single-flight
// per region: while one request rebuilds, others serve the previous
// snapshot instead of all scanning at once.
type freshPools struct {
	mu       sync.Mutex
	byRegion map[string]*freshPool
}

type freshPool struct {
	building sync.Mutex
	snap     atomic.Pointer[freshSnapshot]
}

func (p *freshPools) entry(region string) *freshPool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.byRegion[region]; ok {
		return e
	}
	if p.byRegion == nil || len(p.byRegion) >= maxFreshRegions {
		p.byRegion = make(map[string]*freshPool) // a flood of odd regions: start over rather than grow
	}
	e := &freshPool{}
	p.byRegion[region] = e
	return e
}

func (p *freshPools) get(ctx context.Context, f *Fresh, region string, now time.Time) (*freshSnapshot, error) {
	e := p.entry(region)
	if s := e.snap.Load(); s.current(f.cfg.Refresh, now) {
		return s, nil
	}
	if !e.building.TryLock() {
		if s := e.snap.Load(); s != nil {
			return s, nil // being rebuilt: the previous one is at most moments older
		}
		e.building.Lock() // nothing to serve yet: wait for the first build
	}
	defer e.building.Unlock()
	if s := e.snap.Load(); s.current(f.cfg.Refresh, now) {
		return s, nil // built while this request waited
	}
	s, err := f.build(ctx, region, now)
	if err != nil {
		return nil, err
	}
	e.snap.Store(s)
	return s, nil
}

// build scans the newest uploads of a region (up to MaxScan) and keeps
// those under their impression quota.
func (f *Fresh) build(ctx context.Context, region string, now time.Time) (*freshSnapshot, error) {
	vids := f.cat.SearchVideos(catalog.Query{Region: region, Sort: catalog.SortByFresh,
		PublishedAfter: now.Add(-f.cfg.MaxAge), PublishedBefore: now, Limit: f.cfg.MaxScan})
	s := &freshSnapshot{builtAt: time.Now(), asOf: now}
	if len(vids) == 0 {
		return s, nil
	}
	ids := make([]string, len(vids))
	for i, v := range vids {
		ids[i] = v.ID
	}
	stats, err := f.stats.Get(ctx, nil, ids, now)
	if err != nil {
		return nil, fmt.Errorf("recall: fresh: %w", err)
	}
	for i, st := range stats {
		shown := st.Lifetime[event.Impression]
		if shown >= f.cfg.ImpressionQuota {
			continue
		}
		remaining := 1 - float64(shown)/float64(f.cfg.ImpressionQuota)
		s.cands = append(s.cands, Candidate{Video: vids[i], Branch: FreshBranch, Score: remaining})
	}
	// Least exposed first; among equals, the newest.
	slices.SortFunc(s.cands, func(a, b Candidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := b.Video.PublishedAt.Compare(a.Video.PublishedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Video.ID, b.Video.ID)
	})
	return s, nil
}
