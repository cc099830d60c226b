// Package catalog holds video and user metadata and the in-memory index the
// recall branches read: posting lists by tag, category, uploader and region,
// plus recency and quality orderings. Every replica builds it from the
// catalog stream.
package catalog

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what a catalog item is; some surfaces exclude some kinds.
type Kind string

const (
	KindVideo    Kind = "video"
	KindImageSet Kind = "image_set"
	KindMusic    Kind = "music"
)

// Video is one catalog item, in the shape of the HTTP API.
type Video struct {
	ID         string `json:"video_id"`
	UploaderID string `json:"uploader_id"`
	// Beside the id, in the cache line recall and filters read anyway:
	// derived from the exported fields by Normalize or indexing (derive).
	key      uint64 // IDKey(ID)
	upKey    uint64 // IDKey(UploaderID)
	titleKey uint64 // TitleKey(Title)
	tagBits  uint64 // TagBits(Tags)
	derived  bool
	slot     int32 // where the memory catalog holds it; read and written under the catalog's lock

	// What ranking reads of every candidate, next; what only the API and
	// near-duplicate confirmation read, last.
	Tags        []string  `json:"tags"`
	Category    string    `json:"category"`
	Quality     float64   `json:"quality"` // editorial/model quality in [0,1]
	PublishedAt time.Time `json:"published_at"`
	Regions     []string  `json:"regions"` // empty: allowed everywhere
	Kind        Kind      `json:"kind"`
	DurationMs  int64     `json:"duration_ms"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
}

// Limits on video fields, so one bad upload cannot bloat every index.
const (
	MaxIDLen    = 128
	MaxTitleLen = 512
	MaxDescLen  = 8192
	MaxTags     = 32
	MaxTagLen   = 64
	MaxRegions  = 64
)

// Normalize fills defaults (kind video, published now) and canonicalises tags
// and regions (lower case, trimmed, deduplicated) so posting lists match.
func (v *Video) Normalize(now time.Time) {
	if v.Kind == "" {
		v.Kind = KindVideo
	}
	if v.PublishedAt.IsZero() {
		v.PublishedAt = now
	}
	v.Tags = canonicalSet(v.Tags)
	v.Regions = canonicalSet(v.Regions)
	v.Category = strings.ToLower(strings.TrimSpace(v.Category))
	v.derive()
}

func canonicalSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := in[:0:0]
	seen := make(map[string]struct{}, len(in))
	for _, s := range in {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if _, dup := seen[s]; dup {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	return out
}

// Validate returns field → problem for every invalid field (empty: valid).
// Call after Normalize.
func (v *Video) Validate() map[string]string {
	bad := map[string]string{}
	checkID(bad, "video_id", v.ID, true)
	checkID(bad, "uploader_id", v.UploaderID, true)
	if utf8.RuneCountInString(v.Title) > MaxTitleLen {
		bad["title"] = fmt.Sprintf("longer than %d characters", MaxTitleLen)
	}
	if len(v.Description) > MaxDescLen {
		bad["description"] = fmt.Sprintf("longer than %d bytes", MaxDescLen)
	}
	if len(v.Tags) > MaxTags {
		bad["tags"] = fmt.Sprintf("more than %d tags", MaxTags)
	}
	for _, t := range v.Tags {
		if len(t) > MaxTagLen {
			bad["tags"] = fmt.Sprintf("tag longer than %d bytes", MaxTagLen)
		}
	}
	if v.Category == "" {
		bad["category"] = "required"
	} else if len(v.Category) > MaxTagLen {
		bad["category"] = fmt.Sprintf("longer than %d bytes", MaxTagLen)
	}
	if v.DurationMs < 0 {
		bad["duration_ms"] = "must be >= 0"
	}
	if len(v.Regions) > MaxRegions {
		bad["regions"] = fmt.Sprintf("more than %d regions", MaxRegions)
	}
	switch v.Kind {
	case KindVideo, KindImageSet, KindMusic:
	default:
		bad["kind"] = `must be "video", "image_set" or "music"`
	}
	if v.Quality < 0 || v.Quality > 1 || v.Quality != v.Quality {
		bad["quality"] = "must be between 0 and 1"
	}
	return bad
}

func checkID(bad map[string]string, field, id string, required bool) {
	switch {
	case id == "" && required:
		bad[field] = "required"
	case len(id) > MaxIDLen:
		bad[field] = fmt.Sprintf("longer than %d bytes", MaxIDLen)
	case strings.ContainsAny(id, " \t\r\n*>"):
		bad[field] = "must not contain whitespace, '*' or '>'"
	}
}

// ValidID reports whether s is usable as a user or video id (they appear in
// stream subjects and Redis keys).
func ValidID(s string) bool {
	bad := map[string]string{}
	checkID(bad, "id", s, true)
	return len(bad) == 0
}

// AllowedIn reports whether the video may be shown in region (empty list:
// everywhere; empty region: unknown, allowed).
func (v *Video) AllowedIn(region string) bool {
	if len(v.Regions) == 0 || region == "" {
		return true
	}
	for _, r := range v.Regions {
		if r == region {
			return true
		}
	}
	return false
}

// User is a user's declared attributes (PUT /v1/users/{id}).
type User struct {
	ID       string   `json:"user_id"`
	Age      int      `json:"age,omitempty"`
	Gender   string   `json:"gender,omitempty"`
	Region   string   `json:"region,omitempty"`
	Device   string   `json:"device,omitempty"`
	Language string   `json:"language,omitempty"`
	Follows  []string `json:"follows,omitempty"`
}

// Normalize canonicalises region and follows.
func (u *User) Normalize() {
	u.Region = strings.ToLower(strings.TrimSpace(u.Region))
	u.Device = strings.ToLower(strings.TrimSpace(u.Device))
	seen := map[string]struct{}{}
	out := u.Follows[:0:0]
	for _, f := range u.Follows {
		f = strings.TrimSpace(f)
		if _, dup := seen[f]; dup || f == "" {
			continue
		}
		seen[f] = struct{}{}
		out = append(out, f)
	}
	u.Follows = out
}

// Validate returns field → problem for every invalid field.
func (u *User) Validate() map[string]string {
	bad := map[string]string{}
	checkID(bad, "user_id", u.ID, true)
	if u.Age < 0 || u.Age > 150 {
		bad["age"] = "must be between 0 and 150"
	}
	if len(u.Follows) > 5000 {
		bad["follows"] = "more than 5000 entries"
	}
	for _, f := range u.Follows {
		if !ValidID(f) {
			bad["follows"] = "contains an invalid uploader id"
		}
	}
	for f, s := range map[string]string{"gender": u.Gender, "region": u.Region, "device": u.Device, "language": u.Language} {
		if len(s) > 64 {
			bad[f] = "longer than 64 bytes"
		}
	}
	return bad
}
