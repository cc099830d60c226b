// Package app wires reelfeed together: it is the one place that turns a
// config into running parts (bus, stores, catalog, consumers, feed, jobs,
// HTTP server) and shuts them down in order.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"reelfeed/api"
	"reelfeed/auth"
	"reelfeed/catalog"
	"reelfeed/config"
	"reelfeed/event"
	"reelfeed/feature"
	"reelfeed/feed"
	"reelfeed/ingest"
	"reelfeed/profile"
)

// Version is set at build time (-ldflags "-X reelfeed/app.Version=…").
var Version = "dev"

// App is a running reelfeed process.
type App struct {
	cfg *config.Config
	log *zap.Logger
	reg *prometheus.Registry

	authority *auth.Authority
	devSecret bool

	bus      *ingest.Bus
	redis    redis.UniversalClient
	catalog  *catalog.Catalog
	profiles profile.Store
	features feature.Store

	consumers   []*ingest.Consumer
	watcher     *ingest.CatalogWatcher
	impressions *ingest.ImpressionSink

	serving       servingParts
	ranking       rankingParts
	joinConsumers []*ingest.Consumer
	joinLive      atomic.Bool // the applier feeds the joiner (embedded mode)
	// extraJobs are admin-runnable jobs outside recall (train).
	extraJobs map[string]api.Job
	// logFeatures renders the ranking features logged with impressions.
	logFeatures feed.FeatureLogger

	handler  http.Handler
	httpSrv  *http.Server
	listener net.Listener

	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup
	closers  []func()
}

// New builds every part from cfg. Nothing listens until Start.
func New(ctx context.Context, cfg *config.Config, log *zap.Logger) (a *App, err error) {
	a = &App{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	// Scheduler latencies and GC pauses on top of the defaults: a feed's
	// tail latency is often time spent runnable, not running.
	a.reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.MetricsScheduler, collectors.MetricsGC)), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reelfeed_build_info", Help: "Build version."}, []string{"version"})
	buildInfo.WithLabelValues(Version).Set(1)
	a.reg.MustRegister(buildInfo)

	secret := cfg.Auth.Secret
	if secret == "" {
		secret = auth.RandomSecret()
		a.devSecret = true
	}
	a.authority = auth.New([]byte(secret))

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}

	a.bus, err = ingest.OpenBus(ctx, ingest.BusConfig{
		URL:             cfg.NATS.URL,
		EmbeddedListen:  cfg.NATS.Embedded.Listen,
		DataDir:         cfg.DataDir,
		StreamPrefix:    cfg.NATS.StreamPrefix,
		Replicas:        cfg.NATS.Replicas,
		DuplicateWindow: cfg.NATS.DuplicateWindow,
		EventsMaxAge:    cfg.NATS.EventsMaxAge,
		EventsMaxBytes:  cfg.NATS.EventsMaxBytes,
		PublishTimeout:  cfg.NATS.PublishTimeout,
		Name:            "reelfeed " + Version,
	}, log.Named("bus"))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.bus.Close)

	if err := a.openStores(); err != nil {
		return nil, err
	}
	a.catalog = catalog.New()
	a.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reelfeed_catalog_videos", Help: "Live videos in this replica's catalog."},
			func() float64 { return float64(a.catalog.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reelfeed_catalog_users", Help: "Users with declared attributes in this replica's catalog."},
			func() float64 { return float64(a.catalog.UserCount()) }),
	)
	if err := a.openElastic(ctx); err != nil {
		return nil, err
	}

	a.impressions = ingest.NewImpressionSink(a.bus, cfg.Ingest.ImpressionBuffer, log.Named("impressions"), a.impressionsDropped())
	if err := a.buildServing(); err != nil {
		return nil, err
	}

	handler := ingest.CatalogHandler{Catalog: a.catalog, Knobs: a.applyKnobs}
	if a.serving.elastic != nil {
		handler.Index = a.serving.elastic
	}
	a.watcher, err = a.bus.WatchCatalog(ctx, handler)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.watcher.Stop)

	applier := &ingest.Applier{
		Profiles:  a.profiles,
		Features:  a.features,
		Observers: []func([]event.Event){a.serving.spike.Observe, a.observeForJoin},
		Dropped: func(ev event.Event, why string) {
			log.Error("event in stream can never be applied; skipped", zap.String("event_id", ev.ID), zap.String("why", why))
		},
	}
	a.consumers, err = a.bus.StartEventConsumers(ctx, ingest.ConsumerConfig{
		Shared:  a.redis != nil,
		Batch:   cfg.Ingest.ConsumerBatch,
		AckWait: cfg.Ingest.AckWait,
		Linger:  cfg.Ingest.ConsumerWait,
	}, applier.Apply, a.consumerMetrics())
	if err != nil {
		return nil, err
	}

	a.handler = api.New(api.Deps{
		Log:            log.Named("http"),
		Registry:       a.reg,
		Auth:           a.authority,
		UserLimiter:    a.userLimiter(),
		ServiceLimiter: a.serviceLimiter(),
		Bus:            a.bus,
		Catalog:        a.catalog,
		Profiles:       a.profiles,
		Features:       a.features,
		Smoothing:      smoothing(cfg),
		Feed:           feedAdapter{a.serving.feed},
		Admin:          feed.AdminHandler(a.serving.knobs, a.publishKnobs),
		Jobs:           a.adminJobs(),
		Ready:          a.readyChecks(),
		EventLimits: ingest.EventLimits{
			MaxBatch:      cfg.Ingest.MaxBatch,
			MaxFutureSkew: cfg.Ingest.MaxFutureSkew,
			MaxPastAge:    cfg.Ingest.MaxPastAge,
		},
		RequestTimeout: cfg.HTTP.RequestTimeout,
		MaxBodyBytes:   cfg.HTTP.MaxBodyBytes,
		AccessLog:      cfg.Log.AccessLog,
		Pprof:          cfg.HTTP.Pprof,
		Backlog:        a.backlog,
		MaxBacklog:     uint64(max(cfg.Ingest.MaxLag, 0)),
	})
	return a, nil
}

