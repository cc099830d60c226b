package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

const (
	testAlias = "reelfeed-videos"
	testIndex = "reelfeed-videos-v1"
)

// freshClusterSetup is what NewElastic sends to a cluster that has neither
// the index nor the alias.
func freshClusterSetup() []esExchange {
	return []esExchange{
		{method: "HEAD", path: "/" + testIndex, status: 404},
		{method: "PUT", path: "/" + testIndex, golden: "elastic_mapping.json", status: 200, response: esCreateIndexAck(testIndex)},
		{method: "GET", path: "/_alias/" + testAlias, status: 404, response: esAliasMissing(testAlias)},
		{method: "POST", path: "/_aliases",
			body:   `{"actions":[{"add":{"alias":"reelfeed-videos","index":"reelfeed-videos-v1"}}]}`,
			status: 200, response: esAck},
	}
}

// readyClusterSetup is what NewElastic sends when index and alias exist.
func readyClusterSetup() []esExchange {
	return []esExchange{
		{method: "HEAD", path: "/" + testIndex, status: 200},
		{method: "GET", path: "/" + testIndex + "/_mapping", status: 200, response: esMapping(testIndex, elasticFieldTypes())},
		{method: "GET", path: "/_alias/" + testAlias, status: 200, response: esAliasTargets(testAlias, testIndex)},
	}
}

// testElasticConfig keeps commits explicit (Flush) and retries fast, so the
// fake cluster sees requests in a fixed order.
func testElasticConfig(url string) ElasticConfig {
	return ElasticConfig{
		URLs:                []string{url},
		Alias:               testAlias,
		Shards:              1,
		Replicas:            1,
		BulkActions:         1000,
		BulkFlushInterval:   time.Hour,
		BulkWorkers:         1,
		BulkBackoffInitial:  5 * time.Millisecond,
		BulkBackoffMax:      200 * time.Millisecond,
		Timeout:             2 * time.Second,
		HealthcheckInterval: -1,
	}
}

