package model

// The kernels below are the inner loops of scoring and training. They use
// four independent accumulators / unrolled bodies so the CPU can overlap
// the multiplies, and re-slice with explicit capacity so the compiler
// drops the bounds checks inside the loop.

// dot returns Σ a[i]*b[i] over len(a); b must be at least as long.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		a4 := a[i : i+4 : i+4]
		b4 := b[i : i+4 : i+4]
		s0 += a4[0] * b4[0]
		s1 += a4[1] * b4[1]
		s2 += a4[2] * b4[2]
		s3 += a4[3] * b4[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy does y[i] += alpha*x[i] over len(y); x must be at least as long.
func axpy(y []float32, alpha float32, x []float32) {
	x = x[:len(y)]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		y4 := y[i : i+4 : i+4]
		x4 := x[i : i+4 : i+4]
		y4[0] += alpha * x4[0]
		y4[1] += alpha * x4[1]
		y4[2] += alpha * x4[2]
		y4[3] += alpha * x4[3]
	}
	for ; i < len(y); i++ {
		y[i] += alpha * x[i]
	}
}

// add does y[i] += x[i] over len(y).
func add(y, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += x[i]
	}
}

// scale does y[i] *= alpha.
func scale(y []float32, alpha float32) {
	for i := range y {
		y[i] *= alpha
	}
}

func zero(y []float32) {
	clear(y)
}

// matVec sets out[j] = bias[j] + w[j*stride+off : j*stride+off+len(x)]·x
// for every j, with ReLU when relu is set.
func matVec(out, bias, w []float32, stride, off int, x []float32, relu bool) {
	n := len(x)
	bias = bias[:len(out)]
	for j := range out {
		r := j*stride + off
		v := bias[j] + dot(x, w[r:r+n])
		if relu && v < 0 {
			v = 0
		}
		out[j] = v
	}
}