func (a *App) openStores() error {
	cfg := a.cfg
	pcfg := profileConfig(cfg)
	fcfg := feature.Config{DedupeTTL: cfg.Feature.DedupeTTL, CacheTTL: cfg.Feature.CacheTTL}
	if cfg.Redis.Addr == "" && len(cfg.Redis.Addrs) == 0 {
		a.profiles = profile.NewMemory(pcfg)
		a.features = feature.NewMemory(fcfg)
		return nil
	}
	addrs := cfg.Redis.Addrs
	if len(addrs) == 0 {
		addrs = []string{cfg.Redis.Addr}
	}
	a.redis = redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:    addrs,
		Password: cfg.Redis.Password,
		DB:       cfg.Redis.DB,
		// Fail fast when Redis is down: feeds degrade (last-known profiles,
		// prior features, cached lists) instead of waiting, and events wait
		// in NATS. After repeated dial failures the pool itself answers at
		// once and re-dials in the background every second.
		DialTimeout:        500 * time.Millisecond,
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
		ReadTimeout:        time.Second,
		WriteTimeout:       time.Second,
		MaxRetries:         1,
		MinRetryBackoff:    5 * time.Millisecond,
		MaxRetryBackoff:    50 * time.Millisecond,
		PoolSize:           64,
	})
	a.closers = append(a.closers, func() { _ = a.redis.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.redis.Ping(ctx).Err(); err != nil {
		// Not fatal: events wait in NATS until Redis answers, and /readyz
		// says what is wrong.
		a.log.Warn("redis not answering at start", zap.Strings("addrs", addrs), zap.Error(err))
	}
	degraded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfeed_degraded_reads_total",
		Help: "Reads answered from a replica's last-known copy because the shared store failed, by store.",
	}, []string{"store"})
	a.reg.MustRegister(degraded)
	var lastWarn atomic.Int64
	a.profiles = profile.NewFallback(profile.NewRedis(a.redis, cfg.Redis.Prefix, pcfg), cfg.Profile.FallbackUsers, func(string) {
		degraded.WithLabelValues("profile").Inc()
		if now := time.Now().UnixNano(); now-lastWarn.Load() > int64(10*time.Second) {
			lastWarn.Store(now)
			a.log.Warn("profile store unavailable: serving feeds from this replica's last-known profiles")
		}
	})
	a.features = feature.NewRedis(a.redis, cfg.Redis.Prefix, fcfg)
	return nil
}

