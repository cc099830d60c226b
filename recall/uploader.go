package recall

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"slices"

	"reelfeed/catalog"
)

// UploaderConfig tunes the uploader branch.
type UploaderConfig struct {
	// FollowWeight is what a declared follow is worth next to the strongest
	// learned author affinity (1).
	FollowWeight   float64 `json:"follow_weight" mapstructure:"follow_weight"`
	ShortTermShare float64 `json:"short_term_share" mapstructure:"short_term_share"`
	// MaxUploaders bounds the authors queried per request; users following
	// more see a subset that rotates hourly.
	MaxUploaders int `json:"max_uploaders" mapstructure:"max_uploaders"`
	// MaxScan bounds the videos read across all queried authors (in
	// process, split evenly between them).
	MaxScan int `json:"max_scan" mapstructure:"max_scan"`
}

// DefaultUploaderConfig returns the documented defaults.
func DefaultUploaderConfig() UploaderConfig {
	return UploaderConfig{FollowWeight: 1, ShortTermShare: 0.6, MaxUploaders: 20, MaxScan: 400}
}

// Uploader recalls recent videos from authors the user follows (declared)
// or keeps engaging with (learned author affinity), newest first.
type Uploader struct {
	search videoSearcher
	cfg    UploaderConfig
}

// NewUploader returns the uploader branch; retriever and cat as for NewTag.
func NewUploader(cat *catalog.Catalog, retriever catalog.Retriever, cfg UploaderConfig) (*Uploader, error) {
	if cfg.FollowWeight < 0 || cfg.ShortTermShare < 0 || cfg.ShortTermShare > 1 || cfg.MaxUploaders <= 0 || cfg.MaxScan <= 0 {
		return nil, fmt.Errorf("recall: uploader config invalid: follow_weight >= 0, short_term_share in [0,1], max_uploaders and max_scan > 0")
	}
	s, err := newVideoSearcher(cat, retriever)
	if err != nil {
		return nil, err
	}
	return &Uploader{search: s, cfg: cfg}, nil
}

var _ Source = (*Uploader)(nil)

// Name implements Source.
func (*Uploader) Name() string { return "uploader" }

// InProcess implements InProcess: true over the in-memory catalog.
func (u *Uploader) InProcess() bool { return u.search.local }

// Recall implements Source. Each author gets a share of the quota by
// weight, filled with their newest unseen uploads, so one prolific author
// cannot fill the branch; the quota best by weight and freshness are kept.
// The in-memory catalog is scanned per author (reading each author's list
// only as far as their share needs); a remote retriever gets one query for
// every author, so the branch costs a single round trip.
func (u *Uploader) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, nil
	}
	p := req.Profile
	keys := blendInterests(req.interestKeys(u.cfg.MaxUploaders), p.ShortTerm.Uploaders, p.LongTerm.Uploaders, u.cfg.ShortTermShare, u.cfg.MaxUploaders)
	if req.User != nil && len(req.User.Follows) > 0 && u.cfg.FollowWeight > 0 {
		keys = u.addFollows(keys, req)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var total float64
	for _, k := range keys {
		total += k.weight
	}
	shares := make([]int, len(keys))
	for i, k := range keys {
		shares[i] = max(1, int(math.Ceil(float64(quota)*k.weight/total)))
	}
	out := req.candidates(quota + len(keys))
	take := func(k int, v *catalog.Video) {
		shares[k]--
		age := max(0, req.Now.Sub(v.PublishedAt).Hours())
		out = append(out, Candidate{Video: v, Branch: u.Name(),
			Score: keys[k].weight * (0.5 + 0.5*math.Exp2(-age/uploaderFreshHalfLifeHours))})
	}
	seenExcluded := u.search.local && req.scanExcludesSeen()
	wanted := func(v *catalog.Video) bool {
		return !req.ownUpload(v) && (seenExcluded || !req.Seen(v))
	}
	query := catalog.Query{Region: req.Region, PublishedBefore: req.Now, Sort: catalog.SortByFresh}
	if u.search.local {
		// MaxScan split evenly: an author whose uploads the user has all
		// seen cannot use up the others' reads.
		query.Limit = max(1, u.cfg.MaxScan/len(keys))
		author := make([]string, 1)
		for k := range keys {
			author[0] = keys[k].key
			query.Uploaders = author
			u.search.cat.ScanVideos(query, func(v *catalog.Video) bool {
				if wanted(v) {
					take(k, v)
				}
				return shares[k] > 0
			}, req.PlayedKeys, req.ShownKeys)
		}
	} else {
		index := make(map[string]int, len(keys))
		query.Uploaders = make([]string, len(keys))
		for k, key := range keys {
			index[key.key] = k
			query.Uploaders[k] = key.key
		}
		query.Limit = u.cfg.MaxScan
		err := u.search.scan(ctx, query, func(v *catalog.Video) bool {
			if k, ok := index[v.UploaderID]; ok && shares[k] > 0 && wanted(v) {
				take(k, v)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, bestFirst)
	if len(out) > quota {
		out = out[:quota]
	}
	return out, ctx.Err()
}

// uploaderFreshHalfLifeHours: a followed author's upload this old counts
// half as much as a brand-new one (3/4 of the weight overall).
const uploaderFreshHalfLifeHours = 72

// addFollows merges declared follows into the learned keys and keeps the
// MaxUploaders strongest. Follows tie with each other, so the tie is broken
// by a hash of (user, follow, hour): a user following thousands of authors
// sees a different subset each hour instead of always the same one.
func (u *Uploader) addFollows(keys []interestKey, req *Request) []interestKey {
	learned := make(map[string]int, len(keys))
	for i, k := range keys {
		learned[k.key] = i
	}
	hour := req.Now.Unix() / 3600
	for _, f := range req.User.Follows {
		if f == req.UserID {
			continue
		}
		if i, ok := learned[f]; ok {
			keys[i].weight += u.cfg.FollowWeight
			continue
		}
		keys = append(keys, interestKey{f, u.cfg.FollowWeight * (1 + 1e-3*rotation(req.UserID, f, hour))})
	}
	slices.SortFunc(keys, func(a, b interestKey) int { return cmp.Compare(b.weight, a.weight) })
	if len(keys) > u.cfg.MaxUploaders {
		keys = keys[:u.cfg.MaxUploaders]
	}
	return keys
}

// rotation is a stable pseudo-random number in [0,1) per (user, key, hour).
func rotation(user, key string, hour int64) float64 {
	h := fnv.New64a()
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var b [8]byte
	for i := range b {
		b[i] = byte(hour >> (8 * i))
	}
	h.Write(b[:])
	return float64(h.Sum64()>>11) / (1 << 53)
}
