package model

// Batch scores many examples that share their leading fields — in ranking,
// one user and request context against hundreds of candidate videos. The
// shared fields' first-order sum, their FM sums and their contribution to
// the first DNN layer are computed once by SetShared; Score then does only
// the per-candidate work, in preallocated scratch space, allocating nothing.
//
// Within one SetShared period the candidates also share many item-side
// values (a category, a duration bucket, an uploader), so the first DNN
// layer's projection of each distinct (field, id) is computed once and
// cached: the first layer then costs a few vector additions per candidate
// instead of a dense product over every item-side input.
//
// A Batch belongs to one goroutine at a time (pool them per model), and is
// valid only while its model's parameters do not change.
type Batch struct {
	m      *Model
	shared int

	// Precomputed by SetShared.
	sharedFirst float32
	sharedSum   []float32 // Σ of shared field embeddings
	sharedSq    float32   // Σ of their squared norms
	sharedX     []float32 // shared field embeddings, concatenated
	pre0        []float32 // first layer bias + shared inputs' contribution

	// Per-example scratch; after Score they describe the last example,
	// which is what training's backward pass reads.
	x    []float32   // non-shared field embeddings, concatenated
	inv  []float32   // per field 1/len(ids), 0 for an empty field
	sum  []float32   // Σ of all field embeddings
	acts [][]float32 // output of every DNN layer

	proj *projCache // nil unless a DeepFM batch with shared fields
}

// projCache maps (field, bucket) to that id's contribution to the first
// DNN layer, W1[:, field block]·embedding, for the current SetShared
// period. Entries from earlier periods are recognised by their generation,
// so starting a period costs nothing.
type projCache struct {
	entries []projEntry // open addressing, power-of-two size
	shift   uint
	gen     uint32
	vecs    []float32 // arena of cached projections
	used    int       // projections in the arena
	spill   []float32 // where a projection goes when the arena is full
}

type projEntry struct {
	key uint64
	gen uint32
	off int32
}

// projArenaBytes bounds the cache per Batch; a request seldom has more
// than a few thousand distinct item-side ids.
const projArenaBytes = 512 << 10

// NewBatch returns a Batch for which fields [0, shared) are the same for
// every example scored until the next SetShared. shared may be 0.
func (m *Model) NewBatch(shared int) *Batch {
	shared = max(0, min(shared, m.cfg.Fields))
	d := m.cfg.Dim
	b := &Batch{
		m:         m,
		shared:    shared,
		sharedSum: make([]float32, d),
		sharedX:   make([]float32, shared*d),
		x:         make([]float32, (m.cfg.Fields-shared)*d),
		inv:       make([]float32, m.cfg.Fields),
		sum:       make([]float32, d),
	}
	for _, l := range m.layers {
		b.acts = append(b.acts, make([]float32, l.out))
	}
	if len(m.layers) > 0 {
		out := m.layers[0].out
		b.pre0 = make([]float32, out)
		copy(b.pre0, m.layers[0].b)
		if shared > 0 && shared < m.cfg.Fields {
			n := min(max(projArenaBytes/(4*out), 64), 4096)
			size := 1
			for size < 2*n {
				size <<= 1
			}
			shift := uint(64)
			for s := size; s > 1; s >>= 1 {
				shift--
			}
			b.proj = &projCache{
				entries: make([]projEntry, size),
				shift:   shift,
				vecs:    make([]float32, n*out),
				spill:   make([]float32, out),
			}
		}
	}
	return b
}

// SetShared precomputes the shared fields; it reads fields[0:shared] only,
// so fields may be the same slice later passed to Score.
func (b *Batch) SetShared(fields [][]uint32) {
	if c := b.proj; c != nil {
		c.gen++
		if c.gen == 0 { // wrapped: old entries would look current
			clear(c.entries)
			c.gen = 1
		}
		c.used = 0
	}
	b.sharedFirst, b.sharedSq = b.embedFields(fields, 0, b.shared, b.sharedX)
	m := b.m
	if m.cfg.Kind != LR {
		zero(b.sharedSum)
		d := m.cfg.Dim
		for f := 0; f < b.shared; f++ {
			add(b.sharedSum, b.sharedX[f*d:(f+1)*d])
		}
	}
	if len(m.layers) == 0 {
		return
	}
	l := m.layers[0]
	matVec(b.pre0, l.b, l.w, l.in, 0, b.sharedX, false)
}

