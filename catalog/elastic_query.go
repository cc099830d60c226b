package catalog

import (
	"time"

	"github.com/olivere/elastic/v7"
)

// elasticMappingVersion is part of the concrete index name. Bump it whenever
// elasticFieldTypes or the document shape changes: a binary then creates and
// fills its own index instead of writing documents an older mapping rejects.
const elasticMappingVersion = 1

// elasticMaxResultWindow is Elasticsearch's default index.max_result_window;
// a larger size is rejected, so Search clamps Limit to it.
const elasticMaxResultWindow = 10000

// elasticFieldTypes is the explicit mapping: keywords for exact filters,
// doc-valued numbers and dates for range and sort, text only for the two
// free-text fields.
func elasticFieldTypes() map[string]string {
	return map[string]string{
		"video_id":     "keyword",
		"uploader_id":  "keyword",
		"tags":         "keyword",
		"category":     "keyword",
		"regions":      "keyword",
		"kind":         "keyword",
		"published_at": "date",
		"quality":      "float",
		"duration_ms":  "long",
		"title":        "text",
		"description":  "text",
	}
}

// elasticIndexBody is the create-index request: settings plus a strict
// mapping, so a document with an unexpected field fails loudly instead of
// silently growing the mapping.
func elasticIndexBody(shards, replicas int) map[string]any {
	types := elasticFieldTypes()
	props := make(map[string]any, len(types))
	for field, typ := range types {
		props[field] = map[string]any{"type": typ}
	}
	return map[string]any{
		"settings": map[string]any{
			"number_of_shards":   shards,
			"number_of_replicas": replicas,
		},
		"mappings": map[string]any{
			"dynamic":    "strict",
			"properties": props,
		},
	}
}

// elasticDoc is a Video as stored in Elasticsearch. Dates are written with
// millisecond precision because that is what a date field keeps; queries use
// the same format so range bounds compare like the memory index does.
type elasticDoc struct {
	VideoID     string   `json:"video_id"`
	UploaderID  string   `json:"uploader_id"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Category    string   `json:"category"`
	DurationMs  int64    `json:"duration_ms"`
	PublishedAt string   `json:"published_at"`
	Regions     []string `json:"regions,omitempty"` // absent: allowed everywhere
	Kind        Kind     `json:"kind"`
	Quality     float64  `json:"quality"`
}

func newElasticDoc(v *Video) elasticDoc {
	return elasticDoc{
		VideoID:     v.ID,
		UploaderID:  v.UploaderID,
		Title:       v.Title,
		Description: v.Description,
		Tags:        v.Tags,
		Category:    v.Category,
		DurationMs:  v.DurationMs,
		PublishedAt: elasticTime(v.PublishedAt),
		Regions:     v.Regions,
		Kind:        v.Kind,
		Quality:     v.Quality,
	}
}

func elasticTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// elasticSearchSource translates a Query into a search body. Every clause is
// in filter context: recall needs the catalog's own ordering (quality or
// freshness), not relevance scores, and filters are cacheable.
func elasticSearchSource(q Query) *elastic.SearchSource {
	var filters []elastic.Query

	var anyOf []elastic.Query
	if len(q.Tags) > 0 {
		anyOf = append(anyOf, elastic.NewTermsQuery("tags", stringsToAny(q.Tags)...))
	}
	if len(q.Categories) > 0 {
		anyOf = append(anyOf, elastic.NewTermsQuery("category", stringsToAny(q.Categories)...))
	}
	if len(q.Uploaders) > 0 {
		anyOf = append(anyOf, elastic.NewTermsQuery("uploader_id", stringsToAny(q.Uploaders)...))
	}
	if len(anyOf) > 0 {
		filters = append(filters, elastic.NewBoolQuery().Should(anyOf...).MinimumNumberShouldMatch(1))
	}

	if q.Region != "" {
		// A video without regions is allowed everywhere (Video.AllowedIn).
		global := elastic.NewBoolQuery().MustNot(elastic.NewExistsQuery("regions"))
		filters = append(filters, elastic.NewBoolQuery().
			Should(elastic.NewTermQuery("regions", q.Region), global).
			MinimumNumberShouldMatch(1))
	}

	if !q.PublishedAfter.IsZero() || !q.PublishedBefore.IsZero() {
		filters = append(filters, dateRangeQuery{field: "published_at", gte: q.PublishedAfter, lte: q.PublishedBefore})
	}

	size := q.Limit
	if size > elasticMaxResultWindow {
		size = elasticMaxResultWindow
	}
	src := elastic.NewSearchSource().
		Query(elastic.NewBoolQuery().Filter(filters...)).
		Size(size).
		FetchSource(false).
		TrackTotalHits(false)
	// video_id breaks ties so repeated queries return the same order.
	switch q.Sort {
	case SortByFresh:
		src.SortBy(
			elastic.NewFieldSort("published_at").Desc(),
			elastic.NewFieldSort("video_id").Asc())
	default:
		src.SortBy(
			elastic.NewFieldSort("quality").Desc(),
			elastic.NewFieldSort("published_at").Desc(),
			elastic.NewFieldSort("video_id").Asc())
	}
	return src
}

// dateRangeQuery renders a range query with gte/lte, the form the
// Elasticsearch 7 reference documents; olivere's RangeQuery emits the
// legacy from/to/include_lower/include_upper form.
type dateRangeQuery struct {
	field    string
	gte, lte time.Time // zero: unbounded
}

func (q dateRangeQuery) Source() (any, error) {
	bounds := map[string]any{}
	if !q.gte.IsZero() {
		bounds["gte"] = elasticTime(q.gte)
	}
	if !q.lte.IsZero() {
		bounds["lte"] = elasticTime(q.lte)
	}
	return map[string]any{"range": map[string]any{q.field: bounds}}, nil
}

func stringsToAny(in []string) []any {
	out := make([]any, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}
