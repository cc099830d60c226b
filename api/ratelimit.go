package api

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"reelfeed/auth"
	"reelfeed/internal/httpx"
)

// Limiter decides whether one more request under key may go now.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// RateSpec is a token bucket: PerSecond refill, Burst capacity.
type RateSpec struct {
	PerSecond float64
	Burst     int
}

// MemoryLimiter keeps one token bucket per key in this process (golang.org/x/time/rate).
// Idle buckets are evicted so the map does not grow without bound.
type MemoryLimiter struct {
	spec   RateSpec
	shards [32]limiterShard
	now    func() time.Time
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	sweeps  int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewMemoryLimiter returns a per-process limiter.
func NewMemoryLimiter(spec RateSpec) *MemoryLimiter {
	l := &MemoryLimiter{spec: spec, now: time.Now}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// Allow implements Limiter.
func (l *MemoryLimiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	s := &l.shards[h.Sum32()%uint32(len(l.shards))]
	now := l.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.spec.PerSecond), l.spec.Burst)}
		s.buckets[key] = b
		if s.sweeps++; s.sweeps%1024 == 0 {
			l.sweep(s, now)
		}
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}

// sweep drops buckets idle long enough to have refilled completely.
func (l *MemoryLimiter) sweep(s *limiterShard, now time.Time) {
	full := time.Duration(float64(l.spec.Burst)/l.spec.PerSecond*float64(time.Second)) + time.Minute
	for k, b := range s.buckets {
		if now.Sub(b.seen) > full {
			delete(s.buckets, k)
		}
	}
}

// RedisLimiter shares the buckets between replicas (GCRA in Redis via
// go-redis/redis_rate), so a user's limit holds whichever replica serves them.
type RedisLimiter struct {
	lim    *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string
}

// NewRedisLimiter returns a limiter whose state lives in Redis.
func NewRedisLimiter(client redis.UniversalClient, prefix string, spec RateSpec) *RedisLimiter {
	// redis_rate counts whole requests per period: express fractional
	// rates per minute.
	limit := redis_rate.Limit{Rate: int(math.Round(spec.PerSecond)), Burst: spec.Burst, Period: time.Second}
	if spec.PerSecond < 10 {
		limit = redis_rate.Limit{Rate: int(math.Max(1, math.Round(spec.PerSecond*60))), Burst: spec.Burst, Period: time.Minute}
	}
	return &RedisLimiter{lim: redis_rate.NewLimiter(client), limit: limit, prefix: prefix}
}

// Allow implements Limiter.
func (l *RedisLimiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	res, err := l.lim.Allow(ctx, l.prefix+"rl:"+key, l.limit)
	if err != nil {
		return true, 0, err
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

// rateLimit limits requests per acting user: the user a request reads or
// writes for (user_id query parameter or {id} in the path), else the
// token's subject. Service and admin requests that act for no one user
// (batched events, catalog writes) are limited under their own, larger,
// service limit. When the shared limiter fails, requests go through: a
// rate limiter must not take the service down with it.
func rateLimit(perUser, perService Limiter, log *zap.Logger, reg prometheus.Registerer) func(http.Handler) http.Handler {
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfeed_ratelimit_rejected_total",
		Help: "Requests rejected with 429, by limit kind.",
	}, []string{"kind"})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "reelfeed_ratelimit_errors_total",
		Help: "Rate limiter backend errors (requests were let through).",
	})
	reg.MustRegister(limited, failures)
	var lastWarn sync.Mutex
	var warned time.Time
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := auth.FromContext(r.Context())
			acting := r.URL.Query().Get("user_id")
			if acting == "" {
				acting = chi.URLParam(r, "id")
				if rc := chi.RouteContext(r.Context()); rc != nil && !isUserRoute(rc.RoutePattern()) {
					acting = ""
				}
			}
			lim, kind, key := perUser, "user", "u:"+acting
			switch {
			case p.Role == auth.RoleUser:
				key = "u:" + p.Subject
			case acting == "":
				lim, kind, key = perService, "service", "s:"+p.Subject
			}
			ok, retry, err := lim.Allow(r.Context(), key)
			if err != nil {
				failures.Inc()
				lastWarn.Lock()
				if time.Since(warned) > 10*time.Second {
					warned = time.Now()
					log.Warn("rate limiter unavailable; letting requests through", zap.Error(err))
				}
				lastWarn.Unlock()
			}
			if !ok {
				limited.WithLabelValues(kind).Inc()
				secs := int(math.Ceil(retry.Seconds()))
				if secs < 1 {
					secs = 1
				}
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				httpx.Error(w, http.StatusTooManyRequests, "rate_limited",
					fmt.Sprintf("too many requests for %s; retry after %ds", kind, secs), nil)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func isUserRoute(pattern string) bool {
	return len(pattern) >= len("/v1/users/") && pattern[:len("/v1/users/")] == "/v1/users/"
}
