// Package model is the math of the ranking models: logistic regression,
// factorization machines and DeepFM over hashed sparse fields, in float32,
// with mini-batch training (Adam or Adagrad with L2), evaluation (logloss,
// exact AUC), batch scoring with shared user-side work, and a versioned,
// checksummed file format. It knows nothing about users or videos: callers
// hash their features into uint32 ids, one or more per field.
package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Kind selects the model family. All three share one parameter layout
// (LR uses the first-order part only, FM adds embeddings, DeepFM adds the
// DNN over the same embeddings), so one forward pass serves all of them.
type Kind uint8

const (
	LR     Kind = 1 // bias + first order
	FM     Kind = 2 // LR + second-order interactions of field embeddings
	DeepFM Kind = 3 // FM + a ReLU DNN over the concatenated field embeddings
)

func (k Kind) String() string {
	switch k {
	case LR:
		return "lr"
	case FM:
		return "fm"
	case DeepFM:
		return "deepfm"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits that keep a corrupt file or a bad config from asking for absurd
// amounts of memory.
const (
	MaxFields    = 1024
	MaxBuckets   = 1 << 28
	MaxDim       = 512
	MaxLayers    = 16
	MaxLayerSize = 8192
	maxParams    = 1 << 29
)

// Config is the architecture of a model. It is saved with the model.
type Config struct {
	Kind Kind
	// Fields is the number of input fields; every example has exactly
	// this many (a field may hold zero, one or several ids).
	Fields int
	// Buckets is the hash space: a feature id selects row id % Buckets of
	// the first-order weights and of the embedding table.
	Buckets uint32
	// Dim is the embedding dimension (FM and DeepFM).
	Dim int
	// Hidden lists the DNN hidden layer sizes (DeepFM), each followed by
	// a ReLU; a linear unit produces the DNN's logit contribution.
	Hidden []int
	// InitStd is the standard deviation of the initial embeddings.
	InitStd float32
	// Seed makes initialisation reproducible.
	Seed uint64
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Kind != LR && c.Kind != FM && c.Kind != DeepFM:
		return fmt.Errorf("model: invalid kind %d", c.Kind)
	case c.Fields < 1 || c.Fields > MaxFields:
		return fmt.Errorf("model: fields must be in [1, %d], got %d", MaxFields, c.Fields)
	case c.Buckets < 1 || c.Buckets > MaxBuckets:
		return fmt.Errorf("model: buckets must be in [1, %d], got %d", MaxBuckets, c.Buckets)
	case c.Kind != LR && (c.Dim < 1 || c.Dim > MaxDim):
		return fmt.Errorf("model: dim must be in [1, %d], got %d", MaxDim, c.Dim)
	case c.Kind == DeepFM && len(c.Hidden) > MaxLayers:
		return fmt.Errorf("model: at most %d hidden layers, got %d", MaxLayers, len(c.Hidden))
	case c.InitStd < 0 || math.IsNaN(float64(c.InitStd)) || math.IsInf(float64(c.InitStd), 0):
		return fmt.Errorf("model: init std must be finite and >= 0")
	}
	if c.Kind == DeepFM {
		for i, h := range c.Hidden {
			if h < 1 || h > MaxLayerSize {
				return fmt.Errorf("model: hidden layer %d size must be in [1, %d], got %d", i, MaxLayerSize, h)
			}
		}
	}
	if n := c.paramCount(); n > maxParams {
		return fmt.Errorf("model: %d parameters exceed the limit of %d", n, maxParams)
	}
	return nil
}

// normalized drops the parts a kind does not use, so two configs that
// describe the same model compare and serialise identically.
func (c Config) normalized() Config {
	if c.Kind == LR {
		c.Dim = 0
	}
	if c.Kind != DeepFM {
		c.Hidden = nil
	} else {
		c.Hidden = append([]int(nil), c.Hidden...)
	}
	return c
}

// layerShapes returns (in, out) of each DNN layer, the output unit last.
func (c Config) layerShapes() [][2]int {
	if c.Kind != DeepFM {
		return nil
	}
	shapes := make([][2]int, 0, len(c.Hidden)+1)
	in := c.Fields * c.Dim
	for _, h := range c.Hidden {
		shapes = append(shapes, [2]int{in, h})
		in = h
	}
	return append(shapes, [2]int{in, 1})
}

func (c Config) paramCount() uint64 {
	n := uint64(1) + uint64(c.Buckets)
	if c.Kind != LR {
		n += uint64(c.Buckets) * uint64(c.Dim)
	}
	for _, s := range c.layerShapes() {
		n += uint64(s[0])*uint64(s[1]) + uint64(s[1])
	}
	return n
}

// layer is one dense DNN layer; w is row-major [out][in].
type layer struct {
	in, out    int
	wOff, bOff int
	w, b       []float32
}

// Model holds the parameters. Reading methods (scoring) are safe for
// concurrent use; training mutates it, so callers that train a model being
// served must synchronise (see Trainer).
//
// All parameters live in one slice laid out as
// [bias | DNN layers | first-order weights | embeddings]: the dense part
// comes first so optimizers update it as one contiguous range and touch
// only the rows a batch used in the sparse part.
type Model struct {
	cfg      Config
	params   []float32
	denseLen int
	firstOff int
	embOff   int
	layers   []layer
	meta     []byte

	// w0t is the first DNN layer's weights transposed ([in][out]), derived
	// from params by refreshDerived whenever they change. Batch projects
	// one field's embedding through it as Dim contiguous vector updates
	// rather than out short dot products.
	w0t []float32
}

// New returns a freshly initialised model.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := alloc(cfg.normalized())
	m.init()
	m.refreshDerived()
	return m, nil
}

