package feed

import (
	"testing"
	"time"

	"reelfeed/catalog"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"defaults", func(*Config) {}, ""},
		{"count above max", func(c *Config) { c.DefaultCount = 60 }, "default_count"},
		{"zero budget", func(c *Config) { c.Branches["tag"] = BranchConfig{Quota: 10} }, "branches.tag.budget"},
		{"truncate below a page", func(c *Config) { c.TruncateTo = 10 }, "truncate_to"},
		{"segments out of order", func(c *Config) { c.Segments = SegmentConfig{ColdFrom: 5, ActiveFrom: 2} }, "segments"},
		{"cap share 0", func(c *Config) { c.Caps.Uploader = 0 }, "caps.uploader"},
		{"edge not a URL", func(c *Config) { c.CDN.Edges["de"] = "eu-cdn" }, "cdn.edges.de"},
		{"edge with trailing slash", func(c *Config) { c.CDN.Default = "https://cdn.example/v/" }, "cdn.default"},
		{"jaccard above 1", func(c *Config) { c.NearDuplicateJaccard = 1.5 }, "near_duplicate_jaccard"},
		{"served cache without TTL", func(c *Config) { c.RecentlyServed.TTL = 0 }, "recently_served"},
		{"default surface unknown", func(c *Config) { c.DefaultSurface = "tv" }, "default_surface"},
		{"unknown kind", func(c *Config) { c.Surfaces["tv"] = []catalog.Kind{"hologram"} }, "surfaces.tv"},
		{"invalid knobs", func(c *Config) { c.Knobs.Slots["new"] = SlotPlan{"hot": -1} }, "knobs.slots.new.hot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			bad := c.Validate()
			if tc.field == "" && len(bad) > 0 {
				t.Fatalf("defaults invalid: %v", bad)
			}
			if tc.field != "" && bad[tc.field] == "" {
				t.Fatalf("want a problem on %q, got %v", tc.field, bad)
			}
		})
	}
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	w := newWorld(t, worldSpec{videos: 10, categories: 2, seed: 1})
	if _, err := New(Deps{Catalog: w.cat, Profiles: w.profiles, Features: w.features, Sources: w.sources,
		Scorer: w.scorer, Knobs: w.knobs}, DefaultConfig()); err == nil {
		t.Fatal("missing impression sink accepted")
	}
	bad := DefaultConfig()
	bad.Backfill.Budget = -time.Second
	if _, err := New(Deps{Catalog: w.cat, Profiles: w.profiles, Features: w.features, Sources: w.sources,
		Scorer: w.scorer, Knobs: w.knobs, Impressions: w.sink}, bad); err == nil {
		t.Fatal("invalid config accepted")
	}
	if _, err := New(Deps{Catalog: w.cat, Profiles: w.profiles, Features: w.features,
		Sources: append(w.sources, w.sources[0]), Scorer: w.scorer, Knobs: w.knobs, Impressions: w.sink}, DefaultConfig()); err == nil {
		t.Fatal("duplicate branch name accepted")
	}
}
