// Package vec holds the engine's f32 row kernels: AVX2 assembly on amd64
// (when the CPU has AVX2 and FMA), the portable Go loops below otherwise and
// for the tails. Every function takes len(dst) elements from each source
// (which must be at least that long); dst may be one of the sources.
//
// Axpy:      dst[i] += a*x[i]
// Affine:    dst[i] = x[i]*a + b (fused multiply-add on AVX2)
// Clamp:     dst[i] = min(max(x[i], lo), hi); NaN stays NaN
// Mul, Add:  dst[i] = x[i] op y[i]
// MulAdd:    dst[i] += x[i] * y[i]
// Max:       dst[i] = max(x[i], y[i]), NaN when either is NaN
// HardSwish: dst[i] = x[i] * min(max(x[i]/6 + 0.5, 0), 1)
// LeakyRelu: dst[i] = x[i] < 0 ? a*x[i] : x[i]
// Dot:       sum of x[i]*y[i], in another order than a Go loop
// Sum:       sum of x[i], likewise
// Dot4:      out[j] = Dot(x, y[j*ldy:]) for j < 4, sharing the loads of x
// Dot4x2:    Dot4 for two rows of x (ldx apart) at once
// Transpose: a row-major matrix transposed
// LeakyMax:  dst[i] = max(LeakyRelu(x[i] + b, a), c)
// Gather2:   dst[i] = src[2*i] (src at least 2*len(dst)-1 long)
package vec

import "math"

func axpyGo(dst, x []float32, a float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += a * x[i]
	}
}

func affineGo(dst, x []float32, a, b float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] = x[i]*a + b
	}
}

func clampGo(dst, x []float32, lo, hi float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] = min(max(x[i], lo), hi)
	}
}

func mulGo(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] = x[i] * y[i]
	}
}

func addGo(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] = x[i] + y[i]
	}
}

func hardSwishGo(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		v := x[i]
		// one rounding of v/6 + 1/2, as the FMA of the AVX2 kernel
		h := float32(math.FMA(float64(v), float64(float32(1.0/6)), 0.5))
		dst[i] = v * min(max(h, 0), 1)
	}
}

func leakyMaxGo(dst, x []float32, b, a, c float32) {
	x = x[:len(dst)]
	for i := range dst {
		v := x[i] + b
		if v < 0 {
			v *= a
		}
		if v < c { // a NaN stays
			v = c
		}
		dst[i] = v
	}
}

func leakyGo(dst, x []float32, a float32) {
	x = x[:len(dst)]
	for i := range dst {
		v := x[i]
		if v < 0 {
			v *= a
		}
		dst[i] = v
	}
}

func dotGo(x, y []float32) float32 {
	y = y[:len(x)]
	var s float32
	for i := range x {
		s += x[i] * y[i]
	}
	return s
}

func mulAddGo(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] += x[i] * y[i]
	}
}

func maxGo(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] = max(x[i], y[i])
	}
}

func sumGo(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

func dot4Go(out *[4]float32, x, y []float32, ldy int) {
	for j := range out {
		out[j] = dotGo(x, y[j*ldy:j*ldy+len(x)])
	}
}

func gather2Go(dst, src []float32) {
	for i := range dst {
		dst[i] = src[2*i]
	}
}

// tapsGo computes dst[i] = sum_t wts[t] * src[offs[t]+from+i].
func tapsGo(dst, src []float32, offs []int, wts []float32, from int) {
	for i := range dst {
		var acc float32
		for t, o := range offs {
			acc += wts[t] * src[o+from+i]
		}
		dst[i] = acc
	}
}

// transposeTail transposes what the 8x8 blocks [0, r8) x [0, c8) left.
func transposeTail(dst, src []float32, rows, cols, r8, c8 int) {
	for r := 0; r < rows; r++ {
		c0 := 0
		if r < r8 {
			c0 = c8
		}
		row := src[r*cols : (r+1)*cols]
		for c := c0; c < cols; c++ {
			dst[c*rows+r] = row[c]
		}
	}
}

// Erf of Gelu, Abramowitz and Stegun 7.1.26: for z = |x|/sqrt2 and
// t = 1/(1 + p z), 1 - erf(z) = t P(t) e^(-z^2) within 1.5e-7.
const (
	erfP      = 0.3275911
	erfA1     = 0.254829592
	erfA2     = -0.284496736
	erfA3     = 1.421413741
	erfA4     = -1.453152027
	erfA5     = 1.061405429
	erfRsqrt2 = 0.7071067811865476
)

func geluPolyGo(tp, e, x []float32) {
	x, e = x[:len(tp)], e[:len(tp)]
	for i, v := range x {
		z := v * erfRsqrt2
		if z < 0 {
			z = -z
		}
		t := 1 / (1 + erfP*z)
		tp[i] = t * (erfA1 + t*(erfA2+t*(erfA3+t*(erfA4+t*erfA5))))
		e[i] = -z * z
	}
}

func geluCombineGo(dst, x, tp, e []float32) {
	x, tp, e = x[:len(dst)], tp[:len(dst)], e[:len(dst)]
	for i, v := range x {
		q := tp[i] * e[i]
		if !math.Signbit(float64(v)) {
			q = 2 - q
		}
		dst[i] = 0.5 * v * q
	}
}

// transposeLdGo is TransposeLd's definition.
func transposeLdGo(dst, src []float32, rows, cols, lds, ldd, r8, c8 int) {
	for r := 0; r < rows; r++ {
		c0 := 0
		if r < r8 {
			c0 = c8
		}
		for c := c0; c < cols; c++ {
			dst[c*ldd+r] = src[r*lds+c]
		}
	}
}

// checkLd panics unless a rows x cols block with row strides lds (src)
// and ldd (dst, transposed) lies inside both slices.
func checkLd(dst, src []float32, rows, cols, lds, ldd int) {
	if rows < 0 || cols < 0 || (rows > 0 && cols > 0 && (lds < cols || ldd < rows ||
		(rows-1)*lds+cols > len(src) || (cols-1)*ldd+rows > len(dst))) {
		panic("vec: TransposeLd block outside its slices")
	}
}
