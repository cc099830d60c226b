package recall_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/recall"
)

// brWideCatalog: 10 categories × 40 videos, quality spread so the best
// videos of every category are in a small pool.
func brWideCatalog() *catalog.Catalog {
	cat := catalog.New()
	for i := range 400 {
		c := fmt.Sprintf("c%d", i%10)
		cat.Upsert(brVideo(fmt.Sprintf("v%03d", i), c, fmt.Sprintf("up%d", i%37), 1-float64(i)/400))
	}
	return cat
}

func TestExploreOutsideKnownCategories(t *testing.T) {
	cat := brWideCatalog()
	cfg := recall.DefaultExploreConfig()
	cfg.PoolSize = 100
	src, err := recall.NewExplore(cat, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := brProfile("u")
	p.LongTerm.Categories["c0"] = 5
	p.ShortTerm.Categories["c1"] = 1
	req := brRequest(p)
	got, err := src.Recall(context.Background(), req, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 16 {
		t.Fatalf("got %d, want 16", len(got))
	}
	perCat := map[string]int{}
	for _, c := range got {
		if c.Video.Category == "c0" || c.Video.Category == "c1" {
			t.Fatalf("explore proposed a known category: %s", c.Video.ID)
		}
		if c.Video.Quality < 0.75 {
			t.Fatalf("%s (quality %.2f) is outside the top-100 pool", c.Video.ID, c.Video.Quality)
		}
		perCat[c.Video.Category]++
	}
	for c, n := range perCat {
		if n > 4 { // MaxCategoryShare 0.25 of 16
			t.Fatalf("category %s has %d of 16 explore candidates", c, n)
		}
	}

	again, _ := src.Recall(context.Background(), req, 16)
	if !slices.Equal(brIDs(got), brIDs(again)) {
		t.Fatal("same user and time should give the same sample")
	}
	req.Now = req.Now.Add(time.Second)
	later, _ := src.Recall(context.Background(), req, 16)
	if slices.Equal(brIDs(got), brIDs(later)) {
		t.Fatal("another request gave the identical sample: not random")
	}
}

func TestExploreSkipsSeen(t *testing.T) {
	cat := brWideCatalog()
	cfg := recall.DefaultExploreConfig()
	cfg.PoolSize = 20
	src, _ := recall.NewExplore(cat, cfg)
	p := brProfile("u")
	for i := range 10 {
		p.Played[fmt.Sprintf("v%03d", i)] = brNow
	}
	got, _ := src.Recall(context.Background(), brRequest(p), 50)
	for _, c := range got {
		if _, played := p.Played[c.Video.ID]; played {
			t.Fatalf("played %s proposed", c.Video.ID)
		}
	}
	if len(got) == 0 || len(got) > 10 {
		t.Fatalf("got %d from a pool of 20 with 10 played", len(got))
	}
}

func TestStartIsDiverseAndOnlyForNewUsers(t *testing.T) {
	cat := brWideCatalog()
	src, err := recall.NewStart(cat, recall.DefaultStartConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := brProfile("newbie")
	p.Shown["v000"] = brNow
	req := brRequest(p)
	req.Segment = recall.SegmentNew
	got, err := src.Recall(context.Background(), req, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("got %d, want 30", len(got))
	}
	first := map[string]bool{}
	for _, c := range got[:10] {
		first[c.Video.Category] = true
	}
	if len(first) != 10 {
		t.Fatalf("the first 10 start videos span %d categories, want all 10", len(first))
	}
	if slices.Contains(brIDs(got), "v000") {
		t.Fatal("already shown video proposed")
	}
	if got[0].Video.ID != "v001" {
		t.Fatalf("best unseen video should lead, got %s", got[0].Video.ID)
	}
	req.Segment = recall.SegmentActive
	if got, _ := src.Recall(context.Background(), req, 30); len(got) != 0 {
		t.Fatal("start branch served an active user")
	}
}

func TestStartRegionPools(t *testing.T) {
	cat := brWideCatalog()
	us := brVideo("us-best", "c0", "x", 1.0)
	us.Regions = []string{"us"}
	us.PublishedAt = brNow.Add(-time.Hour) // ties v000 on quality, wins on freshness
	cat.Upsert(us)
	src, _ := recall.NewStart(cat, recall.DefaultStartConfig())
	req := brRequest(brProfile("n"))
	req.Segment = recall.SegmentNew
	req.Region = "de"
	got, _ := src.Recall(context.Background(), req, 400)
	if slices.Contains(brIDs(got), "us-best") {
		t.Fatal("us-only video in the de start pool")
	}
	req.Region = "us"
	got, _ = src.Recall(context.Background(), req, 5)
	if got[0].Video.ID != "us-best" {
		t.Fatalf("us pool should lead with us-best, got %v", brIDs(got))
	}
}