func profileConfig(cfg *config.Config) profile.Config {
	p := cfg.Profile
	pc := profile.DefaultConfig()
	for name, w := range p.Weights {
		if t, ok := event.ParseType(name); ok {
			pc.Weights[t] = w
		}
	}
	pc.ShortHalfLife, pc.ShortWindow = p.ShortHalfLife, p.ShortWindow
	pc.LongHalfLife, pc.LongWindow = p.LongHalfLife, p.LongWindow
	pc.MaxPlayed, pc.MaxShown = p.MaxPlayed, p.MaxShown
	pc.PlayedTTL, pc.ShownTTL = p.PlayedTTL, p.ShownTTL
	pc.DedupeTTL, pc.MaxInterests = p.DedupeTTL, p.MaxInterests
	return pc
}

func smoothing(cfg *config.Config) feature.Smoothing {
	s := cfg.Feature.Smoothing
	return feature.Smoothing{PriorCTR: s.PriorCTR, PriorCompletion: s.PriorCompletion, PriorInteraction: s.PriorInteraction, Strength: s.Strength}
}

func (a *App) userLimiter() api.Limiter {
	if !a.cfg.RateLimit.Enabled {
		return nil
	}
	spec := api.RateSpec{PerSecond: a.cfg.RateLimit.PerSecond, Burst: a.cfg.RateLimit.Burst}
	if a.redis != nil {
		return api.NewRedisLimiter(a.redis, a.cfg.Redis.Prefix, spec)
	}
	return api.NewMemoryLimiter(spec)
}

func (a *App) serviceLimiter() api.Limiter {
	if !a.cfg.RateLimit.Enabled {
		return nil
	}
	spec := api.RateSpec{PerSecond: a.cfg.RateLimit.ServicePerSecond, Burst: a.cfg.RateLimit.ServiceBurst}
	if a.redis != nil {
		return api.NewRedisLimiter(a.redis, a.cfg.Redis.Prefix, spec)
	}
	return api.NewMemoryLimiter(spec)
}

func (a *App) readyChecks() []api.ReadyCheck {
	checks := []api.ReadyCheck{
		{Name: "nats", Check: a.bus.Ready},
		{Name: "catalog", Check: func(context.Context) error {
			if !a.watcher.CaughtUp() {
				return errors.New("replaying the catalog stream")
			}
			return nil
		}},
		{Name: "consumers", Check: func(context.Context) error {
			for _, c := range a.consumers {
				if !c.CaughtUp() {
					return errors.New("replaying events into the stores")
				}
			}
			return nil
		}},
	}
	if el := a.serving.elastic; el != nil {
		checks = append(checks, api.ReadyCheck{Name: "elasticsearch", Check: el.Ready})
	}
	if a.redis != nil {
		checks = append(checks, api.ReadyCheck{Name: "redis", Check: func(ctx context.Context) error {
			return a.redis.Ping(ctx).Err()
		}})
	}
	return checks
}

// backlog is how many events wait to be applied across the store consumers.
func (a *App) backlog() uint64 {
	var n uint64
	for _, c := range a.consumers {
		n += c.Backlog()
	}
	return n
}

