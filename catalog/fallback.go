package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Reasons a Fallback served a query from its secondary, the values of the
// "reason" label of its counter.
const (
	FallbackReasonTimeout     = "timeout"      // the primary did not answer within the budget
	FallbackReasonError       = "error"        // the primary answered with an error
	FallbackReasonBreakerOpen = "breaker_open" // the primary failed repeatedly and is being skipped
)

// FallbackConfig tunes a Fallback. Zero fields take the defaults of
// DefaultFallbackConfig.
type FallbackConfig struct {
	// Budget is the most the primary may take; it is cut further so the
	// secondary still has Reserve before the caller's deadline.
	Budget  time.Duration
	Reserve time.Duration
	// After BreakerFailures consecutive failures the primary is skipped for
	// BreakerCooldown; then one query probes it. Negative: never skip.
	BreakerFailures int
	BreakerCooldown time.Duration
	// LogInterval is the least time between two fallback log lines.
	LogInterval time.Duration
}

// DefaultFallbackConfig returns the defaults documented in docs/elasticsearch.md.
func DefaultFallbackConfig() FallbackConfig {
	return FallbackConfig{
		Budget:          100 * time.Millisecond,
		Reserve:         5 * time.Millisecond,
		BreakerFailures: 5,
		BreakerCooldown: 5 * time.Second,
		LogInterval:     10 * time.Second,
	}
}

func (c FallbackConfig) withDefaults() FallbackConfig {
	d := DefaultFallbackConfig()
	if c.Budget <= 0 {
		c.Budget = d.Budget
	}
	if c.Reserve <= 0 {
		c.Reserve = d.Reserve
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = d.BreakerFailures
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = d.BreakerCooldown
	}
	if c.LogInterval <= 0 {
		c.LogInterval = d.LogInterval
	}
	return c
}

// NewFallbackCounter returns the counter a Fallback expects, unregistered:
// reelfeed_catalog_fallbacks_total{reason}.
func NewFallbackCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfeed_catalog_fallbacks_total",
		Help: "Catalog queries served by the secondary index because the primary timed out, failed or was skipped.",
	}, []string{"reason"})
}

// Fallback is a Retriever that asks a primary (Elasticsearch) within a time
// budget and answers from a secondary (the memory Catalog) when the primary
// times out or fails. A breaker stops paying the budget on every query
// while the primary is down.
type Fallback struct {
	primary, secondary Retriever
	cfg                FallbackConfig
	logger             *zap.Logger
	counters           map[string]prometheus.Counter // by reason
	logs               logLimiter

	mu          sync.Mutex // guards the breaker state below
	consecutive int        // primary failures in a row
	openUntil   time.Time  // zero: closed
	probing     bool       // a query is testing the primary after the cool-down
}

// NewFallback wraps primary and secondary. fallbacks must have the single
// label reason (see NewFallbackCounter); the caller registers it.
func NewFallback(primary, secondary Retriever, cfg FallbackConfig, fallbacks *prometheus.CounterVec, logger *zap.Logger) (*Fallback, error) {
	if primary == nil || secondary == nil {
		return nil, errors.New("catalog fallback: primary and secondary are required")
	}
	if fallbacks == nil {
		return nil, errors.New("catalog fallback: a fallback counter is required")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	f := &Fallback{
		primary:   primary,
		secondary: secondary,
		cfg:       cfg,
		logger:    logger,
		counters:  map[string]prometheus.Counter{},
		logs:      newLogLimiter(cfg.LogInterval),
	}
	for _, reason := range []string{FallbackReasonTimeout, FallbackReasonError, FallbackReasonBreakerOpen} {
		c, err := fallbacks.GetMetricWithLabelValues(reason)
		if err != nil {
			return nil, fmt.Errorf("catalog fallback counter: %w", err)
		}
		f.counters[reason] = c
	}
	return f, nil
}

// Name names both indexes, primary first, for metrics and debug output.
func (f *Fallback) Name() string { return f.primary.Name() + "|" + f.secondary.Name() }

// Search implements Retriever.
func (f *Fallback) Search(ctx context.Context, q Query) ([]string, error) {
	ids, _, err := f.SearchServedBy(ctx, q)
	return ids, err
}

// SearchServedBy is Search that also names the index that answered, for
// debug output.
func (f *Fallback) SearchServedBy(ctx context.Context, q Query) ([]string, string, error) {
	allowed, probe := f.allowPrimary()
	if !allowed {
		f.fellBack(FallbackReasonBreakerOpen, nil)
		return f.searchSecondary(ctx, q)
	}

	budget := f.cfg.Budget
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-f.cfg.Reserve)
	}
	if budget <= 0 {
		// Not even the reserve is left: the primary cannot answer in time.
		f.endProbe(probe)
		f.fellBack(FallbackReasonTimeout, context.DeadlineExceeded)
		return f.searchSecondary(ctx, q)
	}

	pctx, cancel := context.WithTimeout(ctx, budget)
	ids, err := f.primary.Search(pctx, q)
	timedOut := pctx.Err() != nil
	cancel()
	switch {
	case err == nil:
		f.recordPrimary(true, probe)
		return ids, f.primary.Name(), nil
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up; that says nothing about the primary.
		f.endProbe(probe)
		return nil, f.primary.Name(), err
	case timedOut:
		f.recordPrimary(false, probe)
		f.fellBack(FallbackReasonTimeout, err)
	default:
		f.recordPrimary(false, probe)
		f.fellBack(FallbackReasonError, err)
	}
	return f.searchSecondary(ctx, q)
}