func alloc(cfg Config) *Model {
	m := &Model{cfg: cfg, params: make([]float32, cfg.paramCount())}
	off := 1
	for _, s := range cfg.layerShapes() {
		l := layer{in: s[0], out: s[1], wOff: off}
		off += s[0] * s[1]
		l.bOff = off
		off += s[1]
		m.layers = append(m.layers, l)
	}
	m.denseLen = off
	m.firstOff = off
	m.embOff = off + int(cfg.Buckets)
	m.bindViews()
	if len(m.layers) > 0 {
		m.w0t = make([]float32, m.layers[0].in*m.layers[0].out)
	}
	return m
}

// refreshDerived recomputes state derived from the parameters.
func (m *Model) refreshDerived() {
	if len(m.layers) == 0 {
		return
	}
	l := m.layers[0]
	for j := range l.out {
		row := l.w[j*l.in : (j+1)*l.in]
		for k, v := range row {
			m.w0t[k*l.out+j] = v
		}
	}
}

func (m *Model) bindViews() {
	for i := range m.layers {
		l := &m.layers[i]
		l.w = m.params[l.wOff : l.wOff+l.in*l.out]
		l.b = m.params[l.bOff : l.bOff+l.out]
	}
}

func (m *Model) init() {
	rng := rand.New(rand.NewPCG(m.cfg.Seed, 0x5eed0fdee9f3))
	if m.cfg.Kind != LR {
		emb := m.params[m.embOff:]
		for i := range emb {
			emb[i] = float32(rng.NormFloat64()) * m.cfg.InitStd
		}
	}
	// He initialisation keeps ReLU activations at a stable scale.
	for _, l := range m.layers {
		std := math.Sqrt(2 / float64(l.in))
		for i := range l.w {
			l.w[i] = float32(rng.NormFloat64() * std)
		}
	}
}

// Config returns the model's architecture.
func (m *Model) Config() Config {
	c := m.cfg
	c.Hidden = append([]int(nil), c.Hidden...)
	return c
}

// Meta returns the opaque metadata saved with the model.
func (m *Model) Meta() []byte { return m.meta }

// SetMeta attaches opaque metadata (for example the training report) that
// Save writes and Load returns. At most MaxMeta bytes.
func (m *Model) SetMeta(meta []byte) error {
	if len(meta) > MaxMeta {
		return fmt.Errorf("model: metadata of %d bytes exceeds %d", len(meta), MaxMeta)
	}
	m.meta = append([]byte(nil), meta...)
	return nil
}

// ErrFieldCount is returned when an example has the wrong number of fields.
var ErrFieldCount = errors.New("model: example has the wrong number of fields")

// Parts is one prediction split into its additive logit components.
type Parts struct {
	Bias   float32
	First  float32 // first-order (linear) terms
	Second float32 // FM pairwise interactions
	DNN    float32 // deep part
	Logit  float32 // sum of the above
}

// Prob is the predicted probability of a positive label.
func (p Parts) Prob() float32 { return sigmoid(p.Logit) }

// Predict returns the probability for one example. It allocates scratch
// space; score many examples with a Batch instead.
func (m *Model) Predict(fields [][]uint32) (float32, error) {
	if len(fields) != m.cfg.Fields {
		return 0, ErrFieldCount
	}
	b := m.NewBatch(0)
	return b.Score(fields).Prob(), nil
}

func sigmoid(z float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(z))))
}

// logLossFromLogit is -[y log σ(z) + (1-y) log(1-σ(z))], computed without
// overflow for large |z|.
func logLossFromLogit(z, y float32) float64 {
	zf, yf := float64(z), float64(y)
	return math.Max(zf, 0) - zf*yf + math.Log1p(math.Exp(-math.Abs(zf)))
}