// embedFields averages the embeddings of fields [from, to) into x (one
// Dim-sized block per field) and returns their first-order sum and the sum
// of their squared norms.
func (b *Batch) embedFields(fields [][]uint32, from, to int, x []float32) (first, sq float32) {
	m := b.m
	d := m.cfg.Dim
	buckets := m.cfg.Buckets
	w := m.params[m.firstOff : m.firstOff+int(buckets)]
	var emb []float32
	if m.cfg.Kind != LR {
		emb = m.params[m.embOff:]
	}
	for f := from; f < to; f++ {
		ids := fields[f]
		if len(ids) == 0 {
			b.inv[f] = 0
			if emb != nil {
				zero(x[(f-from)*d : (f-from+1)*d])
			}
			continue
		}
		inv := 1 / float32(len(ids))
		b.inv[f] = inv
		var s float32
		for _, id := range ids {
			s += w[id%buckets]
		}
		first += s * inv
		if emb == nil {
			continue
		}
		xf := x[(f-from)*d : (f-from+1)*d]
		r := int(ids[0]%buckets) * d
		copy(xf, emb[r:r+d])
		if len(ids) > 1 {
			for _, id := range ids[1:] {
				r := int(id%buckets) * d
				add(xf, emb[r:r+d])
			}
			scale(xf, inv)
		}
		sq += dot(xf, xf)
	}
	return first, sq
}

// Score computes the prediction for one example; it reads fields[shared:]
// (fields must have the model's field count) and allocates nothing.
func (b *Batch) Score(fields [][]uint32) Parts {
	p := b.fm(fields)
	switch {
	case b.proj != nil:
		p.DNN = b.dnnCached(fields)
	case len(b.m.layers) > 0:
		p.DNN = b.dnn()
	}
	p.Logit = p.Bias + p.First + p.Second + p.DNN
	return p
}

// fm computes the bias, first- and second-order parts (leaving the field
// embeddings in b.x and their sum in b.sum for the DNN and backprop).
func (b *Batch) fm(fields [][]uint32) Parts {
	m := b.m
	p := Parts{Bias: m.params[0]}
	first, sq := b.embedFields(fields, b.shared, m.cfg.Fields, b.x)
	p.First = b.sharedFirst + first
	if m.cfg.Kind != LR {
		d := m.cfg.Dim
		copy(b.sum, b.sharedSum)
		for f := 0; f < m.cfg.Fields-b.shared; f++ {
			add(b.sum, b.x[f*d:(f+1)*d])
		}
		sq += b.sharedSq
		p.Second = 0.5 * (dot(b.sum, b.sum) - sq)
	}
	return p
}

func (b *Batch) dnn() float32 {
	layers := b.m.layers
	last := len(layers) - 1
	l := layers[0]
	matVec(b.acts[0], b.pre0, l.w, l.in, len(b.sharedX), b.x, last > 0)
	for i := 1; i <= last; i++ {
		l := layers[i]
		matVec(b.acts[i], l.b, l.w, l.in, 0, b.acts[i-1], i < last)
	}
	return b.acts[last][0]
}

func (b *Batch) dnnCached(fields [][]uint32) float32 {
	layers := b.m.layers
	last := len(layers) - 1
	h := b.acts[0]
	copy(h, b.pre0)
	for f := b.shared; f < len(b.inv); f++ {
		ids := fields[f]
		switch len(ids) {
		case 0:
		case 1:
			add(h, b.projection(f, ids[0]))
		default:
			for _, id := range ids {
				axpy(h, b.inv[f], b.projection(f, id))
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
		matVec(b.acts[i], l.b, l.w, l.in, 0, b.acts[i-1], i < last)
	}
	return b.acts[last][0]
}

// projection returns id's contribution to the first layer through field
// f's block of inputs, from the cache or computed into it.
func (b *Batch) projection(f int, id uint32) []float32 {
	m := b.m
	c := b.proj
	r := id % m.cfg.Buckets
	key := uint64(f)<<32 | uint64(r)
	l := m.layers[0]
	mask := len(c.entries) - 1
	i := int((key * 0x9e3779b97f4a7c15) >> c.shift)
	var dst []float32
	for {
		e := &c.entries[i]
		if e.gen == c.gen && e.key == key {
			return c.vecs[int(e.off) : int(e.off)+l.out]
		}
		if e.gen != c.gen {
			if (c.used+1)*l.out > len(c.vecs) {
				dst = c.spill
			} else {
				e.key, e.gen, e.off = key, c.gen, int32(c.used*l.out)
				dst = c.vecs[c.used*l.out : (c.used+1)*l.out]
				c.used++
			}
			break
		}
		i = (i + 1) & mask
	}
	m.project(f, r, dst)
	return dst
}

// project sets dst to bucket r's embedding multiplied into the first DNN
// layer through field f's block of inputs: W1[:, f block]·e_r.
func (m *Model) project(f int, r uint32, dst []float32) {
	d := m.cfg.Dim
	out := len(dst)
	emb := m.params[m.embOff+int(r)*d : m.embOff+int(r+1)*d]
	base := f * d * out
	wt := m.w0t[base : base+d*out]
	for k := range dst {
		dst[k] = emb[0] * wt[k]
	}
	for k := 1; k < d; k++ {
		axpy(dst, emb[k], wt[k*out:(k+1)*out])
	}
}
