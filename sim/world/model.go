package world

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"reelfeed/event"
)

// The response model. Taste dominates: the category carries most of it,
// liked tags and creators refine it. Quality matters, but less than taste,
// so serving the globally best videos to everyone is clearly worse than
// serving each user what they like.
const (
	tasteCategory = 0.65
	tasteTags     = 0.20
	tasteCreator  = 0.15
	appealTaste   = 0.7
	appealQuality = 0.3
	// Long videos are finished less often.
	durationPenaltyPerDoubling = 0.04
	durationPenaltyFrom        = 30 * time.Second
	// The first seconds decide: the chance to keep watching is a steep
	// logistic in appeal around stayMidpoint.
	staySteepness = 10.0
	stayMidpoint  = 0.4
)

func (u *User) effectiveCategory(c int) float64 {
	t := u.categories[c]
	if u.burst == c {
		t = math.Max(t, burstStrength)
	}
	return t
}

// Appeal is how much the user wants this video now, in [0,1]: the hidden
// quantity every response is drawn from. The oracle policy ranks by it; a
// real recommender can only estimate it from behaviour.
func (w *World) Appeal(u *User, v *Video) float64 {
	return w.appeal(u, v, u.effectiveCategory(v.Category))
}

func (w *World) appeal(u *User, v *Video, category float64) float64 {
	tagScore := 0.0
	for _, t := range v.Tags {
		tagScore += u.tags[t]
	}
	if len(v.Tags) > 0 {
		tagScore /= float64(len(v.Tags))
	}
	taste := clamp01(tasteCategory*category + tasteTags*tagScore + tasteCreator*u.creators[v.Creator])
	a := appealTaste*taste + appealQuality*v.Meta.Quality
	if d := time.Duration(v.Meta.DurationMs) * time.Millisecond; d > durationPenaltyFrom {
		a -= durationPenaltyPerDoubling * math.Log2(float64(d)/float64(durationPenaltyFrom))
	}
	return clamp01(a)
}

// AppealBound is an upper bound of Appeal over every video of category c
// for this user, so a search for the best videos can skip whole categories.
func (w *World) AppealBound(u *User, c int) float64 {
	return clamp01(appealTaste*math.Min(1, tasteCategory*u.effectiveCategory(c)+tasteTags+tasteCreator) + appealQuality)
}

// Response is how one user reacted to one served video.
type Response struct {
	// WatchFraction is the share of the video watched, in [0,1]: the reward.
	WatchFraction float64
	WatchMs       int64
	Skip          bool // swiped away within the first seconds
	Complete      bool
	Like          bool
	Comment       bool
	Share         bool
	Follow        bool // followed the video's creator
}

// Respond draws the user's reaction to the video. followed says whether
// the user already follows the creator (nobody follows twice). It always
// consumes the same number of draws from rng, so two policies serving
// different videos in the same slot stay on the same random sequence.
func (w *World) Respond(u *User, v *Video, followed bool, rng *rand.Rand) Response {
	return respond(w.Appeal(u, v), u.creators[v.Creator], v.Meta.DurationMs, followed, rng)
}

func respond(appeal, creatorAffinity float64, durationMs int64, followed bool, rng *rand.Rand) Response {
	stay, noise, skipAt := rng.Float64(), rng.NormFloat64(), rng.Float64()
	like, comment, share, follow := rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64()

	var r Response
	if stay < 1/(1+math.Exp(-staySteepness*(appeal-stayMidpoint))) {
		f := clamp(0.25+0.85*appeal+0.15*noise, 0.1, 1)
		if f >= 0.97 {
			f, r.Complete = 1, true
		}
		r.WatchFraction = f
		r.Like = like < 0.3*appeal*appeal*f
		r.Comment = comment < 0.05*appeal*f
		r.Share = share < 0.06*appeal*appeal*f
		r.Follow = !followed && follow < (0.15*creatorAffinity+0.01*appeal)*f
	} else {
		r = quickSkip(durationMs, skipAt)
	}
	r.WatchMs = int64(math.Round(r.WatchFraction * float64(durationMs)))
	return r
}

// SkipRepeat is the reaction to a video the user has already seen: a swipe
// after about a second.
func SkipRepeat(v *Video) Response {
	r := quickSkip(v.Meta.DurationMs, 0.2)
	r.WatchMs = int64(math.Round(r.WatchFraction * float64(v.Meta.DurationMs)))
	return r
}

// quickSkip watches 0.5–3 s (at most 30% of the video) and swipes away.
func quickSkip(durationMs int64, at float64) Response {
	f := 0.3
	if durationMs > 0 {
		f = math.Min(f, (500+2500*at)/float64(durationMs))
	}
	return Response{WatchFraction: f, Skip: true}
}

// Events renders the response as the events an app reports for a view that
// ended at `end`: skip, or play then complete, like, comment, share and
// follow as they happened. Event ids are derived from (user, video, type,
// request), so reporting the same view twice is deduplicated by the server.
func (r Response) Events(userID string, v *Video, requestID string, end time.Time) []event.Event {
	end = end.UTC().Truncate(time.Millisecond)
	mk := func(t event.Type) event.Event {
		return event.Event{
			ID:        eventID(userID, v.Meta.ID, t, requestID),
			UserID:    userID,
			VideoID:   v.Meta.ID,
			Type:      t,
			WatchMs:   r.WatchMs,
			TS:        end,
			RequestID: requestID,
		}
	}
	if r.Skip {
		return []event.Event{mk(event.Skip)}
	}
	out := []event.Event{mk(event.Play)}
	for _, x := range []struct {
		did bool
		t   event.Type
	}{{r.Complete, event.Complete}, {r.Like, event.Like}, {r.Comment, event.Comment}, {r.Share, event.Share}, {r.Follow, event.Follow}} {
		if x.did {
			out = append(out, mk(x.t))
		}
	}
	return out
}

// Watch is how long the view lasted.
func (r Response) Watch() time.Duration { return time.Duration(r.WatchMs) * time.Millisecond }

// Impression is the event for the video being shown at `at`.
func Impression(userID string, v *Video, requestID string, at time.Time) event.Event {
	return event.Event{
		ID:        eventID(userID, v.Meta.ID, event.Impression, requestID),
		UserID:    userID,
		VideoID:   v.Meta.ID,
		Type:      event.Impression,
		TS:        at.UTC().Truncate(time.Millisecond),
		RequestID: requestID,
	}
}

// eventID is a stable id for one event of one view.
func eventID(userID, videoID string, t event.Type, requestID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("reelfeed-sim:"+userID+"|"+videoID+"|"+t.String()+"|"+requestID)).String()
}
