package rank

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"reelfeed/feature"
	"reelfeed/rank/model"
)

// Why Live is serving with its fallback scorer.
const (
	FallbackNoModel      = "no_model"     // nothing trained yet
	FallbackCorrupt      = "corrupt"      // the current model file is unreadable
	FallbackIncompatible = "incompatible" // written for another feature layout
)

var fallbackReasons = []string{FallbackNoModel, FallbackCorrupt, FallbackIncompatible}

// OnlineConfig tunes online learning.
type OnlineConfig struct {
	// Enabled turns online learning on (rank.online.enabled).
	Enabled bool
	// Optimizer, LearningRate and L2 drive the online steps
	// (rank.online.optimizer, .learning_rate, .l2); keep the rate well
	// below the offline one, the model is already trained.
	Optimizer    string
	LearningRate float32
	L2           float32
	// BatchSize is the number of samples per online step
	// (rank.online.batch_size).
	BatchSize int
	// Window is the number of recent samples whose mean logloss — each
	// predicted before the model learned from it — the guard watches
	// (rank.online.window).
	Window int
	// RollbackThreshold: when the window's logloss exceeds the saved
	// model's holdout logloss by more than this fraction, the live model
	// is rolled back to the saved file (rank.online.rollback_threshold).
	// Models without a recorded holdout logloss are never rolled back.
	RollbackThreshold float64
}

// DefaultOnlineConfig returns the documented defaults.
func DefaultOnlineConfig() OnlineConfig {
	return OnlineConfig{
		Enabled:           true,
		Optimizer:         "adam",
		LearningRate:      2e-4,
		L2:                1e-6,
		BatchSize:         128,
		Window:            2000,
		RollbackThreshold: 0.10,
	}
}

// LiveConfig tunes Live.
type LiveConfig struct {
	ModelsDir string            // where Train publishes (rank.models_dir)
	Smoothing feature.Smoothing // as configured for the feature store
	Online    OnlineConfig
}

func (c LiveConfig) validate() error {
	if c.ModelsDir == "" {
		return errors.New("rank: live scorer needs a models dir")
	}
	if !c.Online.Enabled {
		return nil
	}
	o := c.Online
	opt, err := model.ParseOptimizer(o.Optimizer)
	if err != nil {
		return err
	}
	if err := (model.TrainConfig{Optimizer: opt, LearningRate: o.LearningRate, L2: o.L2, Epochs: 1, BatchSize: max(o.BatchSize, 1), Workers: 1}).Validate(); err != nil {
		return err
	}
	switch {
	case o.BatchSize < 1:
		return errors.New("rank: online batch size must be >= 1")
	case o.Window < 1:
		return errors.New("rank: online window must be >= 1")
	case !(o.RollbackThreshold > 0):
		return errors.New("rank: online rollback threshold must be > 0")
	}
	return nil
}

// Live is the ranking Scorer the feed uses: the current DeepFM model from
// the models directory behind an atomic pointer, hot-reloaded when Train
// publishes a new one (Reload, Watch), and a fallback scorer (the formula)
// whenever there is no usable model. With online learning on, Learn takes
// SGD steps on the live model as samples are joined, and rolls back to
// the saved file if that makes it worse.
type Live struct {
	cfg      LiveConfig
	fallback Scorer
	log      *zap.Logger
	features FeatureExtractor

	state atomic.Pointer[liveState]

	mu         sync.Mutex // serialises Reload and Learn
	lastFailed fileStamp  // the file that last failed to load
	window     lossWindow

	mFallback  *prometheus.GaugeVec
	mReloads   *prometheus.CounterVec
	mOnlineLL  prometheus.Gauge
	mOnlineN   prometheus.Counter
	mRollbacks prometheus.Counter
}

type liveState struct {
	model  *liveModel // nil: serving the fallback
	reason string     // why, when model is nil
	err    error
}

type liveModel struct {
	scorer  *DeepFMScorer
	file    fileStamp
	meta    modelMeta
	trainer *model.Trainer // created by the first Learn
}

type fileStamp struct {
	path    string
	size    int64
	modTime time.Time
}

// NewLive returns a Live scorer and loads the current model, if any.
// fallback serves while there is no usable model. Metrics are registered
// on reg (nil: not exported); log may be nil.
func NewLive(ctx context.Context, cfg LiveConfig, fallback Scorer, reg prometheus.Registerer, log *zap.Logger) (*Live, error) {
	if fallback == nil {
		return nil, errors.New("rank: live scorer needs a fallback scorer")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	l := &Live{
		cfg:      cfg,
		fallback: fallback,
		log:      log,
		features: NewFeatureExtractor(cfg.Smoothing),
		mFallback: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reelfeed_model_fallback",
			Help: "1 for the reason the fallback scorer is serving instead of the model (no_model, corrupt, incompatible); all 0 while the model serves.",
		}, []string{"reason"}),
		mReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfeed_model_reloads_total",
			Help: "Model loads from the models directory, by result (ok, error).",
		}, []string{"result"}),
		mOnlineLL: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reelfeed_model_online_logloss",
			Help: "Mean logloss of the live model on the latest online-learning window, each sample predicted before learning from it.",
		}),
		mOnlineN: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfeed_model_online_samples_total",
			Help: "Samples the live model learned from online.",
		}),
		mRollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfeed_model_rollbacks_total",
			Help: "Times online learning degraded the live model and it was rolled back to the saved file.",
		}),
	}
	l.window.limit = cfg.Online.Window
	if reg != nil {
		for _, c := range []prometheus.Collector{l.mFallback, l.mReloads, l.mOnlineLL, l.mOnlineN, l.mRollbacks} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("rank: register model metrics: %w", err)
			}
		}
	}
	l.setFallback(FallbackNoModel, nil)
	if err := l.Reload(ctx); err != nil && ctx.Err() != nil {
		return nil, err
	}
	return l, nil
}

