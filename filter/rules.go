package filter

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"reelfeed/catalog"
)

// Filter names, as they appear in metrics and debug output.
const (
	NameDeleted       = "deleted"
	NameBlacklisted   = "blacklisted"
	NameRegion        = "region"
	NameKind          = "kind"
	NameOwnUpload     = "own_upload"
	NamePlayed        = "already_played"
	NameShown         = "already_shown"
	NameNewQuota      = "new_video_quota"
	NameNearDuplicate = "near_duplicate"
)

// Blacklist is an immutable set of blocked videos, tags and uploaders.
type Blacklist struct {
	videos, tags, uploaders map[string]struct{}
}

// NewBlacklist builds a blacklist; tags are matched lower-cased like the
// catalog stores them.
func NewBlacklist(videos, tags, uploaders []string) *Blacklist {
	set := func(in []string, lower bool) map[string]struct{} {
		if len(in) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(in))
		for _, s := range in {
			if lower {
				s = strings.ToLower(strings.TrimSpace(s))
			}
			m[s] = struct{}{}
		}
		return m
	}
	return &Blacklist{videos: set(videos, false), tags: set(tags, true), uploaders: set(uploaders, false)}
}

// Blocks reports whether v is blacklisted by id, uploader or any tag.
func (b *Blacklist) Blocks(v *catalog.Video) bool {
	if b == nil {
		return false
	}
	if _, ok := b.videos[v.ID]; ok {
		return true
	}
	if _, ok := b.uploaders[v.UploaderID]; ok {
		return true
	}
	if len(b.tags) > 0 {
		for _, t := range v.Tags {
			if _, ok := b.tags[t]; ok {
				return true
			}
		}
	}
	return false
}

// Empty reports whether the blacklist blocks nothing.
func (b *Blacklist) Empty() bool {
	return b == nil || len(b.videos)+len(b.tags)+len(b.uploaders) == 0
}

// Deleted removes videos no longer in the catalog and refreshes the others
// to their current metadata, so later rules judge what would be served.
// Recall sources may hold pointers from before an update or delete.
type Deleted struct {
	catalog *catalog.Catalog
	videos  sync.Pool // *[]*catalog.Video
}

// NewDeleted returns the deleted-video filter over cat.
func NewDeleted(cat *catalog.Catalog) *Deleted {
	f := &Deleted{catalog: cat}
	f.videos.New = func() any { return new([]*catalog.Video) }
	return f
}

func (*Deleted) Name() string { return NameDeleted }

func (f *Deleted) Apply(_ context.Context, _ *Request, cands []Candidate) (int, error) {
	buf := f.videos.Get().(*[]*catalog.Video)
	current := (*buf)[:0]
	for i := range cands {
		current = append(current, cands[i].Video)
	}
	f.catalog.Current(current) // one lock for the whole list
	// partition, by position: removed candidates keep their last known
	// video so debug output can still name them.
	kept := 0
	for i := range cands {
		if current[i] == nil {
			continue
		}
		cands[i].Video = current[i]
		if i != kept {
			cands[i], cands[kept] = cands[kept], cands[i]
		}
		kept++
	}
	clear(current)
	*buf = current
	f.videos.Put(buf)
	return kept, nil
}

// Blacklisted removes videos the request's blacklist blocks.
type Blacklisted struct{}

func (Blacklisted) Name() string { return NameBlacklisted }

func (Blacklisted) Apply(_ context.Context, req *Request, cands []Candidate) (int, error) {
	if req.Blacklist.Empty() {
		return len(cands), nil
	}
	return partition(cands, func(c *Candidate) bool { return !req.Blacklist.Blocks(c.Video) }), nil
}

// Region removes videos not allowed in the request's region.
type Region struct{}

func (Region) Name() string { return NameRegion }

func (Region) Apply(_ context.Context, req *Request, cands []Candidate) (int, error) {
	return partition(cands, func(c *Candidate) bool { return c.Video.AllowedIn(req.Region) }), nil
}

// Kind removes kinds a surface does not show (music on a video-only
// surface, say).
type Kind struct {
	excluded map[string]map[catalog.Kind]bool // surface → excluded kinds
}

// NewKind takes surface → kinds excluded there. A surface not in the map
// shows every kind.
func NewKind(excluded map[string][]catalog.Kind) (*Kind, error) {
	f := &Kind{excluded: make(map[string]map[catalog.Kind]bool, len(excluded))}
	for surface, kinds := range excluded {
		set := make(map[catalog.Kind]bool, len(kinds))
		for _, k := range kinds {
			switch k {
			case catalog.KindVideo, catalog.KindImageSet, catalog.KindMusic:
			default:
				return nil, fmt.Errorf("filter: surface %q excludes unknown kind %q", surface, k)
			}
			set[k] = true
		}
		f.excluded[surface] = set
	}
	return f, nil
}

func (*Kind) Name() string { return NameKind }

func (f *Kind) Apply(_ context.Context, req *Request, cands []Candidate) (int, error) {
	ex := f.excluded[req.Surface]
	if len(ex) == 0 {
		return len(cands), nil
	}
	return partition(cands, func(c *Candidate) bool { return !ex[c.Video.Kind] }), nil
}

// OwnUpload removes the user's own videos.
type OwnUpload struct{}

func (OwnUpload) Name() string { return NameOwnUpload }

func (OwnUpload) Apply(_ context.Context, req *Request, cands []Candidate) (int, error) {
	return partition(cands, func(c *Candidate) bool { return c.Video.UploaderID != req.UserID }), nil
}

// Played removes videos the user completed, liked, skipped, disliked,
// commented on or shared: they are never served again.
type Played struct{}

func (Played) Name() string { return NamePlayed }

func (Played) Apply(_ context.Context, req *Request, cands []Candidate) (int, error) {
	played := req.Profile.Played
	if len(played) == 0 {
		return len(cands), nil
	}
	if keys := req.PlayedKeys; keys != nil {
		return partition(cands, func(c *Candidate) bool { return !keys.HasVideo(c.Video) }), nil
	}
	return partition(cands, func(c *Candidate) bool {
		_, seen := played[c.Video.ID]
		return !seen
	}), nil
}
