package model

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func smallConfig(kind Kind) Config {
	return Config{Kind: kind, Fields: 4, Buckets: 64, Dim: 4, Hidden: []int{6, 3}, InitStd: 0.4, Seed: 7}
}

// randomize gives every parameter a non-trivial value, so gradient checks
// exercise all terms (and ReLUs both on and off).
func randomize(m *Model, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range m.params {
		m.params[i] = float32(rng.NormFloat64() * 0.5)
	}
	m.refreshDerived()
}

// gradExamples covers single ids, multi-hot fields, an empty field, two
// ids of one field in the same bucket (64 and 128 collide with 0 mod 64),
// and buckets shared across examples.
func gradExamples() []Example {
	return []Example{
		{Fields: [][]uint32{{1}, {2, 3}, {}, {5}}, Label: 1},
		{Fields: [][]uint32{{1}, {9}, {10, 74, 11}, {64}}, Label: 0},
		{Fields: [][]uint32{{128, 0}, {2}, {12}, {13, 14}}, Label: 1},
	}
}

func datasetOf(t testing.TB, fields int, exs []Example) *Dataset {
	t.Helper()
	d := NewDataset(fields)
	for _, ex := range exs {
		if err := d.Add(ex); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// meanLoss is the loss whose gradient Accumulate+Apply follows, in float64.
func meanLoss(m *Model, exs []Example) float64 {
	b := m.NewBatch(0)
	var s float64
	for _, ex := range exs {
		s += logLossFromLogit(b.Score(ex.Fields).Logit, ex.Label)
	}
	return s / float64(len(exs))
}

// analyticGrad returns the mean gradient over exs as a dense vector laid
// out like m.params, straight from the trainer's accumulators.
func analyticGrad(t *testing.T, m *Model, exs []Example) []float32 {
	t.Helper()
	tr, err := NewTrainer(m, TrainConfig{Optimizer: Adam, LearningRate: 1, Epochs: 1, BatchSize: len(exs), Workers: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accumulate(datasetOf(t, m.cfg.Fields, exs)); err != nil {
		t.Fatal(err)
	}
	g := make([]float32, len(m.params))
	n := float32(tr.count)
	for _, s := range tr.shards {
		for i, v := range s.gDense {
			g[i] += v / n
		}
	}
	dim := m.cfg.Dim
	for _, part := range tr.parts {
		for s, r := range part.touched {
			g[m.firstOff+int(r)] = part.gFirst[s] / n
			for k := range dim {
				g[m.embOff+int(r)*dim+k] = part.gEmb[s*dim+k] / n
			}
		}
	}
	return g
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	for _, kind := range []Kind{LR, FM, DeepFM} {
		t.Run(kind.String(), func(t *testing.T) {
			m, err := New(smallConfig(kind))
			if err != nil {
				t.Fatal(err)
			}
			randomize(m, uint64(kind))
			exs := gradExamples()
			g := analyticGrad(t, m, exs)
			checked := 0
			for i := range m.params {
				numeric := func(eps float32) float64 {
					orig := m.params[i]
					m.params[i] = orig + eps
					up := meanLoss(m, exs)
					m.params[i] = orig - eps
					down := meanLoss(m, exs)
					m.params[i] = orig
					return (up - down) / (2 * float64(eps))
				}
				a := float64(g[i])
				close := func(n float64) bool {
					return math.Abs(a-n) <= 2e-3+2e-2*math.Max(math.Abs(a), math.Abs(n))
				}
				// A perturbation can cross a ReLU kink; a smaller step
				// settles whether a mismatch is real.
				if n := numeric(1e-3); !close(n) {
					if n2 := numeric(1e-4); !close(n2) {
						t.Errorf("param %d (%s): analytic %.6f, numeric %.6f / %.6f", i, m.paramName(i), a, n, n2)
					}
				}
				if a != 0 {
					checked++
				}
			}
			minChecked := map[Kind]int{LR: 12, FM: 56, DeepFM: 100}[kind] // bias + 11 rows (+ their embeddings, + the DNN)
			if checked < minChecked {
				t.Errorf("only %d non-zero gradients checked, want >= %d", checked, minChecked)
			}
		})
	}
}

// paramName locates a parameter index, for readable failures.
func (m *Model) paramName(i int) string {
	switch {
	case i == 0:
		return "bias"
	case i >= m.embOff && m.cfg.Kind != LR:
		return "embedding"
	case i >= m.firstOff:
		return "first-order"
	}
	return "dnn"
}

func TestBatchSharedMatchesUnshared(t *testing.T) {
	m, err := New(smallConfig(DeepFM))
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 3)
	full := m.NewBatch(0)
	for _, shared := range []int{0, 1, 2, 4} {
		b := m.NewBatch(shared)
		user := gradExamples()[0].Fields
		b.SetShared(user)
		for _, ex := range gradExamples() {
			fields := append(append([][]uint32{}, user[:shared]...), ex.Fields[shared:]...)
			want := full.Score(fields)
			got := b.Score(fields)
			if d := math.Abs(float64(got.Logit - want.Logit)); d > 1e-5 {
				t.Errorf("shared=%d: logit %v, want %v", shared, got.Logit, want.Logit)
			}
			if sum := got.Bias + got.First + got.Second + got.DNN; math.Abs(float64(sum-got.Logit)) > 1e-6 {
				t.Errorf("parts %+v do not add up to the logit", got)
			}
		}
	}
}

func TestBatchScoreDoesNotAllocate(t *testing.T) {
	m, err := New(smallConfig(DeepFM))
	if err != nil {
		t.Fatal(err)
	}
	b := m.NewBatch(2)
	fields := gradExamples()[1].Fields
	allocs := testing.AllocsPerRun(100, func() {
		b.SetShared(fields)
		b.Score(fields)
	})
	if allocs != 0 {
		t.Errorf("SetShared+Score allocate %.1f times, want 0", allocs)
	}
}

// synthetic generates a task whose label depends only on a pairwise
// interaction of fields 0 and 1 (latent vectors of their values), plus
// distractor fields: learnable by FM and DeepFM, invisible to LR.
func synthetic(n int, seed uint64) []Example {
	const fields, card, latent = 6, 40, 4
	rng := rand.New(rand.NewPCG(99, 99)) // the hidden task is fixed
	var vecs [2][card][latent]float64
	for f := range vecs {
		for v := range vecs[f] {
			for k := range vecs[f][v] {
				vecs[f][v][k] = rng.NormFloat64()
			}
		}
	}
	rng = rand.New(rand.NewPCG(seed, 5))
	exs := make([]Example, n)
	for i := range exs {
		vals := make([]int, fields)
		fs := make([][]uint32, fields)
		for f := range fs {
			vals[f] = rng.IntN(card)
			fs[f] = []uint32{uint32(f*1000+vals[f]) * 2654435761}
		}
		var z float64
		for k := range latent {
			z += vecs[0][vals[0]][k] * vecs[1][vals[1]][k]
		}
		var y float32
		if rng.Float64() < 1/(1+math.Exp(-1.5*z)) {
			y = 1
		}
		exs[i] = Example{Fields: fs, Label: y, TS: int64(i)}
	}
	return exs
}

func fit(t testing.TB, cfg Config, tc TrainConfig, train *Dataset) *Model {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, tc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Fit(context.Background(), train); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDeepFMLearnsInteractionLRCannot(t *testing.T) {
	train := datasetOf(t, 6, synthetic(30000, 1))
	test := datasetOf(t, 6, synthetic(8000, 2))
	tc := TrainConfig{Optimizer: Adam, LearningRate: 0.01, L2: 1e-6, Epochs: 4, BatchSize: 128, Workers: 2, Seed: 3}
	aucs := map[Kind]float64{}
	for _, kind := range []Kind{LR, FM, DeepFM} {
		cfg := Config{Kind: kind, Fields: 6, Buckets: 1 << 12, Dim: 8, Hidden: []int{32, 16}, InitStd: 0.05, Seed: 1}
		m := fit(t, cfg, tc, train)
		met := Evaluate(m, test)
		aucs[kind] = met.AUC
		t.Logf("%s: auc %.4f logloss %.4f", kind, met.AUC, met.LogLoss)
	}
	if aucs[DeepFM] < aucs[LR]+0.1 {
		t.Errorf("DeepFM AUC %.4f not clearly above LR %.4f", aucs[DeepFM], aucs[LR])
	}
	if aucs[FM] < aucs[LR]+0.1 {
		t.Errorf("FM AUC %.4f not clearly above LR %.4f", aucs[FM], aucs[LR])
	}
	if aucs[DeepFM] < 0.75 {
		t.Errorf("DeepFM AUC %.4f, want >= 0.75 on a learnable task", aucs[DeepFM])
	}
}

func modelBytes(t testing.TB, m *Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTrainingIsDeterministic(t *testing.T) {
	train := datasetOf(t, 6, synthetic(3000, 1))
	cfg := Config{Kind: DeepFM, Fields: 6, Buckets: 1 << 10, Dim: 4, Hidden: []int{8, 4}, InitStd: 0.05, Seed: 11}
	for _, opt := range []Optimizer{Adam, Adagrad} {
		t.Run(opt.String(), func(t *testing.T) {
			tc := TrainConfig{Optimizer: opt, LearningRate: 0.01, L2: 1e-5, Epochs: 2, BatchSize: 64, Workers: 3, Seed: 5}
			a := modelBytes(t, fit(t, cfg, tc, train))
			b := modelBytes(t, fit(t, cfg, tc, train))
			if !bytes.Equal(a, b) {
				t.Fatal("same seed and data gave different models")
			}
			tc.Seed = 6
			if c := modelBytes(t, fit(t, cfg, tc, train)); bytes.Equal(a, c) {
				t.Fatal("a different shuffling seed gave the same model")
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, kind := range []Kind{LR, FM, DeepFM} {
		t.Run(kind.String(), func(t *testing.T) {
			m, err := New(smallConfig(kind))
			if err != nil {
				t.Fatal(err)
			}
			randomize(m, 9)
			if err := m.SetMeta([]byte(`{"logloss":0.5}`)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.bin")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Meta()) != `{"logloss":0.5}` {
				t.Errorf("meta = %q", got.Meta())
			}
			if got.Config().Kind != kind || got.Config().Fields != 4 {
				t.Errorf("config = %+v", got.Config())
			}
			b1, b2 := m.NewBatch(1), got.NewBatch(1)
			for _, ex := range gradExamples() {
				b1.SetShared(ex.Fields)
				b2.SetShared(ex.Fields)
				if p1, p2 := b1.Score(ex.Fields), b2.Score(ex.Fields); p1 != p2 {
					t.Errorf("score %+v after reload, want %+v", p2, p1)
				}
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("save left %d files, want only the model", len(entries))
			}
		})
	}
}

func TestLoadRejectsCorruptFiles(t *testing.T) {
	m, err := New(smallConfig(DeepFM))
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 1)
	_ = m.SetMeta([]byte("meta"))
	good := modelBytes(t, m)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	cases := map[string][]byte{
		"empty":          nil,
		"wrong magic":    flip(0),
		"version":        flip(8),
		"kind":           flip(12),
		"buckets":        flip(20),
		"param bit flip": flip(len(good) / 2),
		"checksum":       flip(len(good) - 1),
		"trailing":       append(bytes.Clone(good), 0),
		"text":           []byte("not a model at all, just some text that is long enough"),
	}
	for _, cut := range []int{1, 8, 12, 30, 60, len(good) / 3, len(good) - 5, len(good) - 1} {
		cases["truncated at "+itoa(cut)] = good[:cut]
	}
	dir := t.TempDir()
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Read(bytes.NewReader(data)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Read: err = %v, want ErrCorrupt", err)
			}
			path := filepath.Join(dir, "m.bin")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(path); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Load: err = %v, want ErrCorrupt", err)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want not-exist", err)
	}
	// Every single-byte truncation point must fail cleanly, never panic.
	for cut := range len(good) {
		if _, err := Read(bytes.NewReader(good[:cut])); err == nil {
			t.Fatalf("truncated at %d: no error", cut)
		}
	}
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

func TestAUC(t *testing.T) {
	cases := []struct {
		name   string
		labels []float32
		scores []float32
		want   float64
	}{
		{"perfect", []float32{0, 0, 1, 1}, []float32{0.1, 0.2, 0.8, 0.9}, 1},
		{"inverted", []float32{1, 1, 0, 0}, []float32{0.1, 0.2, 0.8, 0.9}, 0},
		{"all tied", []float32{1, 0, 1, 0}, []float32{0.5, 0.5, 0.5, 0.5}, 0.5},
		// pairs: (p.9 > n.1) (p.9 > n.5) (p.5 = n.5 → ½) (p.5 > n.1) → 3.5/4
		{"ties half credit", []float32{1, 0, 1, 0}, []float32{0.9, 0.5, 0.5, 0.1}, 0.875},
		{"one class", []float32{1, 1}, []float32{0.1, 0.2}, math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := AUC(c.labels, c.scores)
			if math.IsNaN(c.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-c.want) > 1e-12) {
				t.Errorf("AUC = %v, want %v", got, c.want)
			}
		})
	}
}

func TestAUCMatchesPairCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	labels := make([]float32, 300)
	scores := make([]float32, 300)
	for i := range labels {
		labels[i] = float32(rng.IntN(2))
		scores[i] = float32(rng.IntN(20)) / 20 // many ties
	}
	var num, den float64
	for i := range labels {
		for j := range labels {
			if labels[i] == 1 && labels[j] == 0 {
				den++
				switch {
				case scores[i] > scores[j]:
					num++
				case scores[i] == scores[j]:
					num += 0.5
				}
			}
		}
	}
	if got, want := AUC(labels, scores), num/den; math.Abs(got-want) > 1e-12 {
		t.Errorf("AUC = %v, brute force %v", got, want)
	}
}

func TestLogLoss(t *testing.T) {
	got := LogLoss([]float32{1, 0}, []float32{0.8, 0.4})
	want := -(math.Log(0.8) + math.Log(0.6)) / 2
	if math.Abs(got-want) > 1e-6 {
		t.Errorf("LogLoss = %v, want %v", got, want)
	}
	if v := LogLoss([]float32{1}, []float32{0}); math.IsInf(v, 0) || v < 15 {
		t.Errorf("confident miss gives %v, want large and finite", v)
	}
}

func TestDatasetAddSliceExample(t *testing.T) {
	d := NewDataset(2)
	for i := range 5 {
		ids := make([]uint32, i%3)
		for k := range ids {
			ids[k] = uint32(10*i + k)
		}
		if err := d.Add(Example{Fields: [][]uint32{{uint32(i)}, ids}, Label: float32(i % 2), TS: int64(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Add(Example{Fields: [][]uint32{{1}}}); !errors.Is(err, ErrFieldCount) {
		t.Errorf("wrong field count: err = %v", err)
	}
	if err := d.Add(Example{Fields: [][]uint32{{1}, {}}, Label: 2}); err == nil {
		t.Error("label 2 accepted")
	}
	v := d.Slice(2, 5)
	if v.Len() != 3 || v.TS(0) != 102 || v.Label(1) != 1 {
		t.Errorf("view: len %d ts %d label %v", v.Len(), v.TS(0), v.Label(1))
	}
	ex := v.Example(2, nil) // example 4: ids 40, 41
	if len(ex.Fields[1]) != 1 || ex.Fields[1][0] != 40 || ex.Fields[0][0] != 4 {
		t.Errorf("example 4 fields = %v", ex.Fields)
	}
	if err := v.Add(Example{Fields: [][]uint32{{1}, {}}}); err == nil {
		t.Error("adding to a view succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	good := smallConfig(DeepFM)
	bad := []func(*Config){
		func(c *Config) { c.Kind = 0 },
		func(c *Config) { c.Fields = 0 },
		func(c *Config) { c.Buckets = 0 },
		func(c *Config) { c.Dim = 0 },
		func(c *Config) { c.Hidden = []int{0} },
		func(c *Config) { c.InitStd = -1 },
		func(c *Config) { c.Buckets = MaxBuckets; c.Dim = MaxDim },
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, mutate := range bad {
		c := smallConfig(DeepFM)
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: invalid config %+v accepted", i, c)
		}
	}
}

func TestFitBestStopsWhenValidationStopsImproving(t *testing.T) {
	all := datasetOf(t, 6, synthetic(3000, 4))
	train, valid := all.Slice(0, 2400), all.Slice(2400, 3000)
	cfg := Config{Kind: DeepFM, Fields: 6, Buckets: 1 << 12, Dim: 8, Hidden: []int{32}, InitStd: 0.05, Seed: 1}
	m, _ := New(cfg)
	tr, err := NewTrainer(m, TrainConfig{Optimizer: Adam, LearningRate: 0.05, Epochs: 30, BatchSize: 64, Workers: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.FitBest(context.Background(), train, valid)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ran >= 30 || res.Epochs != res.Ran-1 {
		t.Errorf("ran %d epochs and kept %d; a high learning rate on 2400 examples overfits within 30", res.Ran, res.Epochs)
	}
	if got := Evaluate(m, valid); got.LogLoss != res.Validation.LogLoss {
		t.Errorf("model left with validation logloss %v, want the best epoch's %v", got.LogLoss, res.Validation.LogLoss)
	}
	// Batch scoring uses the restored parameters too.
	b := m.NewBatch(2)
	ex := valid.Example(0, nil)
	b.SetShared(ex.Fields)
	want, _ := m.Predict(ex.Fields)
	if got := b.Score(ex.Fields).Prob(); math.Abs(float64(got-want)) > 1e-5 {
		t.Errorf("shared-batch score %v after restore, want %v", got, want)
	}
}
