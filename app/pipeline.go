package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"reelfeed/api"
	"reelfeed/catalog"
	"reelfeed/feed"
	"reelfeed/recall"
)

// servingParts are the feed pipeline and the background jobs behind it.
type servingParts struct {
	feed      *feed.Service
	knobs     *feed.Knobs
	spike     *recall.SpikeDetector
	jobs      []recall.Job
	lists     recall.ListStore
	retriever catalog.Retriever
	elastic   *catalog.Elastic
}

// openElastic connects the optional Elasticsearch retrieval; the memory
// catalog answers whenever it is slow or failing.
func (a *App) openElastic(ctx context.Context) error {
	es := a.cfg.Elasticsearch
	a.serving.retriever = a.catalog
	if len(es.URLs) == 0 {
		return nil
	}
	el, err := catalog.NewElastic(ctx, es.ElasticConfig, a.log.Named("elasticsearch"))
	if err != nil {
		return fmt.Errorf("elasticsearch: %w", err)
	}
	a.serving.elastic = el
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = el.Close(ctx)
	})
	a.reg.MustRegister(el)
	fallbacks := catalog.NewFallbackCounter()
	a.reg.MustRegister(fallbacks)
	fb, err := catalog.NewFallback(el, a.catalog, es.Search, fallbacks, a.log.Named("retrieval"))
	if err != nil {
		return err
	}
	a.serving.retriever = fb
	return nil
}

// buildServing wires recall, filters, ranking and the feed service.
func (a *App) buildServing() error {
	cfg := a.cfg
	log := a.log
	s := &a.serving

	if a.redis != nil {
		s.lists = recall.NewRedisListStore(a.redis, cfg.Redis.Prefix+"lists:", cfg.Recall.ListCacheTTL)
	} else {
		s.lists = recall.NewMemoryListStore()
	}
	a.closers = append(a.closers, func() { _ = s.lists.Close() })

	knobs, err := feed.NewKnobs(cfg.Feed.Knobs)
	if err != nil {
		return fmt.Errorf("feed.knobs: %w", err)
	}
	s.knobs = knobs

	s.spike, err = recall.NewSpikeDetector(cfg.Recall.Spike, log.Named("spike"), a.reg)
	if err != nil {
		return fmt.Errorf("recall.spike: %w", err)
	}
	hotJob, err := recall.NewHotJob(cfg.Recall.Hot, a.catalog, a.features, s.lists, log.Named("hotlist"), a.reg)
	if err != nil {
		return fmt.Errorf("recall.hot: %w", err)
	}
	events := a.bus.EventLog()
	i2iJob, err := recall.NewI2IJob(cfg.Recall.I2I, events, s.lists, log.Named("i2i"), a.reg)
	if err != nil {
		return fmt.Errorf("recall.i2i: %w", err)
	}
	userCFJob, err := recall.NewUserCFJob(cfg.Recall.UserCF, events, s.lists, log.Named("usercf"), a.reg)
	if err != nil {
		return fmt.Errorf("recall.usercf: %w", err)
	}
	s.jobs = []recall.Job{hotJob, i2iJob, userCFJob}

	hot := recall.NewHotSource(s.lists, a.catalog)
	i2i, err := recall.NewI2ISource(cfg.Recall.I2I, s.lists, a.catalog)
	if err != nil {
		return fmt.Errorf("recall.i2i: %w", err)
	}
	usercf := recall.NewUserCFSource(s.lists, a.catalog)
	tag, err := recall.NewTag(a.catalog, s.retriever, cfg.Recall.Tag)
	if err != nil {
		return fmt.Errorf("recall.tag: %w", err)
	}
	uploader, err := recall.NewUploader(a.catalog, s.retriever, cfg.Recall.Uploader)
	if err != nil {
		return fmt.Errorf("recall.uploader: %w", err)
	}
	explore, err := recall.NewExplore(a.catalog, cfg.Recall.Explore)
	if err != nil {
		return fmt.Errorf("recall.explore: %w", err)
	}
	start, err := recall.NewStart(a.catalog, cfg.Recall.Start)
	if err != nil {
		return fmt.Errorf("recall.start: %w", err)
	}
	fresh, err := recall.NewFresh(a.catalog, a.features, cfg.Recall.Fresh)
	if err != nil {
		return fmt.Errorf("recall.fresh: %w", err)
	}

	scorer, err := a.buildScorer(knobs)
	if err != nil {
		return err
	}

	s.feed, err = feed.New(feed.Deps{
		Catalog:     a.catalog,
		Profiles:    a.profiles,
		Features:    a.features,
		Sources:     []recall.Source{hot, tag, uploader, i2i, usercf, explore, start, fresh},
		Backfill:    hot,
		Scorer:      scorer,
		Knobs:       knobs,
		Impressions: a.impressions,
		LogFeatures: a.logFeatures,
		Metrics:     a.reg,
		Logger:      log.Named("feed"),
	}, cfg.Feed)
	return err
}

