//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func axpyAVX2(dst, x *float32, n int, a float32)

//go:noescape
func affineAVX2(dst, x *float32, n int, a, b float32)

//go:noescape
func clampAVX2(dst, x *float32, n int, lo, hi float32)

//go:noescape
func mulAVX2(dst, x, y *float32, n int)

//go:noescape
func addAVX2(dst, x, y *float32, n int)

//go:noescape
func hardSwishAVX2(dst, x *float32, n int)

//go:noescape
func leakyAVX2(dst, x *float32, n int, a float32)

// body returns how many leading elements of an n-element operation the
// AVX2 kernels take (a multiple of 8), 0 when they do not run.
func body(n int) int {
	if !haveAVX2 {
		return 0
	}
	return n &^ 7
}

func Axpy(dst, x []float32, a float32) {
	x = x[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		axpyAVX2(&dst[0], &x[0], k, a)
	}
	axpyGo(dst[k:], x[k:], a)
}

func Affine(dst, x []float32, a, b float32) {
	x = x[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		affineAVX2(&dst[0], &x[0], k, a, b)
	}
	affineGo(dst[k:], x[k:], a, b)
}

func Clamp(dst, x []float32, lo, hi float32) {
	x = x[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		clampAVX2(&dst[0], &x[0], k, lo, hi)
	}
	clampGo(dst[k:], x[k:], lo, hi)
}

func Mul(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		mulAVX2(&dst[0], &x[0], &y[0], k)
	}
	mulGo(dst[k:], x[k:], y[k:])
}

func Add(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		addAVX2(&dst[0], &x[0], &y[0], k)
	}
	addGo(dst[k:], x[k:], y[k:])
}

func HardSwish(dst, x []float32) {
	x = x[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		hardSwishAVX2(&dst[0], &x[0], k)
	}
	hardSwishGo(dst[k:], x[k:])
}

//go:noescape
func leakyMaxAVX2(dst, x *float32, n int, b, a, c float32)

func LeakyMax(dst, x []float32, b, a, c float32) {
	x = x[:len(dst)]
	k := 0
	if a >= 0 && a <= 1 {
		k = body(len(dst))
	}
	if k > 0 {
		leakyMaxAVX2(&dst[0], &x[0], k, b, a, c)
	}
	leakyMaxGo(dst[k:], x[k:], b, a, c)
}

func LeakyRelu(dst, x []float32, a float32) {
	x = x[:len(dst)]
	k := 0
	if a >= 0 && a <= 1 {
		k = body(len(dst))
	}
	if k > 0 {
		leakyAVX2(&dst[0], &x[0], k, a)
	}
	leakyGo(dst[k:], x[k:], a)
}

//go:noescape
func dotAVX2(x, y *float32, n int) float32

func Dot(x, y []float32) float32 {
	y = y[:len(x)]
	k := body(len(x))
	var s float32
	if k > 0 {
		s = dotAVX2(&x[0], &y[0], k)
	}
	return s + dotGo(x[k:], y[k:])
}

//go:noescape
func mulAddAVX2(dst, x, y *float32, n int)

func MulAdd(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		mulAddAVX2(&dst[0], &x[0], &y[0], k)
	}
	mulAddGo(dst[k:], x[k:], y[k:])
}

//go:noescape
func maxAVX2(dst, x, y *float32, n int)

func Max(dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		maxAVX2(&dst[0], &x[0], &y[0], k)
	}
	maxGo(dst[k:], x[k:], y[k:])
}

//go:noescape
func sumAVX2(x *float32, n int) float32

func Sum(x []float32) float32 {
	k := body(len(x))
	var s float32
	if k > 0 {
		s = sumAVX2(&x[0], k)
	}
	return s + sumGo(x[k:])
}

//go:noescape
func dot4AVX2(x, y *float32, ldy, n int, out *float32)

func Dot4(out *[4]float32, x, y []float32, ldy int) {
	n := len(x)
	_ = y[3*ldy+n-1]
	k := body(n)
	if k > 0 {
		dot4AVX2(&x[0], &y[0], ldy, k, &out[0])
	} else {
		*out = [4]float32{}
	}
	for j := range out {
		out[j] += dotGo(x[k:], y[j*ldy+k:j*ldy+n])
	}
}

//go:noescape
func dot4x2AVX2(x0, x1, y *float32, ldx, ldy, n int, out *float32)

