package catalog

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var scanBase = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func regionVideo(id string, regions ...string) *Video {
	return &Video{ID: id, UploaderID: "up", Category: "c", Tags: []string{"t"}, Regions: regions,
		Quality: 0.5, PublishedAt: scanBase, Kind: KindVideo}
}

func searchIDs(c *Catalog, q Query) []string {
	var ids []string
	for _, v := range c.SearchVideos(q) {
		ids = append(ids, v.ID)
	}
	slices.Sort(ids)
	return ids
}

// wantRegions checks which videos each query region finds, ignoring order.
func wantRegions(t *testing.T, c *Catalog, want map[string][]string) {
	t.Helper()
	for region, ids := range want {
		for _, q := range []Query{{Region: region, Limit: 1000}, {Tags: []string{"t"}, Region: region, Limit: 1000},
			{Region: region, Sort: SortByFresh, PublishedBefore: scanBase, Limit: 1000}} {
			if got := searchIDs(c, q); !slices.Equal(got, ids) {
				t.Fatalf("region %q, query %+v: got %v, want %v", region, q, got, ids)
			}
		}
	}
}

func TestRegionMasks(t *testing.T) {
	c := New()
	c.Upsert(regionVideo("global"))
	c.Upsert(regionVideo("eu", "eu"))
	c.Upsert(regionVideo("eu-us", "eu", "us"))
	c.Upsert(regionVideo("jp", "jp"))
	wantRegions(t, c, map[string][]string{
		"":   {"eu", "eu-us", "global", "jp"}, // unknown user region: everything
		"eu": {"eu", "eu-us", "global"},
		"us": {"eu-us", "global"},
		"jp": {"global", "jp"},
		"zz": {"global"}, // a region no video lists: only videos allowed everywhere
	})
}

// TestRegionMasksPastTheExactBits: with more regions than mask bits, the
// regions sharing the overflow bit must not leak into each other, and
// videos allowed everywhere must still match every one of them.
func TestRegionMasksPastTheExactBits(t *testing.T) {
	c := New()
	want := map[string][]string{"": nil, "nowhere": {"global"}}
	for i := range 100 {
		r := fmt.Sprint("r", i)
		id := fmt.Sprint("only-", r)
		c.Upsert(regionVideo(id, r))
		want[r] = []string{"global", id}
		want[""] = append(want[""], id)
	}
	c.Upsert(regionVideo("r5-r80-r99", "r5", "r80", "r99"))
	for _, r := range []string{"r5", "r80", "r99"} {
		want[r] = append(want[r], "r5-r80-r99")
	}
	c.Upsert(regionVideo("global"))
	want[""] = append(want[""], "global", "r5-r80-r99")
	for _, ids := range want {
		slices.Sort(ids)
	}
	if len(c.regionIDs) <= regionExactBits {
		t.Fatalf("only %d regions interned: the overflow bit is not exercised", len(c.regionIDs))
	}
	wantRegions(t, c, want)
}

func TestRegionMasksFollowUpsertAndDelete(t *testing.T) {
	c := New()
	c.Upsert(regionVideo("v", "eu"))
	wantRegions(t, c, map[string][]string{"eu": {"v"}, "us": nil, "zz": nil})
	c.Upsert(regionVideo("v", "us"))
	wantRegions(t, c, map[string][]string{"eu": nil, "us": {"v"}, "zz": nil})
	c.Upsert(regionVideo("v"))
	wantRegions(t, c, map[string][]string{"eu": {"v"}, "us": {"v"}, "zz": {"v"}})
	c.Upsert(regionVideo("v", "eu"))
	c.Delete("v")
	wantRegions(t, c, map[string][]string{"": nil, "eu": nil, "zz": nil})
}

// TestRegionMasksSurviveCompaction: compaction renumbers slots and
// re-interns regions from the live videos only, so regions that were in
// the overflow bit get exact bits afterwards; answers must not change.
func TestRegionMasksSurviveCompaction(t *testing.T) {
	c := New()
	for i := range 2048 {
		c.Upsert(regionVideo(fmt.Sprint("gone", i), fmt.Sprint("old", i%70)))
	}
	for i := range 100 {
		c.Upsert(regionVideo(fmt.Sprint("kept", i), fmt.Sprint("new", i%10)))
	}
	c.Upsert(regionVideo("global"))
	if id := c.regionIDs["new0"]; id < regionExactBits {
		t.Fatalf("new0 interned as %d: the overflow bit is not exercised", id)
	}
	for i := range 2048 { // two rounds of 1024 deletes: each ends in a compaction
		c.Delete(fmt.Sprint("gone", i))
	}
	if len(c.slots) != 101 {
		t.Fatalf("no compaction: %d slots", len(c.slots))
	}
	if len(c.regionIDs) != 10 {
		t.Fatalf("%d regions interned after compaction, want the 10 live ones", len(c.regionIDs))
	}
	want := map[string][]string{"old3": {"global"}, "nowhere": {"global"}}
	for r := range 10 {
		ids := []string{"global"}
		for i := r; i < 100; i += 10 {
			ids = append(ids, fmt.Sprint("kept", i))
		}
		slices.Sort(ids)
		want[fmt.Sprint("new", r)] = ids
	}
	wantRegions(t, c, want)
}

