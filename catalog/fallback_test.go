package catalog

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// scriptedRetriever answers with a fixed result after an optional delay,
// honouring ctx like a network client does.
type scriptedRetriever struct {
	name  string
	ids   []string
	err   error
	delay time.Duration
	calls atomic.Int64
}

func (r *scriptedRetriever) Name() string { return r.name }

func (r *scriptedRetriever) Search(ctx context.Context, _ Query) ([]string, error) {
	r.calls.Add(1)
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return r.ids, r.err
}

func newTestFallback(t *testing.T, primary, secondary Retriever, cfg FallbackConfig) (*Fallback, *prometheus.CounterVec, *observer.ObservedLogs) {
	t.Helper()
	counter := NewFallbackCounter()
	core, logs := observer.New(zapcore.InfoLevel)
	f, err := NewFallback(primary, secondary, cfg, counter, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	return f, counter, logs
}

func fallbackCount(t *testing.T, c *prometheus.CounterVec, reason string) float64 {
	t.Helper()
	return metricValue(t, c.WithLabelValues(reason))
}

func TestFallbackSearch(t *testing.T) {
	memory := func() *scriptedRetriever { return &scriptedRetriever{name: "memory", ids: []string{"m1", "m2"}} }
	tests := []struct {
		name       string
		primary    *scriptedRetriever
		ctxTimeout time.Duration
		wantIDs    []string
		wantFrom   string
		wantReason string // "" no fallback
	}{
		{"primary answers", &scriptedRetriever{name: "elasticsearch", ids: []string{"e1"}}, 0, []string{"e1"}, "elasticsearch", ""},
		{"primary answers empty: no fallback", &scriptedRetriever{name: "elasticsearch"}, 0, nil, "elasticsearch", ""},
		{"primary error", &scriptedRetriever{name: "elasticsearch", err: errors.New("elastic: Error 503")}, 0,
			[]string{"m1", "m2"}, "memory", FallbackReasonError},
		{"primary slower than the budget", &scriptedRetriever{name: "elasticsearch", ids: []string{"e1"}, delay: 5 * time.Second}, 0,
			[]string{"m1", "m2"}, "memory", FallbackReasonTimeout},
		{"caller deadline tighter than the budget", &scriptedRetriever{name: "elasticsearch", ids: []string{"e1"}, delay: 5 * time.Second}, 30 * time.Millisecond,
			[]string{"m1", "m2"}, "memory", FallbackReasonTimeout},
		{"caller deadline below the reserve: primary skipped", &scriptedRetriever{name: "elasticsearch", ids: []string{"e1"}}, time.Millisecond,
			[]string{"m1", "m2"}, "memory", FallbackReasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, counter, _ := newTestFallback(t, tc.primary, memory(), FallbackConfig{Budget: 50 * time.Millisecond, Reserve: 5 * time.Millisecond})
			ctx := context.Background()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			ids, from, err := f.SearchServedBy(ctx, Query{Limit: 10})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("Search took %v with a 50ms budget", took)
			}
			if !slices.Equal(ids, tc.wantIDs) || from != tc.wantFrom {
				t.Fatalf("got %v from %s, want %v from %s", ids, from, tc.wantIDs, tc.wantFrom)
			}
			for _, reason := range []string{FallbackReasonTimeout, FallbackReasonError, FallbackReasonBreakerOpen} {
				want := 0.0
				if reason == tc.wantReason {
					want = 1
				}
				if got := fallbackCount(t, counter, reason); got != want {
					t.Errorf("fallbacks{reason=%s} = %v, want %v", reason, got, want)
				}
			}
		})
	}
}