func (f *Fallback) searchSecondary(ctx context.Context, q Query) ([]string, string, error) {
	ids, err := f.secondary.Search(ctx, q)
	return ids, f.secondary.Name(), err
}

// allowPrimary reports whether the breaker lets this query reach the
// primary, and whether the query is the single probe after a cool-down.
func (f *Fallback) allowPrimary() (allowed, probe bool) {
	if f.cfg.BreakerFailures < 0 {
		return true, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.openUntil.IsZero() {
		return true, false
	}
	if f.probing || time.Now().Before(f.openUntil) {
		return false, false
	}
	f.probing = true
	return true, true
}

// endProbe hands the probe to a later query when this one could not test
// the primary.
func (f *Fallback) endProbe(probe bool) {
	if !probe {
		return
	}
	f.mu.Lock()
	f.probing = false
	f.mu.Unlock()
}

func (f *Fallback) recordPrimary(ok, probe bool) {
	if f.cfg.BreakerFailures < 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if probe {
		f.probing = false
	}
	wasOpen := !f.openUntil.IsZero()
	if ok {
		f.consecutive = 0
		f.openUntil = time.Time{}
		if wasOpen {
			f.logger.Info("catalog primary index answering again", zap.String("primary", f.primary.Name()))
		}
		return
	}
	f.consecutive++
	if probe || (!wasOpen && f.consecutive >= f.cfg.BreakerFailures) {
		f.openUntil = time.Now().Add(f.cfg.BreakerCooldown)
		if !wasOpen {
			f.logger.Warn("catalog primary index failing; skipping it between probes",
				zap.String("primary", f.primary.Name()), zap.Int("consecutive_failures", f.consecutive),
				zap.Duration("cooldown", f.cfg.BreakerCooldown))
		}
	}
}

func (f *Fallback) fellBack(reason string, err error) {
	f.counters[reason].Inc()
	f.logs.do(func(suppressed int64) {
		fields := []zap.Field{
			zap.String("primary", f.primary.Name()), zap.String("secondary", f.secondary.Name()),
			zap.String("reason", reason), zap.Int64("suppressed", suppressed),
		}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		f.logger.Warn("catalog query served by the secondary index", fields...)
	})
}

// logLimiter lets a log line through at most once per interval and counts
// the ones it held back, so the next line can say how many there were.
type logLimiter struct {
	every      *rate.Sometimes
	suppressed *atomic.Int64
}

func newLogLimiter(interval time.Duration) logLimiter {
	return logLimiter{every: &rate.Sometimes{Interval: interval}, suppressed: new(atomic.Int64)}
}

func (l logLimiter) do(log func(suppressed int64)) {
	logged := false
	l.every.Do(func() {
		logged = true
		log(l.suppressed.Swap(0))
	})
	if !logged {
		l.suppressed.Add(1)
	}
}
