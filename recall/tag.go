package recall

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"reelfeed/catalog"
)

// TagConfig tunes the tag branch.
type TagConfig struct {
	// ShortTermShare weighs the last hour against the last 30 days when
	// blending interests (each horizon normalised to its strongest entry).
	ShortTermShare float64 `json:"short_term_share" mapstructure:"short_term_share"`
	// MaxTags and MaxCategories bound how many interests are queried.
	MaxTags       int `json:"max_tags" mapstructure:"max_tags"`
	MaxCategories int `json:"max_categories" mapstructure:"max_categories"`
	// CategoryShare is the part of the quota spent on category interests
	// (broader, so the branch still yields when tag lists run dry).
	CategoryShare float64 `json:"category_share" mapstructure:"category_share"`
	// MaxScan bounds the videos read per interest while skipping videos the
	// user already played or saw. With the feed's seen sets
	// (Request.PlayedKeys/ShownKeys) the in-memory index skips those
	// without reading or counting them.
	MaxScan int `json:"max_scan" mapstructure:"max_scan"`
}

// DefaultTagConfig returns the documented defaults.
func DefaultTagConfig() TagConfig {
	return TagConfig{ShortTermShare: 0.6, MaxTags: 8, MaxCategories: 3, CategoryShare: 0.3, MaxScan: 500}
}

func (c TagConfig) validate() error {
	if c.ShortTermShare < 0 || c.ShortTermShare > 1 || c.CategoryShare < 0 || c.CategoryShare > 1 {
		return fmt.Errorf("recall: tag short_term_share and category_share must be in [0,1]")
	}
	if c.MaxTags < 0 || c.MaxCategories < 0 || c.MaxTags+c.MaxCategories == 0 || c.MaxScan <= 0 {
		return fmt.Errorf("recall: tag max_tags/max_categories must allow at least one interest and max_scan must be > 0")
	}
	return nil
}

// Tag recalls videos carrying the user's strongest tags and categories,
// short- and long-term interests blended. The quota is split across
// interests by weight, so a dominant interest fills most of the branch while
// weaker ones still show up.
type Tag struct {
	search videoSearcher
	cfg    TagConfig
}

// NewTag returns the tag branch. retriever answers the queries (the memory
// catalog, or Elasticsearch behind a fallback); its ids are resolved through
// cat, which must be the same catalog.
func NewTag(cat *catalog.Catalog, retriever catalog.Retriever, cfg TagConfig) (*Tag, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s, err := newVideoSearcher(cat, retriever)
	if err != nil {
		return nil, err
	}
	return &Tag{search: s, cfg: cfg}, nil
}

var _ Source = (*Tag)(nil)

// Name implements Source.
func (*Tag) Name() string { return "tag" }

// InProcess implements InProcess: true over the in-memory catalog.
func (t *Tag) InProcess() bool { return t.search.local }

// Recall implements Source.
func (t *Tag) Recall(ctx context.Context, req *Request, quota int) ([]Candidate, error) {
	if quota <= 0 {
		return nil, nil
	}
	p := req.Profile
	keys := blendInterests(req.interestKeys(t.cfg.MaxTags+t.cfg.MaxCategories), p.ShortTerm.Tags, p.LongTerm.Tags, t.cfg.ShortTermShare, t.cfg.MaxTags)
	tags := keys[:len(keys):len(keys)]
	cats := blendInterests(keys, p.ShortTerm.Categories, p.LongTerm.Categories, t.cfg.ShortTermShare, t.cfg.MaxCategories)[len(tags):]
	if len(tags)+len(cats) == 0 {
		return nil, nil // nothing known about the user yet: other branches serve them
	}
	catQuota := int(math.Round(float64(quota) * t.cfg.CategoryShare))
	switch {
	case len(cats) == 0:
		catQuota = 0
	case len(tags) == 0:
		catQuota = quota
	}
	var ir interestRecall
	ir.init(req, t.Name(), quota)
	if err := t.search.recallInterests(ctx, req, &ir, tags, quota-catQuota, t.cfg.MaxScan,
		func(q *catalog.Query, key []string) { q.Tags = key }); err != nil {
		return nil, err
	}
	if err := t.search.recallInterests(ctx, req, &ir, cats, catQuota, t.cfg.MaxScan,
		func(q *catalog.Query, key []string) { q.Categories = key }); err != nil {
		return nil, err
	}
	return ir.result(quota), nil
}

