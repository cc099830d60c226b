// Package event is the behaviour vocabulary shared by ingestion, the profile
// and feature stores, and ranking: what a user did to a video, and when.
package event

import (
	"encoding/json"
	"fmt"
	"time"
)

// Type is a behaviour event type. Its numeric value indexes per-type arrays
// (counters, weights), so the order is part of the storage format: append only.
type Type uint8

const (
	Impression Type = iota
	Play
	Complete
	Like
	Comment
	Share
	Follow
	Skip
	Dislike
	NumTypes // number of types; not a type
)

var typeNames = [NumTypes]string{"impression", "play", "complete", "like", "comment", "share", "follow", "skip", "dislike"}

// Types lists every event type in storage order.
func Types() []Type {
	out := make([]Type, NumTypes)
	for i := range out {
		out[i] = Type(i)
	}
	return out
}

func (t Type) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is a known type.
func (t Type) Valid() bool { return t < NumTypes }

// Played reports whether the event means the user actually consumed the
// video, so it must never be served to them again.
func (t Type) Played() bool {
	switch t {
	case Complete, Like, Skip, Dislike, Comment, Share:
		return true
	}
	return false
}

// ParseType parses a type name as used in the HTTP API.
func ParseType(s string) (Type, bool) {
	for i, n := range typeNames {
		if n == s {
			return Type(i), true
		}
	}
	return 0, false
}

func (t Type) MarshalJSON() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("event: invalid type %d", uint8(t))
	}
	return json.Marshal(t.String())
}

func (t *Type) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("type must be a string")
	}
	v, ok := ParseType(s)
	if !ok {
		return fmt.Errorf("unknown event type %q", s)
	}
	*t = v
	return nil
}

// Counts holds one counter per event type.
type Counts [NumTypes]int64

// Map renders non-zero counts by type name, the shape the API returns.
func (c Counts) Map() map[string]int64 {
	m := make(map[string]int64, NumTypes)
	for i, n := range c {
		if n != 0 {
			m[typeNames[i]] = n
		}
	}
	return m
}

// Total is the sum over all types.
func (c Counts) Total() int64 {
	var s int64
	for _, n := range c {
		s += n
	}
	return s
}

// Event is one behaviour event as it travels through the events stream.
// The video metadata fields are filled by the server at ingestion time from
// the catalog, so replaying the stream gives the same profile whatever the
// catalog looks like at replay time.
type Event struct {
	ID        string    `json:"event_id"`
	UserID    string    `json:"user_id"`
	VideoID   string    `json:"video_id"`
	Type      Type      `json:"type"`
	WatchMs   int64     `json:"watch_ms,omitempty"`
	TS        time.Time `json:"ts"`
	RequestID string    `json:"request_id,omitempty"`

	// Enrichment, set by the server, never trusted from clients.
	Category   string   `json:"category,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	UploaderID string   `json:"uploader_id,omitempty"`
	// Branch and Variant are set on impressions the feed publishes, so
	// training samples and CTR by branch can be joined later.
	Branch  string `json:"branch,omitempty"`
	Variant string `json:"variant,omitempty"`
	// Features is the exact feature vector used to score this item, logged
	// with impressions so training sees what serving saw (no skew).
	Features json.RawMessage `json:"features,omitempty"`
}