func newTestElastic(t *testing.T, fake *fakeES, tune func(*ElasticConfig)) *Elastic {
	t.Helper()
	cfg := testElasticConfig(fake.srv.URL)
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewElastic(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("NewElastic: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e
}

func TestNewElasticSetup(t *testing.T) {
	tests := []struct {
		name    string
		script  []esExchange
		wantErr string
	}{
		{name: "fresh cluster: create index with mapping, add alias", script: freshClusterSetup()},
		{name: "index and alias already there", script: readyClusterSetup()},
		{
			name: "another replica created the index first",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 404},
				{method: "PUT", path: "/" + testIndex, golden: "elastic_mapping.json", status: 400, response: esIndexExistsError(testIndex)},
				{method: "GET", path: "/" + testIndex + "/_mapping", status: 200, response: esMapping(testIndex, elasticFieldTypes())},
				{method: "GET", path: "/_alias/" + testAlias, status: 200, response: esAliasTargets(testAlias, testIndex)},
			},
		},
		{
			name: "alias on an older version moves atomically",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 200},
				{method: "GET", path: "/" + testIndex + "/_mapping", status: 200, response: esMapping(testIndex, elasticFieldTypes())},
				{method: "GET", path: "/_alias/" + testAlias, status: 200, response: esAliasTargets(testAlias, "reelfeed-videos-v0")},
				{method: "POST", path: "/_aliases",
					body: `{"actions":[{"remove":{"alias":"reelfeed-videos","index":"reelfeed-videos-v0"}},
					                   {"add":{"alias":"reelfeed-videos","index":"reelfeed-videos-v1"}}]}`,
					status: 200, response: esAck},
			},
		},
		{
			name: "another replica moved the alias between read and write",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 200},
				{method: "GET", path: "/" + testIndex + "/_mapping", status: 200, response: esMapping(testIndex, elasticFieldTypes())},
				{method: "GET", path: "/_alias/" + testAlias, status: 200, response: esAliasTargets(testAlias, "reelfeed-videos-v0")},
				{method: "POST", path: "/_aliases", status: 404, response: esAliasesNotFound(testAlias)},
				{method: "GET", path: "/_alias/" + testAlias, status: 200, response: esAliasTargets(testAlias, testIndex)},
			},
		},
		{
			name: "alias owned by a newer version stays",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 200},
				{method: "GET", path: "/" + testIndex + "/_mapping", status: 200, response: esMapping(testIndex, elasticFieldTypes())},
				{method: "GET", path: "/_alias/" + testAlias, status: 200, response: esAliasTargets(testAlias, "reelfeed-videos-v2")},
			},
		},
		{
			name: "existing index with an incompatible mapping",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 200},
				{method: "GET", path: "/" + testIndex + "/_mapping", status: 200,
					response: esMapping(testIndex, map[string]string{"video_id": "keyword", "tags": "text"})},
			},
			wantErr: "tags is text, want keyword",
		},
		{
			name: "index creation fails with 503",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 404},
				{method: "PUT", path: "/" + testIndex, status: 503,
					response: esError("master_not_discovered_exception", "no master node", 503)},
			},
			wantErr: "creating index reelfeed-videos-v1",
		},
		{
			name: "alias name taken by a concrete index",
			script: []esExchange{
				{method: "HEAD", path: "/" + testIndex, status: 200},
				{method: "GET", path: "/" + testIndex + "/_mapping", status: 200, response: esMapping(testIndex, elasticFieldTypes())},
				{method: "GET", path: "/_alias/" + testAlias, status: 404, response: esAliasMissing(testAlias)},
				{method: "POST", path: "/_aliases", status: 400, response: esError("invalid_alias_name_exception",
					"Invalid alias name [reelfeed-videos], an index exists with the same name as the alias", 400)},
			},
			wantErr: "an index exists with the same name as the alias",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeES(t, tc.script...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e, err := NewElastic(ctx, testElasticConfig(fake.srv.URL), zaptest.NewLogger(t))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewElastic error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewElastic: %v", err)
			}
			if err := e.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestNewElasticWithHealthcheck(t *testing.T) {
	fake := newFakeES(t, freshClusterSetup()...)
	newTestElastic(t, fake, func(c *ElasticConfig) { c.HealthcheckInterval = time.Minute })
}

func TestNewElasticUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	cfg := testElasticConfig(url)
	cfg.HealthcheckInterval = time.Minute
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := NewElastic(context.Background(), cfg, zap.NewNop())
	if err == nil {
		t.Fatal("NewElastic succeeded against a closed port")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("NewElastic took %v to fail", time.Since(start))
	}
}

func TestElasticConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		tune    func(*ElasticConfig)
		wantErr string
	}{
		{"defaults are valid", func(*ElasticConfig) {}, ""},
		{"no urls", func(c *ElasticConfig) { c.URLs = nil }, "urls: at least one URL"},
		{"not http", func(c *ElasticConfig) { c.URLs = []string{"es1:9200"} }, "is not an http(s) URL"},
		{"credentials never echoed", func(c *ElasticConfig) { c.URLs = []string{"ftp://user:secret@es1"} }, "ftp://user:xxxxx@es1"},
		{"upper-case alias", func(c *ElasticConfig) { c.Alias = "Videos" }, "alias:"},
		{"negative replicas", func(c *ElasticConfig) { c.Replicas = -1 }, "replicas: must be >= 0"},
		{"backoff max below initial", func(c *ElasticConfig) { c.BulkBackoffInitial = time.Second; c.BulkBackoffMax = time.Millisecond }, "bulk_backoff_max"},
		{"negative workers", func(c *ElasticConfig) { c.BulkWorkers = -2 }, "bulk_workers: must be >= 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultElasticConfig()
			cfg.URLs = []string{"http://127.0.0.1:9200"}
			tc.tune(&cfg)
			err := cfg.withDefaults().validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate = %v, want it to contain %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("validate leaks a password: %v", err)
			}
		})
	}
}

