package model

// shard computes the gradients of a contiguous part of a batch.
//
// The first DNN layer dominates the cost, and most fields take few values
// (a category, a duration bucket), so a batch repeats (field, id) pairs
// constantly. The shard therefore works per distinct pair, which is exact
// because the layer is linear in each field's embedding and the parameters
// do not change during a batch:
//
//   - forward: the layer's output is the bias plus, per id, its cached
//     projection W1[:, field block]·e_id (scaled by 1/ids in the field);
//   - backward: per pair it sums the examples' output gradients gz (each
//     scaled the same way), then once per pair adds gz ⊗ e_id to the weight
//     gradient and W1[:, field block]ᵀ·gz to the embedding gradient.
type shard struct {
	m      *Model
	fw     *Batch // field embeddings, their sum and the layer outputs
	gDense []float32
	deltas [][]float32 // gradient w.r.t. each hidden layer's output, from the second on
	out    [1]float32  // gradient w.r.t. the DNN output
	rows   [][]uint32
	loss   float64

	tab      pairTable
	exSlots  []int32   // the current example's pair slots, in field order
	embGrads []float32 // per pair: the DNN's gradient w.r.t. e_id, set by finish
	gW0t     []float32 // first layer's weight gradient, transposed ([in][out])
}

// pairTable maps (field, bucket) to a dense slot for one batch. Entries
// from earlier batches are recognised by their generation.
type pairTable struct {
	entries []projEntry
	shift   uint
	gen     uint32
	keys    []uint64  // slot → key
	vecs    []float32 // slot → projection
	gz      []float32 // slot → summed output gradient
}

func newShard(m *Model) *shard {
	s := &shard{m: m, fw: m.NewBatch(0), gDense: make([]float32, m.denseLen)}
	for i := 1; i < len(m.layers); i++ {
		s.deltas = append(s.deltas, make([]float32, m.layers[i-1].out))
	}
	if len(m.layers) > 0 {
		s.tab.entries = make([]projEntry, 1024)
		s.tab.shift = 64 - 10
		s.gW0t = make([]float32, m.layers[0].in*m.layers[0].out)
	}
	return s
}

// begin starts a batch: every pair is forgotten.
func (s *shard) begin() {
	t := &s.tab
	t.gen++
	if t.gen == 0 {
		clear(t.entries)
		t.gen = 1
	}
	t.keys = t.keys[:0]
}

func pairKey(f int, r uint32) uint64 { return uint64(f)<<32 | uint64(r) }

// slot returns the pair's slot, creating it (projection computed, gradient
// zeroed) on first use in the batch.
func (s *shard) slot(f int, r uint32) int32 {
	t := &s.tab
	key := pairKey(f, r)
	mask := len(t.entries) - 1
	i := int((key * 0x9e3779b97f4a7c15) >> t.shift)
	for {
		e := &t.entries[i]
		if e.gen != t.gen {
			break
		}
		if e.key == key {
			return e.off
		}
		i = (i + 1) & mask
	}
	n := int32(len(t.keys))
	t.keys = append(t.keys, key)
	out := s.m.layers[0].out
	need := (int(n) + 1) * out
	if len(t.vecs) < need {
		t.vecs = append(t.vecs, make([]float32, need-len(t.vecs))...)
		t.gz = append(t.gz, make([]float32, need-len(t.gz))...)
	}
	s.m.project(f, r, t.vecs[int(n)*out:int(n+1)*out])
	zero(t.gz[int(n)*out : int(n+1)*out])
	if 2*len(t.keys) > len(t.entries) {
		s.grow()
	} else {
		t.entries[i] = projEntry{key: key, gen: t.gen, off: n}
	}
	return n
}

// grow doubles the table and reinserts every pair of the batch.
func (s *shard) grow() {
	t := &s.tab
	t.entries = make([]projEntry, 2*len(t.entries))
	t.shift--
	mask := len(t.entries) - 1
	for n, key := range t.keys {
		i := int((key * 0x9e3779b97f4a7c15) >> t.shift)
		for t.entries[i].gen == t.gen {
			i = (i + 1) & mask
		}
		t.entries[i] = projEntry{key: key, gen: t.gen, off: int32(n)}
	}
}

// backprop runs one example forward and backward, adding the dense
// gradients to s.gDense (the first layer's weights only at finish) and
// writing the FM gradient w.r.t. each field embedding to dEmb. It returns
// dLoss/dLogit and the example's logloss.
func (s *shard) backprop(fields [][]uint32, label float32, dEmb []float32) (float32, float64) {
	m := s.m
	p := s.fw.fm(fields)
	if len(m.layers) > 0 {
		p.DNN = s.dnn(fields)
	}
	p.Logit = p.Bias + p.First + p.Second + p.DNN
	dl := sigmoid(p.Logit) - label
	loss := logLossFromLogit(p.Logit, label)
	s.gDense[0] += dl
	if m.cfg.Kind == LR {
		return dl, loss
	}
	if len(m.layers) > 0 {
		s.backDNN(fields, dl)
	}
	// FM: d/d e_f of ½(|Σe|² − Σ|e|²) is Σe − e_f.
	d := m.cfg.Dim
	x, sum := s.fw.x, s.fw.sum
	for f := range m.cfg.Fields {
		g := dEmb[f*d : (f+1)*d]
		if s.fw.inv[f] == 0 {
			zero(g)
			continue
		}
		xf := x[f*d : (f+1)*d]
		for k := range g {
			g[k] = dl * (sum[k] - xf[k])
		}
	}
	return dl, loss
}

