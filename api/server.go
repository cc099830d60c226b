package api

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"reelfeed/auth"
	"reelfeed/catalog"
	"reelfeed/feature"
	"reelfeed/ingest"
	"reelfeed/internal/httpx"
	"reelfeed/profile"
)

// ReadyCheck is one part /readyz checks.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Job is a background job an admin can run now.
type Job interface {
	Run(ctx context.Context) (any, error)
}

// JobFunc adapts a function to Job.
type JobFunc func(ctx context.Context) (any, error)

// Run implements Job.
func (f JobFunc) Run(ctx context.Context) (any, error) { return f(ctx) }

// Deps is everything the HTTP layer calls.
type Deps struct {
	Log      *zap.Logger
	Registry *prometheus.Registry
	Auth     *auth.Authority

	UserLimiter    Limiter // nil: no rate limit
	ServiceLimiter Limiter

	Bus       *ingest.Bus
	Catalog   *catalog.Catalog
	Profiles  profile.Store
	Features  feature.Store
	Smoothing feature.Smoothing
	Feed      FeedService
	// Admin serves the runtime knobs under /v1/admin (blacklists, boosts,
	// slot plans, experiments); nil when not wired.
	Admin http.Handler
	Jobs  map[string]Job

	Ready []ReadyCheck

	// Pprof mounts net/http/pprof at /debug/pprof (unauthenticated).
	Pprof bool

	EventLimits ingest.EventLimits
	// Backlog reports how many accepted events wait to be applied; over
	// MaxBacklog, event writes are refused until the consumers catch up
	// (nil or 0: never).
	Backlog        func() uint64
	MaxBacklog     uint64
	RequestTimeout time.Duration
	MaxBodyBytes   int64
	AccessLog      bool
	Now            func() time.Time
}

// Server is the HTTP handler of the v1 API.
type Server struct {
	d      Deps
	router chi.Router
	ingest *ingestMetrics
}

// New builds the router.
func New(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Server{d: d, ingest: newIngestMetrics(d.Registry)}
	hm := newHTTPMetrics(d.Registry)

	r := chi.NewRouter()
	r.Use(middleware.RequestID, requestIDHeader, middleware.RealIP,
		observe(d.Log, hm, d.AccessLog), recoverer(d.Log),
		limits(d.RequestTimeout, d.MaxBodyBytes))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpx.Error(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path, nil)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpx.Error(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" not allowed on "+r.URL.Path, nil)
	})

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpx.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{Registry: d.Registry}))
	if d.Pprof {
		r.Mount("/debug", middleware.Profiler())
	}

	r.Route("/v1", func(r chi.Router) {
		r.Use(d.Auth.Middleware)
		limit := func(next http.Handler) http.Handler { return next }
		if d.UserLimiter != nil {
			limit = rateLimit(d.UserLimiter, d.ServiceLimiter, d.Log, d.Registry)
		}
		service := auth.RequireRole(auth.RoleService, auth.RoleAdmin)

		r.With(limit).Get("/feed", s.getFeed)
		r.With(limit).Post("/events", s.postEvents)

		r.With(service, limit).Post("/videos", s.postVideos)
		r.With(limit).Get("/videos/{id}", s.getVideo)
		r.With(service, limit).Delete("/videos/{id}", s.deleteVideo)

		r.With(limit).Put("/users/{id}", s.putUser)
		r.With(limit).Get("/users/{id}", s.getUser)
		r.With(limit).Get("/users/{id}/profile", s.getProfile)

		r.Route("/admin", func(r chi.Router) {
			r.Use(auth.RequireRole(auth.RoleAdmin))
			r.Post("/jobs/{name}", s.runJob)
			r.Get("/jobs", s.listJobs)
			if d.Admin != nil {
				r.Mount("/", d.Admin)
			}
		})
	})
	s.router = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.d.Ready))
	for _, c := range s.d.Ready {
		go func(c ReadyCheck) { results <- result{c.Name, c.Check(ctx)} }(c)
	}
	checks := map[string]string{}
	failing := map[string]string{}
	for range s.d.Ready {
		res := <-results
		if res.err != nil {
			checks[res.name] = res.err.Error()
			failing[res.name] = res.err.Error()
		} else {
			checks[res.name] = "ok"
		}
	}
	if len(failing) > 0 {
		names := make([]string, 0, len(failing))
		for n := range failing {
			names = append(names, n)
		}
		sort.Strings(names)
		httpx.JSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable",
			"checks": checks,
			"error": httpx.ErrorDetail{
				Code:    "not_ready",
				Message: "not ready: " + joinNames(names),
				Fields:  failing,
			},
		})
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

func (s *Server) runJob(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	job, ok := s.d.Jobs[name]
	if !ok {
		httpx.Error(w, http.StatusNotFound, "not_found", "unknown job "+name, map[string]string{"name": "one of " + joinNames(s.jobNames())})
		return
	}
	// Jobs outlive the per-request timeout: the caller asked to wait.
	ctx := context.WithoutCancel(r.Context())
	start := time.Now()
	res, err := job.Run(ctx)
	if err != nil {
		s.d.Log.Error("job failed", zap.String("job", name), zap.Error(err))
		httpx.Error(w, http.StatusInternalServerError, "job_failed", name+": "+err.Error(), nil)
		return
	}
	s.d.Log.Info("job done", zap.String("job", name), zap.Duration("took", time.Since(start)))
	httpx.JSON(w, http.StatusOK, map[string]any{"job": name, "duration_ms": time.Since(start).Milliseconds(), "result": res})
}

func (s *Server) jobNames() []string {
	names := make([]string, 0, len(s.d.Jobs))
	for n := range s.d.Jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request) {
	httpx.JSON(w, http.StatusOK, map[string]any{"jobs": s.jobNames()})
}
