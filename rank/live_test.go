package rank

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"reelfeed/feature"
)

// constScorer is a stand-in fallback that marks what it scored.
type constScorer struct{}

func (constScorer) Name() string { return "const" }
func (constScorer) Score(_ context.Context, _ *Query, items []Item) error {
	for i := range items {
		items[i].Score = 42
	}
	return nil
}

func liveConfig(dir string) LiveConfig {
	return LiveConfig{ModelsDir: dir, Smoothing: feature.DefaultSmoothing(), Online: DefaultOnlineConfig()}
}

func newTestLive(t *testing.T, cfg LiveConfig) (*Live, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	l, err := NewLive(context.Background(), cfg, constScorer{}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l, reg
}

// metricValue reads one gauge or counter from reg; label may be empty.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetName() == label && lp.GetValue() == value
			}
			if match {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func fallbackGauge(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	return metricValue(t, reg, "reelfeed_model_fallback", "reason", reason)
}

func trainInto(t *testing.T, dir string, w *simWorld, n int) Report {
	t.Helper()
	rep, err := Train(context.Background(), w.samples(n), testTrainConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestLiveFallsBackWithoutModelAndHotReloads(t *testing.T) {
	dir := t.TempDir()
	l, reg := newTestLive(t, liveConfig(dir))
	w := newSimWorld(20, 100, 500)
	q, items := testItems(w, 10)

	if reason, _ := l.FallbackReason(); reason != FallbackNoModel || l.Name() != "const" {
		t.Fatalf("no model: reason %q name %q", reason, l.Name())
	}
	if g := fallbackGauge(t, reg, FallbackNoModel); g != 1 {
		t.Errorf("fallback gauge no_model = %v, want 1", g)
	}
	l.Score(context.Background(), q, items)
	if items[0].Score != 42 {
		t.Fatalf("score %v, want the fallback's", items[0].Score)
	}
	// Samples are logged even before any model exists.
	if _, err := ParseLoggedFeatures(l.Log(q, &items[0])); err != nil {
		t.Fatal(err)
	}

	rep := trainInto(t, dir, w, 3000)
	if err := l.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if reason, _ := l.FallbackReason(); reason != "" || l.Name() != DeepFMName || l.ModelPath() != rep.Model {
		t.Fatalf("after reload: reason %q name %q path %q", reason, l.Name(), l.ModelPath())
	}
	if g := fallbackGauge(t, reg, FallbackNoModel); g != 0 {
		t.Errorf("fallback gauge no_model = %v, want 0 while the model serves", g)
	}
	l.Score(context.Background(), q, items)
	if !(items[0].Score > 0 && items[0].Score < 1) {
		t.Fatalf("score %v, want a model probability", items[0].Score)
	}

	// A newer model is picked up; the same one is not reloaded.
	time.Sleep(time.Millisecond) // distinct file name
	rep2 := trainInto(t, dir, w, 3000)
	before := metricValue(t, reg, "reelfeed_model_reloads_total", "result", "ok")
	l.Reload(context.Background())
	l.Reload(context.Background())
	after := metricValue(t, reg, "reelfeed_model_reloads_total", "result", "ok")
	if l.ModelPath() != rep2.Model || after != before+1 {
		t.Errorf("path %q after a new model, reloads %v → %v", l.ModelPath(), before, after)
	}
}

func TestLiveFallsBackOnCorruptModel(t *testing.T) {
	dir := t.TempDir()
	w := newSimWorld(21, 50, 200)
	rep := trainInto(t, dir, w, 1500)
	l, reg := newTestLive(t, liveConfig(dir))
	if l.Name() != DeepFMName {
		t.Fatalf("NewLive did not load the existing model: %q", l.Name())
	}
	// Corrupt the current file in place (a bad disk, a truncated copy).
	data, _ := os.ReadFile(rep.Model)
	os.WriteFile(rep.Model, data[:len(data)/2], 0o644)
	err := l.Reload(context.Background())
	if err == nil {
		t.Fatal("reloading a truncated model succeeded")
	}
	reason, why := l.FallbackReason()
	if reason != FallbackCorrupt || !errors.Is(why, err) && why.Error() != err.Error() {
		t.Errorf("reason %q (%v)", reason, why)
	}
	if g := fallbackGauge(t, reg, FallbackCorrupt); g != 1 {
		t.Errorf("fallback gauge corrupt = %v, want 1", g)
	}
	q, items := testItems(w, 3)
	l.Score(context.Background(), q, items)
	if items[0].Score != 42 {
		t.Errorf("score %v, want the fallback's", items[0].Score)
	}
	// A pointer to garbage is corrupt too, not a crash.
	os.WriteFile(filepath.Join(dir, currentFile), []byte("../../etc/passwd\n"), 0o644)
	if err := l.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid model file") {
		t.Errorf("bad pointer: err = %v", err)
	}
	// Training again recovers.
	trainInto(t, dir, w, 1500)
	if err := l.Reload(context.Background()); err != nil || l.Name() != DeepFMName {
		t.Errorf("after retraining: %v, %q", err, l.Name())
	}
}

func TestLiveLearnsOnline(t *testing.T) {
	dir := t.TempDir()
	w := newSimWorld(22, 100, 500)
	trainInto(t, dir, w, 3000)
	cfg := liveConfig(dir)
	cfg.Online.LearningRate = 0.01
	l, _ := newTestLive(t, cfg)
	q, items := testItems(w, 50)
	l.Score(context.Background(), q, items)
	before := items[7].Score

	res, err := l.Learn(context.Background(), w.samples(1000))
	if err != nil {
		t.Fatal(err)
	}
	if res.Learned != 1000 || res.RolledBack || !(res.LogLoss > 0) {
		t.Fatalf("learn = %+v", res)
	}
	l.Score(context.Background(), q, items)
	if items[7].Score == before {
		t.Error("online learning did not change the live model")
	}
	// Disabled: nothing happens.
	cfg.Online.Enabled = false
	off, _ := newTestLive(t, cfg)
	if res, _ := off.Learn(context.Background(), w.samples(10)); res.Learned != 0 || res.Skipped != 10 {
		t.Errorf("disabled learn = %+v", res)
	}
}

func TestLiveRollsBackWhenOnlineLearningDegrades(t *testing.T) {
	dir := t.TempDir()
	w := newSimWorld(23, 100, 500)
	trainInto(t, dir, w, 3000)
	cfg := liveConfig(dir)
	cfg.Online.LearningRate = 0.05
	cfg.Online.Window = 500
	l, reg := newTestLive(t, cfg)
	q, items := testItems(w, 20)
	l.Score(context.Background(), q, items)
	saved := items[3].Score

	// Adversarial traffic: every label inverted.
	bad := w.samples(3000)
	for i := range bad {
		bad[i].Label = 1 - bad[i].Label
	}
	var rolled bool
	for lo := 0; lo < len(bad) && !rolled; lo += 500 {
		res, err := l.Learn(context.Background(), bad[lo:lo+500])
		if err != nil {
			t.Fatal(err)
		}
		rolled = res.RolledBack
	}
	if !rolled {
		t.Fatal("inverted labels never triggered a rollback")
	}
	if got := metricValue(t, reg, "reelfeed_model_rollbacks_total", "", ""); got < 1 {
		t.Errorf("rollbacks metric = %v", got)
	}
	l.Score(context.Background(), q, items)
	if items[3].Score != saved {
		t.Errorf("after rollback score %v, want the saved model's %v", items[3].Score, saved)
	}
}

func TestLiveServesWhileLearning(t *testing.T) {
	dir := t.TempDir()
	w := newSimWorld(24, 100, 500)
	trainInto(t, dir, w, 2000)
	l, _ := newTestLive(t, liveConfig(dir))
	samples := w.samples(2000)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		q, items := testItems(w, 100)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Score(ctx, q, items); err != nil {
					t.Error(err)
					return
				}
				for _, it := range items {
					if !(it.Score > 0 && it.Score < 1) {
						t.Errorf("score %v while learning", it.Score)
						return
					}
				}
			}
		})
	}
	for lo := 0; lo < len(samples); lo += 200 {
		if _, err := l.Learn(ctx, samples[lo:lo+200]); err != nil {
			t.Error(err)
		}
		if lo == 1000 {
			l.Reload(ctx)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLiveWatchPicksUpNewModels(t *testing.T) {
	dir := t.TempDir()
	l, _ := newTestLive(t, liveConfig(dir))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Watch(ctx, 10*time.Millisecond); close(done) }()
	trainInto(t, dir, newSimWorld(25, 50, 200), 1000)
	deadline := time.Now().Add(5 * time.Second)
	for l.Name() != DeepFMName && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if l.Name() != DeepFMName {
		t.Error("Watch never loaded the new model")
	}
}

func TestNewLiveValidates(t *testing.T) {
	cfg := liveConfig(t.TempDir())
	if _, err := NewLive(context.Background(), cfg, nil, nil, nil); err == nil {
		t.Error("nil fallback accepted")
	}
	cfg.Online.RollbackThreshold = 0
	if _, err := NewLive(context.Background(), cfg, constScorer{}, nil, nil); err == nil {
		t.Error("zero rollback threshold accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewLive(context.Background(), liveConfig(t.TempDir()), constScorer{}, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLive(context.Background(), liveConfig(t.TempDir()), constScorer{}, reg, nil); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
}
