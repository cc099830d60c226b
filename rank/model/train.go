package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// Optimizer selects the update rule.
type Optimizer uint8

const (
	Adam    Optimizer = 1
	Adagrad Optimizer = 2
)

func (o Optimizer) String() string {
	switch o {
	case Adam:
		return "adam"
	case Adagrad:
		return "adagrad"
	}
	return fmt.Sprintf("optimizer(%d)", uint8(o))
}

// ParseOptimizer parses "adam" or "adagrad".
func ParseOptimizer(s string) (Optimizer, error) {
	switch s {
	case "adam":
		return Adam, nil
	case "adagrad":
		return Adagrad, nil
	}
	return 0, fmt.Errorf("model: unknown optimizer %q (want adam or adagrad)", s)
}

// TrainConfig tunes training.
type TrainConfig struct {
	Optimizer    Optimizer
	LearningRate float32
	// L2 is added as L2*w to the gradient of every parameter a batch
	// touches (all dense ones, the used rows of the sparse ones).
	L2        float32
	Epochs    int
	BatchSize int
	// Workers splits every batch into this many fixed shards computed in
	// parallel and summed in shard order. It fixes the floating-point
	// summation order, so the same seed, data and config always give a
	// bit-identical model whatever the machine's core count.
	Workers int
	// Seed fixes the shuffling order.
	Seed uint64
}

// DefaultTrainConfig returns the documented defaults.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		Optimizer:    Adam,
		LearningRate: 0.002,
		L2:           1e-6,
		Epochs:       3,
		BatchSize:    256,
		Workers:      2,
		Seed:         1,
	}
}

// Validate reports the first problem with c.
func (c TrainConfig) Validate() error {
	switch {
	case c.Optimizer != Adam && c.Optimizer != Adagrad:
		return fmt.Errorf("model: invalid optimizer %d", c.Optimizer)
	case !(c.LearningRate > 0) || math.IsInf(float64(c.LearningRate), 0):
		return errors.New("model: learning rate must be > 0")
	case !(c.L2 >= 0) || math.IsInf(float64(c.L2), 0):
		return errors.New("model: l2 must be >= 0")
	case c.Epochs < 1:
		return errors.New("model: epochs must be >= 1")
	case c.BatchSize < 1:
		return errors.New("model: batch size must be >= 1")
	case c.Workers < 1 || c.Workers > 256:
		return errors.New("model: workers must be in [1, 256]")
	}
	return nil
}

const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
	adagradE  = 1e-8
)

// Trainer fits a model with mini-batch gradient descent. It owns the
// optimizer state, so keep one Trainer per model for as long as you train
// it. A Trainer is not safe for concurrent use.
//
// Accumulate only reads the model and Apply only writes it, so a model
// that is being served can learn online: compute gradients while readers
// score, then apply them under a write lock held for a short time.
type Trainer struct {
	m   *Model
	cfg TrainConfig

	// Optimizer state, laid out like Model.params. Adam uses m1 and m2,
	// Adagrad m2 only.
	m1, m2 []float32
	step   int

	rng  *rand.Rand // shuffling order, continued across Fit calls
	perm []int

	shards []*shard

	// slot maps a bucket to its row in its partition's sparse gradients,
	// or -1 when the pending update has not touched it. Partition p owns
	// the buckets with bucket % len(parts) == p, so partitions accumulate
	// and apply in parallel without sharing a row.
	slot  []int32
	parts []*sparseGrad

	// Per-example results of the parallel phase, consumed by the scatter.
	dlogit []float32
	dEmb   []float32
	count  int // examples accumulated since the last Apply
}

// sparseGrad holds the gradients of the sparse rows one partition touched.
type sparseGrad struct {
	touched []uint32 // buckets, in first-touch order
	gFirst  []float32
	gEmb    []float32
	rows    [][]uint32
}

// NewTrainer returns a trainer for m.
func NewTrainer(m *Model, cfg TrainConfig) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Trainer{
		m:    m,
		cfg:  cfg,
		m2:   make([]float32, len(m.params)),
		slot: make([]int32, m.cfg.Buckets),
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0xdeeffeed)),
	}
	if cfg.Optimizer == Adam {
		t.m1 = make([]float32, len(m.params))
	}
	for i := range t.slot {
		t.slot[i] = -1
	}
	for range cfg.Workers {
		t.parts = append(t.parts, &sparseGrad{})
		t.shards = append(t.shards, newShard(m))
	}
	return t, nil
}

// Fit trains for cfg.Epochs passes over d in shuffled mini-batches and
// returns the mean training logloss of the last epoch. A fresh model's
// bias starts at the log-odds of d's positive rate.
func (t *Trainer) Fit(ctx context.Context, d *Dataset) (float64, error) {
	if err := t.startFit(d); err != nil {
		return 0, err
	}
	var loss float64
	for range t.cfg.Epochs {
		var err error
		if loss, err = t.epoch(ctx, d); err != nil {
			return 0, err
		}
	}
	return loss, nil
}

