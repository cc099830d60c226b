package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"reelfeed/api"
	"reelfeed/config"
	"reelfeed/event"
	"reelfeed/feed"
	"reelfeed/ingest"
	"reelfeed/rank"
)

// rankingParts are the learned scorer and the loop that feeds it samples.
type rankingParts struct {
	live    *rank.Live // nil when rank.scorer is formula
	joiner  *rank.Joiner
	samples *rank.SampleStore
	trainMu sync.Mutex // one training at a time per process
}

// ModelsDir and SamplesDir resolve the ranking directories of cfg.
func ModelsDir(cfg *config.Config) string {
	if cfg.Rank.Train.ModelsDir != "" {
		return cfg.Rank.Train.ModelsDir
	}
	return filepath.Join(cfg.DataDir, "models")
}

// SamplesDir is where labelled training samples are stored.
func SamplesDir(cfg *config.Config) string {
	if cfg.Rank.SamplesDir != "" {
		return cfg.Rank.SamplesDir
	}
	return filepath.Join(cfg.DataDir, "samples")
}

// buildScorer returns the formula scorer, or the live DeepFM scorer that
// falls back to it while no usable model exists.
func (a *App) buildScorer(knobs *feed.Knobs) (rank.Scorer, error) {
	formula, err := rank.NewFormula(a.cfg.Rank.Formula, knobs)
	if err != nil {
		return nil, fmt.Errorf("rank.formula: %w", err)
	}
	samples, err := rank.OpenSampleStore(SamplesDir(a.cfg))
	if err != nil {
		return nil, fmt.Errorf("rank.samples_dir: %w", err)
	}
	a.ranking.samples = samples
	a.extraJobs = map[string]api.Job{"train": api.JobFunc(a.runTrain)}
	if a.cfg.Rank.Scorer == "formula" {
		return formula, nil
	}
	online := a.cfg.Rank.Online
	if a.redis != nil {
		// Each replica would drift its own copy of the model.
		online.Enabled = false
	}
	live, err := rank.NewLive(context.Background(), rank.LiveConfig{
		ModelsDir: ModelsDir(a.cfg),
		Smoothing: smoothing(a.cfg),
		Online:    online,
	}, formula, a.reg, a.log.Named("model"))
	if err != nil {
		return nil, fmt.Errorf("rank: %w", err)
	}
	a.ranking.live = live
	a.logFeatures = live.LogPage
	return live, nil
}

// startSampleCollection joins live impressions with later events into
// labelled samples, stores them and (embedded mode) learns from them.
func (a *App) startSampleCollection(ctx context.Context) error {
	if !a.cfg.Rank.CollectSamples || a.ranking.live == nil {
		return nil
	}
	joiner, err := rank.NewJoiner(a.cfg.Rank.Join)
	if err != nil {
		return fmt.Errorf("rank.join: %w", err)
	}
	a.ranking.joiner = joiner
	if a.redis == nil {
		// Embedded mode: the store consumers already see every event, so
		// the joiner rides along once the history replay is done (history
		// was joined when it was live; its samples are on disk).
		a.joinLive.Store(true)
	} else {
		// Shared consumers give each replica a share of the events: the
		// join needs all of them, live.
		observe := func(_ context.Context, evs []event.Event) error {
			for _, ev := range evs {
				joiner.Observe(ev)
			}
			return nil
		}
		consumers, err := a.bus.StartEventConsumers(ctx, ingest.ConsumerConfig{
			OnlyNew: true, Batch: a.cfg.Ingest.ConsumerBatch, Linger: a.cfg.Ingest.ConsumerWait,
		}, observe, ingest.ConsumerMetrics{})
		if err != nil {
			return err
		}
		a.joinConsumers = consumers
	}
	a.every(ctx, a.cfg.Rank.FlushInterval, "flush-samples", func(ctx context.Context) (any, error) {
		a.flushSamples(ctx, time.Now())
		return nil, nil
	})
	return nil
}

func (a *App) flushSamples(ctx context.Context, now time.Time) {
	samples := a.ranking.joiner.Flush(now)
	if len(samples) == 0 {
		return
	}
	if err := a.ranking.samples.Append(ctx, samples); err != nil {
		a.log.Warn("training samples not stored", zap.Error(err), zap.Int("samples", len(samples)))
	}
	if _, err := a.ranking.live.Learn(ctx, samples); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Debug("online learning skipped", zap.Error(err))
	}
}

// observeForJoin is the applier observer feeding the joiner in embedded
// mode, from live traffic only.
func (a *App) observeForJoin(evs []event.Event) {
	if !a.joinLive.Load() || a.ranking.joiner == nil {
		return
	}
	for _, c := range a.consumers {
		if !c.CaughtUp() {
			return
		}
	}
	for _, ev := range evs {
		a.ranking.joiner.Observe(ev)
	}
}

// runTrain trains on the stored samples, publishes the model and reloads
// it (the admin job, the timer and `reelfeed train` all come here).
func (a *App) runTrain(ctx context.Context) (any, error) {
	if a.ranking.joiner != nil {
		// Samples closed so far go in first: "train now" means now.
		a.flushSamples(ctx, time.Now())
	}
	report, err := Train(ctx, a.cfg, a.ranking.samples, &a.ranking.trainMu)
	if err != nil {
		return nil, err
	}
	if a.ranking.live != nil {
		if err := a.ranking.live.Reload(ctx); err != nil {
			return nil, fmt.Errorf("trained %s but could not load it: %w", report.Model, err)
		}
	}
	return report, nil
}

// Train runs one training over the samples of the configured window.
func Train(ctx context.Context, cfg *config.Config, store *rank.SampleStore, mu *sync.Mutex) (rank.Report, error) {
	mu.Lock()
	defer mu.Unlock()
	samples, _, err := store.Read(ctx, time.Now().Add(-cfg.Rank.TrainWindow))
	if err != nil {
		return rank.Report{}, fmt.Errorf("reading samples: %w", err)
	}
	tc := cfg.Rank.Train
	tc.ModelsDir = ModelsDir(cfg)
	report, err := rank.Train(ctx, samples, tc)
	if err != nil {
		return report, err
	}
	// Samples older than the training window will never be read again.
	if _, err := store.Prune(ctx, time.Now().Add(-cfg.Rank.TrainWindow)); err != nil {
		return report, fmt.Errorf("trained, but pruning old samples failed: %w", err)
	}
	return report, nil
}

// startRanking runs the model reload poller, sample collection and the
// training timer.
func (a *App) startRanking(ctx context.Context) {
	if live := a.ranking.live; live != nil {
		a.bgWG.Add(1)
		go func() {
			defer a.bgWG.Done()
			live.Watch(ctx, a.cfg.Rank.ReloadInterval)
		}()
	}
	if err := a.startSampleCollection(ctx); err != nil {
		a.log.Error("training-sample collection not started", zap.Error(err))
	}
	a.every(ctx, a.cfg.Rank.TrainInterval, "train", a.runTrain)
}
