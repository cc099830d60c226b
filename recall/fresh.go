package recall

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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
	// MaxScan bounds the fresh uploads examined per request.
	MaxScan int `json:"max_scan" mapstructure:"max_scan"`
}

// DefaultFreshConfig returns the documented defaults.
func DefaultFreshConfig() FreshConfig {
	return FreshConfig{MaxAge: 48 * time.Hour, ImpressionQuota: 200, MaxScan: 600}
}

// Fresh gives new uploads guaranteed exposure: it proposes videos published
// within MaxAge whose lifetime impressions are still under the quota, least
// exposed first, so every upload gets a fair first audience and the feature
// store learns its CTR. The feed reserves slots for this branch.
type Fresh struct {
	cat   *catalog.Catalog
	stats feature.Store
	cfg   FreshConfig
}

// NewFresh returns the fresh-upload branch.
func NewFresh(cat *catalog.Catalog, stats feature.Store, cfg FreshConfig) (*Fresh, error) {
	if cat == nil || stats == nil {
		return nil, fmt.Errorf("recall: fresh branch needs a catalog and a feature store")
	}
	if cfg.MaxAge <= 0 || cfg.ImpressionQuota <= 0 || cfg.MaxScan <= 0 {
		return nil, fmt.Errorf("recall: fresh config invalid: max_age, impression_quota and max_scan must be > 0")
	}
	return &Fresh{cat: cat, stats: stats, cfg: cfg}, nil
}

var _ Source = (*Fresh)(nil)

// Name implements Source.
func (*Fresh) Name() string { return FreshBranch }

// Recall implements Source.
func (f *Fresh) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, nil
	}
	q := catalog.Query{Region: req.Region, Sort: catalog.SortByFresh,
		PublishedAfter: req.Now.Add(-f.cfg.MaxAge), PublishedBefore: req.Now, Limit: min(3*quota, f.cfg.MaxScan)}
	out := make([]Candidate, 0, quota)
	var ids []string
	var fresh []*catalog.Video
	// Widen the scan while most of the newest uploads already had their
	// exposure: the quota must not starve older fresh uploads.
	for from := 0; ; {
		res := f.cat.SearchVideos(q)
		ids, fresh = ids[:0], fresh[:0]
		for _, v := range res[min(from, len(res)):] {
			if alreadySeen(req.Profile, v.ID) || v.UploaderID == req.UserID {
				continue
			}
			ids = append(ids, v.ID)
			fresh = append(fresh, v)
		}
		if len(ids) > 0 {
			stats, err := f.stats.Get(ctx, ids, req.Now)
			if err != nil {
				return nil, fmt.Errorf("recall: fresh: %w", err)
			}
			for i, st := range stats {
				shown := st.Lifetime[event.Impression]
				if shown >= f.cfg.ImpressionQuota {
					continue
				}
				remaining := 1 - float64(shown)/float64(f.cfg.ImpressionQuota)
				out = append(out, Candidate{Video: fresh[i], Branch: FreshBranch, Score: remaining})
			}
		}
		if len(out) >= quota || len(res) < q.Limit || q.Limit >= f.cfg.MaxScan {
			break
		}
		from, q.Limit = len(res), min(4*q.Limit, f.cfg.MaxScan)
	}
	// Least exposed first; among equals, the newest.
	slices.SortFunc(out, func(a, b Candidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := b.Video.PublishedAt.Compare(a.Video.PublishedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Video.ID, b.Video.ID)
	})
	if len(out) > quota {
		out = out[:quota]
	}
	return out, ctx.Err()
}
