package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrElasticClosed is returned by calls made after Elastic.Close.
var ErrElasticClosed = errors.New("elasticsearch catalog index is closed")

// ElasticConfig configures the Elasticsearch catalog index. Zero fields take
// the value from DefaultElasticConfig, except Replicas: 0 replicas is a valid
// choice for a single-node cluster.
type ElasticConfig struct {
	URLs     []string // cluster nodes, e.g. http://es1:9200; required
	Username string   // HTTP basic auth; empty: none (or userinfo in the URL)
	Password string

	// Alias is the name readers outside reelfeed use; the concrete index is
	// Alias + "-v" + mapping version.
	Alias    string
	Shards   int
	Replicas int

	BulkActions        int           // commit a bulk after this many actions
	BulkSize           int           // ... or after this many bytes
	BulkFlushInterval  time.Duration // ... or after this long
	BulkWorkers        int           // parallel bulk processors; a video always goes to the same one
	BulkBackoffInitial time.Duration // first wait before retrying a failed or rejected (429) bulk
	BulkBackoffMax     time.Duration // retries stop once the next wait would exceed this
	QueueSize          int           // actions buffered before Upsert/Delete block on their context

	// Timeout bounds each setup request, health check and search whose
	// context has no earlier deadline.
	Timeout             time.Duration
	Sniff               bool          // discover nodes via the nodes-info API; off behind load balancers
	HealthcheckInterval time.Duration // negative: no periodic health checks
}

// DefaultElasticConfig returns the defaults documented in docs/elasticsearch.md.
func DefaultElasticConfig() ElasticConfig {
	return ElasticConfig{
		Alias:               "reelfeed-videos",
		Shards:              1,
		Replicas:            1,
		BulkActions:         1000,
		BulkSize:            5 << 20,
		BulkFlushInterval:   time.Second,
		BulkWorkers:         2,
		BulkBackoffInitial:  200 * time.Millisecond,
		BulkBackoffMax:      10 * time.Second,
		QueueSize:           10000,
		Timeout:             2 * time.Second,
		HealthcheckInterval: 10 * time.Second,
	}
}