func TestRegionMasksAfterBulkLoad(t *testing.T) {
	c := New()
	c.BeginBulk()
	c.Upsert(regionVideo("eu", "eu"))
	c.Upsert(regionVideo("global"))
	c.Upsert(regionVideo("moved", "eu"))
	c.Upsert(regionVideo("moved", "us")) // replaced within the bulk load
	wantRegions(t, c, map[string][]string{"eu": {"eu", "global"}, "us": {"global", "moved"}})
	c.EndBulk()
	wantRegions(t, c, map[string][]string{"eu": {"eu", "global"}, "us": {"global", "moved"}, "zz": {"global"}})
}

func TestScanVideosStopsEarly(t *testing.T) {
	c := testCatalog()
	all := c.SearchVideos(Query{Limit: 10})
	var visited []*Video
	c.ScanVideos(Query{}, func(v *Video) bool {
		visited = append(visited, v)
		return len(visited) < 3
	})
	if !slices.Equal(visited, all[:3]) {
		t.Fatalf("stopping after 3 visited %v, want the first 3 of %v", ids(visited), ids(all))
	}
}

func TestScanVideosLimit(t *testing.T) {
	c := testCatalog()
	all := c.SearchVideos(Query{Limit: 10})
	for _, tc := range []struct{ limit, want int }{{2, 2}, {5, 5}, {50, 5}, {0, 5}, {-1, 5}} {
		var visited []*Video
		c.ScanVideos(Query{Limit: tc.limit}, func(v *Video) bool {
			visited = append(visited, v)
			return true
		})
		if !slices.Equal(visited, all[:tc.want]) {
			t.Fatalf("limit %d visited %v, want %v", tc.limit, ids(visited), ids(all[:tc.want]))
		}
	}
	if got := c.SearchVideos(Query{Limit: 0}); got != nil {
		t.Fatalf("SearchVideos with limit 0 returned %v", ids(got))
	}
}

// TestScanVideosDedupesDuplicateKeys: a video reached through several
// lists, a query naming a key twice, or a tag listed twice on an
// unnormalised video is still visited once.
func TestScanVideosDedupesDuplicateKeys(t *testing.T) {
	c := New()
	c.Upsert(&Video{ID: "a", UploaderID: "u", Category: "x", Tags: []string{"t", "t", "s"}, Quality: 0.5})
	c.Upsert(&Video{ID: "b", UploaderID: "u", Category: "x", Tags: []string{"t"}, Quality: 0.5})
	for _, q := range []Query{{Tags: []string{"t"}}, {Tags: []string{"t", "t", "s"}, Categories: []string{"x"}, Uploaders: []string{"u"}},
		{Tags: []string{"s", "t"}, Sort: SortByFresh}} {
		q.Limit = 10
		if got := ids(c.SearchVideos(q)); !slices.Equal(got, []string{"b", "a"}) {
			t.Fatalf("%+v: got %v, want [b a] (equal quality and time: the later insert first)", q, got)
		}
	}
}

func ids(vs []*Video) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}

func TestSearchVideosDoesNotAllocatePerResult(t *testing.T) {
	c := benchCatalog(scanBase)
	q := Query{Tags: []string{"t1", "t2", "t3"}, Region: "r4", Sort: SortByFresh, PublishedBefore: scanBase, Limit: 300}
	if allocs := testing.AllocsPerRun(20, func() { c.SearchVideos(q) }); allocs > 1 {
		t.Fatalf("%v allocations per search, want only the result slice", allocs)
	}
	if allocs := testing.AllocsPerRun(20, func() { c.ScanVideos(q, func(*Video) bool { return true }) }); allocs > 0 {
		t.Fatalf("%v allocations per scan, want none", allocs)
	}
}

// TestScanVideosConcurrentWithWrites is for the race detector: masks,
// interned regions and lists change under writers while readers scan.
func TestScanVideosConcurrentWithWrites(t *testing.T) {
	c := New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3000 {
			c.Upsert(regionVideo(fmt.Sprint(i%500), fmt.Sprint("r", i%80)))
			if i%3 == 0 {
				c.Delete(fmt.Sprint((i * 7) % 500))
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		for _, v := range c.SearchVideos(Query{Tags: []string{"t"}, Region: "r70", Limit: 50}) {
			if !v.AllowedIn("r70") {
				t.Fatalf("%s is not allowed in r70", v.ID)
			}
		}
	}
}

// Excluded videos are skipped without being visited or counted.
func TestScanVideosExcludes(t *testing.T) {
	c := New()
	for i := range 10 {
		c.Upsert(&Video{ID: fmt.Sprint("v", i), UploaderID: "u", Category: "c", Quality: float64(10-i) / 10})
	}
	var seen, played IDSet
	seen.Add(IDKey("v0"))
	seen.Add(IDKey("v2"))
	played.Add(IDKey("v3"))
	var got []string
	c.ScanVideos(Query{Limit: 3}, func(v *Video) bool {
		got = append(got, v.ID)
		return true
	}, &seen, nil, &played)
	if want := []string{"v1", "v4", "v5"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