func TestPlanAlias(t *testing.T) {
	tests := []struct {
		name        string
		current     []string
		wantActions string // JSON of the _aliases actions; "" none
		wantNewer   string
	}{
		{"missing", nil, `[{"add":{"alias":"a","index":"a-v3"}}]`, ""},
		{"already ours", []string{"a-v3"}, "", ""},
		{"older version", []string{"a-v2"}, `[{"remove":{"alias":"a","index":"a-v2"}},{"add":{"alias":"a","index":"a-v3"}}]`, ""},
		{"ours and a stray", []string{"a-v3", "manual"}, `[{"remove":{"alias":"a","index":"manual"}}]`, ""},
		{"newer version", []string{"a-v2", "a-v10"}, "", "a-v10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := planAlias("a", "a-v3", tc.current)
			if plan.newerOwner != tc.wantNewer {
				t.Errorf("newerOwner = %q, want %q", plan.newerOwner, tc.wantNewer)
			}
			if tc.wantActions == "" {
				if len(plan.actions) != 0 {
					t.Errorf("got %d actions, want none", len(plan.actions))
				}
				return
			}
			var srcs []any
			for _, a := range plan.actions {
				src, err := a.Source()
				if err != nil {
					t.Fatal(err)
				}
				srcs = append(srcs, src)
			}
			got := mustJSONValue(srcs)
			if msg := diffJSON(got, []byte(tc.wantActions)); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestElasticSearch(t *testing.T) {
	for _, tc := range elasticQueryCases() {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeES(t, readyClusterSetup()...)
			e := newTestElastic(t, fake, nil)
			fake.expect(esExchange{method: "POST", path: "/" + testIndex + "/_search", golden: tc.golden,
				status: 200, response: esSearchHits(testIndex, "v3", "v1", "v2")})
			ids, err := e.Search(context.Background(), tc.query)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if want := []string{"v3", "v1", "v2"}; !slices.Equal(ids, want) {
				t.Fatalf("ids = %v, want %v", ids, want)
			}
		})
	}
}

func TestElasticSearchNoLimitSkipsCluster(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, nil)
	ids, err := e.Search(context.Background(), Query{Tags: []string{"cats"}})
	if err != nil || ids != nil {
		t.Fatalf("Search with Limit 0 = %v, %v; want nil, nil", ids, err)
	}
}

func TestElasticSearchFailures(t *testing.T) {
	tests := []struct {
		name     string
		exchange esExchange
		ctxLimit time.Duration
		wantErr  string
	}{
		{"429 rejected", esExchange{status: 429, response: esError("es_rejected_execution_exception",
			"rejected execution of org.elasticsearch.common.util.concurrent.TimedRunnable on QueueResizingEsThreadPoolExecutor", 429)},
			0, "es_rejected_execution_exception"},
		{"503 all shards failed", esExchange{status: 503, response: `{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,"failed_shards":[]},"status":503}`},
			0, "all shards failed"},
		{"500 without a body", esExchange{status: 500}, 0, "Error 500"},
		{"slow cluster", esExchange{status: 200, response: esSearchHits(testIndex, "v1"), delay: 10 * time.Second},
			100 * time.Millisecond, "context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeES(t, readyClusterSetup()...)
			e := newTestElastic(t, fake, nil)
			ex := tc.exchange
			ex.method, ex.path = "POST", "/"+testIndex+"/_search"
			fake.expect(ex)
			ctx := context.Background()
			if tc.ctxLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxLimit)
				defer cancel()
			}
			start := time.Now()
			_, err := e.Search(ctx, Query{Tags: []string{"cats"}, Limit: 10})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Search error = %v, want it to contain %q", err, tc.wantErr)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("Search took %v", took)
			}
			if got := metricValue(t, e.metrics.searches.WithLabelValues("error")); got != 1 {
				t.Fatalf("searches{outcome=error} = %v, want 1", got)
			}
		})
	}
}