func (c ElasticConfig) withDefaults() ElasticConfig {
	d := DefaultElasticConfig()
	if c.Alias == "" {
		c.Alias = d.Alias
	}
	if c.Shards == 0 {
		c.Shards = d.Shards
	}
	if c.BulkActions == 0 {
		c.BulkActions = d.BulkActions
	}
	if c.BulkSize == 0 {
		c.BulkSize = d.BulkSize
	}
	if c.BulkFlushInterval == 0 {
		c.BulkFlushInterval = d.BulkFlushInterval
	}
	if c.BulkWorkers == 0 {
		c.BulkWorkers = d.BulkWorkers
	}
	if c.BulkBackoffInitial == 0 {
		c.BulkBackoffInitial = d.BulkBackoffInitial
	}
	if c.BulkBackoffMax == 0 {
		c.BulkBackoffMax = d.BulkBackoffMax
	}
	if c.QueueSize == 0 {
		c.QueueSize = d.QueueSize
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.HealthcheckInterval == 0 {
		c.HealthcheckInterval = d.HealthcheckInterval
	}
	return c
}

// elasticIndexName follows Elasticsearch's index naming rules, kept
// conservative: lower case, no characters that need escaping in a URL path.
var elasticIndexName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,200}$`)

func (c ElasticConfig) validate() error {
	var problems []string
	if len(c.URLs) == 0 {
		problems = append(problems, "urls: at least one URL is required")
	}
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("urls: %q is not an http(s) URL", redactURL(raw)))
		}
	}
	if !elasticIndexName.MatchString(c.Alias) {
		problems = append(problems, fmt.Sprintf("alias: %q must be lower case letters, digits, '.', '_' or '-'", c.Alias))
	}
	if c.Shards < 1 {
		problems = append(problems, "shards: must be >= 1")
	}
	if c.Replicas < 0 {
		problems = append(problems, "replicas: must be >= 0")
	}
	for name, v := range map[string]int{"bulk_actions": c.BulkActions, "bulk_size": c.BulkSize, "bulk_workers": c.BulkWorkers, "queue_size": c.QueueSize} {
		if v < 1 {
			problems = append(problems, name+": must be >= 1")
		}
	}
	for name, v := range map[string]time.Duration{"bulk_flush_interval": c.BulkFlushInterval, "bulk_backoff_initial": c.BulkBackoffInitial, "timeout": c.Timeout} {
		if v <= 0 {
			problems = append(problems, name+": must be > 0")
		}
	}
	if c.BulkBackoffMax <= c.BulkBackoffInitial {
		problems = append(problems, "bulk_backoff_max: must be greater than bulk_backoff_initial")
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("elasticsearch config: %s", strings.Join(problems, "; "))
}

// Elastic is the catalog index in Elasticsearch: a Retriever for the recall
// branches and a bulk indexer fed by the catalog stream. It reads and writes
// the concrete index of its own mapping version, so replicas of different
// versions can run side by side during a rollout; the alias tracks the
// newest version for everyone else. It is safe for concurrent use.
type Elastic struct {
	cfg    ElasticConfig
	index  string
	client *elastic.Client
	logger *zap.Logger

	seed   maphash.Seed
	shards []*bulkShard

	// mu guards closed and the queues' open state: senders hold it shared
	// while sending so Close never closes a queue under them.
	mu         sync.RWMutex
	closed     bool
	closing    chan struct{} // closed first, to wake senders blocked on a full queue
	closeOnce  sync.Once
	closeDone  chan struct{}
	closeErr   error
	forwarders sync.WaitGroup
	cancelBulk context.CancelFunc

	failures    atomic.Int64 // bulk commit errors plus items that failed for good
	lastFailure atomic.Pointer[string]
	commitLogs  logLimiter
	itemLogs    logLimiter

	metrics elasticMetrics
}

// NewElastic connects to the cluster, creates the versioned index with its
// mapping if missing, points the alias at it and starts the bulk indexer.
// Several replicas may call it at once.
func NewElastic(ctx context.Context, cfg ElasticConfig, logger *zap.Logger) (*Elastic, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	e := &Elastic{
		cfg:        cfg,
		index:      cfg.Alias + "-v" + strconv.Itoa(elasticMappingVersion),
		logger:     logger.Named("elasticsearch"),
		seed:       maphash.MakeSeed(),
		closing:    make(chan struct{}),
		closeDone:  make(chan struct{}),
		commitLogs: newLogLimiter(10 * time.Second),
		itemLogs:   newLogLimiter(10 * time.Second),
	}
	e.metrics = newElasticMetrics(e.queued)

	client, err := elastic.DialContext(ctx, e.clientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch %s: %w", redactURLs(cfg.URLs), err)
	}
	e.client = client
	if err := e.ensureIndex(ctx); err != nil {
		client.Stop()
		return nil, err
	}
	if err := e.ensureAlias(ctx); err != nil {
		client.Stop()
		return nil, err
	}
	if err := e.startBulk(ctx); err != nil {
		client.Stop()
		return nil, err
	}
	e.logger.Info("elasticsearch catalog index ready",
		zap.Strings("urls", redactURLList(cfg.URLs)), zap.String("index", e.index), zap.String("alias", cfg.Alias))
	return e, nil
}

func (e *Elastic) clientOptions() []elastic.ClientOptionFunc {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Recall fans out several searches per feed request; the default of 2
	// idle connections per host would make most of them dial anew.
	transport.MaxIdleConnsPerHost = 64
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(e.cfg.URLs...),
		elastic.SetHttpClient(&http.Client{Transport: transport}),
		elastic.SetSniff(e.cfg.Sniff),
		elastic.SetSnifferTimeoutStartup(e.cfg.Timeout),
		elastic.SetSnifferTimeout(e.cfg.Timeout),
		elastic.SetHealthcheck(e.cfg.HealthcheckInterval > 0),
		elastic.SetHealthcheckTimeoutStartup(e.cfg.Timeout),
		elastic.SetHealthcheckTimeout(e.cfg.Timeout),
		// The client logs every failed attempt; the summaries worth an
		// operator's attention are logged, rate-limited, by Elastic itself.
		elastic.SetErrorLog(zapPrintf{e.logger.Sugar()}),
		elastic.SetDecoder(bulkObservingDecoder{inner: &elastic.DefaultDecoder{}, observe: e.observeBulk}),
	}
	if e.cfg.HealthcheckInterval > 0 {
		opts = append(opts, elastic.SetHealthcheckInterval(e.cfg.HealthcheckInterval))
	}
	if e.cfg.Username != "" || e.cfg.Password != "" {
		opts = append(opts, elastic.SetBasicAuth(e.cfg.Username, e.cfg.Password))
	}
	return opts
}

// Name identifies the Elasticsearch index in metrics and debug output.
func (e *Elastic) Name() string { return "elasticsearch" }

// Index is the concrete, versioned index this binary reads and writes.
func (e *Elastic) Index() string { return e.index }

// Alias is the alias pointed at the newest mapping version's index.
func (e *Elastic) Alias() string { return e.cfg.Alias }

// withTimeout bounds a request by cfg.Timeout unless ctx ends sooner.
func (e *Elastic) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= e.cfg.Timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.cfg.Timeout)
}

// Search implements Retriever: the ids of the best matches for q in q.Sort
// order, at most q.Limit (and at most 10000, the default result window).
func (e *Elastic) Search(ctx context.Context, q Query) ([]string, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	start := time.Now()
	res, err := e.client.Search(e.index).SearchSource(elasticSearchSource(q)).Do(ctx)
	e.metrics.searchSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		e.metrics.searches.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("elasticsearch search %s: %w", e.index, err)
	}
	e.metrics.searches.WithLabelValues("ok").Inc()
	if res.Hits == nil {
		return nil, nil
	}
	ids := make([]string, 0, len(res.Hits.Hits))
	for _, hit := range res.Hits.Hits {
		ids = append(ids, hit.Id)
	}
	return ids, nil
}

// Ready reports whether the cluster can serve the index (health yellow or
// green), for /readyz.
func (e *Elastic) Ready(ctx context.Context) error {
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	health, err := e.client.ClusterHealth().Index(e.index).Do(ctx)
	if err != nil {
		return fmt.Errorf("elasticsearch health %s: %w", e.index, err)
	}
	if health.Status == "red" {
		return fmt.Errorf("elasticsearch health %s: status red (a primary shard is unassigned)", e.index)
	}
	return nil
}

// ensureIndex creates the versioned index with its mapping. When the index
// already exists — created earlier, or a moment ago by another replica that
// won the race — its mapping is checked instead, so a hand-made or
// auto-created index with the wrong field types fails startup rather than
// every query.
func (e *Elastic) ensureIndex(ctx context.Context) error {
	rctx, cancel := e.withTimeout(ctx)
	defer cancel()
	exists, err := e.client.IndexExists(e.index).Do(rctx)
	if err != nil {
		return fmt.Errorf("elasticsearch: checking index %s: %w", e.index, err)
	}
	if !exists {
		res, err := e.client.CreateIndex(e.index).BodyJson(elasticIndexBody(e.cfg.Shards, e.cfg.Replicas)).Do(rctx)
		switch {
		case err == nil:
			if !res.Acknowledged {
				// The master created the index but not every node confirmed
				// within the request timeout; shards still allocate.
				e.logger.Warn("elasticsearch index creation not yet acknowledged by all nodes", zap.String("index", e.index))
			}
			e.logger.Info("elasticsearch index created", zap.String("index", e.index),
				zap.Int("shards", e.cfg.Shards), zap.Int("replicas", e.cfg.Replicas))
			return nil
		case elasticErrorType(err) == "resource_already_exists_exception":
			e.logger.Info("elasticsearch index created concurrently by another replica", zap.String("index", e.index))
		default:
			return fmt.Errorf("elasticsearch: creating index %s: %w", e.index, err)
		}
	}
	return e.verifyMapping(ctx)
}

func (e *Elastic) verifyMapping(ctx context.Context) error {
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	// Typeless GET /{index}/_mapping: the client's GetMapping service asks
	// for /{index}/_mapping/_all, a typed endpoint ES 7 deprecates.
	res, err := e.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "GET", Path: "/" + e.index + "/_mapping"})
	if err != nil {
		return fmt.Errorf("elasticsearch: reading mapping of %s: %w", e.index, err)
	}
	var byIndex map[string]any
	if err := json.Unmarshal(res.Body, &byIndex); err != nil {
		return fmt.Errorf("elasticsearch: decoding mapping of %s: %w", e.index, err)
	}
	if problems := mappingProblems(byIndex[e.index], elasticFieldTypes()); len(problems) > 0 {
		return fmt.Errorf("elasticsearch: index %s exists with an incompatible mapping (%s); delete it or change elasticsearch.alias",
			e.index, strings.Join(problems, "; "))
	}
	return nil
}

// mappingProblems compares a GET _mapping entry ({"mappings": {"properties":
// ...}}) with the wanted field types.
func mappingProblems(indexMapping any, want map[string]string) []string {
	props := map[string]any{}
	if m, ok := indexMapping.(map[string]any); ok {
		if mappings, ok := m["mappings"].(map[string]any); ok {
			if p, ok := mappings["properties"].(map[string]any); ok {
				props = p
			}
		}
	}
	var problems []string
	for field, wantType := range want {
		got := ""
		if p, ok := props[field].(map[string]any); ok {
			got, _ = p["type"].(string)
		}
		switch {
		case got == "":
			problems = append(problems, fmt.Sprintf("%s missing, want %s", field, wantType))
		case got != wantType:
			problems = append(problems, fmt.Sprintf("%s is %s, want %s", field, got, wantType))
		}
	}
	slices.Sort(problems)
	return problems
}

// ensureAlias points the alias at this binary's index unless a newer mapping
// version already owns it. The move is one atomic _aliases call; when
// another replica changes the alias between our read and our write, the
// call fails with 404 and the decision is made again from fresh state.
func (e *Elastic) ensureAlias(ctx context.Context) error {
	const attempts = 3
	var lastErr error
	for range attempts {
		current, err := e.aliasTargets(ctx)
		if err != nil {
			return err
		}
		plan := planAlias(e.cfg.Alias, e.index, current)
		if plan.newerOwner != "" {
			e.logger.Info("elasticsearch alias already points at a newer mapping version; leaving it",
				zap.String("alias", e.cfg.Alias), zap.String("owner", plan.newerOwner), zap.String("index", e.index))
			return nil
		}
		if len(plan.actions) == 0 {
			return nil
		}
		rctx, cancel := e.withTimeout(ctx)
		_, err = e.client.Alias().Action(plan.actions...).Do(rctx)
		cancel()
		if err == nil {
			e.logger.Info("elasticsearch alias pointed at index",
				zap.String("alias", e.cfg.Alias), zap.String("index", e.index), zap.Strings("previous", plan.removed))
			return nil
		}
		if !elastic.IsNotFound(err) {
			return fmt.Errorf("elasticsearch: pointing alias %s at %s: %w", e.cfg.Alias, e.index, err)
		}
		lastErr = err
	}
	return fmt.Errorf("elasticsearch: alias %s kept changing while pointing it at %s: %w", e.cfg.Alias, e.index, lastErr)
}

// aliasTargets lists the indices the alias points at (none: nil).
func (e *Elastic) aliasTargets(ctx context.Context) ([]string, error) {
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	res, err := e.client.Aliases().Alias(e.cfg.Alias).Do(ctx)
	if elastic.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: reading alias %s: %w", e.cfg.Alias, err)
	}
	indices := res.IndicesByAlias(e.cfg.Alias)
	slices.Sort(indices)
	return indices, nil
}

type aliasPlan struct {
	actions    []elastic.AliasAction
	removed    []string
	newerOwner string // an index of a newer mapping version holds the alias
}

func planAlias(alias, index string, current []string) aliasPlan {
	ours := elasticIndexVersion(alias, index)
	var others []string
	pointsAtUs := false
	for _, name := range current {
		if name == index {
			pointsAtUs = true
			continue
		}
		if v := elasticIndexVersion(alias, name); v > ours {
			return aliasPlan{newerOwner: name}
		}
		others = append(others, name)
	}
	if pointsAtUs && len(others) == 0 {
		return aliasPlan{}
	}
	var actions []elastic.AliasAction
	if len(others) > 0 {
		actions = append(actions, elastic.NewAliasRemoveAction(alias).Index(others...))
	}
	if !pointsAtUs {
		actions = append(actions, elastic.NewAliasAddAction(alias).Index(index))
	}
	return aliasPlan{actions: actions, removed: others}
}

// elasticIndexVersion parses the mapping version from "<alias>-v<N>";
// anything else is version 0, older than every versioned index.
func elasticIndexVersion(alias, index string) int {
	rest, ok := strings.CutPrefix(index, alias+"-v")
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(rest)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// Close flushes buffered actions and stops the indexer and the client's
// background checks. If ctx ends first, Close returns and actions still
// buffered are abandoned; replaying the catalog stream restores them.
func (e *Elastic) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		close(e.closing)
		e.mu.Lock()
		e.closed = true
		for _, s := range e.shards {
			close(s.queue)
		}
		e.mu.Unlock()
		go func() {
			defer close(e.closeDone)
			e.forwarders.Wait()
			var errs []error
			for _, s := range e.shards {
				if err := s.proc.Close(); err != nil {
					errs = append(errs, err)
				}
			}
			e.cancelBulk()
			e.client.Stop()
			e.closeErr = errors.Join(errs...)
		}()
	})
	select {
	case <-e.closeDone:
		return e.closeErr
	case <-ctx.Done():
		e.cancelBulk()
		return fmt.Errorf("elasticsearch: close: %w; buffered catalog actions were abandoned", ctx.Err())
	}
}

// shardFor keeps every action on one video in one bulk processor, so an
// upsert and a later delete are committed in the order they were made.
func (e *Elastic) shardFor(id string) *bulkShard {
	return e.shards[maphash.String(e.seed, id)%uint64(len(e.shards))]
}

func elasticErrorType(err error) string {
	var ee *elastic.Error
	if errors.As(err, &ee) && ee.Details != nil {
		return ee.Details.Type
	}
	return ""
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

func redactURLList(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}

func redactURLs(urls []string) string { return strings.Join(redactURLList(urls), ",") }

// zapPrintf adapts the client's Printf logger to zap at debug level.
type zapPrintf struct{ log *zap.SugaredLogger }

func (z zapPrintf) Printf(format string, v ...any) { z.log.Debugf(format, v...) }

// elasticMetrics are created per Elastic and exposed through its Collector
// methods, so nothing is registered globally.
type elasticMetrics struct {
	bulkItems     *prometheus.CounterVec
	bulkCommits   *prometheus.CounterVec
	searches      *prometheus.CounterVec
	searchSeconds prometheus.Histogram
	queueTimeouts prometheus.Counter
	queued        prometheus.GaugeFunc
}

func newElasticMetrics(queued func() float64) elasticMetrics {
	m := elasticMetrics{
		bulkItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfeed_elasticsearch_bulk_items_total",
			Help: "Bulk actions by outcome: ok, not_found (delete of a missing video), conflict (stale versioned write skipped), rejected (retried by the bulk processor), failed.",
		}, []string{"result"}),
		bulkCommits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfeed_elasticsearch_bulk_commits_total",
			Help: "Bulk requests after retries, by outcome; on error the actions stay buffered for the next commit.",
		}, []string{"outcome"}),
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfeed_elasticsearch_searches_total",
			Help: "Catalog searches by outcome.",
		}, []string{"outcome"}),
		searchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "reelfeed_elasticsearch_search_seconds",
			Help:    "Catalog search latency, including failures.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		queueTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfeed_elasticsearch_queue_timeouts_total",
			Help: "Upserts and deletes whose context ended while the indexing queue was full.",
		}),
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfeed_elasticsearch_queue_length",
			Help: "Catalog actions waiting to be handed to a bulk processor.",
		}, queued),
	}
	for _, r := range []string{"ok", "not_found", "conflict", "rejected", "failed"} {
		m.bulkItems.WithLabelValues(r)
	}
	for _, o := range []string{"ok", "error"} {
		m.bulkCommits.WithLabelValues(o)
		m.searches.WithLabelValues(o)
	}
	return m
}

func (m *elasticMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.bulkItems, m.bulkCommits, m.searches, m.searchSeconds, m.queueTimeouts, m.queued}
}

// Describe implements prometheus.Collector; register the Elastic itself.
func (e *Elastic) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range e.metrics.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (e *Elastic) Collect(ch chan<- prometheus.Metric) {
	for _, c := range e.metrics.collectors() {
		c.Collect(ch)
	}
}
