// Package recall produces candidate videos for a feed request. Each branch
// (hot, tag, uploader, i2i, user-CF, explore, start, new) is a Source with
// its own quota; the feed pipeline runs them concurrently, each within its
// time budget, and a failing branch never fails the request. The
// background jobs that precompute what some branches read (hot lists,
// item-to-item neighbours, user-CF lists) live here too.
package recall

import (
	"cmp"
	"context"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/profile"
)

// Segment classifies a user by how much the engine knows about them.
type Segment string

const (
	SegmentNew    Segment = "new"    // no events at all
	SegmentCold   Segment = "cold"   // a few events
	SegmentActive Segment = "active" // enough history to personalise
)

// Request is what every branch sees of a feed request.
type Request struct {
	UserID  string
	Profile *profile.Profile // never nil
	User    *catalog.User    // declared attributes; nil when never declared
	Region  string
	Device  string
	Segment Segment
	Now     time.Time
	// PlayedKeys and ShownKeys, when set, hold the keys (catalog.IDKey)
	// of Profile.Played and of every video shown to the user (Profile.Shown
	// plus what the feed served that the profile does not know yet). nil:
	// Seen reads the profile's maps.
	PlayedKeys, ShownKeys *catalog.IDSet
	// UserKey is catalog.IDKey(UserID); 0: computed when needed.
	UserKey uint64
	// Scratch, when set, lends branches reusable memory for their
	// candidate lists. Only for branches on the request's goroutine; nil:
	// they allocate.
	Scratch *Scratch
}

// Seen reports whether the user played or was shown v: branches skip
// those so their quota goes to new material.
func (r *Request) Seen(v *catalog.Video) bool { return r.played(v) || r.shown(v) }

// unwanted reports whether the user saw or uploaded v.
func (r *Request) unwanted(v *catalog.Video) bool { return r.Seen(v) || r.ownUpload(v) }

// ownUpload compares keys first: the uploader id's bytes are another
// cache miss per candidate, and only the user's own uploads need them.
func (r *Request) ownUpload(v *catalog.Video) bool {
	key := r.UserKey
	if key == 0 {
		key = catalog.IDKey(r.UserID)
	}
	return v.UploaderKey() == key && v.UploaderID == r.UserID
}

// scanExcludesSeen reports whether a catalog scan given the request's seen
// sets skips the videos the user saw, so visitors need not check again.
func (r *Request) scanExcludesSeen() bool { return r.PlayedKeys != nil && r.ShownKeys != nil }

func (r *Request) played(v *catalog.Video) bool {
	if r.PlayedKeys != nil {
		return r.PlayedKeys.HasVideo(v)
	}
	if r.Profile == nil {
		return false
	}
	_, ok := r.Profile.Played[v.ID]
	return ok
}

func (r *Request) shown(v *catalog.Video) bool {
	if r.ShownKeys != nil {
		return r.ShownKeys.HasVideo(v)
	}
	if r.Profile == nil {
		return false
	}
	_, ok := r.Profile.Shown[v.ID]
	return ok
}

// Candidate is a video a branch proposes, with the branch's own relevance
// (comparable only within that branch).
type Candidate struct {
	Video  *catalog.Video
	Branch string
	Score  float64
}

// bestFirst orders candidates by score, best first; ties by video key (a
// number already in the video's first cache line, unlike its id's bytes),
// so a branch's answer is deterministic.
func bestFirst(a, b Candidate) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return cmp.Compare(a.Video.Key(), b.Video.Key())
}

// Source is one recall branch.
type Source interface {
	Name() string
	// Recall returns at most quota candidates. It must respect ctx (the
	// branch's time budget) and be safe for concurrent use.
	Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error)
}

// InProcess is implemented by sources that can tell whether they answer
// from this process's memory alone, never waiting on a network round
// trip. The feed runs those on the request's own goroutine: under load a
// goroutine per branch costs more in scheduling delay than the branch
// itself, and a request waits for its slowest branch.
type InProcess interface {
	InProcess() bool
}

// EventLog replays recent behaviour events, oldest first, for the batch
// jobs (item-to-item, user-CF). The ingest package implements it over the
// events stream, so every replica's jobs see the same history.
type EventLog interface {
	Replay(ctx context.Context, since time.Time, fn func(event.Event) error) error
}
