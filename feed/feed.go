// Package feed serves a personalised page of videos. Service.Feed runs the
// pipeline top to bottom in one function: context → recall → filter →
// truncate → features → rank → select → fill, each stage timed and counted.
// Runtime knobs (blacklists, boosts, slot plans, A/B experiments) live in
// Knobs and change through AdminHandler without a restart.
package feed

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/filter"
	"reelfeed/profile"
	"reelfeed/rank"
	"reelfeed/recall"
)

// ImpressionSink receives the impressions of every served page. Each
// impression has ID "imp-<request_id>-<video_id>", so a retried request
// with the same request_id is counted once.
type ImpressionSink interface {
	// Publish hands the events over for asynchronous delivery and returns
	// at once. It must never block or fail the request; delivery problems
	// are the sink's to count and log. The sink owns events afterwards.
	Publish(ctx context.Context, events []event.Event)
}

// FeatureLogger renders the features a scorer used for each served item,
// appended to dst in order, logged with the impressions so training sees
// exactly what serving saw.
type FeatureLogger func(dst []json.RawMessage, q *rank.Query, items []*rank.Item) []json.RawMessage

// Deps are the pipeline's collaborators.
type Deps struct {
	Catalog  *catalog.Catalog
	Profiles profile.Store
	Features feature.Store
	// Sources are the recall branches, run concurrently on every request
	// with the quota and budget Config.Branches gives their Name.
	Sources []recall.Source
	// Backfill fills pages the branches left short (the hot source); nil
	// skips straight to the catalog scan.
	Backfill recall.Source
	Scorer   rank.Scorer
	Knobs    *Knobs
	// Impressions receives an impression per served item.
	Impressions ImpressionSink
	// LogFeatures, when set, fills each impression's Features.
	LogFeatures FeatureLogger
	// Metrics registers the pipeline's collectors; nil: not exported.
	Metrics prometheus.Registerer
	Logger  *zap.Logger // nil: no logs
	// Now is the clock for business time (profile decay, freshness,
	// impression timestamps); nil: time.Now. Stage timings always use the
	// monotonic wall clock.
	Now func() time.Time
}

// Request is one feed request.
type Request struct {
	UserID    string
	Count     int    // 0: Config.DefaultCount
	Region    string // "": the user's declared region
	Device    string
	Debug     bool
	RequestID string // "": a new UUID
	Surface   string // "": Config.DefaultSurface
}

// Response is the page, in the API's JSON shape.
type Response struct {
	RequestID string `json:"request_id"`
	UserID    string `json:"user_id"`
	Segment   string `json:"segment"`
	Variant   string `json:"variant"`
	Items     []Item `json:"items"`
	Debug     *Debug `json:"debug"`
}

// Item is one served video.
type Item struct {
	VideoID    string  `json:"video_id"`
	Branch     string  `json:"branch"`
	Score      float64 `json:"score"`
	PlayURL    string  `json:"play_url"`
	Category   string  `json:"category"`
	UploaderID string  `json:"uploader_id"`
}

// Dependencies that fail open (dependency_failopen_total labels).
const (
	depProfile  = "profile"
	depFeatures = "features"
	depScorer   = "scorer"
)

// slowRequests keys the rate limit of the slow-request log.
const slowRequests = "slow_request"

// maxBranches: branch sets are bit masks (filter.Candidate.Branches).
const maxBranches = 64

// Service runs the pipeline. It is safe for concurrent use.
type Service struct {
	cfg         Config
	catalog     *catalog.Catalog
	profiles    profile.Store
	features    feature.Store
	branches    []branch
	names       []string       // branch names by ordinal
	index       map[string]int // branch name → ordinal
	backfill    recall.Source
	scorer      rank.Scorer
	knobs       *Knobs
	sink        ImpressionSink
	logFeatures FeatureLogger
	filters     []filter.Filter
	filterNames []string
	removed     []prometheus.Counter // per filter
	served      *servedCache
	metrics     *metrics
	log         *zap.Logger
	warn        map[string]*rate.Sometimes // per failure source: keeps logs readable under a failing dependency
	now         func() time.Time
	edges       map[string]string
	slotParams  map[recall.Segment][]string // "slots.<segment>.<branch>" by ordinal
	scratch     sync.Pool
}

