package feed

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"reelfeed/catalog"
	"reelfeed/feature"
	"reelfeed/recall"
)

// Config is every static knob of the pipeline. Runtime knobs (blacklists,
// boosts, slot plans, experiments) start from Knobs and then change through
// the admin API without a restart.
type Config struct {
	// DefaultCount is the page size when the request names none; MaxCount
	// the largest page served.
	DefaultCount int `json:"default_count" mapstructure:"default_count"`
	MaxCount     int `json:"max_count" mapstructure:"max_count"`

	// Branches sets each recall branch's quota (candidates asked for) and
	// time budget, by Source name; a branch not listed gets DefaultBranch.
	Branches      map[string]BranchConfig `json:"branches" mapstructure:"branches"`
	DefaultBranch BranchConfig            `json:"default_branch" mapstructure:"default_branch"`
	// Backfill is the hot-source call made when the branches ran short.
	Backfill BranchConfig `json:"backfill" mapstructure:"backfill"`
	// FillScanLimit bounds the catalog videos scanned, best quality first,
	// when even the hot backfill cannot fill a page.
	FillScanLimit int `json:"fill_scan_limit" mapstructure:"fill_scan_limit"`

	// TruncateTo is the most candidates that reach features and ranking;
	// the cut keeps each branch's share of the survivors.
	TruncateTo int `json:"truncate_to" mapstructure:"truncate_to"`

	Segments SegmentConfig `json:"segments" mapstructure:"segments"`
	Caps     CapConfig     `json:"caps" mapstructure:"caps"`
	CDN      CDNConfig     `json:"cdn" mapstructure:"cdn"`

	// NewVideoQuota is the lifetime impressions after which a candidate
	// credited to the fresh-upload branch (recall.FreshBranch) is filtered;
	// keep it equal to the branch's own impression_quota.
	NewVideoQuota int64 `json:"new_video_quota" mapstructure:"new_video_quota"`
	// NearDuplicateJaccard: two videos of one uploader whose tag sets
	// overlap at least this much are near-duplicates.
	NearDuplicateJaccard float64 `json:"near_duplicate_jaccard" mapstructure:"near_duplicate_jaccard"`

	RecentlyServed RecentlyServedConfig `json:"recently_served" mapstructure:"recently_served"`

	// SlowRequest: a request taking longer is logged with its per-stage
	// times (at most one line every few seconds); 0: never.
	SlowRequest time.Duration `json:"slow_request" mapstructure:"slow_request"`

	// DefaultSurface is the surface of a request naming none; Surfaces maps
	// every known surface to the kinds it does not show.
	DefaultSurface string                    `json:"default_surface" mapstructure:"default_surface"`
	Surfaces       map[string][]catalog.Kind `json:"surfaces" mapstructure:"surfaces"`

	// Smoothing turns counters into the rates debug output shows; keep it
	// equal to the scorer's.
	Smoothing feature.Smoothing `json:"smoothing" mapstructure:"smoothing"`

	// Knobs is the initial runtime state (feed.NewKnobs(cfg.Knobs)).
	Knobs KnobState `json:"knobs" mapstructure:"knobs"`
}

// BranchConfig is one recall branch's quota and time budget.
type BranchConfig struct {
	Quota  int           `json:"quota" mapstructure:"quota"`
	Budget time.Duration `json:"budget" mapstructure:"budget"`
}

// SegmentConfig classifies users by engagement events (every event but
// impressions): fewer than ColdFrom is new, fewer than ActiveFrom is cold,
// the rest active.
type SegmentConfig struct {
	ColdFrom   int64 `json:"cold_from" mapstructure:"cold_from"`
	ActiveFrom int64 `json:"active_from" mapstructure:"active_from"`
}

// CapConfig caps a page's items, as shares of the page (rounded up, at
// least 1): per category, per uploader, and for special kinds (anything
// but "video").
type CapConfig struct {
	Category float64 `json:"category" mapstructure:"category"`
	Uploader float64 `json:"uploader" mapstructure:"uploader"`
	Special  float64 `json:"special" mapstructure:"special"`
}

// CDNConfig maps regions to CDN edge base URLs. An item's play_url is
// edge + "/" + url.PathEscape(video_id), e.g.
// https://eu.cdn.example.com/v/abc123, with the edge of the request's region
// (else the user's declared region), else Default.
type CDNConfig struct {
	Edges   map[string]string `json:"edges" mapstructure:"edges"`
	Default string            `json:"default" mapstructure:"default"`
}