// FitResult describes an early-stopped fit.
type FitResult struct {
	Epochs     int     // epochs whose parameters were kept
	Ran        int     // epochs run
	TrainLoss  float64 // mean training logloss of the kept epoch
	Validation Metrics // validation metrics of the kept parameters
}

// FitBest trains for at most cfg.Epochs passes over train, evaluating on
// valid after each, stops once an epoch fails to improve the validation
// logloss, and leaves the model with the parameters of its best epoch.
// Sparse features memorise quickly (an id embedding per user and video), so
// more passes can make a model worse; this picks the pass count from data
// the model did not train on.
func (t *Trainer) FitBest(ctx context.Context, train, valid *Dataset) (FitResult, error) {
	var res FitResult
	if err := t.startFit(train); err != nil {
		return res, err
	}
	if valid.Len() == 0 {
		return res, errors.New("model: no validation examples")
	}
	best := make([]float32, len(t.m.params))
	for e := 1; e <= t.cfg.Epochs; e++ {
		loss, err := t.epoch(ctx, train)
		if err != nil {
			return res, err
		}
		res.Ran = e
		met := Evaluate(t.m, valid)
		if res.Epochs > 0 && !(met.LogLoss < res.Validation.LogLoss) {
			break
		}
		copy(best, t.m.params)
		res.Epochs, res.TrainLoss, res.Validation = e, loss, met
	}
	if res.Ran != res.Epochs {
		copy(t.m.params, best)
		t.m.refreshDerived()
	}
	return res, nil
}

func (t *Trainer) startFit(d *Dataset) error {
	if d.Fields() != t.m.cfg.Fields {
		return fmt.Errorf("%w: dataset has %d, model %d", ErrFieldCount, d.Fields(), t.m.cfg.Fields)
	}
	n := d.Len()
	if n == 0 {
		return errors.New("model: no examples to fit")
	}
	if t.step == 0 && t.m.params[0] == 0 {
		var pos float64
		for i := range n {
			pos += float64(d.Label(i))
		}
		rate := min(max(pos/float64(n), 1e-4), 1-1e-4)
		t.m.params[0] = float32(math.Log(rate / (1 - rate)))
	}
	return nil
}

// epoch runs one shuffled pass over d and returns its mean logloss.
func (t *Trainer) epoch(ctx context.Context, d *Dataset) (float64, error) {
	n := d.Len()
	if cap(t.perm) < n {
		t.perm = make([]int, n)
	}
	perm := t.perm[:n]
	for i := range perm {
		perm[i] = i
	}
	t.rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	var loss float64
	for lo := 0; lo < n; lo += t.cfg.BatchSize {
		if err := ctx.Err(); err != nil {
			t.reset()
			return 0, err
		}
		hi := min(lo+t.cfg.BatchSize, n)
		loss += t.accumulate(d, perm[lo:hi])
		t.Apply()
	}
	return loss / float64(n), nil
}

// Accumulate adds the gradient of every example in d to the pending
// update and returns their summed logloss (computed before the update).
// It only reads the model.
func (t *Trainer) Accumulate(d *Dataset) (float64, error) {
	if d.Fields() != t.m.cfg.Fields {
		return 0, fmt.Errorf("%w: dataset has %d, model %d", ErrFieldCount, d.Fields(), t.m.cfg.Fields)
	}
	idx := make([]int, d.Len())
	for i := range idx {
		idx[i] = i
	}
	return t.accumulate(d, idx), nil
}

func (t *Trainer) accumulate(d *Dataset, idx []int) float64 {
	m := t.m
	fd := m.cfg.Fields * m.cfg.Dim
	n := len(idx)
	t.dlogit = grow(t.dlogit, n)
	t.dEmb = grow(t.dEmb, n*fd)

	per := (n + len(t.shards) - 1) / len(t.shards)
	var wg sync.WaitGroup
	for si, s := range t.shards {
		lo, hi := min(si*per, n), min((si+1)*per, n)
		s.loss = 0
		s.begin() // an empty shard contributes no pairs
		if lo == hi {
			continue
		}
		run := func() {
			s.begin()
			for k := lo; k < hi; k++ {
				s.rows = d.fieldsOf(idx[k], s.rows)
				dl, loss := s.backprop(s.rows, d.Label(idx[k]), t.dEmb[k*fd:(k+1)*fd])
				t.dlogit[k] = dl
				s.loss += loss
			}
			s.finish()
		}
		if len(t.shards) == 1 {
			run()
		} else {
			wg.Go(run)
		}
	}
	wg.Wait()

	var loss float64
	for _, s := range t.shards {
		loss += s.loss
	}
	t.scatter(d, idx)
	t.count += n
	return loss
}

// scatter distributes the per-example results (first-order and FM
// gradients) and the shards' per-pair DNN gradients onto the sparse rows.
// Each partition walks them in a fixed order, which keeps every row's sum
// deterministic.
func (t *Trainer) scatter(d *Dataset, idx []int) {
	t.parallel(func(p int) { t.scatterPart(p, d, idx) })
}