func TestElasticSearchTimeoutWithoutDeadline(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, func(c *ElasticConfig) { c.Timeout = 150 * time.Millisecond })
	fake.expect(esExchange{method: "POST", path: "/" + testIndex + "/_search", status: 200,
		response: esSearchHits(testIndex, "v1"), delay: 10 * time.Second})
	start := time.Now()
	_, err := e.Search(context.Background(), Query{Limit: 5})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Search error = %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Search took %v; the configured timeout is 150ms", took)
	}
}

func testVideo(id string, quality float64) *Video {
	return &Video{
		ID: id, UploaderID: "u1", Title: "title " + id, Tags: []string{"cats"}, Category: "pets",
		DurationMs: 1000, PublishedAt: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), Kind: KindVideo, Quality: quality,
	}
}

func bulkIndexLines(v *Video, meta string) string {
	return meta + "\n" + string(mustJSONValue(newElasticDoc(v))) + "\n"
}

func TestElasticBulkItemErrors(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, nil)
	ctx := context.Background()
	good, bad := testVideo("v1", 0.5), testVideo("v2", 0.6)
	body := bulkIndexLines(good, `{"index":{"_index":"reelfeed-videos-v1","_id":"v1"}}`) +
		bulkIndexLines(bad, `{"index":{"_index":"reelfeed-videos-v1","_id":"v2"}}`) +
		`{"delete":{"_index":"reelfeed-videos-v1","_id":"gone"}}` + "\n"
	fake.expect(esExchange{method: "POST", path: "/_bulk", body: body, status: 200, response: esBulkResponse(
		esBulkItem("index", testIndex, "v1", 201),
		esBulkItem("index", testIndex, "v2", 400),
		esBulkItem("delete", testIndex, "gone", 404),
	)})

	for _, err := range []error{e.Upsert(ctx, good), e.Upsert(ctx, bad), e.Delete(ctx, "gone")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	err := e.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "mapper_parsing_exception") {
		t.Fatalf("Flush error = %v, want the item's mapper_parsing_exception", err)
	}
	wantItems(t, e, map[string]float64{"ok": 1, "failed": 1, "not_found": 1})
	if got := metricValue(t, e.metrics.bulkCommits.WithLabelValues("ok")); got != 1 {
		t.Fatalf("commits{ok} = %v, want 1 (item errors are not commit errors)", got)
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatalf("second Flush with nothing new = %v, want nil", err)
	}
}