// interestKey is a retrieval key (a tag, category or uploader) and how much
// the user cares about it.
type interestKey struct {
	key    string
	weight float64
}

// blendInterests appends to dst the n keys with the highest positive blend
// share·short/max(short) + (1−share)·long/max(long), strongest first.
// Negative interests (skips, dislikes) are never retrieved on.
func blendInterests(dst []interestKey, short, long map[string]float64, share float64, n int) []interestKey {
	if n <= 0 {
		return dst
	}
	scale := func(m map[string]float64) float64 {
		var mx float64
		for _, v := range m {
			mx = math.Max(mx, v)
		}
		if mx <= 0 {
			return 0
		}
		return 1 / mx
	}
	ss, ls := share*scale(short), (1-share)*scale(long)
	// Users collect hundreds of interests and n is a handful: keep the
	// best n as they come instead of sorting them all.
	start := len(dst)
	offer := func(k string, w float64) {
		if w <= 0 {
			return
		}
		top := dst[start:]
		cand := interestKey{k, w}
		if len(top) == n && !cand.before(top[n-1]) {
			return
		}
		i := len(top)
		for i > 0 && cand.before(top[i-1]) {
			i--
		}
		if len(top) < n {
			dst = append(dst, interestKey{})
			top = dst[start:]
		}
		copy(top[i+1:], top[i:len(top)-1])
		top[i] = cand
	}
	for k, v := range short {
		offer(k, ss*v+ls*long[k])
	}
	for k, v := range long {
		if _, both := short[k]; !both {
			offer(k, ls*v)
		}
	}
	return dst
}

// before orders interests strongest first, then by key: a total order, so
// the same profile always retrieves on the same keys.
func (a interestKey) before(b interestKey) bool {
	return a.weight > b.weight || (a.weight == b.weight && a.key < b.key)
}

// videoSearcher runs retrieval queries and resolves the ids to videos.
type videoSearcher struct {
	cat       *catalog.Catalog
	retriever catalog.Retriever
	local     bool // the retriever is cat itself: skip the id round trip
}

func newVideoSearcher(cat *catalog.Catalog, retriever catalog.Retriever) (videoSearcher, error) {
	if cat == nil {
		return videoSearcher{}, fmt.Errorf("recall: a catalog is required")
	}
	if retriever == nil {
		retriever = cat
	}
	local := false
	if c, ok := retriever.(*catalog.Catalog); ok && c == cat {
		local = true
	}
	return videoSearcher{cat: cat, retriever: retriever, local: local}, nil
}

// scan calls visit with the videos q finds, best first, until visit returns
// false. The in-memory catalog streams them, so a caller skipping videos
// the user saw reads each list once and stops when it has enough; visit
// then runs under the catalog's read lock and must not call the catalog.
// A remote retriever answers q.Limit ids at once, visited after.
func (s videoSearcher) scan(ctx context.Context, q catalog.Query, visit func(*catalog.Video) bool, exclude ...*catalog.IDSet) error {
	if s.local {
		s.cat.ScanVideos(q, visit, exclude...)
		return ctx.Err()
	}
	res, err := s.search(ctx, q)
	if err != nil {
		return err
	}
	for _, v := range res {
		if !visit(v) {
			break
		}
	}
	return nil
}

// search asks the retriever and resolves its ids through the catalog (the
// path for remote retrievers: local ones are scanned).
func (s videoSearcher) search(ctx context.Context, q catalog.Query) ([]*catalog.Video, error) {
	ids, err := s.retriever.Search(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("recall: %s retriever: %w", s.retriever.Name(), err)
	}
	out := make([]*catalog.Video, 0, len(ids))
	for _, id := range ids {
		if v, ok := s.cat.Get(id); ok { // an index lagging a delete must not resurrect the video
			out = append(out, v)
		}
	}
	return out, nil
}

