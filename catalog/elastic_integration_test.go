package catalog

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"reelfeed/internal/testenv"
)

// TestElasticIntegration runs against a real Elasticsearch 7 cluster named by
// REELFEED_TEST_ELASTICSEARCH_URL, e.g. http://127.0.0.1:9200. Without it the
// test skips, also under CI=true: this machine cannot run Elasticsearch, so
// CI here covers the client through golden files and the fake cluster only.
// It works in an index of its own (reelfeed-it-<random>-v1) and deletes it.
func TestElasticIntegration(t *testing.T) {
	url := os.Getenv("REELFEED_TEST_ELASTICSEARCH_URL")
	if url == "" {
		t.Skip("REELFEED_TEST_ELASTICSEARCH_URL not set; skipping the real-cluster test (see docs/elasticsearch.md)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := DefaultElasticConfig()
	cfg.URLs = []string{url}
	cfg.Alias = "reelfeed-it-" + testenv.RandomID()
	cfg.Replicas = 0 // green on a single node
	cfg.BulkFlushInterval = time.Hour

	// Two replicas starting at once: both must come up on one index.
	var (
		wg        sync.WaitGroup
		instances [2]*Elastic
		errs      [2]error
	)
	for i := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			instances[i], errs[i] = NewElastic(ctx, cfg, zaptest.NewLogger(t))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: NewElastic: %v", i, err)
		}
	}
	es, other := instances[0], instances[1]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, e := range instances {
			_ = e.Close(ctx)
		}
		if _, err := es.client.DeleteIndex(es.Index()).Do(ctx); err != nil {
			t.Errorf("deleting test index %s: %v", es.Index(), err)
		}
	})
	if targets, err := es.aliasTargets(ctx); err != nil || !slices.Equal(targets, []string{es.Index()}) {
		t.Fatalf("alias %s points at %v (err %v), want [%s]", cfg.Alias, targets, err, es.Index())
	}
	if err := es.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}

	// The same catalog in memory and in Elasticsearch; qualities and times
	// are distinct so both orders are total.
	mem := New()
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	regions := [][]string{nil, {"de"}, {"us", "ca"}, {"de", "at"}}
	tags := [][]string{{"cats"}, {"dogs"}, {"cats", "music"}, {"news"}, nil}
	for i := range 40 {
		v := &Video{
			ID:          fmt.Sprintf("v%02d", i),
			UploaderID:  fmt.Sprintf("u%d", i%5),
			Title:       fmt.Sprintf("video %d", i),
			Tags:        tags[i%len(tags)],
			Category:    []string{"pets", "music", "sports"}[i%3],
			DurationMs:  int64(1000 * i),
			PublishedAt: base.Add(time.Duration(i*37%40) * time.Hour),
			Regions:     regions[i%len(regions)],
			Kind:        KindVideo,
			Quality:     float64((i*13)%40) / 40,
		}
		v.Normalize(base)
		mem.Upsert(v)
		if err := es.Upsert(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	mem.Delete("v07")
	if err := es.Delete(ctx, "v07"); err != nil {
		t.Fatal(err)
	}
	if err := es.Delete(ctx, "never-existed"); err != nil {
		t.Fatal(err)
	}
	if err := es.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if _, err := es.client.Refresh(es.Index()).Do(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}

	queries := []Query{
		{Limit: 100},
		{Tags: []string{"cats", "dogs"}, Limit: 50},
		{Tags: []string{"cats"}, Region: "de", Limit: 20},
		{Region: "us", PublishedAfter: base.Add(5 * time.Hour), PublishedBefore: base.Add(30 * time.Hour), Sort: SortByFresh, Limit: 100},
		{Categories: []string{"music", "sports"}, Uploaders: []string{"u1", "u2"}, Limit: 30},
		{Tags: []string{"news"}, PublishedAfter: base.Add(10 * time.Hour), Sort: SortByFresh, Limit: 5},
		{Uploaders: []string{"u3"}, Region: "ca", Limit: 7},
		{Tags: []string{"no-such-tag"}, Limit: 10},
	}
	for i, q := range queries {
		want, _ := mem.Search(ctx, q)
		got, err := es.Search(ctx, q)
		if err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("query %d %+v:\nelasticsearch %v\nmemory        %v", i, q, got, want)
		}
	}

	// Versioned writes: a stale version is skipped, not applied.
	fresh := &Video{ID: "ver", UploaderID: "u9", Category: "pets", Tags: []string{"fresh"}, Kind: KindVideo, PublishedAt: base}
	stale := &Video{ID: "ver", UploaderID: "u9", Category: "pets", Tags: []string{"stale"}, Kind: KindVideo, PublishedAt: base}
	if err := es.UpsertVersion(ctx, fresh, 5); err != nil {
		t.Fatal(err)
	}
	if err := es.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := other.UpsertVersion(ctx, stale, 3); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(ctx); err != nil {
		t.Fatalf("Flush of a stale version = %v, want nil (a conflict is not a failure)", err)
	}
	if got := metricValue(t, other.metrics.bulkItems.WithLabelValues("conflict")); got != 1 {
		t.Errorf("conflicts = %v, want 1", got)
	}
	if _, err := es.client.Refresh(es.Index()).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, err := es.Search(ctx, Query{Tags: []string{"fresh"}, Limit: 5}); err != nil || !slices.Equal(ids, []string{"ver"}) {
		t.Errorf("after a stale write, tag fresh finds %v (err %v), want [ver]", ids, err)
	}
}