func TestElasticBulkRetries(t *testing.T) {
	v1, v2 := testVideo("v1", 0.5), testVideo("v2", 0.6)
	both := bulkIndexLines(v1, `{"index":{"_index":"reelfeed-videos-v1","_id":"v1"}}`) +
		bulkIndexLines(v2, `{"index":{"_index":"reelfeed-videos-v1","_id":"v2"}}`)
	onlyV2 := bulkIndexLines(v2, `{"index":{"_index":"reelfeed-videos-v1","_id":"v2"}}`)
	bothOK := esBulkResponse(esBulkItem("index", testIndex, "v1", 201), esBulkItem("index", testIndex, "v2", 201))
	rejected429 := esError("es_rejected_execution_exception", "rejected execution of coordinating operation", 429)

	tests := []struct {
		name      string
		exchanges []esExchange
		wantItems map[string]float64
	}{
		{
			name: "item rejected with 429 is re-sent alone",
			exchanges: []esExchange{
				{method: "POST", path: "/_bulk", body: both, status: 200, response: esBulkResponse(
					esBulkItem("index", testIndex, "v1", 201), esBulkItem("index", testIndex, "v2", 429))},
				{method: "POST", path: "/_bulk", body: onlyV2, status: 200, response: esBulkResponse(
					esBulkItem("index", testIndex, "v2", 201))},
			},
			wantItems: map[string]float64{"ok": 2, "rejected": 1},
		},
		{
			name: "whole request rejected with 429 twice, then accepted",
			exchanges: []esExchange{
				{method: "POST", path: "/_bulk", body: both, status: 429, response: rejected429},
				{method: "POST", path: "/_bulk", body: both, status: 429, response: rejected429},
				{method: "POST", path: "/_bulk", body: both, status: 200, response: bothOK},
			},
			wantItems: map[string]float64{"ok": 2},
		},
		{
			name: "503 then accepted",
			exchanges: []esExchange{
				{method: "POST", path: "/_bulk", body: both, status: 503, response: esError("cluster_block_exception",
					"blocked by: [SERVICE_UNAVAILABLE/2/no master];", 503)},
				{method: "POST", path: "/_bulk", body: both, status: 200, response: bothOK},
			},
			wantItems: map[string]float64{"ok": 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeES(t, readyClusterSetup()...)
			e := newTestElastic(t, fake, nil)
			fake.expect(tc.exchanges...)
			ctx := context.Background()
			if err := e.Upsert(ctx, v1); err != nil {
				t.Fatal(err)
			}
			if err := e.Upsert(ctx, v2); err != nil {
				t.Fatal(err)
			}
			if err := e.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			wantItems(t, e, tc.wantItems)
			if got := metricValue(t, e.metrics.bulkCommits.WithLabelValues("error")); got != 0 {
				t.Fatalf("commits{error} = %v, want 0", got)
			}
		})
	}
}

func TestElasticBulkGivesUpAndKeepsActions(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, func(c *ElasticConfig) {
		c.BulkBackoffInitial = time.Millisecond
		c.BulkBackoffMax = 3 * time.Millisecond // one retry, then give up
	})
	v1 := testVideo("v1", 0.5)
	body := bulkIndexLines(v1, `{"index":{"_index":"reelfeed-videos-v1","_id":"v1"}}`)
	unavailable := esError("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];", 503)
	var attempts []esExchange
	for range 8 { // enough for any jitter of the backoff
		attempts = append(attempts, esExchange{method: "POST", path: "/_bulk", body: body, status: 503, response: unavailable})
	}
	fake.expect(attempts...)
	ctx := context.Background()
	if err := e.Upsert(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctx); err == nil || !strings.Contains(err.Error(), "SERVICE_UNAVAILABLE") {
		t.Fatalf("Flush error = %v, want the 503", err)
	}
	if got := metricValue(t, e.metrics.bulkCommits.WithLabelValues("error")); got != 1 {
		t.Fatalf("commits{error} = %v, want 1", got)
	}

	// The cluster recovers: the buffered action goes out with the next commit.
	fake.mu.Lock()
	fake.script = fake.script[:fake.next]
	fake.mu.Unlock()
	fake.expect(esExchange{method: "POST", path: "/_bulk", body: body, status: 200,
		response: esBulkResponse(esBulkItem("index", testIndex, "v1", 201))})
	if err := e.Flush(ctx); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	wantItems(t, e, map[string]float64{"ok": 1})
}