// Dot4x2 is Dot4 for the rows x[0:n] and x[ldx:ldx+n] at once (n =
// len(x) - ldx): out[r*4+j] = row r . y[j*ldy : j*ldy+n].
func Dot4x2(out *[8]float32, x []float32, ldx int, y []float32, ldy int) {
	n := len(x) - ldx
	_ = y[3*ldy+n-1]
	x0, x1 := x[:n], x[ldx:ldx+n]
	k := body(n)
	if k > 0 {
		dot4x2AVX2(&x0[0], &x1[0], &y[0], ldx, ldy, k, &out[0])
	} else {
		*out = [8]float32{}
	}
	for j := 0; j < 4; j++ {
		out[j] += dotGo(x0[k:], y[j*ldy+k:j*ldy+n])
		out[4+j] += dotGo(x1[k:], y[j*ldy+k:j*ldy+n])
	}
}

//go:noescape
func gather2AVX2(dst, src *float32, n int)

func Gather2(dst, src []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	_ = src[2*n-2]
	k := body(n)
	if 2*k > len(src) { // the kernel reads src[2k-1]
		k -= 8
	}
	if k > 0 {
		gather2AVX2(&dst[0], &src[0], k)
	}
	gather2Go(dst[k:], src[2*k:])
}

//go:noescape
func tapsAVX2(dst, src *float32, offs *int, wts *float32, ntaps, n int)

// Taps sets dst[i] = sum_t wts[t] * src[offs[t]+i] for i < len(dst). Every
// offs[t] + len(dst) must be within src (checked: a bad offset panics).
func Taps(dst, src []float32, offs []int, wts []float32) {
	n := len(dst)
	wts = wts[:len(offs)]
	for _, o := range offs {
		_ = src[o : o+n]
	}
	b := body(n)
	if b > 0 && len(offs) > 0 {
		tapsAVX2(&dst[0], &src[0], &offs[0], &wts[0], len(offs), b)
	} else {
		b = 0
	}
	tapsGo(dst[b:], src, offs, wts, b)
}

//go:noescape
func transpose8AVX2(dst, src *float32, lds, ldd int)

// Transpose writes the rows x cols matrix src (row-major) transposed into
// dst: dst[c*rows+r] = src[r*cols+c], in 8x8 blocks.
func Transpose(dst, src []float32, rows, cols int) {
	_, _ = src[:rows*cols], dst[:rows*cols]
	r8, c8 := rows&^7, cols&^7
	if !haveAVX2 {
		r8, c8 = 0, 0
	}
	for r := 0; r < r8; r += 8 {
		for c := 0; c < c8; c += 8 {
			transpose8AVX2(&dst[c*rows+r], &src[r*cols+c], cols, rows)
		}
	}
	transposeTail(dst, src, rows, cols, r8, c8)
}

//go:noescape
func geluPolyAVX2(tp, e, x *float32, n int)

//go:noescape
func geluCombineAVX2(dst, x, tp, e *float32, n int)

// GeluPoly sets, for z = |x[i]|/sqrt2 and t = 1/(1 + 0.3275911 z),
// tp[i] = t P(t) (Abramowitz and Stegun 7.1.26's polynomial) and
// e[i] = -z^2: with e[i] replaced by its exponential, GeluCombine gives
// 0.5 x (1 + erf(x/sqrt2)).
func GeluPoly(tp, e, x []float32) {
	x, e = x[:len(tp)], e[:len(tp)]
	k := body(len(tp))
	if k > 0 {
		geluPolyAVX2(&tp[0], &e[0], &x[0], k)
	}
	geluPolyGo(tp[k:], e[k:], x[k:])
}

// GeluCombine sets dst[i] = 0.5 x q for x < 0 and 0.5 x (2 - q) otherwise,
// q = tp[i] e[i] (1 - erf(|x|/sqrt2)).
func GeluCombine(dst, x, tp, e []float32) {
	x, tp, e = x[:len(dst)], tp[:len(dst)], e[:len(dst)]
	k := body(len(dst))
	if k > 0 {
		geluCombineAVX2(&dst[0], &x[0], &tp[0], &e[0], k)
	}
	geluCombineGo(dst[k:], x[k:], tp[k:], e[k:])
}

// TransposeLd writes the rows x cols block src (row stride lds) transposed
// into dst (row stride ldd): dst[c*ldd+r] = src[r*lds+c], in 8x8 blocks.
func TransposeLd(dst, src []float32, rows, cols, lds, ldd int) {
	checkLd(dst, src, rows, cols, lds, ldd)
	r8, c8 := rows&^7, cols&^7
	if !haveAVX2 {
		r8, c8 = 0, 0
	}
	for r := 0; r < r8; r += 8 {
		for c := 0; c < c8; c += 8 {
			transpose8AVX2(&dst[c*ldd+r], &src[r*lds+c], lds, ldd)
		}
	}
	transposeLdGo(dst, src, rows, cols, lds, ldd, r8, c8)
}
