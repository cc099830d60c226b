package catalog

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func testCatalog() *Catalog {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c := New()
	add := func(id, up, cat string, q float64, ageH int, tags []string, regions ...string) {
		c.Upsert(&Video{ID: id, UploaderID: up, Category: cat, Quality: q, Tags: tags, Regions: regions,
			PublishedAt: base.Add(-time.Duration(ageH) * time.Hour), Kind: KindVideo})
	}
	add("a", "u1", "pets", 0.9, 10, []string{"cats"})
	add("b", "u1", "pets", 0.5, 1, []string{"cats", "dogs"})
	add("c", "u2", "food", 0.7, 5, []string{"ramen"}, "eu")
	add("d", "u2", "food", 0.8, 20, []string{"dogs"}, "us")
	add("e", "u3", "cars", 0.6, 2, nil)
	return c
}

func TestSearchOrdersAndFilters(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"all by quality", Query{Limit: 10}, []string{"a", "d", "c", "e", "b"}},
		{"all newest first", Query{Sort: SortByFresh, Limit: 10}, []string{"b", "e", "c", "a", "d"}},
		{"limit", Query{Limit: 2}, []string{"a", "d"}},
		{"tag union without duplicates", Query{Tags: []string{"cats", "dogs"}, Limit: 10}, []string{"a", "d", "b"}},
		{"tags newest first", Query{Tags: []string{"cats", "dogs"}, Sort: SortByFresh, Limit: 10}, []string{"b", "a", "d"}},
		{"uploader newest first", Query{Uploaders: []string{"u2"}, Sort: SortByFresh, Limit: 10}, []string{"c", "d"}},
		{"region excludes other regions, keeps global", Query{Region: "eu", Limit: 10}, []string{"a", "c", "e", "b"}},
		{"published after, newest first", Query{Sort: SortByFresh, PublishedAfter: base.Add(-6 * time.Hour), Limit: 10}, []string{"b", "e", "c"}},
		{"published before", Query{PublishedBefore: base.Add(-6 * time.Hour), Limit: 10}, []string{"a", "d"}},
		{"categories and uploaders", Query{Categories: []string{"cars"}, Uploaders: []string{"u1"}, Limit: 10}, []string{"a", "e", "b"}},
		{"unknown tag", Query{Tags: []string{"nope"}, Limit: 10}, nil},
	}
	c := testCatalog()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := c.Search(context.Background(), tc.q)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUpdatesAndDeletesReachEveryList(t *testing.T) {
	c := testCatalog()
	c.Delete("a")
	v, _ := c.Get("b")
	moved := *v
	moved.Tags = []string{"birds"}
	moved.Quality = 1
	c.Upsert(&moved)
	for _, q := range []Query{{Tags: []string{"cats"}, Limit: 10}, {Tags: []string{"cats"}, Sort: SortByFresh, Limit: 10}} {
		if got, _ := c.Search(context.Background(), q); len(got) != 0 {
			t.Fatalf("deleted/retagged videos still under their old tag: %v", got)
		}
	}
	got, _ := c.Search(context.Background(), Query{Limit: 1})
	if !slices.Equal(got, []string{"b"}) {
		t.Fatalf("updated quality not reflected: %v", got)
	}
	if c.Len() != 4 {
		t.Fatalf("Len %d, want 4", c.Len())
	}
}

func TestCompactionKeepsEverythingFindable(t *testing.T) {
	c := New()
	for i := 0; i < 5000; i++ {
		c.Upsert(&Video{ID: fmt.Sprint(i), UploaderID: "u", Category: "x", Quality: float64(i%100) / 100, Tags: []string{"t"}})
	}
	for i := 0; i < 5000; i += 2 {
		c.Delete(fmt.Sprint(i)) // enough garbage to trigger compaction
	}
	got, _ := c.Search(context.Background(), Query{Tags: []string{"t"}, Limit: 10000})
	if len(got) != 2500 {
		t.Fatalf("after compaction %d videos found, want 2500", len(got))
	}
}

func BenchmarkSearchFreshByUploaders(b *testing.B) {
	c := New()
	base := time.Now()
	for i := 0; i < 100000; i++ {
		c.Upsert(&Video{ID: fmt.Sprint(i), UploaderID: fmt.Sprint("u", i%2000), Category: "x", Quality: float64(i%97) / 97,
			PublishedAt: base.Add(-time.Duration(i) * time.Minute)})
	}
	ups := make([]string, 20)
	for i := range ups {
		ups[i] = fmt.Sprint("u", i*7)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.SearchVideos(Query{Uploaders: ups, Sort: SortByFresh, Limit: 1000})
	}
}

func TestBulkLoadOrdersLikeSortedInserts(t *testing.T) {
	sorted, bulk := New(), New()
	bulk.BeginBulk()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2000; i++ {
		v := &Video{ID: fmt.Sprint(i), UploaderID: fmt.Sprint("u", i%37), Category: fmt.Sprint("c", i%5),
			Tags: []string{fmt.Sprint("t", i%11)}, Quality: float64((i*7919)%1000) / 1000, PublishedAt: base.Add(time.Duration((i*104729)%5000) * time.Minute)}
		sorted.Upsert(v)
		bulk.Upsert(v)
	}
	bulk.EndBulk()
	for _, q := range []Query{{Limit: 300}, {Sort: SortByFresh, Limit: 300}, {Tags: []string{"t3", "t7"}, Limit: 100},
		{Uploaders: []string{"u1", "u2"}, Sort: SortByFresh, Limit: 50}} {
		a, _ := sorted.Search(context.Background(), q)
		b, _ := bulk.Search(context.Background(), q)
		if !slices.Equal(a, b) {
			t.Fatalf("bulk-loaded catalog answers %v differently", q)
		}
	}
}

func BenchmarkBulkLoad100k(b *testing.B) {
	videos := make([]*Video, 100000)
	for i := range videos {
		videos[i] = &Video{ID: fmt.Sprint(i), UploaderID: fmt.Sprint("u", i%5000), Category: fmt.Sprint("c", i%20),
			Tags: []string{fmt.Sprint("t", i%300), fmt.Sprint("t", i%71)}, Quality: float64(i%997) / 997, PublishedAt: time.Unix(int64(i*60), 0)}
	}
	for i := 0; i < b.N; i++ {
		c := New()
		c.BeginBulk()
		for _, v := range videos {
			c.Upsert(v)
		}
		c.EndBulk()
	}
}
