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

// The under-quota pool is shared across requests for cfg.Refresh: a new
// upload appears once the pool is rebuilt, and a moved business clock
// rebuilds it at once.
func TestFreshPoolRefresh(t *testing.T) {
	ctx := context.Background()
	upload := func(cat *catalog.Catalog, id string, at time.Time) {
		v := brVideo(id, "c", "up-"+id, 0.5)
		v.PublishedAt = at
		cat.Upsert(v)
	}
	recallIDs := func(t *testing.T, src *recall.Fresh, now time.Time) []string {
		t.Helper()
		req := brRequest(brProfile("u"))
		req.Now = now
		got, err := src.Recall(ctx, req, 10)
		if err != nil {
			t.Fatal(err)
		}
		return brIDs(got)
	}
	stats := feature.NewMemory(feature.DefaultConfig())
	defer stats.Close()

	for _, tc := range []struct {
		name        string
		refresh     time.Duration
		wantAtOnce  bool
		wantOnClock bool
	}{
		{"rebuilt every request", 0, true, true},
		{"reused for an hour", time.Hour, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat := catalog.New()
			upload(cat, "first", brNow.Add(-time.Hour))
			cfg := recall.DefaultFreshConfig()
			cfg.Refresh = tc.refresh
			src, err := recall.NewFresh(cat, stats, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := recallIDs(t, src, brNow); !slices.Equal(got, []string{"first"}) {
				t.Fatalf("got %v", got)
			}
			upload(cat, "second", brNow.Add(-time.Minute))
			if got := recallIDs(t, src, brNow); slices.Contains(got, "second") != tc.wantAtOnce {
				t.Fatalf("right after the upload: %v (want second: %v)", got, tc.wantAtOnce)
			}
			later := brNow.Add(2 * time.Hour)
			if got := recallIDs(t, src, later); slices.Contains(got, "second") != tc.wantOnClock {
				t.Fatalf("two hours later: %v (want second: %v)", got, tc.wantOnClock)
			}
		})
	}
}

func TestFreshPoolSkipsWhatEachUserSaw(t *testing.T) {
	cat := catalog.New()
	for i := range 5 {
		v := brVideo(fmt.Sprintf("f%d", i), "c", fmt.Sprintf("up%d", i), 0.5)
		v.PublishedAt = brNow.Add(-time.Duration(i+1) * time.Minute)
		cat.Upsert(v)
	}
	stats := feature.NewMemory(feature.DefaultConfig())
	defer stats.Close()
	cfg := recall.DefaultFreshConfig()
	cfg.Refresh = time.Hour
	src, err := recall.NewFresh(cat, stats, cfg)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := brProfile("alice"), brProfile("bob")
	alice.Played["f0"] = brNow
	bob.Shown["f1"] = brNow
	for _, tc := range []struct {
		req  *recall.Request
		want []string
	}{
		{brRequest(alice), []string{"f1", "f2"}},
		{brRequest(bob), []string{"f0", "f2"}},
		{&recall.Request{UserID: "up0", Profile: brProfile("up0"), Now: brNow}, []string{"f1", "f2"}}, // own upload
	} {
		got, err := src.Recall(context.Background(), tc.req, 2)
		if err != nil {
			t.Fatal(err)
		}
		if ids := brIDs(got); !slices.Equal(ids, tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.req.UserID, ids, tc.want)
		}
	}
}
