package rank

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"reelfeed/rank/model"
)

// ModelArch is the architecture of the trained models.
type ModelArch struct {
	Buckets uint32  // hash space shared by all fields (rank.model.buckets)
	Dim     int     // embedding dimension (rank.model.dim)
	Hidden  []int   // DNN hidden layer sizes (rank.model.hidden)
	InitStd float32 // initial embedding scale (rank.model.init_std)
}

// TrainConfig tunes Train.
type TrainConfig struct {
	// ModelsDir receives deepfm-<unixnano>.bin files and the "current"
	// pointer (rank.models_dir, default <data_dir>/models).
	ModelsDir string
	Arch      ModelArch
	// Optimizer is "adam" or "adagrad" (rank.train.optimizer).
	Optimizer    string
	LearningRate float32 // rank.train.learning_rate
	L2           float32 // rank.train.l2
	// Epochs is the most passes over the data (rank.train.epochs); each
	// model stops earlier once a pass no longer improves its logloss on
	// the validation part, and keeps its best pass.
	Epochs    int
	BatchSize int // rank.train.batch_size
	// Workers fixes the parallel split of each batch; the same samples,
	// seed and workers give a bit-identical model (rank.train.workers).
	Workers int
	Seed    uint64 // rank.train.seed
	// HoldoutFraction is the newest share of samples, by impression
	// time, held out for evaluation (rank.train.holdout).
	HoldoutFraction float64
	// ValidationFraction is the newest share of the remaining (training)
	// samples used to choose each model's number of passes
	// (rank.train.validation).
	ValidationFraction float64
	// MinSamples is the fewest usable samples worth training on
	// (rank.train.min_samples).
	MinSamples int
	// KeepModels is how many model files to keep; older ones are deleted,
	// never the current one (rank.train.keep_models).
	KeepModels int
}

// DefaultTrainConfig returns the documented defaults.
func DefaultTrainConfig() TrainConfig {
	tc := model.DefaultTrainConfig()
	return TrainConfig{
		ModelsDir:          "data/models",
		Arch:               ModelArch{Buckets: 1 << 20, Dim: 8, Hidden: []int{64, 32}, InitStd: 0.05},
		Optimizer:          tc.Optimizer.String(),
		LearningRate:       tc.LearningRate,
		L2:                 tc.L2,
		Epochs:             5,
		BatchSize:          tc.BatchSize,
		Workers:            tc.Workers,
		Seed:               tc.Seed,
		HoldoutFraction:    0.2,
		ValidationFraction: 0.1,
		MinSamples:         200,
		KeepModels:         5,
	}
}

func (c TrainConfig) modelTrainConfig() (model.TrainConfig, error) {
	opt, err := model.ParseOptimizer(c.Optimizer)
	if err != nil {
		return model.TrainConfig{}, err
	}
	tc := model.TrainConfig{
		Optimizer:    opt,
		LearningRate: c.LearningRate,
		L2:           c.L2,
		Epochs:       c.Epochs,
		BatchSize:    c.BatchSize,
		Workers:      c.Workers,
		Seed:         c.Seed,
	}
	return tc, tc.Validate()
}

// Validate reports the first problem with c.
func (c TrainConfig) Validate() error {
	if c.ModelsDir == "" {
		return errors.New("rank: train needs a models dir")
	}
	if !(c.HoldoutFraction > 0 && c.HoldoutFraction < 1) {
		return errors.New("rank: holdout fraction must be in (0, 1)")
	}
	if !(c.ValidationFraction > 0 && c.ValidationFraction < 1) {
		return errors.New("rank: validation fraction must be in (0, 1)")
	}
	if c.KeepModels < 1 {
		return errors.New("rank: keep models must be >= 1")
	}
	if _, err := c.modelTrainConfig(); err != nil {
		return err
	}
	return featureModelConfig(model.DeepFM, c.Arch, c.Seed).Validate()
}