// Name implements Scorer: DeepFMName while the model serves, else the
// fallback's name.
func (l *Live) Name() string {
	if l.state.Load().model != nil {
		return DeepFMName
	}
	return l.fallback.Name()
}

// Score implements Scorer.
func (l *Live) Score(ctx context.Context, q *Query, items []Item) error {
	if m := l.state.Load().model; m != nil {
		return m.scorer.Score(ctx, q, items)
	}
	return l.fallback.Score(ctx, q, items)
}

// Log returns the features of one served item for its impression event.
// It works with or without a model, so samples are collected before the
// first model exists.
func (l *Live) Log(q *Query, it *Item) json.RawMessage { return l.features.Log(q, it) }

// LogPage is Log for every item of a served page, appended to dst.
func (l *Live) LogPage(dst []json.RawMessage, q *Query, items []*Item) []json.RawMessage {
	return l.features.LogPage(dst, q, items)
}

// FallbackReason returns why the fallback serves ("" while the model
// does) and the error behind it, if any.
func (l *Live) FallbackReason() (string, error) {
	s := l.state.Load()
	return s.reason, s.err
}

// ModelPath returns the file the live model was loaded from ("" if none).
func (l *Live) ModelPath() string {
	if m := l.state.Load().model; m != nil {
		return m.file.path
	}
	return ""
}

func (l *Live) setFallback(reason string, err error) {
	l.state.Store(&liveState{reason: reason, err: err})
	for _, r := range fallbackReasons {
		v := 0.0
		if r == reason {
			v = 1
		}
		l.mFallback.WithLabelValues(r).Set(v)
	}
}

func (l *Live) setModel(m *liveModel) {
	l.state.Store(&liveState{model: m})
	for _, r := range fallbackReasons {
		l.mFallback.WithLabelValues(r).Set(0)
	}
	l.window.reset()
}

// Reload loads the model "current" names in the models directory, unless
// it is the one already serving. With no model the fallback serves (no
// error); with an unreadable or incompatible one the fallback serves and
// the error is returned, logged and exported. Safe to call concurrently
// with scoring: the switch is one atomic pointer swap.
func (l *Live) Reload(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reload(ctx, false)
}

func (l *Live) reload(ctx context.Context, force bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := currentModelPath(l.cfg.ModelsDir)
	if errors.Is(err, fs.ErrNotExist) {
		if cur := l.state.Load(); cur.model != nil || cur.reason != FallbackNoModel {
			l.log.Warn("no ranking model; serving with the fallback scorer", zap.String("dir", l.cfg.ModelsDir), zap.String("fallback", l.fallback.Name()))
		}
		l.setFallback(FallbackNoModel, nil)
		return nil
	}
	if err != nil {
		return l.loadFailed(fileStamp{}, FallbackCorrupt, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return l.loadFailed(fileStamp{path: path}, FallbackCorrupt, fmt.Errorf("rank: current model: %w", err))
	}
	stamp := fileStamp{path: path, size: st.Size(), modTime: st.ModTime()}
	cur := l.state.Load()
	if !force {
		if cur.model != nil && cur.model.file == stamp {
			return nil
		}
		if cur.model == nil && cur.err != nil && l.lastFailed == stamp {
			return cur.err // same broken file: do not re-read and re-log it every poll
		}
	}
	m, err := model.Load(path)
	if err != nil {
		return l.loadFailed(stamp, FallbackCorrupt, err)
	}
	var meta modelMeta
	if err := json.Unmarshal(m.Meta(), &meta); err != nil {
		return l.loadFailed(stamp, FallbackIncompatible, fmt.Errorf("rank: %s: model metadata: %w", path, err))
	}
	if meta.FeaturesVersion != FeaturesVersion {
		return l.loadFailed(stamp, FallbackIncompatible, fmt.Errorf("rank: %s: features version %d, this build uses %d", path, meta.FeaturesVersion, FeaturesVersion))
	}
	scorer, err := NewDeepFMScorer(m, l.cfg.Smoothing)
	if err != nil {
		return l.loadFailed(stamp, FallbackIncompatible, fmt.Errorf("rank: %s: %w", path, err))
	}
	l.setModel(&liveModel{scorer: scorer, file: stamp, meta: meta})
	l.lastFailed = fileStamp{}
	l.mReloads.WithLabelValues("ok").Inc()
	l.log.Info("ranking model loaded", zap.String("path", path),
		zap.Float64("holdout_auc", meta.HoldoutAUC), zap.Float64("holdout_logloss", meta.HoldoutLogLoss),
		zap.Time("trained_at", meta.TrainedAt))
	return nil
}

func (l *Live) loadFailed(stamp fileStamp, reason string, err error) error {
	l.lastFailed = stamp
	l.setFallback(reason, err)
	l.mReloads.WithLabelValues("error").Inc()
	l.log.Error("ranking model unusable; serving with the fallback scorer",
		zap.String("reason", reason), zap.String("fallback", l.fallback.Name()), zap.Error(err))
	return err
}

// Watch calls Reload every interval until ctx ends, so replicas sharing
// the models directory pick up new models. Errors are logged by Reload.
func (l *Live) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = l.Reload(ctx)
		}
	}
}