func (a *App) runLongTerm(ctx context.Context) (any, error) {
	start := time.Now()
	n, err := a.profiles.Prune(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	return map[string]any{"users": n, "duration_ms": time.Since(start).Milliseconds()}, nil
}

// Handler is the HTTP handler (for tests that use httptest).
func (a *App) Handler() http.Handler { return a.handler }

// Authority signs tokens with the running secret.
func (a *App) Authority() *auth.Authority { return a.authority }

// Registry is the Prometheus registry every part registers on.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Start listens on http.addr (":0" picks a free port) and serves in the
// background.
func (a *App) Start() error {
	l, err := net.Listen("tcp", a.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr %s: %w", a.cfg.HTTP.Addr, err)
	}
	a.listener = l
	a.httpSrv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       a.cfg.HTTP.ReadTimeout,
		WriteTimeout:      a.cfg.HTTP.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(a.log.Named("http")),
	}
	bg, cancel := context.WithCancel(context.Background())
	a.bgCancel = cancel
	a.startJobs(bg)
	a.startRanking(bg)
	go func() {
		if err := a.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", zap.Error(err))
		}
	}()
	if a.devSecret {
		a.logDevTokens()
	}
	return nil
}

func (a *App) logDevTokens() {
	ttl := a.cfg.Auth.DevTokenTTL
	svc, _ := a.authority.Issue("dev-service", auth.RoleService, ttl)
	adm, _ := a.authority.Issue("dev-admin", auth.RoleAdmin, ttl)
	a.log.Warn("auth.secret is not set: generated a random secret for this run; dev tokens below (set auth.secret in production)",
		zap.Duration("valid_for", ttl))
	fmt.Fprintf(os.Stderr, "\n  export SERVICE_TOKEN=%s\n  export ADMIN_TOKEN=%s\n\n", svc, adm)
}

// Addr is the address the server listens on.
func (a *App) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// URL is the server's base URL.
func (a *App) URL() string { return "http://" + a.Addr() }

// Shutdown stops accepting, finishes in-flight requests, drains the
// consumers (applying what they hold), flushes impressions, and closes
// NATS and Redis.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	if a.httpSrv != nil {
		if err := a.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	a.closeAll()
	return errors.Join(errs...)
}

func (a *App) closeAll() {
	if a.bgCancel != nil {
		a.bgCancel()
	}
	a.bgWG.Wait()
	if a.impressions != nil {
		a.impressions.Close()
		a.impressions = nil
	}
	var stops sync.WaitGroup
	for _, c := range append(a.consumers, a.joinConsumers...) {
		stops.Add(1)
		go func(c *ingest.Consumer) { defer stops.Done(); c.Stop() }(c)
	}
	stops.Wait()
	a.consumers, a.joinConsumers = nil, nil
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
	if a.profiles != nil {
		_ = a.profiles.Close()
	}
	if a.features != nil {
		_ = a.features.Close()
	}
}

func (a *App) impressionsDropped() func(int) {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "reelfeed_impressions_dropped_total",
		Help: "Impressions not published (buffer full or stream unavailable).",
	})
	a.reg.MustRegister(c)
	return func(n int) { c.Add(float64(n)) }
}

func (a *App) consumerMetrics() ingest.ConsumerMetrics {
	applied := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfeed_events_applied_total", Help: "Events applied to the stores, by stream.",
	}, []string{"stream"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfeed_events_apply_failed_total", Help: "Events whose application failed and will be retried, by stream.",
	}, []string{"stream"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reelfeed_consumer_lag", Help: "Messages in the stream not yet delivered to this consumer.",
	}, []string{"stream"})
	applyLatency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "reelfeed_apply_duration_seconds", Help: "Time to write one consumed batch to the stores.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"stream"})
	visible := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "reelfeed_event_visible_seconds", Help: "Time from an event being stored in the stream to being applied to the stores (oldest of each batch).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"stream"})
	a.reg.MustRegister(applied, failed, lag, applyLatency, visible)
	return ingest.ConsumerMetrics{
		Applied:      func(s string, n int) { applied.WithLabelValues(s).Add(float64(n)) },
		Failed:       func(s string, n int) { failed.WithLabelValues(s).Add(float64(n)) },
		Lag:          func(s string, p uint64) { lag.WithLabelValues(s).Set(float64(p)) },
		ApplyLatency: func(s string, d time.Duration) { applyLatency.WithLabelValues(s).Observe(d.Seconds()) },
		Visible:      func(s string, d time.Duration) { visible.WithLabelValues(s).Observe(d.Seconds()) },
	}
}
