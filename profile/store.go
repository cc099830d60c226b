// Package profile keeps what the engine believes about each user: short-term
// (last hour) and long-term (30 days) interests over tags, categories and
// uploaders, per-type event counts, and the played and shown sets the feed
// filters on. The Store interface is here; its backends are beside it.
package profile

import (
	"context"
	"time"

	"reelfeed/event"
)

// Interests are non-negative-or-negative affinity scores, decayed to the
// time they were read at.
type Interests struct {
	Tags       map[string]float64 `json:"tags"`
	Categories map[string]float64 `json:"categories"`
	Uploaders  map[string]float64 `json:"uploaders"`
}

// Profile is one user's state as of the time it was read.
type Profile struct {
	UserID    string
	ShortTerm Interests
	LongTerm  Interests
	Counts    event.Counts
	// Played holds videos the user completed, liked, skipped, disliked,
	// commented or shared (event.Type.Played), with the event time.
	Played map[string]time.Time
	// Positive holds videos the user completed, liked, commented on or
	// shared, with the event time: the seeds of item-to-item recall.
	// Bounded by MaxPlayed like Played.
	Positive map[string]time.Time
	// Shown holds videos served to the user (impressions), with the time.
	Shown     map[string]time.Time
	LastEvent time.Time
}

// Store applies behaviour events to profiles and reads them back.
//
// Apply must be idempotent per event ID: applying an event that was already
// applied (a redelivery, a client retry after the stream's dedupe window)
// changes nothing. Each event's effect and its dedupe mark are written
// atomically, so a crash in the middle never applies an event twice or
// half-way. Events may arrive out of time order; the result must not depend
// on arrival order.
type Store interface {
	// Apply applies events and returns how many were new (not duplicates).
	Apply(ctx context.Context, events []event.Event) (applied int, err error)
	// Get returns the user's profile with interests decayed to now. An
	// unknown user gets an empty profile (non-nil maps), not an error.
	Get(ctx context.Context, userID string, now time.Time) (*Profile, error)
	// Prune drops interests that decayed below the configured floor and
	// set entries past their TTL (the long-term profile job); it returns the
	// number of users visited.
	Prune(ctx context.Context, now time.Time) (int, error)
	// Ping checks the backend is reachable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Config tunes every backend identically.
type Config struct {
	// Weights per event type; skip and dislike are negative.
	Weights [event.NumTypes]float64
	// ShortHalfLife decays short-term interests; entries older than
	// ShortWindow (by event time) no longer count.
	ShortHalfLife time.Duration
	ShortWindow   time.Duration
	LongHalfLife  time.Duration
	LongWindow    time.Duration
	// MaxPlayed and MaxShown bound the sets per user (oldest evicted);
	// entries expire after PlayedTTL / ShownTTL.
	MaxPlayed int
	MaxShown  int
	PlayedTTL time.Duration
	ShownTTL  time.Duration
	// DedupeTTL is how long an applied event id is remembered.
	DedupeTTL time.Duration
	// MaxInterests bounds entries per interest map (weakest evicted).
	MaxInterests int
}

// DefaultConfig returns the documented defaults (config.yaml).
func DefaultConfig() Config {
	var w [event.NumTypes]float64
	w[event.Impression] = 0.05
	w[event.Play] = 0.5
	w[event.Share] = 1.5
	w[event.Comment] = 2
	w[event.Like] = 3
	w[event.Complete] = 4
	w[event.Follow] = 2
	w[event.Skip] = -1
	w[event.Dislike] = -4
	return Config{
		Weights:       w,
		ShortHalfLife: 20 * time.Minute,
		ShortWindow:   time.Hour,
		LongHalfLife:  7 * 24 * time.Hour,
		LongWindow:    30 * 24 * time.Hour,
		MaxPlayed:     5000,
		MaxShown:      2000,
		PlayedTTL:     30 * 24 * time.Hour,
		ShownTTL:      7 * 24 * time.Hour,
		DedupeTTL:     7 * 24 * time.Hour,
		MaxInterests:  200,
	}
}