func (t *Trainer) scatterPart(p int, d *Dataset, idx []int) {
	m := t.m
	g := t.parts[p]
	np := uint32(len(t.parts))
	dim := m.cfg.Dim
	fd := m.cfg.Fields * dim
	buckets := m.cfg.Buckets
	for k, i := range idx {
		g.rows = d.fieldsOf(i, g.rows)
		dl := t.dlogit[k]
		for f, ids := range g.rows {
			if len(ids) == 0 {
				continue
			}
			inv := 1 / float32(len(ids))
			ge := t.dEmb[k*fd+f*dim : k*fd+(f+1)*dim]
			for _, id := range ids {
				r := id % buckets
				if r%np != uint32(p) {
					continue
				}
				s := t.slot[r]
				if s < 0 {
					s = int32(len(g.touched))
					t.slot[r] = s
					g.touched = append(g.touched, r)
					g.gFirst = append(g.gFirst, 0)
					for range dim {
						g.gEmb = append(g.gEmb, 0)
					}
				}
				g.gFirst[s] += dl * inv
				if dim > 0 {
					axpy(g.gEmb[int(s)*dim:(int(s)+1)*dim], inv, ge)
				}
			}
		}
	}
	// The DNN's share, per (field, bucket) pair, in shard and pair order.
	for _, sh := range t.shards {
		for n, key := range sh.tab.keys {
			r := uint32(key)
			if r%np != uint32(p) {
				continue
			}
			s := t.slot[r]
			add(g.gEmb[int(s)*dim:(int(s)+1)*dim], sh.embGrads[n*dim:(n+1)*dim])
		}
	}
}

// parallel runs fn(p) for every partition p, concurrently when there are
// several.
func (t *Trainer) parallel(fn func(p int)) {
	if len(t.parts) == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	for p := range t.parts {
		wg.Go(func() { fn(p) })
	}
	wg.Wait()
}

// Apply updates the model with the mean gradient accumulated since the
// last Apply and clears it. It does nothing when nothing was accumulated.
func (t *Trainer) Apply() {
	if t.count == 0 {
		return
	}
	t.step++
	scale := 1 / float32(t.count)
	lr := t.cfg.LearningRate
	if t.cfg.Optimizer == Adam {
		// Fold both bias corrections into the step size; sparse rows use
		// the global step too ("lazy Adam").
		c1 := 1 - math.Pow(adamBeta1, float64(t.step))
		c2 := 1 - math.Pow(adamBeta2, float64(t.step))
		lr = float32(float64(lr) * math.Sqrt(c2) / c1)
	}
	m := t.m
	n := m.denseLen
	per := (n + len(t.parts) - 1) / len(t.parts)
	t.parallel(func(p int) {
		// Dense: this partition's index range, shards summed in order.
		lo, hi := min(p*per, n), min((p+1)*per, n)
		g := t.shards[0].gDense[lo:hi]
		for _, s := range t.shards[1:] {
			add(g, s.gDense[lo:hi])
			zero(s.gDense[lo:hi])
		}
		t.update(lo, g, scale, lr)
		zero(g)

		// Sparse: this partition's rows.
		sg := t.parts[p]
		dim := m.cfg.Dim
		for s, r := range sg.touched {
			t.update(m.firstOff+int(r), sg.gFirst[s:s+1], scale, lr)
			if dim > 0 {
				t.update(m.embOff+int(r)*dim, sg.gEmb[s*dim:(s+1)*dim], scale, lr)
			}
		}
	})
	m.refreshDerived()
	t.reset()
}

// update applies one optimizer step to params[off : off+len(g)].
func (t *Trainer) update(off int, g []float32, scale, lr float32) {
	l2 := t.cfg.L2
	p := t.m.params[off : off+len(g)]
	m2 := t.m2[off : off+len(g)]
	if t.cfg.Optimizer == Adam {
		m1 := t.m1[off : off+len(g)]
		for i, gi := range g {
			gi = gi*scale + l2*p[i]
			a := adamBeta1*m1[i] + (1-adamBeta1)*gi
			b := adamBeta2*m2[i] + (1-adamBeta2)*gi*gi
			m1[i], m2[i] = a, b
			p[i] -= lr * a / (float32(math.Sqrt(float64(b))) + adamEps)
		}
		return
	}
	for i, gi := range g {
		gi = gi*scale + l2*p[i]
		acc := m2[i] + gi*gi
		m2[i] = acc
		p[i] -= lr * gi / (float32(math.Sqrt(float64(acc))) + adagradE)
	}
}

func (t *Trainer) reset() {
	for _, g := range t.parts {
		for _, r := range g.touched {
			t.slot[r] = -1
		}
		g.touched = g.touched[:0]
		g.gFirst = g.gFirst[:0]
		g.gEmb = g.gEmb[:0]
	}
	for _, s := range t.shards {
		zero(s.gDense)
	}
	t.count = 0
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
