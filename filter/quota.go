package filter

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"reelfeed/event"
	"reelfeed/feature"
)

// NewVideoQuota removes candidates credited to the fresh-upload branch
// whose lifetime impressions reached the exposure quota: the guarantee is
// over for them, and they must now earn their place through other branches.
type NewVideoQuota struct {
	stats   feature.Store
	branch  string
	quota   int64
	scratch sync.Pool // *quotaScratch
}

type quotaScratch struct {
	ids   []string
	at    []int // candidate index of each id
	stats []feature.Stats
	over  []bool // by candidate index
}

// NewNewVideoQuota returns the quota filter for candidates credited to
// branch (the recall "new" branch).
func NewNewVideoQuota(stats feature.Store, branch string, quota int64) (*NewVideoQuota, error) {
	if stats == nil || branch == "" || quota <= 0 {
		return nil, fmt.Errorf("filter: new-video quota needs a feature store, a branch and a quota > 0")
	}
	f := &NewVideoQuota{stats: stats, branch: branch, quota: quota}
	f.scratch.New = func() any { return &quotaScratch{} }
	return f, nil
}

func (*NewVideoQuota) Name() string { return NameNewQuota }

func (f *NewVideoQuota) Apply(ctx context.Context, req *Request, cands []Candidate) (int, error) {
	s := f.scratch.Get().(*quotaScratch)
	defer func() {
		clear(s.ids)
		s.ids, s.at, s.stats = s.ids[:0], s.at[:0], s.stats[:0]
		f.scratch.Put(s)
	}()
	for i := range cands {
		if cands[i].Branch == f.branch {
			s.ids = append(s.ids, cands[i].Video.ID)
			s.at = append(s.at, i)
		}
	}
	if len(s.ids) == 0 {
		return len(cands), nil
	}
	stats, err := f.stats.Get(ctx, s.stats[:0], s.ids, req.Now)
	s.stats = stats
	if err != nil {
		return len(cands), fmt.Errorf("filter: new-video quota: %w", err)
	}
	s.over = slices.Grow(s.over[:0], len(cands))[:len(cands)]
	clear(s.over)
	found := false
	for k := range stats {
		if stats[k].Lifetime[event.Impression] >= f.quota {
			s.over[s.at[k]] = true
			found = true
		}
	}
	if !found {
		return len(cands), nil
	}
	// partition, by position: the flags follow candidate indexes.
	kept := 0
	for i := range cands {
		if s.over[i] {
			continue
		}
		if i != kept {
			cands[i], cands[kept] = cands[kept], cands[i]
		}
		kept++
	}
	return kept, nil
}
