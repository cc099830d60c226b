package recall

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Job is a background job: the scheduler runs it on its timer and the admin
// endpoint (POST /v1/admin/jobs/{name}) runs it on demand.
type Job interface {
	// Name is the job's name in the admin endpoint, logs and metrics.
	Name() string
	// Run runs the job once and returns when it is done or ctx ends. Runs of
	// one job never overlap: a second caller waits for the first.
	Run(ctx context.Context) (JobResult, error)
}

var (
	_ Job = (*HotJob)(nil)
	_ Job = (*I2IJob)(nil)
	_ Job = (*UserCFJob)(nil)

	_ Source = (*HotSource)(nil)
	_ Source = (*I2ISource)(nil)
	_ Source = (*UserCFSource)(nil)

	_ ListStore = (*MemoryListStore)(nil)
	_ ListStore = (*RedisListStore)(nil)
)

// JobResult is what one run did, returned as JSON by the admin endpoint.
// Fields a job has no use for are left zero and omitted.
type JobResult struct {
	Job        string    `json:"job"`
	StartedAt  time.Time `json:"started_at"`
	DurationMs int64     `json:"duration_ms"`
	// Events is how many events were replayed from the event log.
	Events int64 `json:"events,omitempty"`
	// Users and Videos are the users and videos the job had data for.
	Users   int `json:"users,omitempty"`
	Videos  int `json:"videos,omitempty"`
	Regions int `json:"regions,omitempty"`
	// Pairs counts related pairs found: co-engaged videos for i2i, similar
	// users for user-CF.
	Pairs int64 `json:"pairs,omitempty"`
	// Lists and Items are what was written to the ListStore.
	Lists int `json:"lists"`
	Items int `json:"items"`
}

// RunEvery runs job now, then every interval, and at once whenever one of
// triggers fires, until ctx ends; it returns then. interval <= 0 disables
// the timer (and the run at start): the job runs only when triggered. A
// failed run is logged and retried at the next tick.
func RunEvery(ctx context.Context, interval time.Duration, job Job, logger *zap.Logger, triggers ...<-chan struct{}) {
	if logger == nil {
		logger = zap.NewNop()
	}
	trigger := mergeTriggers(ctx, triggers)
	var tick <-chan time.Time
	if interval > 0 {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
		runScheduled(ctx, job, logger, "start")
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			runScheduled(ctx, job, logger, "timer")
		case <-trigger:
			runScheduled(ctx, job, logger, "trigger")
		}
	}
}

func runScheduled(ctx context.Context, job Job, logger *zap.Logger, cause string) {
	if ctx.Err() != nil {
		return
	}
	if _, err := job.Run(ctx); err != nil && ctx.Err() == nil {
		logger.Warn("recall job failed; retrying at the next tick",
			zap.String("job", job.Name()), zap.String("cause", cause), zap.Error(err))
	}
}

// mergeTriggers folds any number of trigger channels into one; with none it
// returns nil, which never fires in a select.
func mergeTriggers(ctx context.Context, triggers []<-chan struct{}) <-chan struct{} {
	switch len(triggers) {
	case 0:
		return nil
	case 1:
		return triggers[0]
	}
	merged := make(chan struct{}, 1)
	for _, tr := range triggers {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-tr:
					select {
					case merged <- struct{}{}:
					default: // a run is already pending; it will see this change too
					}
				}
			}
		}()
	}
	return merged
}

// jobRunner is what every job shares: runs never overlap, each run is timed,
// logged and counted.
type jobRunner struct {
	name        string
	logger      *zap.Logger
	sem         chan struct{}
	duration    prometheus.Observer
	lastSuccess prometheus.Gauge
	succeeded   prometheus.Counter
	failed      prometheus.Counter
	canceled    prometheus.Counter
}

func newJobRunner(name string, logger *zap.Logger, reg prometheus.Registerer) *jobRunner {
	if logger == nil {
		logger = zap.NewNop()
	}
	duration := registerJobCollector(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "reelfeed_recall_job_duration_seconds",
		Help:    "Duration of recall background job runs (hot lists, i2i, user-CF).",
		Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}, []string{"job"}))
	lastSuccess := registerJobCollector(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reelfeed_recall_job_last_success_timestamp_seconds",
		Help: "Unix time the recall background job last finished successfully.",
	}, []string{"job"}))
	runs := registerJobCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfeed_recall_job_runs_total",
		Help: "Recall background job runs by outcome (success, error, canceled).",
	}, []string{"job", "outcome"}))
	return &jobRunner{
		name:        name,
		logger:      logger.With(zap.String("job", name)),
		sem:         make(chan struct{}, 1),
		duration:    duration.WithLabelValues(name),
		lastSuccess: lastSuccess.WithLabelValues(name),
		succeeded:   runs.WithLabelValues(name, "success"),
		failed:      runs.WithLabelValues(name, "error"),
		canceled:    runs.WithLabelValues(name, "canceled"),
	}
}

// registerJobCollector registers c, or returns the collector already
// registered under the same description, so several jobs (or a job built
// twice against one registry) share one metric family.
func registerJobCollector[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("recall: registering job metrics: %v", err))
	}
	return c
}

// run runs fn once no other run of this job is in flight, fills the timing
// fields of the result and records the outcome.
func (r *jobRunner) run(ctx context.Context, fn func(ctx context.Context, res *JobResult) error) (JobResult, error) {
	if err := ctx.Err(); err != nil {
		return JobResult{Job: r.name}, err
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return JobResult{Job: r.name}, ctx.Err()
	}
	defer func() { <-r.sem }()

	start := time.Now()
	res := JobResult{Job: r.name, StartedAt: start.UTC()}
	err := fn(ctx, &res)
	elapsed := time.Since(start)
	res.DurationMs = elapsed.Milliseconds()
	r.duration.Observe(elapsed.Seconds())
	fields := []zap.Field{
		zap.Duration("duration", elapsed),
		zap.Int64("events", res.Events),
		zap.Int("users", res.Users),
		zap.Int("videos", res.Videos),
		zap.Int("regions", res.Regions),
		zap.Int64("pairs", res.Pairs),
		zap.Int("lists", res.Lists),
		zap.Int("items", res.Items),
	}
	if err != nil {
		if ctx.Err() != nil {
			r.canceled.Inc()
			r.logger.Info("recall job canceled", append(fields, zap.Error(err))...)
		} else {
			r.failed.Inc()
			r.logger.Warn("recall job failed", append(fields, zap.Error(err))...)
		}
		return res, fmt.Errorf("recall: job %s: %w", r.name, err)
	}
	r.succeeded.Inc()
	r.lastSuccess.Set(float64(time.Now().Unix()))
	r.logger.Info("recall job done", fields...)
	return res, nil
}
