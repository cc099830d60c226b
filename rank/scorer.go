// Package rank scores candidate videos for one request. Scorer is the
// interface the feed pipeline calls; the formula scorer and the DeepFM
// scorer are its implementations, and boosts apply after either.
package rank

import (
	"context"
	"time"

	"reelfeed/catalog"
	"reelfeed/feature"
	"reelfeed/profile"
)

// Query is the user and context side of a ranking request: computed once
// per request, shared by every candidate.
type Query struct {
	UserID  string
	Profile *profile.Profile // never nil
	User    *catalog.User    // declared attributes; nil when never declared
	Region  string
	Device  string
	Now     time.Time
	Variant string // A/B variant name
	Debug   bool   // fill Item.Parts
}

// Item is one candidate: the inputs a scorer reads, and the score it writes.
type Item struct {
	Video  *catalog.Video
	Stats  feature.Stats
	Branch string // recall branch that produced it

	Score float64
	// Parts explains the score (feature → contribution); filled only when
	// Query.Debug is set, so normal requests allocate nothing per item.
	Parts map[string]float64
}

// Scorer writes Item.Score for every item. Higher is better. Implementations
// must be safe for concurrent use.
type Scorer interface {
	Name() string
	Score(ctx context.Context, q *Query, items []Item) error
}