// LearnResult says what one Learn call did.
type LearnResult struct {
	Learned    int     // samples the model stepped on
	Skipped    int     // samples not learned from (disabled, no model, unreadable features)
	LogLoss    float64 // the guard window's mean logloss after this call (0: empty)
	RolledBack bool    // the guard restored the saved model
}

// Learn takes online SGD steps on samples (as Joiner.Flush returns them).
// Each sample is scored before the model learns from it; when the mean
// logloss of the last Window samples exceeds the saved model's holdout
// logloss by more than RollbackThreshold, the live model is reloaded from
// its file. Serving never sees a half-applied step: gradients are computed
// under the scorer's read lock and applied under its write lock.
func (l *Live) Learn(ctx context.Context, samples []Sample) (LearnResult, error) {
	var res LearnResult
	if !l.cfg.Online.Enabled || len(samples) == 0 {
		res.Skipped = len(samples)
		return res, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lm := l.state.Load().model
	if lm == nil {
		res.Skipped = len(samples)
		return res, nil
	}
	data, err := buildDataset(samples)
	if err != nil {
		return res, err
	}
	res.Skipped = len(samples) - data.Len()
	if lm.trainer == nil {
		o := l.cfg.Online
		opt, _ := model.ParseOptimizer(o.Optimizer)
		tc := model.TrainConfig{Optimizer: opt, LearningRate: o.LearningRate, L2: o.L2, Epochs: 1, BatchSize: o.BatchSize, Workers: 1, Seed: 1}
		if lm.trainer, err = model.NewTrainer(lm.scorer.model, tc); err != nil {
			return res, err
		}
	}
	s := lm.scorer
	for lo := 0; lo < data.Len(); lo += l.cfg.Online.BatchSize {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		part := data.Slice(lo, min(lo+l.cfg.Online.BatchSize, data.Len()))
		s.mu.RLock()
		loss, err := lm.trainer.Accumulate(part)
		s.mu.RUnlock()
		if err != nil {
			return res, err
		}
		s.mu.Lock()
		lm.trainer.Apply()
		s.mu.Unlock()
		l.window.add(loss, part.Len())
		res.Learned += part.Len()
	}
	l.mOnlineN.Add(float64(res.Learned))
	res.LogLoss = l.window.mean()
	l.mOnlineLL.Set(res.LogLoss)

	limit := lm.meta.HoldoutLogLoss * (1 + l.cfg.Online.RollbackThreshold)
	if l.window.full() && lm.meta.HoldoutLogLoss > 0 && res.LogLoss > limit {
		l.log.Warn("online learning degraded the ranking model; rolling back to the saved file",
			zap.Float64("online_logloss", res.LogLoss), zap.Float64("holdout_logloss", lm.meta.HoldoutLogLoss),
			zap.Float64("threshold", l.cfg.Online.RollbackThreshold), zap.String("path", lm.file.path))
		l.mRollbacks.Inc()
		res.RolledBack = true
		if err := l.reload(ctx, true); err != nil {
			return res, err
		}
	}
	return res, nil
}

// lossWindow is the mean logloss over at least the last limit samples,
// kept as per-step sums so a step never has to be split.
type lossWindow struct {
	limit int
	steps []lossStep
	sum   float64
	n     int
}

type lossStep struct {
	sum float64
	n   int
}

func (w *lossWindow) add(sum float64, n int) {
	w.steps = append(w.steps, lossStep{sum, n})
	w.sum += sum
	w.n += n
	for len(w.steps) > 1 && w.n-w.steps[0].n >= w.limit {
		w.sum -= w.steps[0].sum
		w.n -= w.steps[0].n
		w.steps = w.steps[1:]
	}
}

func (w *lossWindow) full() bool { return w.n >= w.limit }

func (w *lossWindow) mean() float64 {
	if w.n == 0 {
		return 0
	}
	return w.sum / float64(w.n)
}

func (w *lossWindow) reset() {
	w.steps, w.sum, w.n = nil, 0, 0
}