// Report is the outcome of a training run, in the shape `reelfeed train`
// prints and POST /v1/admin/jobs/train returns. Metrics are on the holdout.
type Report struct {
	AUC       float64   `json:"auc"`
	LogLoss   float64   `json:"logloss"`
	Samples   int       `json:"samples"`
	Baselines Baselines `json:"baselines"`
	Model     string    `json:"model"`
}

// Baselines are simpler models fitted on the same split, to show what the
// DeepFM adds.
type Baselines struct {
	LR model.Metrics `json:"lr"`
	FM model.Metrics `json:"fm"`
}

// ErrNotEnoughSamples is returned when the samples cannot support a
// meaningful training run and evaluation.
var ErrNotEnoughSamples = errors.New("rank: not enough samples to train")

// modelMeta is saved inside each model file; Live reads it to know the
// holdout logloss its online-learning guard compares against.
type modelMeta struct {
	FeaturesVersion int       `json:"features_version"`
	TrainedAt       time.Time `json:"trained_at"`
	Samples         int       `json:"samples"`
	TrainSamples    int       `json:"train_samples"`
	HoldoutSamples  int       `json:"holdout_samples"`
	Epochs          int       `json:"epochs"`
	HoldoutAUC      float64   `json:"holdout_auc"`
	HoldoutLogLoss  float64   `json:"holdout_logloss"`
	Baselines       Baselines `json:"baselines"`
}

// Train fits DeepFM, LR and FM models on samples with a time-based holdout
// (the newest HoldoutFraction by impression time), evaluates all three on
// the holdout, and writes the DeepFM atomically into the models directory
// as the new current model. Each model trains on the older samples minus
// their newest ValidationFraction, which picks its number of passes. Samples with missing or unreadable features are
// skipped; Report.Samples counts those used.
func Train(ctx context.Context, samples []Sample, cfg TrainConfig) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	tc, _ := cfg.modelTrainConfig()
	data, err := buildDataset(samples)
	if err != nil {
		return Report{}, err
	}
	n := data.Len()
	cut := n - int(math.Ceil(float64(n)*cfg.HoldoutFraction))
	train, holdout := data.Slice(0, cut), data.Slice(cut, n)
	vcut := cut - int(math.Ceil(float64(cut)*cfg.ValidationFraction))
	fit, valid := data.Slice(0, vcut), data.Slice(vcut, cut)
	if n < cfg.MinSamples || !bothClasses(fit) || !bothClasses(valid) || !bothClasses(holdout) {
		return Report{}, fmt.Errorf("%w: %d usable (minimum %d), and the training, validation and holdout parts each need positives and negatives",
			ErrNotEnoughSamples, n, cfg.MinSamples)
	}

	var deepEpochs int
	fitEval := func(kind model.Kind) (*model.Model, model.Metrics, error) {
		m, err := model.New(featureModelConfig(kind, cfg.Arch, cfg.Seed))
		if err != nil {
			return nil, model.Metrics{}, err
		}
		tr, err := model.NewTrainer(m, tc)
		if err != nil {
			return nil, model.Metrics{}, err
		}
		res, err := tr.FitBest(ctx, fit, valid)
		if err != nil {
			return nil, model.Metrics{}, fmt.Errorf("rank: fit %s: %w", kind, err)
		}
		if kind == model.DeepFM {
			deepEpochs = res.Epochs
		}
		return m, model.Evaluate(m, holdout), nil
	}
	deep, deepMetrics, err := fitEval(model.DeepFM)
	if err != nil {
		return Report{}, err
	}
	var base Baselines
	if _, base.LR, err = fitEval(model.LR); err != nil {
		return Report{}, err
	}
	if _, base.FM, err = fitEval(model.FM); err != nil {
		return Report{}, err
	}

	meta, err := json.Marshal(modelMeta{
		FeaturesVersion: FeaturesVersion,
		TrainedAt:       time.Now().UTC(),
		Samples:         n,
		TrainSamples:    train.Len(),
		HoldoutSamples:  holdout.Len(),
		Epochs:          deepEpochs,
		HoldoutAUC:      deepMetrics.AUC,
		HoldoutLogLoss:  deepMetrics.LogLoss,
		Baselines:       base,
	})
	if err != nil {
		return Report{}, err
	}
	if err := deep.SetMeta(meta); err != nil {
		return Report{}, err
	}
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	path, err := publishModel(cfg.ModelsDir, deep, cfg.KeepModels)
	if err != nil {
		return Report{}, err
	}
	return Report{AUC: deepMetrics.AUC, LogLoss: deepMetrics.LogLoss, Samples: n, Baselines: base, Model: path}, nil
}