// dnn is the forward pass through cached pair projections.
func (s *shard) dnn(fields [][]uint32) float32 {
	m := s.m
	layers := m.layers
	last := len(layers) - 1
	l := layers[0]
	h := s.fw.acts[0]
	copy(h, l.b)
	s.exSlots = s.exSlots[:0]
	for f, ids := range fields {
		for _, id := range ids {
			n := s.slot(f, id%m.cfg.Buckets)
			s.exSlots = append(s.exSlots, n)
			v := s.tab.vecs[int(n)*l.out : int(n+1)*l.out]
			if len(ids) == 1 {
				add(h, v)
			} else {
				axpy(h, s.fw.inv[f], v)
			}
		}
	}
	if last > 0 {
		for k, v := range h {
			if v < 0 {
				h[k] = 0
			}
		}
	}
	for i := 1; i <= last; i++ {
		l := layers[i]
		matVec(s.fw.acts[i], l.b, l.w, l.in, 0, s.fw.acts[i-1], i < last)
	}
	return s.fw.acts[last][0]
}

// backDNN backpropagates dl through the DNN. Layers after the first
// accumulate their gradients directly, skipping ReLU units that were off;
// the first layer's output gradient is added to each of the example's
// pairs, for finish.
func (s *shard) backDNN(fields [][]uint32, dl float32) {
	m := s.m
	layers := m.layers
	last := len(layers) - 1
	s.out[0] = dl
	delta := s.out[:]
	for i := last; i >= 1; i-- {
		l := layers[i]
		in, dIn := s.fw.acts[i-1], s.deltas[i-1]
		zero(dIn)
		gW := s.gDense[l.wOff : l.wOff+l.in*l.out]
		gB := s.gDense[l.bOff : l.bOff+l.out]
		for j, dj := range delta {
			if dj == 0 {
				continue
			}
			gB[j] += dj
			axpy(gW[j*l.in:(j+1)*l.in], dj, in)
			axpy(dIn, dj, l.w[j*l.in:(j+1)*l.in])
		}
		for k, a := range in {
			if a <= 0 {
				dIn[k] = 0
			}
		}
		delta = dIn
	}
	l := layers[0]
	active := false
	for _, v := range delta {
		if v != 0 {
			active = true
			break
		}
	}
	if !active {
		return
	}
	add(s.gDense[l.bOff:l.bOff+l.out], delta)
	k := 0
	for f, ids := range fields {
		for range ids {
			n := int(s.exSlots[k])
			k++
			gz := s.tab.gz[n*l.out : (n+1)*l.out]
			if len(ids) == 1 {
				add(gz, delta)
			} else {
				axpy(gz, s.fw.inv[f], delta)
			}
		}
	}
}

// finish turns each pair's summed output gradient into the first layer's
// weight gradient and the pair's embedding gradient (in s.embGrads).
func (s *shard) finish() {
	m := s.m
	if len(m.layers) == 0 {
		return
	}
	l := m.layers[0]
	d := m.cfg.Dim
	t := &s.tab
	if need := len(t.keys) * d; cap(s.embGrads) < need {
		s.embGrads = make([]float32, need)
	} else {
		s.embGrads = s.embGrads[:need]
	}
	// Accumulate the weight gradient transposed, so each pair adds Dim
	// contiguous vectors of the layer's width instead of touching one short
	// stretch of every row; transpose into place once per batch.
	for n, key := range t.keys {
		f, r := int(key>>32), uint32(key)
		gz := t.gz[n*l.out : (n+1)*l.out]
		emb := m.params[m.embOff+int(r)*d : m.embOff+int(r+1)*d]
		eg := s.embGrads[n*d : (n+1)*d]
		for k, e := range emb {
			row := (f*d + k) * l.out
			axpy(s.gW0t[row:row+l.out], e, gz)
			eg[k] = dot(gz, m.w0t[row:row+l.out])
		}
	}
	if len(t.keys) == 0 {
		return
	}
	gW := s.gDense[l.wOff : l.wOff+l.in*l.out]
	for k := range l.in {
		col := s.gW0t[k*l.out : (k+1)*l.out]
		for j, g := range col {
			gW[j*l.in+k] += g
		}
		zero(col)
	}
}