// interestRecall accumulates one branch's candidates across interests. A
// video matching several interests is kept once, its score summed.
type interestRecall struct {
	branch string
	out    []Candidate
	index  map[uint64]int // by catalog.IDKey
}

func (ir *interestRecall) init(req *Request, branch string, quota int) {
	ir.branch = branch
	// Room for the over-fetch: interests overlap less than they add up.
	ir.out = req.candidates(2 * quota)
	ir.index = req.dedupeIndex(2 * quota)
}

// add records v found through an interest of weight w; it reports whether
// v is new to the branch.
func (ir *interestRecall) add(v *catalog.Video, score float64) bool {
	if i, ok := ir.index[v.Key()]; ok {
		ir.out[i].Score += score
		return false
	}
	ir.index[v.Key()] = len(ir.out)
	ir.out = append(ir.out, Candidate{Video: v, Branch: ir.branch, Score: score})
	return true
}

// result returns the best quota candidates by score.
func (ir *interestRecall) result(quota int) []Candidate {
	slices.SortFunc(ir.out, bestFirst)
	if len(ir.out) > quota {
		ir.out = ir.out[:quota]
	}
	return ir.out
}

// recallInterests spends quota across keys in proportion to their weights.
// The in-memory catalog is scanned once per key, past the videos the user
// already saw, until the key's share is taken or maxScan videos were read.
// Remote retrievers are queried concurrently, once each with a fixed
// over-fetch, so the branch costs one round trip.
func (s videoSearcher) recallInterests(ctx context.Context, req *Request, ir *interestRecall, keys []interestKey,
	quota, maxScan int, setKey func(q *catalog.Query, key []string)) error {
	if quota <= 0 || len(keys) == 0 {
		return nil
	}
	var total float64
	for _, k := range keys {
		total += k.weight
	}
	shares := make([]int, len(keys))
	for i, k := range keys {
		shares[i] = max(1, int(math.Ceil(float64(quota)*k.weight/total)))
	}
	query := func(key []string, limit int) catalog.Query {
		q := catalog.Query{Region: req.Region, Sort: catalog.SortByQuality, Limit: min(limit, maxScan)}
		setKey(&q, key)
		return q
	}
	if !s.local {
		results := make([][]*catalog.Video, len(keys))
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() { results[i], errs[i] = s.search(ctx, query([]string{keys[i].key}, 3*shares[i])) })
		}
		wg.Wait()
		for i, res := range results {
			if errs[i] != nil {
				return errs[i]
			}
			takeInterest(req, ir, res, shares[i], keys[i].weight)
		}
		return nil
	}
	key := make([]string, 1) // the in-memory catalog does not keep it: reuse across queries
	take := takeVideo
	if req.scanExcludesSeen() {
		take = takeScanned
	}
	for i := range keys {
		key[0] = keys[i].key
		taken := 0
		err := s.scan(ctx, query(key, maxScan), func(v *catalog.Video) bool {
			if take(req, ir, v, keys[i].weight) {
				taken++
			}
			return taken < shares[i]
		}, req.PlayedKeys, req.ShownKeys) // seen videos skipped in the index, unread
		if err != nil {
			return err
		}
	}
	return nil
}

// takeInterest adds up to want unseen videos from res; it returns how many
// were new.
func takeInterest(req *Request, ir *interestRecall, res []*catalog.Video, want int, weight float64) int {
	taken := 0
	for _, v := range res {
		if taken >= want {
			break
		}
		if takeVideo(req, ir, v, weight) {
			taken++
		}
	}
	return taken
}

// takeVideo adds v, found through an interest of the given weight and
// scored by it and the video's quality, unless the user saw or uploaded
// it; it reports whether v was new to the branch.
func takeVideo(req *Request, ir *interestRecall, v *catalog.Video, weight float64) bool {
	if req.unwanted(v) {
		return false
	}
	return ir.add(v, weight*(0.5+0.5*v.Quality))
}

// takeScanned is takeVideo for a video from a scan that already skipped
// what the user saw.
func takeScanned(req *Request, ir *interestRecall, v *catalog.Video, weight float64) bool {
	if req.ownUpload(v) {
		return false
	}
	return ir.add(v, weight*(0.5+0.5*v.Quality))
}
