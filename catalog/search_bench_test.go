package catalog

import (
	"fmt"
	"testing"
	"time"
)

// benchCatalog is shaped like a production replica: 100k videos, 300 tags
// (two per video), 2000 uploaders, 10 regions with a third of the videos
// allowed everywhere, one upload a minute.
func benchCatalog(now time.Time) *Catalog {
	c := New()
	c.BeginBulk()
	for i := range 100000 {
		c.Upsert(&Video{ID: fmt.Sprint(i), UploaderID: fmt.Sprint("u", i%2000), Category: fmt.Sprint("c", i%20),
			Tags: []string{fmt.Sprint("t", i%300), fmt.Sprint("t", (i*7)%301)}, Regions: benchRegions(i),
			Quality: float64((i*7919)%1000) / 1000, PublishedAt: now.Add(-time.Duration(i) * time.Minute), Kind: KindVideo})
	}
	c.EndBulk()
	return c
}

// benchRegions: a third global, the rest limited to one to three of ten
// regions.
func benchRegions(i int) []string {
	if i%3 == 0 {
		return nil
	}
	n := 1 + i%3
	out := make([]string, n)
	for j := range out {
		out[j] = fmt.Sprint("r", (i/3+j*4)%10)
	}
	return out
}

func BenchmarkSearchVideos(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	c := benchCatalog(now)
	ups := make([]string, 20)
	for i := range ups {
		ups[i] = fmt.Sprint("u", i*7)
	}
	cases := []struct {
		name string
		q    Query
	}{
		{"tag", Query{Tags: []string{"t7"}, Limit: 500}},
		{"tag_region", Query{Tags: []string{"t7"}, Region: "r3", Limit: 500}},
		{"tags3_region", Query{Tags: []string{"t7", "t8", "t9"}, Region: "r3", Limit: 500}},
		{"all_region", Query{Region: "r3", Limit: 1000}},
		{"unknown_region", Query{Region: "zz", Limit: 1000}},
		{"fresh_after_region", Query{Region: "r3", Sort: SortByFresh, PublishedAfter: now.Add(-48 * time.Hour),
			PublishedBefore: now, Limit: 600}},
		{"uploaders20_fresh_region", Query{Uploaders: ups, Region: "r3", Sort: SortByFresh, PublishedBefore: now, Limit: 400}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(c.SearchVideos(tc.q)) == 0 {
					b.Fatal("no results: the benchmark measures nothing")
				}
			}
		})
	}
}