func TestFallbackCallerCancelledIsNotAFallback(t *testing.T) {
	primary := &scriptedRetriever{name: "elasticsearch", delay: 5 * time.Second}
	secondary := &scriptedRetriever{name: "memory", ids: []string{"m1"}}
	f, counter, _ := newTestFallback(t, primary, secondary, FallbackConfig{Budget: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := f.Search(ctx, Query{Limit: 10})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Search = %v, want context.Canceled", err)
	}
	if secondary.calls.Load() != 0 {
		t.Fatal("secondary asked for a caller that had gone away")
	}
	if got := fallbackCount(t, counter, FallbackReasonTimeout) + fallbackCount(t, counter, FallbackReasonError); got != 0 {
		t.Fatalf("counted %v fallbacks, want 0", got)
	}
}

func TestFallbackBreaker(t *testing.T) {
	primary := &scriptedRetriever{name: "elasticsearch", err: errors.New("connection refused")}
	secondary := &scriptedRetriever{name: "memory", ids: []string{"m1"}}
	f, counter, logs := newTestFallback(t, primary, secondary, FallbackConfig{
		Budget: 50 * time.Millisecond, BreakerFailures: 3, BreakerCooldown: 100 * time.Millisecond,
	})
	ctx := context.Background()
	search := func() string {
		t.Helper()
		_, from, err := f.SearchServedBy(ctx, Query{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		return from
	}
	for range 3 {
		search()
	}
	if got := primary.calls.Load(); got != 3 {
		t.Fatalf("primary calls = %d, want 3", got)
	}
	// Open: the primary is skipped.
	for range 5 {
		if from := search(); from != "memory" {
			t.Fatalf("served by %s while the breaker is open", from)
		}
	}
	if got := primary.calls.Load(); got != 3 {
		t.Fatalf("primary calls while open = %d, want still 3", got)
	}
	if got := fallbackCount(t, counter, FallbackReasonBreakerOpen); got != 5 {
		t.Fatalf("fallbacks{breaker_open} = %v, want 5", got)
	}

	// After the cool-down one probe fails: open again without waiting for
	// three more failures.
	time.Sleep(120 * time.Millisecond)
	search()
	search()
	if got := primary.calls.Load(); got != 4 {
		t.Fatalf("primary calls after a failed probe = %d, want 4", got)
	}

	// The primary recovers: the next probe closes the breaker.
	primary.err = nil
	primary.ids = []string{"e1"}
	time.Sleep(120 * time.Millisecond)
	if from := search(); from != "elasticsearch" {
		t.Fatalf("probe served by %s, want elasticsearch", from)
	}
	if from := search(); from != "elasticsearch" {
		t.Fatalf("served by %s after recovery, want elasticsearch", from)
	}
	if logs.FilterMessage("catalog primary index answering again").Len() != 1 {
		t.Error("no recovery log line")
	}
}

func TestFallbackBreakerDisabled(t *testing.T) {
	primary := &scriptedRetriever{name: "elasticsearch", err: errors.New("boom")}
	f, _, _ := newTestFallback(t, primary, &scriptedRetriever{name: "memory"}, FallbackConfig{BreakerFailures: -1})
	for range 20 {
		if _, err := f.Search(context.Background(), Query{Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := primary.calls.Load(); got != 20 {
		t.Fatalf("primary calls = %d, want 20 with the breaker disabled", got)
	}
}

func TestFallbackLogsAreRateLimited(t *testing.T) {
	primary := &scriptedRetriever{name: "elasticsearch", err: errors.New("boom")}
	f, counter, logs := newTestFallback(t, primary, &scriptedRetriever{name: "memory"},
		FallbackConfig{BreakerFailures: -1, LogInterval: time.Hour})
	for range 10 {
		if _, err := f.Search(context.Background(), Query{Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	lines := logs.FilterMessage("catalog query served by the secondary index").All()
	if len(lines) != 1 {
		t.Fatalf("%d fallback log lines, want 1 per interval", len(lines))
	}
	if got := lines[0].ContextMap()["reason"]; got != FallbackReasonError {
		t.Errorf("logged reason %v, want %s", got, FallbackReasonError)
	}
	if got := fallbackCount(t, counter, FallbackReasonError); got != 10 {
		t.Fatalf("fallbacks{error} = %v, want every one counted", got)
	}
}

func TestNewFallbackRejectsBadCounter(t *testing.T) {
	wrong := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"branch", "reason"})
	p, s := &scriptedRetriever{name: "elasticsearch"}, &scriptedRetriever{name: "memory"}
	if _, err := NewFallback(p, s, FallbackConfig{}, wrong, nil); err == nil {
		t.Error("NewFallback accepted a counter with the wrong labels")
	}
	if _, err := NewFallback(p, s, FallbackConfig{}, nil, nil); err == nil {
		t.Error("NewFallback accepted a nil counter")
	}
	if _, err := NewFallback(nil, s, FallbackConfig{}, NewFallbackCounter(), nil); err == nil {
		t.Error("NewFallback accepted a nil primary")
	}
}

// End to end: Elasticsearch (the fake) is slow, the memory catalog answers
// within the budget.
func TestFallbackSlowElasticsearchUsesMemoryCatalog(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	es := newTestElastic(t, fake, nil)
	fake.expect(esExchange{method: "POST", path: "/" + testIndex + "/_search", golden: "elastic_query_tags.json",
		status: 200, response: esSearchHits(testIndex, "from-es"), delay: 10 * time.Second})

	mem := New()
	for i, id := range []string{"a", "b", "c"} {
		v := testVideo(id, 0.9-float64(i)/10)
		v.Tags = []string{"cats"}
		mem.Upsert(v)
	}
	f, counter, logs := newTestFallback(t, es, mem, FallbackConfig{Budget: 80 * time.Millisecond})

	start := time.Now()
	ids, from, err := f.SearchServedBy(context.Background(), Query{Tags: []string{"cats", "dogs"}, Limit: 50})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if from != "memory" || !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Fatalf("got %v from %s, want [a b c] from memory", ids, from)
	}
	if took > time.Second {
		t.Fatalf("Search took %v with an 80ms budget", took)
	}
	if got := fallbackCount(t, counter, FallbackReasonTimeout); got != 1 {
		t.Fatalf("fallbacks{timeout} = %v, want 1", got)
	}
	if logs.FilterMessage("catalog query served by the secondary index").Len() != 1 {
		t.Error("fallback not logged")
	}
}

// End to end: Elasticsearch answers 5xx, the memory catalog answers.
func TestFallbackFailingElasticsearchUsesMemoryCatalog(t *testing.T) {
	fake := newFakeES(t, readyClusterSetup()...)
	es := newTestElastic(t, fake, nil)
	fake.expect(esExchange{method: "POST", path: "/" + testIndex + "/_search", status: 503,
		response: esError("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];", 503)})
	mem := New()
	mem.Upsert(testVideo("a", 0.5))
	f, counter, _ := newTestFallback(t, es, mem, FallbackConfig{})
	ids, from, err := f.SearchServedBy(context.Background(), Query{Tags: []string{"cats"}, Limit: 5})
	if err != nil || from != "memory" || !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("got %v from %s (err %v), want [a] from memory", ids, from, err)
	}
	if got := fallbackCount(t, counter, FallbackReasonError); got != 1 {
		t.Fatalf("fallbacks{error} = %v, want 1", got)
	}
}
