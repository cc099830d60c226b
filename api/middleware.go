// Package api is reelfeed's HTTP surface: the chi router, the middleware
// every request passes (request id, real IP, access log, panic recovery,
// timeout, body limit, auth, rate limit, metrics) and the handlers of the
// v1 contract in DESIGN.md.
package api

import (
	"context"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/auth"
	"reelfeed/internal/httpx"
)

// httpMetrics are the request-level metrics.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reelfeed_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reelfeed_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.duration, m.inflight)
	return m
}

// observe logs one access line per request and records its latency.
func observe(log *zap.Logger, m *httpMetrics, accessLog bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			m.inflight.Inc()
			defer func() {
				m.inflight.Dec()
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := chi.RouteContext(r.Context()).RoutePattern()
				if route == "" {
					route = "unmatched"
				}
				elapsed := time.Since(start)
				m.duration.WithLabelValues(route, r.Method, strconv.Itoa(status)).Observe(elapsed.Seconds())
				if !accessLog {
					return
				}
				fields := []zap.Field{
					zap.String("request_id", middleware.GetReqID(r.Context())),
					zap.String("method", r.Method),
					zap.String("route", route),
					zap.String("path", r.URL.Path),
					zap.Int("status", status),
					zap.Duration("latency", elapsed),
					zap.Int("bytes", ww.BytesWritten()),
					zap.String("remote", r.RemoteAddr),
				}
				if p, ok := auth.FromContext(r.Context()); ok {
					fields = append(fields, zap.String("sub", p.Subject))
				}
				log.Info("access", fields...)
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// recoverer turns a panic into a 500 with the JSON error shape and logs it
// with its stack.
func recoverer(log *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if rec := recover(); rec != nil {
					if rec == http.ErrAbortHandler {
						panic(rec)
					}
					log.Error("panic serving request",
						zap.Any("panic", rec),
						zap.String("request_id", middleware.GetReqID(r.Context())),
						zap.String("path", r.URL.Path),
						zap.ByteString("stack", debug.Stack()))
					httpx.Error(w, http.StatusInternalServerError, "internal", "internal error (request id "+middleware.GetReqID(r.Context())+")", nil)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// limits bounds each request's time and body size.
func limits(timeout time.Duration, maxBody int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// requestIDHeader echoes the request id so clients can quote it.
func requestIDHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", middleware.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	})
}
