package filter

import (
	"context"
	"fmt"

	"reelfeed/event"
	"reelfeed/feature"
)

// NewVideoQuota removes candidates credited to the fresh-upload branch
// whose lifetime impressions reached the exposure quota: the guarantee is
// over for them, and they must now earn their place through other branches.
type NewVideoQuota struct {
	stats  feature.Store
	branch string
	quota  int64
}

// NewNewVideoQuota returns the quota filter for candidates credited to
// branch (the recall "new" branch).
func NewNewVideoQuota(stats feature.Store, branch string, quota int64) (*NewVideoQuota, error) {
	if stats == nil || branch == "" || quota <= 0 {
		return nil, fmt.Errorf("filter: new-video quota needs a feature store, a branch and a quota > 0")
	}
	return &NewVideoQuota{stats: stats, branch: branch, quota: quota}, nil
}

func (*NewVideoQuota) Name() string { return NameNewQuota }

func (f *NewVideoQuota) Apply(ctx context.Context, req *Request, cands []Candidate) (int, error) {
	var ids []string
	for i := range cands {
		if cands[i].Branch == f.branch {
			ids = append(ids, cands[i].Video.ID)
		}
	}
	if len(ids) == 0 {
		return len(cands), nil
	}
	stats, err := f.stats.Get(ctx, nil, ids, req.Now)
	if err != nil {
		return len(cands), fmt.Errorf("filter: new-video quota: %w", err)
	}
	over := make(map[string]struct{})
	for i := range stats {
		if stats[i].Lifetime[event.Impression] >= f.quota {
			over[ids[i]] = struct{}{}
		}
	}
	if len(over) == 0 {
		return len(cands), nil
	}
	return partition(cands, func(c *Candidate) bool {
		if c.Branch != f.branch {
			return true
		}
		_, reached := over[c.Video.ID]
		return !reached
	}), nil
}