// startJobs runs every job on its timer (the hot list also on spikes).
func (a *App) startJobs(ctx context.Context) {
	s := &a.serving
	intervals := map[string]time.Duration{
		"hotlist": a.cfg.Recall.Hot.Interval,
		"i2i":     a.cfg.Recall.I2I.Interval,
		"usercf":  a.cfg.Recall.UserCF.Interval,
	}
	for _, job := range s.jobs {
		job := job
		var triggers []<-chan struct{}
		if job.Name() == "hotlist" {
			triggers = append(triggers, s.spike.Triggers())
		}
		a.bgWG.Add(1)
		go func() {
			defer a.bgWG.Done()
			a.waitCaughtUp(ctx)
			recall.RunEvery(ctx, intervals[job.Name()], job, a.log.Named("jobs"), triggers...)
		}()
	}
	a.every(ctx, a.cfg.Profile.PruneInterval, "longterm", a.runLongTerm)
}

// every runs job on a timer in the background until ctx ends, logging
// each outcome; interval <= 0 never runs it.
func (a *App) every(ctx context.Context, interval time.Duration, name string, job func(context.Context) (any, error)) {
	if interval <= 0 {
		return
	}
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				res, err := job(ctx)
				switch {
				case err != nil && ctx.Err() == nil:
					a.log.Warn("scheduled job failed", zap.String("job", name), zap.Error(err))
				case err == nil && res != nil:
					a.log.Info("scheduled job done", zap.String("job", name), zap.Any("result", res))
				}
			}
		}
	}()
}

// waitCaughtUp returns once the catalog and the stores replayed what the
// streams held at start (or ctx ends), so the first job runs see it all.
func (a *App) waitCaughtUp(ctx context.Context) {
	for {
		done := a.watcher.CaughtUp()
		for _, c := range a.consumers {
			done = done && c.CaughtUp()
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// adminJobs are the jobs POST /v1/admin/jobs/{name} runs now.
func (a *App) adminJobs() map[string]api.Job {
	jobs := map[string]api.Job{"longterm": api.JobFunc(a.runLongTerm)}
	for _, j := range a.serving.jobs {
		j := j
		jobs[j.Name()] = api.JobFunc(func(ctx context.Context) (any, error) { return j.Run(ctx) })
	}
	for name, j := range a.extraJobs {
		jobs[name] = j
	}
	return jobs
}

// publishKnobs stores a knob change in the catalog stream; every replica
// (this one included) applies it from there.
func (a *App) publishKnobs(ctx context.Context, state feed.KnobState) error {
	if err := a.bus.PublishKnobs(ctx, state); err != nil {
		return err
	}
	// Apply locally at once so the admin's next request sees it.
	return a.serving.knobs.Set(state)
}

func (a *App) applyKnobs(data []byte) error {
	var state feed.KnobState
	if err := json.Unmarshal(data, &state); err != nil {
		return fmt.Errorf("knobs: %w", err)
	}
	return a.serving.knobs.Set(state)
}

// feedAdapter answers api feed requests with the feed service.
type feedAdapter struct{ svc *feed.Service }

func (f feedAdapter) Feed(ctx context.Context, r api.FeedRequest) (any, error) {
	resp, err := f.svc.Feed(ctx, feed.Request{
		UserID: r.UserID, Count: r.Count, Region: r.Region, Device: r.Device,
		Debug: r.Debug, RequestID: r.RequestID, Surface: r.Surface,
	})
	if err != nil {
		var invalid *feed.ValidationError
		if errors.As(err, &invalid) {
			return nil, &api.StatusError{Status: 400, Code: "invalid_request", Message: "invalid feed request", Fields: invalid.Fields}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, &api.StatusError{Status: 503, Code: "unavailable", Message: "profile store unavailable: the feed cannot honour what this user already played; retry"}
	}
	return resp, nil
}
