package catalog

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current code")

// elasticQueryCases are the query shapes the recall branches send; each has
// a golden search body in testdata/ that the fake cluster also checks.
func elasticQueryCases() []struct {
	name   string
	query  Query
	golden string
} {
	day := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	return []struct {
		name   string
		query  Query
		golden string
	}{
		{"tags only", Query{Tags: []string{"cats", "dogs"}, Limit: 50}, "elastic_query_tags.json"},
		{"tags and region", Query{Tags: []string{"cats"}, Region: "de", Limit: 20}, "elastic_query_tags_region.json"},
		{"fresh with time range", Query{
			Region:          "us",
			PublishedAfter:  day.Add(-24 * time.Hour),
			PublishedBefore: day.Add(123456789 * time.Nanosecond), // sub-millisecond digits are cut
			Sort:            SortByFresh,
			Limit:           100,
		}, "elastic_query_fresh_range.json"},
		{"categories and uploaders", Query{Categories: []string{"music", "sports"}, Uploaders: []string{"u1", "u2"}, Limit: 30}, "elastic_query_categories_uploaders.json"},
		{"empty", Query{Limit: 10}, "elastic_query_empty.json"},
		{"fresh, published after only", Query{Tags: []string{"news"}, PublishedAfter: day, Sort: SortByFresh, Limit: 10}, "elastic_query_fresh_after.json"},
	}
}

func TestElasticQueryGolden(t *testing.T) {
	for _, tc := range elasticQueryCases() {
		t.Run(tc.name, func(t *testing.T) {
			src, err := elasticSearchSource(tc.query).Source()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, src)
		})
	}
}

func TestElasticQueryClampsSize(t *testing.T) {
	src, err := elasticSearchSource(Query{Limit: 1 << 20}).Source()
	if err != nil {
		t.Fatal(err)
	}
	if got := src.(map[string]any)["size"]; got != elasticMaxResultWindow {
		t.Fatalf("size = %v, want %d", got, elasticMaxResultWindow)
	}
}

func TestElasticMappingGolden(t *testing.T) {
	checkGolden(t, "elastic_mapping.json", elasticIndexBody(1, 1))
}

func TestElasticDocumentGolden(t *testing.T) {
	v := &Video{
		ID: "v42", UploaderID: "u7", Title: "Cat piano", Description: "A cat plays.",
		Tags: []string{"cats", "music"}, Category: "pets", DurationMs: 15000,
		PublishedAt: time.Date(2024, 5, 1, 12, 30, 0, 987654321, time.FixedZone("CEST", 2*3600)),
		Regions:     []string{"de", "at"}, Kind: KindVideo, Quality: 0.75,
	}
	checkGolden(t, "elastic_document.json", newElasticDoc(v))

	global := &Video{ID: "v43", UploaderID: "u7", Category: "pets", Kind: KindMusic,
		PublishedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	checkGolden(t, "elastic_document_global.json", newElasticDoc(global))
}

// checkGolden compares v, marshalled, with testdata/name as parsed JSON; with
// -update it rewrites the file instead.
func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./catalog/ -run Golden -update to create it)", err)
	}
	if msg := diffJSON(got, want); msg != "" {
		t.Errorf("%s differs (review, then run with -update if intended): %s", path, msg)
	}
}