// featureModelConfig is the model architecture over this build's fields.
func featureModelConfig(kind model.Kind, a ModelArch, seed uint64) model.Config {
	return model.Config{
		Kind:    kind,
		Fields:  deepFMFields,
		Buckets: a.Buckets,
		Dim:     a.Dim,
		Hidden:  a.Hidden,
		InitStd: a.InitStd,
		Seed:    seed,
	}
}

// buildDataset rebuilds model inputs from the logged features, ordered by
// impression time.
func buildDataset(samples []Sample) (*model.Dataset, error) {
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return samples[a].TS.Compare(samples[b].TS) })
	d := model.NewDataset(deepFMFields)
	rows := newRows()
	for _, i := range order {
		s := &samples[i]
		lf, err := ParseLoggedFeatures(s.Features)
		if err != nil || !(s.Label == 0 || s.Label == 1) {
			continue
		}
		lf.putUserRows(rows)
		lf.putItemRows(rows)
		if err := d.Add(model.Example{Fields: rows, Label: s.Label, TS: s.TS.UnixNano()}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func bothClasses(d *model.Dataset) bool {
	var pos, neg bool
	for i := range d.Len() {
		if d.Label(i) >= 0.5 {
			pos = true
		} else {
			neg = true
		}
		if pos && neg {
			return true
		}
	}
	return false
}

// The models directory holds deepfm-<unixnano>.bin files and "current",
// which names the one to serve. Both are replaced atomically, so replicas
// sharing the directory never read a half-written file.
const (
	currentFile  = "current"
	modelPrefix  = "deepfm-"
	modelSuffix  = ".bin"
	maxNameBytes = 256
)

func publishModel(dir string, m *model.Model, keep int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rank: models dir: %w", err)
	}
	name := modelPrefix + strconv.FormatInt(time.Now().UnixNano(), 10) + modelSuffix
	path := filepath.Join(dir, name)
	if err := m.Save(path); err != nil {
		return "", fmt.Errorf("rank: save model: %w", err)
	}
	if err := model.WriteFileAtomic(filepath.Join(dir, currentFile), func(w io.Writer) error {
		_, err := io.WriteString(w, name+"\n")
		return err
	}); err != nil {
		return "", fmt.Errorf("rank: publish model: %w", err)
	}
	pruneModels(dir, name, keep)
	return path, nil
}

// currentModelPath returns the path "current" names, or an error wrapping
// os.ErrNotExist when there is no model yet.
func currentModelPath(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if name == "" || len(name) > maxNameBytes || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("rank: %s names an invalid model file %q", filepath.Join(dir, currentFile), name)
	}
	return filepath.Join(dir, name), nil
}

// pruneModels deletes all but the newest keep model files, never current.
// Names embed the creation time in fixed-width nanoseconds, so name order
// is age order. Failures only leave extra files behind.
func pruneModels(dir, current string, keep int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, modelPrefix) && strings.HasSuffix(n, modelSuffix) && !e.IsDir() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for i := 0; i < len(names)-keep; i++ {
		if names[i] != current {
			os.Remove(filepath.Join(dir, names[i]))
		}
	}
}
