// Package filter removes recall candidates a user must not see: blacklisted,
// deleted, out-of-region or wrong-kind videos, videos already played or
// shown, the user's own uploads, fresh videos past their exposure quota, and
// near-duplicates. Each rule is one Filter with a Name, so the feed can time,
// count and explain every removal.
package filter

import (
	"context"
	"time"

	"reelfeed/catalog"
	"reelfeed/profile"
)

// Candidate is one video under filtering.
type Candidate struct {
	Video *catalog.Video
	// Branch is the recall branch the candidate is credited to; rules that
	// depend on how it was found (the new-video quota) read it.
	Branch string
	// Branches is the caller's bit set of every branch that proposed the
	// video. Filters carry it along untouched.
	Branches uint64
	// Readmitted is set by a soft filter (already shown) that let the
	// candidate through only because too few others remained: serve it only
	// when nothing unseen is left. LastShown says when it was last shown.
	Readmitted bool
	LastShown  time.Time
}

// Request is what filters know about the feed request.
type Request struct {
	UserID  string
	Region  string // "" allows every region
	Surface string
	Profile *profile.Profile // never nil
	Now     time.Time
	// Need is how many unseen candidates the page needs; a soft filter
	// readmits its least bad removals up to this many survivors. 0: strict.
	Need      int
	Blacklist *Blacklist // nil: nothing blacklisted
	Served    ServedLog  // nil: only the profile's Shown set counts
	// PlayedKeys and ShownKeys, when set, hold the keys (catalog.IDKey) of
	// Profile.Played and of every shown video (Profile.Shown plus what
	// Served knows), so rules test most candidates without a string
	// lookup; only a hit reads the maps. nil: the maps are read directly.
	PlayedKeys, ShownKeys *catalog.IDSet
}

// ServedLog answers when this process last served a video to the request's
// user: it covers the lag before impressions reach the profile.
type ServedLog interface {
	LastServed(videoID string) (time.Time, bool)
}

// Filter is one removal rule.
type Filter interface {
	Name() string
	// Apply partitions cands in place: the kept candidates first, in their
	// original order, then the removed ones; it returns how many were kept.
	// A filter that cannot decide (its store failed) keeps everything and
	// returns the error, so a broken dependency never empties a feed.
	Apply(ctx context.Context, req *Request, cands []Candidate) (kept int, err error)
}

// partition moves the candidates keep accepts to the front, preserving
// their order, and returns how many there are.
func partition(cands []Candidate, keep func(c *Candidate) bool) int {
	n := 0
	for i := range cands {
		if keep(&cands[i]) {
			if i != n {
				cands[i], cands[n] = cands[n], cands[i]
			}
			n++
		}
	}
	return n
}
