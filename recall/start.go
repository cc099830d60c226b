package recall

import (
	"context"
	"fmt"
	"slices"
	"time"

	"reelfeed/catalog"
)

// StartConfig tunes the start branch.
type StartConfig struct {
	PoolSize int           `json:"pool_size" mapstructure:"pool_size"`
	PoolTTL  time.Duration `json:"pool_ttl" mapstructure:"pool_ttl"`
	// Segments the branch serves; others get nothing from it.
	Segments []Segment `json:"segments" mapstructure:"segments"`
}

// DefaultStartConfig returns the documented defaults.
func DefaultStartConfig() StartConfig {
	return StartConfig{PoolSize: 2000, PoolTTL: time.Minute, Segments: []Segment{SegmentNew, SegmentCold}}
}

// Start is the cold-start branch: a region's best videos, interleaved
// across categories (the best of each category, then the second best...),
// so a user the engine knows nothing about sees the breadth of the catalog
// and their first reactions tell the engine the most.
type Start struct {
	pools    *qualityPools
	segments []Segment
}

// NewStart returns the start branch over cat.
func NewStart(cat *catalog.Catalog, cfg StartConfig) (*Start, error) {
	if cfg.PoolSize <= 0 || cfg.PoolTTL <= 0 {
		return nil, fmt.Errorf("recall: start config invalid: pool_size and pool_ttl must be > 0")
	}
	if cat == nil {
		return nil, fmt.Errorf("recall: a catalog is required")
	}
	for _, s := range cfg.Segments {
		switch s {
		case SegmentNew, SegmentCold, SegmentActive:
		default:
			return nil, fmt.Errorf("recall: start segments: unknown segment %q", s)
		}
	}
	return &Start{pools: newQualityPools(cat, cfg.PoolSize, cfg.PoolTTL, interleaveCategories),
		segments: slices.Clone(cfg.Segments)}, nil
}

var _ Source = (*Start)(nil)

// Name implements Source.
func (*Start) Name() string { return "start" }

// InProcess implements InProcess: the pools come from the in-memory catalog.
func (*Start) InProcess() bool { return true }

// Recall implements Source.
func (s *Start) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 || !slices.Contains(s.segments, req.Segment) {
		return nil, ctx.Err()
	}
	pool := s.pools.get(req.Region, req.Now).videos
	out := req.candidates(min(quota, len(pool)))
	for i, v := range pool {
		if len(out) == quota {
			break
		}
		if req.unwanted(v) {
			continue
		}
		out = append(out, Candidate{Video: v, Branch: s.Name(), Score: 1 - float64(i)/float64(len(pool))})
	}
	return out, ctx.Err()
}

// interleaveCategories reorders quality-sorted videos round-robin across
// categories, categories in the order of their best video.
func interleaveCategories(videos []*catalog.Video) []*catalog.Video {
	var order []string
	byCat := map[string][]*catalog.Video{}
	for _, v := range videos {
		if _, ok := byCat[v.Category]; !ok {
			order = append(order, v.Category)
		}
		byCat[v.Category] = append(byCat[v.Category], v)
	}
	out := make([]*catalog.Video, 0, len(videos))
	for round := 0; len(out) < len(videos); round++ {
		for _, c := range order {
			if list := byCat[c]; round < len(list) {
				out = append(out, list[round])
			}
		}
	}
	return out
}
