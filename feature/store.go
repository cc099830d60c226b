// Package feature keeps real-time video features: per event type counters
// over sliding windows (last hour, last 24 hours, lifetime) and the rates
// ranking uses (smoothed CTR, completion rate, interaction rate). The Store
// interface is here; its backends are beside it.
package feature

import (
	"context"
	"time"

	"reelfeed/event"
)

// Stats are one video's counters as of the time they were read.
type Stats struct {
	VideoID  string
	Hour     event.Counts
	Day      event.Counts
	Lifetime event.Counts
}

// Smoothing is the Beta prior used to smooth rates, so a video with 1
// impression and 1 play does not get a CTR of 100%.
type Smoothing struct {
	PriorCTR         float64 // plays / impressions
	PriorCompletion  float64 // completes / plays
	PriorInteraction float64 // (likes+comments+shares) / plays
	Strength         float64 // pseudo-count of the prior
}

// DefaultSmoothing returns the documented defaults. The priors are
// deliberately no better than a typical video: a video nobody has seen yet
// must not outrank the proven ones just because it has no data (new
// uploads get their exposure from the "new" branch instead).
func DefaultSmoothing() Smoothing {
	return Smoothing{PriorCTR: 0.2, PriorCompletion: 0.1, PriorInteraction: 0.02, Strength: 20}
}

func smooth(num, den int64, prior, strength float64) float64 {
	return (float64(num) + prior*strength) / (float64(den) + strength)
}

// CTR is the smoothed play-through rate of impressions over counts c.
func (s Smoothing) CTR(c event.Counts) float64 {
	return smooth(c[event.Play], c[event.Impression], s.PriorCTR, s.Strength)
}

// CompletionRate is the smoothed share of plays watched to the end.
func (s Smoothing) CompletionRate(c event.Counts) float64 {
	return smooth(c[event.Complete], c[event.Play], s.PriorCompletion, s.Strength)
}

// InteractionRate is the smoothed share of plays with a like, comment or share.
func (s Smoothing) InteractionRate(c event.Counts) float64 {
	return smooth(c[event.Like]+c[event.Comment]+c[event.Share], c[event.Play], s.PriorInteraction, s.Strength)
}

// Store applies behaviour events to video counters and reads them back.
//
// Apply must be idempotent per event ID and atomic per event (effect and
// dedupe mark together), exactly like profile.Store. Windows are by event
// time: an event older than a window does not count in it.
type Store interface {
	Apply(ctx context.Context, events []event.Event) (applied int, err error)
	// Get appends to dst the stats of each id, in order, and returns the
	// extended slice; unknown videos get zero counters. It is on the feed's
	// hot path (hundreds of ids a request): callers reuse dst.
	Get(ctx context.Context, dst []Stats, videoIDs []string, now time.Time) ([]Stats, error)
	Ping(ctx context.Context) error
	Close() error
}

// Config tunes every backend identically.
type Config struct {
	DedupeTTL time.Duration
	// CacheTTL is how long the Redis backend's in-process cache may serve a
	// read (0: no cache).
	CacheTTL time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{DedupeTTL: 7 * 24 * time.Hour, CacheTTL: time.Second}
}