// RecentlyServedConfig sizes the per-process memory of what each user was
// just served, which bridges the delay before impressions reach the
// profile store.
type RecentlyServedConfig struct {
	TTL      time.Duration `json:"ttl" mapstructure:"ttl"`
	MaxUsers int           `json:"max_users" mapstructure:"max_users"`
	PerUser  int           `json:"per_user" mapstructure:"per_user"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	budget := 15 * time.Millisecond
	return Config{
		DefaultCount: 10,
		MaxCount:     50,
		Branches: map[string]BranchConfig{
			"hot":      {Quota: 150, Budget: budget},
			"tag":      {Quota: 150, Budget: budget},
			"uploader": {Quota: 80, Budget: budget},
			"i2i":      {Quota: 120, Budget: budget},
			"usercf":   {Quota: 120, Budget: budget},
			"explore":  {Quota: 40, Budget: budget},
			"start":    {Quota: 120, Budget: budget},
			"new":      {Quota: 50, Budget: budget},
		},
		DefaultBranch:        BranchConfig{Quota: 100, Budget: budget},
		Backfill:             BranchConfig{Quota: 500, Budget: budget},
		FillScanLimit:        5000,
		TruncateTo:           450,
		Segments:             SegmentConfig{ColdFrom: 1, ActiveFrom: 20},
		Caps:                 CapConfig{Category: 0.5, Uploader: 0.2, Special: 0.2},
		CDN:                  CDNConfig{Default: "https://cdn.reelfeed.example/v", Edges: map[string]string{}},
		NewVideoQuota:        recall.DefaultFreshConfig().ImpressionQuota,
		NearDuplicateJaccard: 0.8,
		RecentlyServed:       RecentlyServedConfig{TTL: 30 * time.Minute, MaxUsers: 100_000, PerUser: 200},
		SlowRequest:          100 * time.Millisecond,
		DefaultSurface:       "feed",
		Surfaces: map[string][]catalog.Kind{
			"feed":  nil,
			"video": {catalog.KindImageSet, catalog.KindMusic},
		},
		Smoothing: feature.DefaultSmoothing(),
		Knobs:     DefaultKnobState(),
	}
}

// Validate returns key → problem for every invalid setting.
func (c *Config) Validate() map[string]string {
	bad := map[string]string{}
	if c.DefaultCount < 1 || c.DefaultCount > c.MaxCount {
		bad["default_count"] = "must be in [1, max_count]"
	}
	if c.MaxCount < 1 || c.MaxCount > 1000 {
		bad["max_count"] = "must be in [1, 1000]"
	}
	checkBranch := func(key string, b BranchConfig) {
		if b.Quota < 0 || b.Quota > 10_000 {
			bad[key+".quota"] = "must be in [0, 10000]"
		}
		if b.Budget <= 0 {
			bad[key+".budget"] = "must be > 0"
		}
	}
	for name, b := range c.Branches {
		checkBranch("branches."+name, b)
	}
	checkBranch("default_branch", c.DefaultBranch)
	checkBranch("backfill", c.Backfill)
	if c.FillScanLimit < 0 {
		bad["fill_scan_limit"] = "must be >= 0"
	}
	if c.TruncateTo < c.MaxCount {
		bad["truncate_to"] = "must be >= max_count"
	}
	if c.Segments.ColdFrom < 1 || c.Segments.ActiveFrom < c.Segments.ColdFrom {
		bad["segments"] = "need 1 <= cold_from <= active_from"
	}
	for key, share := range map[string]float64{"caps.category": c.Caps.Category, "caps.uploader": c.Caps.Uploader, "caps.special": c.Caps.Special} {
		if !(share > 0 && share <= 1) {
			bad[key] = "must be a share in (0, 1]"
		}
	}
	if err := checkEdge(c.CDN.Default); err != "" {
		bad["cdn.default"] = err
	}
	for region, edge := range c.CDN.Edges {
		if err := checkEdge(edge); err != "" {
			bad["cdn.edges."+region] = err
		}
	}
	if c.NewVideoQuota <= 0 {
		bad["new_video_quota"] = "must be > 0"
	}
	if !(c.NearDuplicateJaccard > 0 && c.NearDuplicateJaccard <= 1) {
		bad["near_duplicate_jaccard"] = "must be in (0, 1]"
	}
	if c.RecentlyServed.TTL <= 0 || c.RecentlyServed.MaxUsers <= 0 || c.RecentlyServed.PerUser <= 0 {
		bad["recently_served"] = "ttl, max_users and per_user must be > 0"
	}
	if _, ok := c.Surfaces[c.DefaultSurface]; !ok {
		bad["default_surface"] = "must be one of surfaces"
	}
	for s, kinds := range c.Surfaces {
		for _, k := range kinds {
			if k != catalog.KindVideo && k != catalog.KindImageSet && k != catalog.KindMusic {
				bad["surfaces."+s] = fmt.Sprintf("unknown kind %q", k)
			}
		}
	}
	if c.Smoothing.Strength <= 0 || math.IsNaN(c.Smoothing.Strength) {
		bad["smoothing.strength"] = "must be > 0"
	}
	for k, v := range c.Knobs.Validate() {
		bad["knobs."+k] = v
	}
	return bad
}

func checkEdge(edge string) string {
	u, err := url.Parse(edge)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an http(s) URL"
	}
	if strings.HasSuffix(edge, "/") {
		return "must not end with /"
	}
	return ""
}

func (c *Config) branch(name string) BranchConfig {
	if b, ok := c.Branches[name]; ok {
		return b
	}
	return c.DefaultBranch
}