type branch struct {
	source     recall.Source
	name       string
	cfg        BranchConfig
	quotaParam string // "quota.<branch>"
	inline     bool   // recall.InProcess: run on the request's goroutine
}

// New builds the pipeline.
func New(deps Deps, cfg Config) (*Service, error) {
	if bad := cfg.Validate(); len(bad) > 0 {
		return nil, fmt.Errorf("feed: config: %w", &ValidationError{Fields: bad})
	}
	switch {
	case deps.Catalog == nil, deps.Profiles == nil, deps.Features == nil, deps.Scorer == nil,
		deps.Knobs == nil, deps.Impressions == nil:
		return nil, errors.New("feed: Catalog, Profiles, Features, Scorer, Knobs and Impressions are required")
	case len(deps.Sources) == 0 || len(deps.Sources) > maxBranches:
		return nil, fmt.Errorf("feed: need 1 to %d recall sources", maxBranches)
	}
	s := &Service{
		cfg: cfg, catalog: deps.Catalog, profiles: deps.Profiles, features: deps.Features,
		backfill: deps.Backfill, scorer: deps.Scorer, knobs: deps.Knobs, sink: deps.Impressions,
		logFeatures: deps.LogFeatures, log: deps.Logger, now: deps.Now,
		index: map[string]int{}, served: newServedCache(cfg.RecentlyServed),
		edges: cfg.CDN.Edges, slotParams: map[recall.Segment][]string{}, warn: map[string]*rate.Sometimes{},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i, src := range deps.Sources {
		name := src.Name()
		if _, dup := s.index[name]; dup || name == "" || name == backfillBranch {
			return nil, fmt.Errorf("feed: recall source name %q is empty, reserved or used twice", name)
		}
		s.index[name] = i
		s.names = append(s.names, name)
		ip, ok := src.(recall.InProcess)
		s.branches = append(s.branches, branch{source: src, name: name, cfg: cfg.branch(name), quotaParam: "quota." + name,
			inline: ok && ip.InProcess()})
	}
	for _, seg := range []recall.Segment{recall.SegmentNew, recall.SegmentCold, recall.SegmentActive} {
		for _, name := range s.names {
			s.slotParams[seg] = append(s.slotParams[seg], "slots."+string(seg)+"."+name)
		}
	}

	kind, err := filter.NewKind(cfg.Surfaces)
	if err != nil {
		return nil, err
	}
	newQuota, err := filter.NewNewVideoQuota(deps.Features, recall.FreshBranch, cfg.NewVideoQuota)
	if err != nil {
		return nil, err
	}
	nearDup, err := filter.NewNearDuplicate(cfg.NearDuplicateJaccard)
	if err != nil {
		return nil, err
	}
	// The filter chain, in order. Exact, cheap rules first; "deleted" first
	// of all because it also refreshes each candidate to its current
	// metadata. The soft already-shown rule comes after every hard rule, so
	// its "enough unseen candidates remain" counts only servable videos.
	s.filters = []filter.Filter{
		filter.NewDeleted(deps.Catalog), // no longer in the catalog
		filter.Blacklisted{},            // blacklisted video, tag or uploader (knobs)
		filter.Region{},                 // not allowed in the user's region
		kind,                            // kind the surface does not show
		filter.OwnUpload{},              // the user's own upload
		filter.Played{},                 // already played (profile.Played)
		newQuota,                        // fresh upload past its exposure quota
		filter.Shown{},                  // already shown (profile.Shown + recently served), soft
		nearDup,                         // near-duplicate of a better candidate
	}
	for _, f := range s.filters {
		s.filterNames = append(s.filterNames, f.Name())
	}
	for _, name := range append(slices.Clone(s.names), backfillBranch, depProfile, depFeatures, depScorer) {
		s.warn[name] = &rate.Sometimes{First: 1, Interval: 10 * time.Second}
	}
	for _, name := range append(slices.Clone(s.filterNames), slowRequests) {
		s.warn[name] = &rate.Sometimes{First: 1, Interval: 10 * time.Second}
	}
	branchLabels := append(slices.Clone(s.names), backfillBranch) // the hot backfill is timed and counted like a branch
	dependencies := append([]string{depProfile, depFeatures, depScorer}, s.filterNames...)
	if s.metrics, err = newMetrics(deps.Metrics, branchLabels, s.filterNames, branchLabels, dependencies); err != nil {
		return nil, fmt.Errorf("feed: metrics: %w", err)
	}
	for _, name := range s.filterNames {
		s.removed = append(s.removed, s.metrics.filterRemoved[name])
	}
	s.scratch.New = func() any { return &scratch{index: map[uint64]int32{}} }
	return s, nil
}

// scratch is per-request working memory, pooled so a request allocates
// little beyond what it returns. Nothing in it may outlive the request:
// recall goroutines that overrun their budget only see per-request values.
type scratch struct {
	quotas    []int
	results   [][]recall.Candidate
	pos       []int
	cands     []filter.Candidate
	index     map[uint64]int32 // every video considered this request, by catalog.IDKey → merge index
	items     []rank.Item
	ids       []string
	stats     []feature.Stats
	logged    []json.RawMessage // features logged per pick
	pickItems []*rank.Item
	played    catalog.IDSet // keys of the profile's Played set
	shown     catalog.IDSet // keys of every video shown: profile and recently served
	arms      []*compiledVariant
	raw       []int
	slots     []int
	order     []int32
	pairs     []scoredIndex // rankedOrder's sort buffer
	used      []bool
	fill      []filter.Candidate
	extra     []rank.Item
	pg        page
	recall    recall.Scratch // the inline branches' candidate lists
	// abandoned: a branch given up on may still be running and reading
	// this request's seen sets, so this scratch must not be reused.
	abandoned bool
}

func (s *Service) getScratch() *scratch { return s.scratch.Get().(*scratch) }

func (s *Service) putScratch(sc *scratch) {
	if sc.abandoned {
		return // the collector takes it once the late branch is done
	}
	clear(sc.results)
	clear(sc.cands)
	clear(sc.index)
	clear(sc.items)
	clear(sc.ids)
	clear(sc.stats)
	clear(sc.logged)
	clear(sc.pickItems)
	clear(sc.arms)
	clear(sc.fill)
	clear(sc.extra)
	sc.pg.reset(0, CapConfig{})
	sc.recall.Reset()
	s.scratch.Put(sc)
}

// Feed serves one page. It fails only on an invalid request
// (*ValidationError) or when the user's profile cannot be read (the played
// and shown guarantees depend on it); every other failing dependency is
// absorbed, counted and noted in debug output.
func (s *Service) Feed(ctx context.Context, req Request) (*Response, error) {
	began := time.Now()
	if err := s.normalize(&req); err != nil {
		return nil, err
	}
	now := s.now()
	knobs := s.knobs.snapshot() // one consistent view of the runtime knobs for the whole request
	sc := s.getScratch()
	defer s.putScratch(sc)
	dbg := &Debug{Scorer: s.scorer.Name()}
	clk := &stageClock{m: s.metrics, start: began}
	if req.Debug {
		clk.dbg = dbg
	}

	// ── 1. Context: what the engine knows about the user; A/B arms. ──
	prof, err := s.profiles.Get(ctx, req.UserID, now)
	if err != nil {
		s.metrics.dependency[depProfile].Inc()
		s.warnf(depProfile, "profile store failed; request refused", zap.Error(err))
		return nil, fmt.Errorf("feed: profile: %w", err)
	}
	user, _ := s.catalog.User(req.UserID)
	if req.Region == "" && user != nil {
		req.Region = user.Region
	}
	if req.Device == "" && user != nil {
		req.Device = user.Device
	}
	segment := s.segmentOf(prof)
	sc.arms = knobs.assign(req.UserID, sc.arms[:0])
	variant := variantLabel(sc.arms)
	s.metrics.requests[string(segment)].Inc()
	// What the user already played or was shown (the profile, plus what
	// this process served that the profile does not know yet), indexed by
	// catalog key once, so recall and filters test candidates cheaply.
	view := &servedView{user: s.served.user(req.UserID, false), cutoff: now.Add(-s.cfg.RecentlyServed.TTL)}
	indexSeen(prof, view, &sc.played, &sc.shown)
	rreq := &recall.Request{UserID: req.UserID, Profile: prof, User: user, Region: req.Region,
		Device: req.Device, Segment: segment, Now: now, PlayedKeys: &sc.played, ShownKeys: &sc.shown,
		UserKey: catalog.IDKey(req.UserID), Scratch: &sc.recall}
	clk.done(stageContext, 0, 0)

	// ── 2. Recall: every branch at once, each within its budget. A branch
	// that fails or overruns is dropped (fail open). Candidates are merged
	// by relative rank within their branch, so every prefix of the merged
	// list keeps each branch's share; a video proposed by several branches
	// is kept once, credited to the branch that ranked it best.
	sc.quotas = s.quotas(sc.quotas[:0], sc.arms)
	sc.results, sc.abandoned = s.recallAll(ctx, rreq, sc.quotas, sc.results[:0], dbg, req.Debug)
	sc.cands = s.merge(sc, sc.results)
	recalled := len(sc.cands)
	clk.done(stageRecall, 0, recalled)

	// ── 3. Filter: the chain built in New (deleted, blacklisted, region,
	// kind, own upload, already played, new-video quota, already shown,
	// near-duplicate). Already-shown videos are readmitted, least recently
	// shown first, only when fewer than a page of unseen ones remain; they
	// wait for the fill stage.
	freq := &filter.Request{UserID: req.UserID, Region: req.Region, Surface: req.Surface, Profile: prof,
		Now: now, Need: req.Count, Blacklist: knobs.blacklist, Served: view,
		PlayedKeys: &sc.played, ShownKeys: &sc.shown}
	kept := s.runFilters(ctx, freq, sc.cands, "filter", dbg, req.Debug, clk)
	unseen := partitionUnseen(sc.cands[:kept])
	readmitted := sc.cands[unseen:kept]
	clk.done(stageFilter, recalled, kept)

	// ── 3b. Truncate before the expensive stages; the merge order keeps
	// each branch's share. What is cut stays available to the fill stage.
	ranked := sc.cands[:min(unseen, s.cfg.TruncateTo)]
	truncated := sc.cands[len(ranked):unseen]
	clk.done(stageTruncate, unseen, len(ranked))

	// ── 4. Features: one store call for every survivor. ──
	sc.items = sc.items[:0]
	for i := range ranked {
		sc.items = append(sc.items, rank.Item{Video: ranked[i].Video, Branch: ranked[i].Branch})
	}
	if err := s.loadFeatures(ctx, sc, sc.items, now); err != nil {
		s.failOpen(depFeatures, "feature store failed: ranking on priors", err, clk)
	}
	clk.done(stageFeatures, len(sc.items), len(sc.items))

	// ── 5. Rank: the scorer, then runtime boosts. ──
	q := &rank.Query{UserID: req.UserID, Profile: prof, User: user, Region: req.Region, Device: req.Device,
		Now: now, Variant: variant, Debug: req.Debug}
	if err := s.rank(ctx, q, sc.items, knobs.boosts); err != nil {
		s.failOpen(depScorer, "scorer "+s.scorer.Name()+" failed: ranking by quality", err, clk)
	}
	clk.done(stageRank, len(sc.items), len(sc.items))

	// ── 6. Select: reserved slots per branch from the segment's plan,
	// then the best of the rest, under per-category, per-uploader and
	// special-kind caps. ──
	sc.pg.reset(req.Count, s.caps(sc.arms))
	sc.slots = s.slotsFor(sc, knobs, segment, req.Count)
	sc.order, sc.pairs = rankedOrder(sc.order, sc.pairs, sc.items)
	sc.used = slices.Grow(sc.used[:0], len(sc.items))[:len(sc.items)]
	clear(sc.used)
	selectRanked(&sc.pg, ranked, sc.items, sc.order, sc.slots, s.names, s.index, sc.used)
	clk.done(stageSelect, len(sc.items), len(sc.pg.picks))

	// ── 7. Fill: backfill short pages (hot source, then what was cut or
	// capped, then the catalog by quality, caps relaxed last, already
	// shown videos only when nothing unseen is left); score the fill picks;
	// order by score; play URLs; remember and publish the impressions. ──
	selected := len(sc.pg.picks)
	if !sc.pg.full() {
		s.fill(ctx, sc, rreq, freq, ranked, truncated, readmitted, dbg, req.Debug, clk)
	}
	featErr, scoreErr := s.scoreFillPicks(ctx, sc, q, knobs.boosts, now)
	if featErr != nil {
		s.failOpen(depFeatures, "feature store failed for fill picks: ranking on priors", featErr, clk)
	}
	if scoreErr != nil {
		s.failOpen(depScorer, "scorer failed for fill picks: ranking by quality", scoreErr, clk)
	}
	orderPage(sc.pg.picks)
	resp := &Response{RequestID: req.RequestID, UserID: req.UserID, Segment: string(segment), Variant: variant,
		Items: make([]Item, 0, len(sc.pg.picks)), Debug: dbg}
	edge := s.edgeFor(req.Region)
	impressions := make([]event.Event, 0, len(sc.pg.picks))
	sc.logged = sc.logged[:0]
	if s.logFeatures != nil {
		sc.pickItems = sc.pickItems[:0]
		for i := range sc.pg.picks {
			p := &sc.pg.picks[i]
			p.item.Branch = p.branch
			sc.pickItems = append(sc.pickItems, &p.item)
		}
		sc.logged = s.logFeatures(sc.logged, q, sc.pickItems)
	}
	sc.ids = sc.ids[:0]
	for i := range sc.pg.picks {
		p := &sc.pg.picks[i]
		v := p.item.Video
		resp.Items = append(resp.Items, Item{VideoID: v.ID, Branch: p.branch, Score: p.item.Score,
			PlayURL: edge + "/" + url.PathEscape(v.ID), Category: v.Category, UploaderID: v.UploaderID})
		imp := event.Event{ID: "imp-" + req.RequestID + "-" + v.ID, UserID: req.UserID, VideoID: v.ID,
			Type: event.Impression, TS: now, RequestID: req.RequestID, Category: v.Category, Tags: v.Tags,
			UploaderID: v.UploaderID, Branch: p.branch, Variant: variant}
		if i < len(sc.logged) {
			imp.Features = sc.logged[i]
		}
		impressions = append(impressions, imp)
		sc.ids = append(sc.ids, v.ID)
		s.metrics.served[p.branch].Inc()
	}
	s.served.record(req.UserID, sc.ids, now)
	if len(impressions) > 0 {
		// The sink delivers after the request ended: keep the context's
		// values, drop its cancellation.
		s.sink.Publish(context.WithoutCancel(ctx), impressions)
	} else {
		s.metrics.empty.Inc()
	}
	clk.done(stageFill, selected, len(resp.Items))

	if req.Debug {
		ua := rank.NewUserAffinity(prof)
		for i := range sc.pg.picks {
			dbg.Items = append(dbg.Items, itemDebug(&sc.pg.picks[i], s.names, s.filterNames, s.cfg.Smoothing, &ua, now))
		}
	}
	took := time.Since(began)
	dbg.TookMs = ms(took)
	if s.cfg.SlowRequest > 0 && took > s.cfg.SlowRequest {
		s.warnf(slowRequests, "slow feed request", append(clk.stageFields(took), zap.String("request_id", req.RequestID))...)
	}
	return resp, nil
}

// normalize fills request defaults and validates it.
func (s *Service) normalize(req *Request) error {
	var bad map[string]string
	fail := func(field, problem string) {
		if bad == nil {
			bad = map[string]string{}
		}
		bad[field] = problem
	}
	req.UserID = strings.TrimSpace(req.UserID)
	if !catalog.ValidID(req.UserID) {
		fail("user_id", "required: 1 to 128 bytes without whitespace, '*' or '>'")
	}
	if req.Count == 0 {
		req.Count = s.cfg.DefaultCount
	}
	if req.Count < 1 || req.Count > s.cfg.MaxCount {
		fail("count", fmt.Sprintf("must be between 1 and %d", s.cfg.MaxCount))
	}
	req.Region = strings.ToLower(strings.TrimSpace(req.Region))
	req.Device = strings.ToLower(strings.TrimSpace(req.Device))
	if len(req.Region) > 64 {
		fail("region", "longer than 64 bytes")
	}
	if len(req.Device) > 64 {
		fail("device", "longer than 64 bytes")
	}
	if req.Surface == "" {
		req.Surface = s.cfg.DefaultSurface
	}
	if _, ok := s.cfg.Surfaces[req.Surface]; !ok {
		fail("surface", "unknown surface")
	}
	if req.RequestID == "" {
		req.RequestID = uuid.NewString()
	} else if !catalog.ValidID(req.RequestID) {
		fail("request_id", "1 to 128 bytes without whitespace, '*' or '>'")
	}
	if bad != nil {
		return &ValidationError{Fields: bad}
	}
	return nil
}

// indexSeen fills played and shown with the keys of what the user played
// and was shown.
func indexSeen(p *profile.Profile, served *servedView, played, shown *catalog.IDSet) {
	played.Reset(len(p.Played))
	for id := range p.Played {
		played.Add(catalog.IDKey(id))
	}
	shown.Reset(len(p.Shown))
	for id := range p.Shown {
		shown.Add(catalog.IDKey(id))
	}
	served.addKeys(shown)
}

// segmentOf classifies the user by engagement events (impressions alone
// say nothing about taste).
func (s *Service) segmentOf(p *profile.Profile) recall.Segment {
	engaged := p.Counts.Total() - p.Counts[event.Impression]
	switch {
	case engaged < s.cfg.Segments.ColdFrom:
		return recall.SegmentNew
	case engaged < s.cfg.Segments.ActiveFrom:
		return recall.SegmentCold
	}
	return recall.SegmentActive
}

// quotas returns each branch's quota, A/B overrides applied.
func (s *Service) quotas(dst []int, arms []*compiledVariant) []int {
	for _, b := range s.branches {
		q := b.cfg.Quota
		if v, ok := armParam(arms, b.quotaParam); ok {
			q = int(v)
		}
		dst = append(dst, q)
	}
	return dst
}

// caps returns the page caps, A/B overrides applied.
func (s *Service) caps(arms []*compiledVariant) CapConfig {
	c := s.cfg.Caps
	if len(arms) == 0 {
		return c
	}
	if v, ok := armParam(arms, "caps.category"); ok {
		c.Category = v
	}
	if v, ok := armParam(arms, "caps.uploader"); ok {
		c.Uploader = v
	}
	if v, ok := armParam(arms, "caps.special"); ok {
		c.Special = v
	}
	return c
}

// slotsFor returns the reserved slots per branch for this page: the
// segment's plan with A/B overrides, scaled to count.
func (s *Service) slotsFor(sc *scratch, knobs *knobSnapshot, seg recall.Segment, count int) []int {
	plan := knobs.slots[seg]
	total := plan.total
	sc.raw = sc.raw[:0]
	params := s.slotParams[seg]
	for b, name := range s.names {
		n := plan.slots[name]
		if v, ok := armParam(sc.arms, params[b]); ok {
			total += int(v) - n
			n = int(v)
		}
		sc.raw = append(sc.raw, n)
	}
	return scaleSlots(sc.slots, sc.raw, total, count)
}

type branchResult struct {
	branch int
	cands  []recall.Candidate
	err    error
	took   time.Duration
}

// recallAll runs every branch with a non-zero quota, each within its
// budget. Branches that wait on the network run concurrently, each under a
// context whose deadline is its budget, and are waited for at most until
// the longest budget: a branch ignoring its context is abandoned, not
// awaited. In-process branches (recall.InProcess) run meanwhile on this
// goroutine, one after another: they only compute, so a goroutine each
// would add scheduling delay under load and no speed on few cores.
func (s *Service) recallAll(ctx context.Context, rreq *recall.Request, quotas []int,
	dst [][]recall.Candidate, dbg *Debug, debug bool) (_ [][]recall.Candidate, abandoned bool) {
	dst = slices.Grow(dst, len(s.branches))[:len(s.branches)]
	// Branches on their own goroutines allocate their lists: the request's
	// Scratch serves its goroutine only.
	var async *recall.Request
	var ch chan branchResult
	var pending []bool
	var longest time.Duration
	launched := 0
	for i := range s.branches {
		if quotas[i] <= 0 || s.branches[i].inline {
			continue
		}
		if ch == nil {
			// Buffered for every branch, so a branch finishing after the
			// wait ended never blocks its goroutine.
			ch = make(chan branchResult, len(s.branches))
			pending = make([]bool, len(s.branches))
		}
		if async == nil {
			r := *rreq
			r.Scratch = nil
			async = &r
		}
		b, quota := &s.branches[i], quotas[i] // quotas is pooled: read it here, not in the goroutine
		longest = max(longest, b.cfg.Budget)
		pending[i] = true
		launched++
		go func() {
			bctx, cancel := context.WithTimeout(ctx, b.cfg.Budget)
			defer cancel()
			start := time.Now()
			cands, err := b.source.Recall(bctx, async, quota)
			ch <- branchResult{branch: i, cands: cands, err: budgetErr(err, time.Since(start), b.cfg.Budget), took: time.Since(start)}
		}()
	}
	start := time.Now()
	for i := range s.branches {
		b := &s.branches[i]
		if quotas[i] <= 0 || !b.inline {
			continue
		}
		began := time.Now()
		cands, err := b.source.Recall(ctx, rreq, quotas[i])
		took := time.Since(began)
		s.branchDone(branchResult{branch: i, cands: cands, err: budgetErr(err, took, b.cfg.Budget), took: took}, quotas, dst, dbg, debug)
	}
	if launched == 0 {
		return dst, false
	}
	// Wait until every launched branch answered or passed its own
	// deadline: the timer always points at the earliest pending deadline.
	nextDeadline := func() (time.Duration, bool) {
		var d time.Duration
		found := false
		for i, p := range pending {
			if p && (!found || s.branches[i].cfg.Budget < d) {
				d, found = s.branches[i].cfg.Budget, true
			}
		}
		return d, found
	}
	expire := func(now time.Duration) {
		for i, p := range pending {
			if budget := s.branches[i].cfg.Budget; p && budget <= now {
				pending[i] = false
				launched--
				abandoned = true
				s.branchDone(branchResult{branch: i, took: budget,
					err: fmt.Errorf("no answer within its %v budget: %w", budget, context.DeadlineExceeded)}, quotas, dst, dbg, debug)
			}
		}
	}
	timer := time.NewTimer(longest)
	defer timer.Stop()
	for launched > 0 {
		if d, ok := nextDeadline(); ok {
			timer.Reset(max(0, d-time.Since(start)))
		}
		select {
		case r := <-ch:
			if pending[r.branch] {
				pending[r.branch] = false
				launched--
				s.branchDone(r, quotas, dst, dbg, debug)
			}
		case <-timer.C:
			expire(time.Since(start))
		case <-ctx.Done():
			expire(longest)
		}
	}
	return dst, abandoned
}

// budgetErr turns a late answer into a timeout: a branch's budget holds
// whether or not it watched its context.
func budgetErr(err error, took, budget time.Duration) error {
	if err == nil && took > budget {
		return fmt.Errorf("returned after its %v budget: %w", budget, context.DeadlineExceeded)
	}
	return err
}

// branchDone accounts for one branch's outcome and keeps its candidates
// unless it failed.
func (s *Service) branchDone(r branchResult, quotas []int, dst [][]recall.Candidate, dbg *Debug, debug bool) {
	name := s.names[r.branch]
	s.metrics.branchSeconds[name].Observe(r.took.Seconds())
	bd := BranchDebug{Branch: name, Quota: quotas[r.branch], Ms: ms(r.took), Inline: s.branches[r.branch].inline}
	if r.err != nil {
		reason := failError
		if errors.Is(r.err, context.DeadlineExceeded) {
			reason = failTimeout
		}
		s.metrics.branchFailed(name, reason)
		s.warnf(name, "recall branch dropped (fail open)", zap.String("branch", name), zap.String("reason", reason), zap.Error(r.err))
		bd.Error = reason + ": " + r.err.Error()
		dst[r.branch] = nil
	} else {
		cands := r.cands
		if len(cands) > quotas[r.branch] {
			cands = cands[:quotas[r.branch]]
		}
		// The merge reads each branch best first; sources usually return
		// that order already, and their slices are theirs, so sort a copy.
		if !slices.IsSortedFunc(cands, func(a, b recall.Candidate) int { return cmp.Compare(b.Score, a.Score) }) {
			cands = slices.Clone(cands)
			slices.SortStableFunc(cands, func(a, b recall.Candidate) int { return cmp.Compare(b.Score, a.Score) })
		}
		dst[r.branch] = cands
		bd.Candidates = len(cands)
		s.metrics.branchCandidates[name].Add(float64(len(cands)))
	}
	if debug {
		dbg.Branches = append(dbg.Branches, bd)
	}
}

// merge interleaves the branches' lists by relative rank (position over
// list length), deduplicating by video: the first occurrence credits its
// branch, later ones only add theirs to the candidate's branch set.
func (s *Service) merge(sc *scratch, results [][]recall.Candidate) []filter.Candidate {
	cands := sc.cands[:0]
	sc.pos = slices.Grow(sc.pos[:0], len(results))[:len(results)]
	clear(sc.pos)
	for {
		best, bestKey := -1, 2.0
		for b, list := range results {
			if p := sc.pos[b]; p < len(list) {
				if key := (float64(p) + 0.5) / float64(len(list)); key < bestKey {
					best, bestKey = b, key
				}
			}
		}
		if best < 0 {
			return cands
		}
		c := &results[best][sc.pos[best]]
		sc.pos[best]++
		if c.Video == nil {
			continue
		}
		key := c.Video.Key()
		if i, dup := sc.index[key]; dup {
			cands[i].Branches |= 1 << best
			continue
		}
		sc.index[key] = int32(len(cands))
		cands = append(cands, filter.Candidate{Video: c.Video, Branch: s.names[best], Branches: 1 << best})
	}
}

// runFilters applies the chain to cands and returns how many survive (at
// the front). A filter that errors is skipped for this request (fail open).
func (s *Service) runFilters(ctx context.Context, req *filter.Request, cands []filter.Candidate,
	stageLabel string, dbg *Debug, debug bool, clk *stageClock) int {
	n := len(cands)
	for fi, f := range s.filters {
		in := n
		kept, err := f.Apply(ctx, req, cands[:n])
		if err != nil {
			s.failOpen(f.Name(), "filter "+f.Name()+" skipped", err, clk)
			kept = n
		}
		s.removed[fi].Add(float64(n - kept))
		if debug {
			fd := FilterDebug{Filter: f.Name(), Stage: stageLabel, In: in, Removed: in - kept}
			if err != nil {
				fd.Error = err.Error()
			}
			for _, c := range cands[kept:min(n, kept+debugSample)] {
				fd.Sample = append(fd.Sample, c.Video.ID)
			}
			for _, c := range cands[:kept] {
				if c.Readmitted {
					fd.Readmitted++
				}
			}
			dbg.Filters = append(dbg.Filters, fd)
		}
		n = kept
	}
	return n
}

// partitionUnseen moves readmitted candidates behind the others, keeping
// both groups in order, and returns how many are unseen.
func partitionUnseen(cands []filter.Candidate) int {
	n := 0
	for i := range cands {
		if !cands[i].Readmitted {
			if i != n {
				c := cands[i]
				copy(cands[n+1:i+1], cands[n:i])
				cands[n] = c
			}
			n++
		}
	}
	return n
}

// loadFeatures reads every item's stats in one store call. On error the
// items keep zero counters: the scorer's smoothing priors rank them.
func (s *Service) loadFeatures(ctx context.Context, sc *scratch, items []rank.Item, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	sc.ids = sc.ids[:0]
	for i := range items {
		sc.ids = append(sc.ids, items[i].Video.ID)
	}
	stats, err := s.features.Get(ctx, sc.stats[:0], sc.ids, now)
	sc.stats = stats
	if err != nil {
		return err
	}
	if len(stats) != len(items) {
		return fmt.Errorf("feature store returned %d stats for %d ids", len(stats), len(items))
	}
	for i := range items {
		items[i].Stats = stats[i]
	}
	return nil
}

// rank scores items and applies boosts. When the scorer fails, items are
// ordered by editorial quality instead (boosts still apply).
func (s *Service) rank(ctx context.Context, q *rank.Query, items []rank.Item, boosts *rank.Boosts) error {
	if len(items) == 0 {
		return nil
	}
	err := s.scorer.Score(ctx, q, items)
	if err != nil {
		for i := range items {
			items[i].Score = items[i].Video.Quality
		}
	}
	boosts.Apply(items, q.Debug)
	return err
}

// failOpen records a dependency failure the request survived.
func (s *Service) failOpen(dep, what string, err error, clk *stageClock) {
	if c, ok := s.metrics.dependency[dep]; ok {
		c.Inc()
	}
	s.warnf(dep, what, zap.Error(err))
	clk.note(what + ": " + err.Error())
}

// warnf logs at most one warning per source every few seconds: a broken
// dependency at hundreds of requests a second must not drown the log.
func (s *Service) warnf(source, msg string, fields ...zap.Field) {
	if sm, ok := s.warn[source]; ok {
		sm.Do(func() { s.log.Warn(msg, fields...) })
	}
}

// edgeFor returns the CDN edge for a region.
func (s *Service) edgeFor(region string) string {
	if e, ok := s.edges[region]; ok {
		return e
	}
	return s.cfg.CDN.Default
}