func TestElasticBulkVersioned(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, nil)
	v := testVideo("v1", 0.5)
	body := bulkIndexLines(v, `{"index":{"_index":"reelfeed-videos-v1","_id":"v1","version":7,"version_type":"external_gte"}}`) +
		`{"delete":{"_index":"reelfeed-videos-v1","_id":"v9","version":3,"version_type":"external_gte"}}` + "\n"
	fake.expect(esExchange{method: "POST", path: "/_bulk", body: body, status: 200, response: esBulkResponse(
		esBulkItem("index", testIndex, "v1", 201),
		esBulkItem("delete", testIndex, "v9", 409),
	)})
	ctx := context.Background()
	if err := e.UpsertVersion(ctx, v, 7); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVersion(ctx, "v9", 3); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatalf("Flush = %v; a stale versioned write is not a failure", err)
	}
	wantItems(t, e, map[string]float64{"ok": 1, "conflict": 1})

	if err := e.UpsertVersion(ctx, v, 0); err == nil {
		t.Error("UpsertVersion accepted version 0")
	}
	if err := e.DeleteVersion(ctx, "v1", -1); err == nil {
		t.Error("DeleteVersion accepted version -1")
	}
	if err := e.Upsert(ctx, &Video{}); err == nil {
		t.Error("Upsert accepted a video without id")
	}
}

