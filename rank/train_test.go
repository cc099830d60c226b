package rank

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"reelfeed/rank/model"
)

func testTrainConfig(dir string) TrainConfig {
	cfg := DefaultTrainConfig()
	cfg.ModelsDir = dir
	cfg.Arch = testArch()
	cfg.Epochs = 2
	cfg.LearningRate = 0.005
	return cfg
}

func TestTrainReportsAndPublishes(t *testing.T) {
	dir := t.TempDir()
	samples := newSimWorld(7, 300, 1500).samples(12000)
	rep, err := Train(context.Background(), samples, testTrainConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deepfm auc %.4f logloss %.4f | lr auc %.4f logloss %.4f | fm auc %.4f logloss %.4f",
		rep.AUC, rep.LogLoss, rep.Baselines.LR.AUC, rep.Baselines.LR.LogLoss, rep.Baselines.FM.AUC, rep.Baselines.FM.LogLoss)
	if rep.Samples != 12000 {
		t.Errorf("samples = %d", rep.Samples)
	}
	if rep.AUC < 0.7 || rep.Baselines.LR.AUC < 0.6 || rep.Baselines.FM.AUC < 0.6 {
		t.Errorf("holdout AUCs %.3f / lr %.3f / fm %.3f: the synthetic task is learnable", rep.AUC, rep.Baselines.LR.AUC, rep.Baselines.FM.AUC)
	}
	if !(rep.LogLoss > 0 && rep.LogLoss < 0.69) {
		t.Errorf("holdout logloss %.4f, want below a coin flip", rep.LogLoss)
	}

	// The report has exactly the documented shape.
	b, _ := json.Marshal(rep)
	var shape map[string]any
	json.Unmarshal(b, &shape)
	if got := keys(shape); !reflect.DeepEqual(got, []string{"auc", "baselines", "logloss", "model", "samples"}) {
		t.Errorf("report keys %v", got)
	}
	bl := shape["baselines"].(map[string]any)
	if got := keys(bl); !reflect.DeepEqual(got, []string{"fm", "lr"}) {
		t.Errorf("baselines keys %v", got)
	}
	for _, k := range []string{"lr", "fm"} {
		if got := keys(bl[k].(map[string]any)); !reflect.DeepEqual(got, []string{"auc", "logloss"}) {
			t.Errorf("baselines.%s keys %v", k, got)
		}
	}

	// The model file is current and loads with its holdout metrics.
	cur, err := currentModelPath(dir)
	if err != nil || cur != rep.Model || !strings.HasPrefix(filepath.Base(cur), "deepfm-") {
		t.Fatalf("current = %q (%v), report model %q", cur, err, rep.Model)
	}
	m, err := model.Load(rep.Model)
	if err != nil {
		t.Fatal(err)
	}
	var meta modelMeta
	if err := json.Unmarshal(m.Meta(), &meta); err != nil || meta.HoldoutLogLoss != rep.LogLoss || meta.FeaturesVersion != FeaturesVersion {
		t.Errorf("meta %+v (%v)", meta, err)
	}
	if meta.HoldoutSamples != 2400 || meta.TrainSamples != 9600 {
		t.Errorf("split %d/%d, want the newest 20%% held out", meta.TrainSamples, meta.HoldoutSamples)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestTrainIsDeterministic(t *testing.T) {
	samples := newSimWorld(8, 50, 200).samples(2000)
	var files [][]byte
	for range 2 {
		cfg := testTrainConfig(t.TempDir())
		cfg.Epochs = 1
		rep, err := Train(context.Background(), samples, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(rep.Model)
		if err != nil {
			t.Fatal(err)
		}
		m.SetMeta(nil) // holds the training time
		var buf strings.Builder
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		files = append(files, []byte(buf.String()))
	}
	if string(files[0]) != string(files[1]) {
		t.Error("the same samples and seed gave different models")
	}
}

func TestTrainNeedsEnoughSamples(t *testing.T) {
	samples := newSimWorld(9, 10, 20).samples(100)
	if _, err := Train(context.Background(), samples, testTrainConfig(t.TempDir())); !errors.Is(err, ErrNotEnoughSamples) {
		t.Errorf("100 samples: err = %v", err)
	}
	many := newSimWorld(9, 10, 20).samples(1000)
	for i := range many {
		many[i].Label = 1
	}
	if _, err := Train(context.Background(), many, testTrainConfig(t.TempDir())); !errors.Is(err, ErrNotEnoughSamples) {
		t.Errorf("one class: err = %v", err)
	}
}

func TestTrainSkipsUnreadableSamples(t *testing.T) {
	samples := newSimWorld(10, 50, 200).samples(1000)
	samples[3].Features = json.RawMessage(`{"v":99}`)
	samples[4].Features = json.RawMessage(`not json`)
	rep, err := Train(context.Background(), samples, testTrainConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Samples != 998 {
		t.Errorf("samples = %d, want 998", rep.Samples)
	}
}

func TestTrainKeepsRecentModels(t *testing.T) {
	dir := t.TempDir()
	samples := newSimWorld(11, 50, 200).samples(600)
	cfg := testTrainConfig(dir)
	cfg.Epochs = 1
	cfg.KeepModels = 2
	var last string
	for range 4 {
		rep, err := Train(context.Background(), samples, cfg)
		if err != nil {
			t.Fatal(err)
		}
		last = rep.Model
	}
	files, _ := filepath.Glob(filepath.Join(dir, "deepfm-*.bin"))
	if len(files) != 2 {
		t.Errorf("%d model files kept, want 2", len(files))
	}
	if _, err := os.Stat(last); err != nil {
		t.Errorf("the current model was deleted: %v", err)
	}
}

func TestTrainHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := Train(ctx, newSimWorld(12, 50, 200).samples(1000), testTrainConfig(dir)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, err := currentModelPath(dir); err == nil {
		t.Error("a cancelled run published a model")
	}
}

func TestTrainConfigValidate(t *testing.T) {
	bad := []func(*TrainConfig){
		func(c *TrainConfig) { c.ModelsDir = "" },
		func(c *TrainConfig) { c.HoldoutFraction = 0 },
		func(c *TrainConfig) { c.HoldoutFraction = 1 },
		func(c *TrainConfig) { c.Optimizer = "sgd" },
		func(c *TrainConfig) { c.LearningRate = 0 },
		func(c *TrainConfig) { c.Arch.Dim = 0 },
		func(c *TrainConfig) { c.Arch.Hidden = []int{-1} },
		func(c *TrainConfig) { c.KeepModels = 0 },
	}
	for i, mutate := range bad {
		c := testTrainConfig("models")
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: invalid config accepted", i)
		}
	}
}
