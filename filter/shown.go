package filter

import (
	"context"
	"slices"
	"time"
)

// Shown removes videos already shown to the user: those in the profile's
// Shown set (impressions that reached the store) and those this process
// served recently (impressions still on their way). It is soft: when fewer
// than Request.Need unseen candidates remain, it readmits the least recently
// shown ones, flagged Readmitted, so a heavy user still gets a full page.
type Shown struct{}

func (Shown) Name() string { return NameShown }

func (Shown) Apply(_ context.Context, req *Request, cands []Candidate) (int, error) {
	shown := req.Profile.Shown
	if len(shown) == 0 && req.Served == nil {
		return len(cands), nil
	}
	keys := req.ShownKeys
	unseen := partition(cands, func(c *Candidate) bool {
		if keys != nil && !keys.HasVideo(c.Video) {
			c.LastShown = time.Time{}
			return true
		}
		at, seen := shown[c.Video.ID]
		if req.Served != nil {
			if t, ok := req.Served.LastServed(c.Video.ID); ok && (!seen || t.After(at)) {
				at, seen = t, true
			}
		}
		c.LastShown = at
		return !seen
	})
	short := req.Need - unseen
	if short <= 0 || unseen == len(cands) {
		return unseen, nil
	}
	seen := cands[unseen:]
	slices.SortStableFunc(seen, func(a, b Candidate) int { return a.LastShown.Compare(b.LastShown) })
	readmit := min(short, len(seen))
	for i := range readmit {
		seen[i].Readmitted = true
	}
	return unseen + readmit, nil
}