// Several bulk processors commit concurrently; each video must still see
// its actions in call order.
func TestElasticShardsKeepPerVideoOrder(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	var mu sync.Mutex
	var seen [][2]string
	fake.setBulkHandler(func(body []byte) (int, string) {
		actions := bulkActions(t, body)
		mu.Lock()
		seen = append(seen, actions...)
		mu.Unlock()
		return 200, esBulkAllOK(t, testIndex, body)
	})
	e := newTestElastic(t, fake, func(c *ElasticConfig) {
		c.BulkWorkers = 4
		c.BulkActions = 3
	})
	ctx := context.Background()
	const videos = 20
	for round := range 3 {
		for i := range videos {
			id := fmt.Sprintf("v%d", i)
			var err error
			if round == 1 {
				err = e.Delete(ctx, id)
			} else {
				err = e.Upsert(ctx, testVideo(id, 0.5))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	perVideo := map[string][]string{}
	for _, a := range seen {
		perVideo[a[1]] = append(perVideo[a[1]], a[0])
	}
	if len(perVideo) != videos {
		t.Fatalf("saw %d videos, want %d", len(perVideo), videos)
	}
	for id, actions := range perVideo {
		if want := []string{"index", "delete", "index"}; !slices.Equal(actions, want) {
			t.Errorf("%s: actions %v, want %v", id, actions, want)
		}
	}
	wantItems(t, e, map[string]float64{"ok": 3 * videos})
}

// While the cluster stalls, the queue fills and Upsert returns when its
// context ends instead of blocking the catalog consumer for good.
func TestElasticUpsertHonoursContextWhenQueueFull(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	fake.setBulkHandler(func(body []byte) (int, string) {
		<-release
		return 200, esBulkAllOK(t, testIndex, body)
	})
	e := newTestElastic(t, fake, func(c *ElasticConfig) {
		c.BulkActions = 1
		c.QueueSize = 1
	})
	t.Cleanup(unblock) // runs before the Elastic's Close cleanup

	var queueErr error
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		queueErr = e.Upsert(ctx, testVideo(fmt.Sprintf("v%d", i), 0.5))
		cancel()
		if queueErr != nil {
			break
		}
	}
	if !errors.Is(queueErr, context.DeadlineExceeded) {
		t.Fatalf("Upsert into a full queue = %v, want deadline exceeded", queueErr)
	}
	if got := metricValue(t, e.metrics.queueTimeouts); got != 1 {
		t.Fatalf("queue timeouts = %v, want 1", got)
	}
	unblock()
}

func TestElasticCloseFlushesAndRejectsLaterCalls(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, nil)
	v := testVideo("v1", 0.5)
	fake.expect(esExchange{method: "POST", path: "/_bulk",
		body:   bulkIndexLines(v, `{"index":{"_index":"reelfeed-videos-v1","_id":"v1"}}`),
		status: 200, response: esBulkResponse(esBulkItem("index", testIndex, "v1", 201))})
	ctx := context.Background()
	if err := e.Upsert(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if fake.pending() != 0 {
		t.Fatal("Close returned before the buffered upsert was sent")
	}
	if err := e.Upsert(ctx, v); !errors.Is(err, ErrElasticClosed) {
		t.Fatalf("Upsert after Close = %v, want ErrElasticClosed", err)
	}
	if err := e.Flush(ctx); !errors.Is(err, ErrElasticClosed) {
		t.Fatalf("Flush after Close = %v, want ErrElasticClosed", err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestElasticReady(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"green", 200, `{"cluster_name":"reelfeed","status":"green","timed_out":false,"number_of_nodes":3,"number_of_data_nodes":3,"active_primary_shards":1,"active_shards":2,"relocating_shards":0,"initializing_shards":0,"unassigned_shards":0,"delayed_unassigned_shards":0,"number_of_pending_tasks":0,"number_of_in_flight_fetch":0,"task_max_waiting_in_queue_millis":0,"active_shards_percent_as_number":100.0}`, ""},
		{"yellow is serving", 200, `{"cluster_name":"reelfeed","status":"yellow","timed_out":false,"number_of_nodes":1,"number_of_data_nodes":1,"active_primary_shards":1,"active_shards":1,"relocating_shards":0,"initializing_shards":0,"unassigned_shards":1,"delayed_unassigned_shards":0,"number_of_pending_tasks":0,"number_of_in_flight_fetch":0,"task_max_waiting_in_queue_millis":0,"active_shards_percent_as_number":50.0}`, ""},
		{"red", 200, `{"cluster_name":"reelfeed","status":"red","timed_out":false,"number_of_nodes":1,"number_of_data_nodes":1,"active_primary_shards":0,"active_shards":0,"relocating_shards":0,"initializing_shards":0,"unassigned_shards":2,"delayed_unassigned_shards":0,"number_of_pending_tasks":0,"number_of_in_flight_fetch":0,"task_max_waiting_in_queue_millis":0,"active_shards_percent_as_number":0.0}`, "status red"},
		{"unavailable", 503, esError("master_not_discovered_exception", "no master node", 503), "no master node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeES(t, readyClusterSetup()...)
			e := newTestElastic(t, fake, nil)
			fake.expect(esExchange{method: "GET", path: "/_cluster/health/" + testIndex, status: tc.status, response: tc.body})
			err := e.Ready(context.Background())
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Ready = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestElasticCollector(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	e := newTestElastic(t, fake, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(e); err != nil {
		t.Fatalf("Register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range families {
		n += len(mf.GetMetric())
	}
	// 5 item results, 2 commit outcomes, 2 search outcomes, histogram, timeouts, queue length.
	if n != 12 {
		t.Fatalf("gathered %d series, want 12", n)
	}
}

func TestBulkItemResult(t *testing.T) {
	tests := []struct {
		action string
		status int
		want   string
	}{
		{"index", 201, "ok"},
		{"index", 200, "ok"},
		{"delete", 200, "ok"},
		{"delete", 404, "not_found"},
		{"index", 404, "failed"}, // index_not_found: the index was deleted
		{"index", 409, "conflict"},
		{"index", 429, "rejected"},
		{"index", 503, "rejected"},
		{"index", 400, "failed"},
		{"index", 403, "failed"}, // cluster_block_exception: read-only index
	}
	for _, tc := range tests {
		if got := bulkItemResult(tc.action, tc.status); got != tc.want {
			t.Errorf("bulkItemResult(%s, %d) = %s, want %s", tc.action, tc.status, got, tc.want)
		}
	}
}

func wantItems(t *testing.T, e *Elastic, want map[string]float64) {
	t.Helper()
	for _, result := range []string{"ok", "not_found", "conflict", "rejected", "failed"} {
		if got := metricValue(t, e.metrics.bulkItems.WithLabelValues(result)); got != want[result] {
			t.Errorf("bulk items{result=%s} = %v, want %v", result, got, want[result])
		}
	}
}

// metricValue reads a counter or gauge without the testutil package, whose
// dependencies this module does not carry.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s is neither counter nor gauge", c.Desc())
	return 0
}
