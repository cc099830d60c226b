package recall_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/profile"
	"reelfeed/recall"
)

// TestTagHonoursMaxScan: the 45 best cat videos were shown, so what the
// branch finds depends only on how far max_scan lets it read.
func TestTagHonoursMaxScan(t *testing.T) {
	cat := brPetCatalog()
	p := brProfile("u")
	p.LongTerm.Tags["cats"] = 1
	for i := range 45 {
		p.Shown[fmt.Sprintf("cat%02d", i)] = brNow
	}
	for _, tc := range []struct {
		maxScan int
		want    []string
	}{{20, nil}, {45, nil}, {47, []string{"cat45", "cat46"}}, {500, []string{"cat45", "cat46", "cat47", "cat48", "cat49"}}} {
		cfg := recall.DefaultTagConfig()
		cfg.MaxScan = tc.maxScan
		tag, err := recall.NewTag(cat, cat, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tag.Recall(context.Background(), brRequest(p), 5)
		if err != nil {
			t.Fatal(err)
		}
		if ids := brIDs(got); !slices.Equal(ids, tc.want) {
			t.Fatalf("max_scan %d: got %v, want %v", tc.maxScan, ids, tc.want)
		}
	}
}

// TestUploaderLocalScanMatchesRemote: scanning the catalog in process and
// asking a remote-style retriever for the same query recall the same
// candidates while max_scan does not bind. When it does, the two read
// different videos (one newest-first query for every author remotely, an
// even split per author in process), so only the bounds are compared.
func TestUploaderLocalScanMatchesRemote(t *testing.T) {
	cat := catalog.New()
	for u := range 6 {
		for i := range 30 {
			v := brVideo(fmt.Sprintf("u%d-v%02d", u, i), "c", fmt.Sprintf("up%d", u), 0.5)
			v.PublishedAt = brNow.Add(-time.Duration(i*6+u) * time.Hour)
			if i%4 == 1 {
				v.Regions = []string{"us"}
			}
			cat.Upsert(v)
		}
	}
	p := brProfile("me")
	for u := range 6 {
		p.LongTerm.Uploaders[fmt.Sprintf("up%d", u)] = float64(u + 1)
	}
	for i := range 30 {
		p.Shown[fmt.Sprintf("u5-v%02d", i)] = brNow // the favourite's uploads were all shown
		p.Played[fmt.Sprintf("u1-v%02d", 2*i)] = brNow
	}
	for _, maxScan := range []int{3, 20, 400} {
		cfg := recall.DefaultUploaderConfig()
		cfg.MaxScan = maxScan
		local, _ := recall.NewUploader(cat, cat, cfg)
		remote, _ := recall.NewUploader(cat, idRetriever{cat: cat}, cfg)
		for _, region := range []string{"", "de", "us"} {
			for _, quota := range []int{1, 7, 60} {
				req := brRequest(p)
				req.Region = region
				want, err := remote.Recall(context.Background(), req, quota)
				if err != nil {
					t.Fatal(err)
				}
				got, err := local.Recall(context.Background(), req, quota)
				if err != nil {
					t.Fatal(err)
				}
				if maxScan < 400 {
					if len(got) == 0 || len(got) > quota || len(got) > max(maxScan, 6) { // at least one read per author
						t.Fatalf("max_scan %d, region %q, quota %d: local %v", maxScan, region, quota, brIDs(got))
					}
					continue
				}
				if !slices.Equal(brIDs(got), brIDs(want)) || len(got) == 0 {
					t.Fatalf("max_scan %d, region %q, quota %d: local %v, remote %v", maxScan, region, quota, brIDs(got), brIDs(want))
				}
			}
		}
	}
}

// scanBenchCatalog: 20k videos over 300+77 tags, 20 categories and 2000
// uploaders, quality cycling through [0, 1).
func scanBenchCatalog() *catalog.Catalog {
	cat := catalog.New()
	for i := range 20000 {
		cat.Upsert(brVideo(fmt.Sprint(i), fmt.Sprintf("c%d", i%20), fmt.Sprintf("u%d", i%2000), float64(i%100)/100,
			fmt.Sprintf("t%d", i%300), fmt.Sprintf("t%d", i%77)))
	}
	return cat
}

// benchTagProfile: 40 long- and short-term tag interests and 20 category
// interests over scanBenchCatalog's tags and categories.
func benchTagProfile() *profile.Profile {
	p := brProfile("u")
	for i := range 40 {
		p.LongTerm.Tags[fmt.Sprintf("t%d", i*7)] = float64(i)
		p.ShortTerm.Tags[fmt.Sprintf("t%d", i*3)] = float64(i)
		p.LongTerm.Categories[fmt.Sprintf("c%d", i%20)] = float64(i)
	}
	return p
}

// BenchmarkTagRecallMostlySeen: a heavy user who was already shown the best
// half of every list, so each interest has to read past its seen videos.
func BenchmarkTagRecallMostlySeen(b *testing.B) {
	cat := scanBenchCatalog()
	tag, _ := recall.NewTag(cat, cat, recall.DefaultTagConfig())
	p := benchTagProfile()
	for i := range 20000 {
		if i%100 >= 50 {
			p.Shown[fmt.Sprint(i)] = brNow
		}
	}
	req := brRequest(p)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tag.Recall(context.Background(), req, 200); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUploaderRecall(b *testing.B) {
	cat := scanBenchCatalog()
	up, _ := recall.NewUploader(cat, cat, recall.DefaultUploaderConfig())
	p := brProfile("u")
	for i := range 30 {
		p.LongTerm.Uploaders[fmt.Sprintf("u%d", i*13)] = float64(i + 1)
	}
	req := brRequest(p)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := up.Recall(context.Background(), req, 100); err != nil {
			b.Fatal(err)
		}
	}
}
