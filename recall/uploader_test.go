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

func TestUploaderFollowsAndAffinity(t *testing.T) {
	cat := catalog.New()
	for u := range 5 {
		for i := range 10 {
			v := brVideo(fmt.Sprintf("u%d-v%d", u, i), "c", fmt.Sprintf("up%d", u), 0.5)
			v.PublishedAt = brNow.Add(-time.Duration(i) * time.Hour) // v0 is the newest
			cat.Upsert(v)
		}
	}
	cat.Upsert(brVideo("self-1", "c", "me", 1))
	src, err := recall.NewUploader(cat, cat, recall.DefaultUploaderConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := brProfile("me")
	p.LongTerm.Uploaders["up2"] = 10 // learned: watches up2 a lot
	p.LongTerm.Uploaders["up4"] = -3 // skips up4
	req := brRequest(p)
	req.User = &catalog.User{ID: "me", Follows: []string{"up0", "me"}}

	got, err := src.Recall(context.Background(), req, 12)
	if err != nil {
		t.Fatal(err)
	}
	ids := brIDs(got)
	if len(got) != 12 {
		t.Fatalf("got %d, want 12: %v", len(got), ids)
	}
	for _, id := range ids {
		if id[:2] != "u0" && id[:2] != "u2" {
			t.Fatalf("%s is from neither a followed nor a liked uploader", id)
		}
	}
	if !slices.Contains(ids, "u0-v0") || !slices.Contains(ids, "u2-v0") {
		t.Fatalf("newest uploads of followed/liked authors missing: %v", ids)
	}
	if slices.Contains(ids, "u0-v9") {
		t.Fatalf("an old upload beat newer ones: %v", ids)
	}
}

func TestUploaderRotatesManyFollows(t *testing.T) {
	cat := catalog.New()
	var follows []string
	for u := range 30 {
		follows = append(follows, fmt.Sprintf("up%d", u))
		cat.Upsert(brVideo(fmt.Sprintf("v%d", u), "c", fmt.Sprintf("up%d", u), 0.5))
	}
	cfg := recall.DefaultUploaderConfig()
	cfg.MaxUploaders = 5
	src, _ := recall.NewUploader(cat, cat, cfg)
	seen := map[string]bool{}
	for h := range 6 {
		req := brRequest(brProfile("me"))
		req.User = &catalog.User{ID: "me", Follows: follows}
		req.Now = brNow.Add(time.Duration(h) * time.Hour)
		got, err := src.Recall(context.Background(), req, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 {
			t.Fatalf("hour %d: %d candidates, want one per queried author (5)", h, len(got))
		}
		for _, id := range brIDs(got) {
			seen[id] = true
		}
	}
	if len(seen) <= 10 {
		t.Fatalf("only %d of 30 followed authors surfaced over 6 hours: no rotation", len(seen))
	}
}

func TestUploaderNothingKnown(t *testing.T) {
	cat := brPetCatalog()
	src, _ := recall.NewUploader(cat, cat, recall.DefaultUploaderConfig())
	got, err := src.Recall(context.Background(), brRequest(brProfile("x")), 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown user: %v %v", brIDs(got), err)
	}
}
