package recall_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/recall"
)

func TestFreshGuaranteesExposureUntilQuota(t *testing.T) {
	ctx := context.Background()
	cat := catalog.New()
	for i := range 20 {
		v := brVideo(fmt.Sprintf("f%02d", i), "c", fmt.Sprintf("up%d", i), 0.5)
		v.PublishedAt = brNow.Add(-time.Duration(i) * time.Hour) // f00 newest
		cat.Upsert(v)
	}
	old := brVideo("old", "c", "x", 1)
	old.PublishedAt = brNow.Add(-72 * time.Hour)
	cat.Upsert(old)
	future := brVideo("future", "c", "x", 1)
	future.PublishedAt = brNow.Add(time.Hour) // scheduled, not yet public
	cat.Upsert(future)

	stats := feature.NewMemory(feature.DefaultConfig())
	defer stats.Close()
	impressions := func(video string, n int) {
		var evs []event.Event
		for i := range n {
			evs = append(evs, event.Event{ID: fmt.Sprintf("%s-%d", video, i), UserID: "x", VideoID: video,
				Type: event.Impression, TS: brNow.Add(-time.Minute)})
		}
		if _, err := stats.Apply(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 { // the 8 newest reached the quota of 10
		impressions(fmt.Sprintf("f%02d", i), 10)
	}
	impressions("f08", 9)
	impressions("f09", 5)

	cfg := recall.DefaultFreshConfig()
	cfg.ImpressionQuota = 10
	cfg.MaxAge = 48 * time.Hour
	src, err := recall.NewFresh(cat, stats, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != recall.FreshBranch {
		t.Fatalf("name %q", src.Name())
	}
	p := brProfile("u")
	p.Shown["f10"] = brNow
	got, err := src.Recall(ctx, brRequest(p), 4)
	if err != nil {
		t.Fatal(err)
	}
	ids := brIDs(got)
	// Least exposed first (0 impressions), newest among equals; f10 was shown.
	if want := []string{"f11", "f12", "f13", "f14"}; !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
	all, _ := src.Recall(ctx, brRequest(p), 100)
	ids = brIDs(all)
	for _, bad := range []string{"f00", "f07", "old", "future", "f10"} {
		if slices.Contains(ids, bad) {
			t.Fatalf("%s proposed: over quota, too old, not yet published or seen (%v)", bad, ids)
		}
	}
	if len(all) != 11 || ids[len(ids)-1] != "f08" {
		t.Fatalf("want the 11 fresh under-quota videos, most exposed (f08) last: %v", ids)
	}
}
