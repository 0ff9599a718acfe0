package gpu

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/fennec-edge/fennec/internal/par"
)

// Int8 post-training quantization. Values are quantized symmetrically:
// q = clamp(round(x/scale), -127, 127), x ~ q*scale, with scale = max|x|/127
// per tensor or per channel. Weights use one scale per output channel,
// calibrated from the weights themselves; activations use one scale per
// tensor, either calibrated on sample data (QLinear.Calibrate) or computed
// per row at run time. Int8 products accumulate exactly in int32 and are
// scaled to float32 once per output.

// QMax is the largest quantized magnitude; -128 is never produced, so that
// negation and the VNNI unsigned offset stay exact.
const QMax = 127

// ScaleFor returns the symmetric scale for a range of magnitude maxAbs; an
// all-zero (or non-finite) range gets scale 1 so that dequantization is
// harmless.
func ScaleFor(maxAbs float32) float32 {
	if !(maxAbs > 0) || math.IsInf(float64(maxAbs), 0) {
		return 1
	}
	return maxAbs / QMax
}

// quant1 quantizes one value with the reciprocal scale inv.
func quant1(x, inv float32) int8 {
	v := x * inv
	if v >= QMax {
		return QMax
	}
	if v <= -QMax {
		return -QMax
	}
	if v != v { // NaN
		return 0
	}
	return int8(math.RoundToEven(float64(v)))
}

// scaleLayout checks a scale vector against shape and axis. Per-tensor
// scaling is one scale (axis ignored); per-channel is shape[axis] scales.
func scaleLayout(shape []int, axis, nscales int) (outer, length, inner int, perChannel bool, err error) {
	if nscales == 1 && (len(shape) == 0 || axis < 0 || shape[axis] != 1) {
		if _, err := NumElements(shape); err != nil {
			return 0, 0, 0, false, err
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		return 1, n, 1, false, nil
	}
	if axis < 0 || axis >= len(shape) {
		return 0, 0, 0, false, fmt.Errorf("%w: channel axis %d out of range for rank %d", ErrShape, axis, len(shape))
	}
	if nscales != shape[axis] {
		return 0, 0, 0, false, fmt.Errorf("%w: %d scales for %d channels along axis %d of %v", ErrShape, nscales, shape[axis], axis, shape)
	}
	o, l, i := axisLayout(shape, axis)
	return o, l, i, true, nil
}

// ChannelScales returns symmetric scales for src of the given shape: one per
// index along axis, or a single per-tensor scale when axis is negative.
func ChannelScales(src []float32, shape []int, axis int) ([]float32, error) {
	n := 1
	if axis >= 0 && axis < len(shape) {
		n = shape[axis]
	}
	dst := make([]float32, n)
	if err := channelScalesInto(dst, src, shape, axis); err != nil {
		return nil, err
	}
	return dst, nil
}

// channelScalesInto is ChannelScales writing into dst (1 or shape[axis]
// values), with no other allocation.
func channelScalesInto(dst, src []float32, shape []int, axis int) error {
	n, err := NumElements(shape)
	if err != nil {
		return err
	}
	if len(src) != n {
		return fmt.Errorf("%w: %d values for shape %v", ErrShape, len(src), shape)
	}
	if axis < 0 {
		if len(dst) != 1 {
			return fmt.Errorf("%w: %d scales for a per-tensor scale", ErrShape, len(dst))
		}
		var m float32
		for _, v := range src {
			m = max32(m, abs32(v))
		}
		dst[0] = ScaleFor(m)
		return nil
	}
	if axis >= len(shape) {
		return fmt.Errorf("%w: channel axis %d out of range for rank %d", ErrShape, axis, len(shape))
	}
	outer, L, inner := axisLayout(shape, axis)
	if len(dst) != L {
		return fmt.Errorf("%w: %d scales for %d channels", ErrShape, len(dst), L)
	}
	mx := dst
	clear(mx)
	if n == 0 {
		// Every channel is empty: no values to look at, whatever the other
		// dimensions say (looping over them would cost their product, which
		// a zero-element tensor does not bound).
		outer = 0
	}
	for o := 0; o < outer; o++ {
		for k := 0; k < L; k++ {
			for _, v := range src[(o*L+k)*inner : (o*L+k+1)*inner] {
				mx[k] = max32(mx[k], abs32(v))
			}
		}
	}
	for k := range mx {
		mx[k] = ScaleFor(mx[k])
	}
	return nil
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// Quantize writes the int8 quantization of src (of the given shape) into
// dst with scales from ChannelScales (one scale: per tensor; shape[axis]
// scales: per channel along axis).
func Quantize(dst []int8, src []float32, shape []int, axis int, scales []float32) error {
	outer, L, inner, per, err := scaleLayout(shape, axis, len(scales))
	if err != nil {
		return err
	}
	if len(src) != outer*L*inner || len(dst) != len(src) {
		return fmt.Errorf("%w: quantize %d values into %d for shape %v", ErrShape, len(src), len(dst), shape)
	}
	if len(src) == 0 {
		return nil // nothing to do; the outer loops would cost the product of the other dimensions
	}
	for o := 0; o < outer; o++ {
		for k := 0; k < L; k++ {
			s := scales[0]
			if per {
				s = scales[k]
			}
			inv := 1 / s
			base := (o*L + k) * inner
			for j, v := range src[base : base+inner] {
				dst[base+j] = quant1(v, inv)
			}
		}
	}
	return nil
}

// Dequantize writes q*scale into dst; the arguments are as for Quantize.
func Dequantize(dst []float32, src []int8, shape []int, axis int, scales []float32) error {
	outer, L, inner, per, err := scaleLayout(shape, axis, len(scales))
	if err != nil {
		return err
	}
	if len(src) != outer*L*inner || len(dst) != len(src) {
		return fmt.Errorf("%w: dequantize %d values into %d for shape %v", ErrShape, len(src), len(dst), shape)
	}
	if len(src) == 0 {
		return nil // nothing to do; the outer loops would cost the product of the other dimensions
	}
	for o := 0; o < outer; o++ {
		for k := 0; k < L; k++ {
			s := scales[0]
			if per {
				s = scales[k]
			}
			base := (o*L + k) * inner
			for j, v := range src[base : base+inner] {
				dst[base+j] = float32(v) * s
			}
		}
	}
	return nil
}

// ---- int8 dot-product kernels ----

// int8Kernel computes four dot products out[r] = sum_k x[k]*w[r*ldw+k] over
// kp (a multiple of 64) int8 values. Unsigned kernels (VNNI) read xu =
// x+128 instead of x; the caller subtracts 128*sum(w row).
type int8Kernel struct {
	name     string
	unsigned bool
	// step is the multiple of values dot4 handles (a power of two); QLinear
	// finishes the rest of each row in Go. Unsigned kernels must use 64,
	// the prefix QLinear's correction sums cover.
	step int
	dot4 func(xs []int8, xu []uint8, w []int8, ldw, kp int, out *[4]int32)
}

var int8Kernels = map[string]*int8Kernel{"go": {name: "go", step: 1, dot4: dot4Go}}

var int8Order = []string{"vnni", "avx2", "go"}

// Int8Kernels lists the int8 dot-product kernels this CPU can run, fastest
// first ("vnni": AVX-512 VNNI; "avx2"; "go").
func Int8Kernels() []string {
	var out []string
	for _, n := range int8Order {
		if _, ok := int8Kernels[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func lookupInt8Kernel(name string) (*int8Kernel, error) {
	if name == "" || name == "auto" {
		return int8Kernels[Int8Kernels()[0]], nil
	}
	if k, ok := int8Kernels[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: int8 kernel %q is not available (have %v)", ErrUnsupported, name, Int8Kernels())
}

func dot4Go(xs []int8, xu []uint8, w []int8, ldw, kp int, out *[4]int32) {
	xs = xs[:kp]
	w0, w1, w2, w3 := w[:kp], w[ldw:ldw+kp], w[2*ldw:2*ldw+kp], w[3*ldw:3*ldw+kp]
	var s0, s1, s2, s3 int32
	for k, x := range xs {
		xv := int32(x)
		s0 += xv * int32(w0[k])
		s1 += xv * int32(w1[k])
		s2 += xv * int32(w2[k])
		s3 += xv * int32(w3[k])
	}
	out[0], out[1], out[2], out[3] = s0, s1, s2, s3
}

// ---- quantized linear layer ----

// QLinear is an int8 fully connected layer y = x W + b for x [batch, In] and
// W [In, Out], with W quantized per output channel. Create it with
// QuantizeLinear; Forward runs it. It is safe for concurrent Forward calls.
type QLinear struct {
	In, Out int
	// W holds the quantized weights transposed, one row of In values per
	// output channel, so that dot products run over contiguous memory. Rows
	// are not padded: the SIMD kernels run over a prefix of each row (a
	// multiple of 16 values for AVX2, 64 for VNNI) and Go finishes the
	// rest, so W is exactly In*Out bytes.
	W []int8
	// Scale is per output channel ([Out]) or, for MatMulInt8's per-tensor
	// scale, one value for every channel.
	Scale []float32
	Bias  []float32 // nil or [Out]
	// XScale is the activation scale set by Calibrate; zero means each row
	// of x is scaled by its own max|x|/127 at run time.
	XScale float32
	// Kernel forces an int8 kernel by name ("" picks the fastest).
	Kernel string

	// wsum holds, per output channel, the sum of the first In&^63 weights
	// (the unsigned VNNI kernel's correction); nil when In < 64.
	wsum []int32
}

// simdLen is the prefix of a row of n values that the unsigned (VNNI)
// kernel handles, and that the correction sums cover.
func simdLen(n int) int { return n &^ 63 }

// int8PackBytes is the size of the kernel layout of int8 weights [k, n]:
// the transposed weights and the correction sums.
func int8PackBytes(k, n int) int64 {
	b := int64(k) * int64(n)
	if simdLen(k) > 0 {
		b += 4 * int64(n)
	}
	return b
}

// newQLinearLayout allocates the kernel layout of [in, out] weights.
func newQLinearLayout(in, out int) *QLinear {
	q := &QLinear{In: in, Out: out, W: make([]int8, in*out)}
	if simdLen(in) > 0 {
		q.wsum = make([]int32, out)
	}
	return q
}

// setRowSum records the correction sum of output channel o's row.
func (q *QLinear) setRowSum(o int) {
	if q.wsum == nil {
		return
	}
	var s int32
	for _, v := range q.W[o*q.In : o*q.In+simdLen(q.In)] {
		s += int32(v)
	}
	q.wsum[o] = s
}

// QuantizeLinear quantizes the f32 weights w (row major [in, out]) per
// output column; bias (nil or [out]) stays f32.
func QuantizeLinear(w []float32, in, out int, bias []float32) (*QLinear, error) {
	if in <= 0 || out <= 0 || len(w) != in*out {
		return nil, fmt.Errorf("%w: %d weights for [%d, %d]", ErrShape, len(w), in, out)
	}
	if in > 1<<16 {
		return nil, fmt.Errorf("%w: %d inputs exceed the int8 kernels' int32 accumulator range (65536)", ErrShape, in)
	}
	if bias != nil && len(bias) != out {
		return nil, fmt.Errorf("%w: %d biases for %d outputs", ErrShape, len(bias), out)
	}
	scales, err := ChannelScales(w, []int{in, out}, 1)
	if err != nil {
		return nil, err
	}
	q := newQLinearLayout(in, out)
	q.Scale, q.Bias = scales, slices.Clone(bias)
	for o := 0; o < out; o++ {
		inv := 1 / scales[o]
		row := q.W[o*in : (o+1)*in]
		for k := range row {
			row[k] = quant1(w[k*out+o], inv)
		}
		q.setRowSum(o)
	}
	return q, nil
}

// Bytes is the storage of the quantized layer (weights, scales, bias) as a
// model file would hold it: In*Out int8 plus 4 bytes per scale and bias.
func (q *QLinear) Bytes() int { return q.In*q.Out + 4*len(q.Scale) + 4*len(q.Bias) + 4 }

// Dequantize returns the effective f32 weights [In, Out].
func (q *QLinear) Dequantize() []float32 {
	w := make([]float32, q.In*q.Out)
	for o := 0; o < q.Out; o++ {
		for k := 0; k < q.In; k++ {
			w[k*q.Out+o] = float32(q.W[o*q.In+k]) * q.channelScale(o)
		}
	}
	return w
}

// Calibrate sets the activation scale from sample inputs x ([rows, In]):
// the given quantile (in (0,1]; 1 = max) of |x| divided by 127. Clipping a
// few outliers (quantile 0.9999) often loses less accuracy than a max that
// wastes resolution.
func (q *QLinear) Calibrate(x []float32, quantile float64) error {
	if len(x) == 0 || len(x)%q.In != 0 {
		return fmt.Errorf("%w: %d calibration values for rows of %d", ErrShape, len(x), q.In)
	}
	if !(quantile > 0 && quantile <= 1) {
		return fmt.Errorf("gpu: calibration quantile %v not in (0, 1]", quantile)
	}
	a := make([]float32, len(x))
	for i, v := range x {
		a[i] = abs32(v)
	}
	slices.Sort(a)
	idx := int(math.Ceil(quantile*float64(len(a)))) - 1
	q.XScale = ScaleFor(a[max(idx, 0)])
	return nil
}

type qrowBuf struct {
	xs []int8
	xu []uint8
}

var qrowBufs = sync.Pool{New: func() any { return new(qrowBuf) }}

// Forward computes dst [batch, Out] = x [batch, In] W + b.
func (q *QLinear) Forward(dst, x []float32, batch int) error {
	if batch < 0 || len(x) != batch*q.In || len(dst) != batch*q.Out {
		return fmt.Errorf("%w: forward of %d inputs into %d outputs for batch %d of [%d, %d]", ErrShape, len(x), len(dst), batch, q.In, q.Out)
	}
	kern, err := lookupInt8Kernel(q.Kernel)
	if err != nil {
		return err
	}
	q.forward(kern, dst, x, batch, runtime.GOMAXPROCS(0))
	return nil
}

// channelScale is output channel o's weight scale.
func (q *QLinear) channelScale(o int) float32 {
	if len(q.Scale) == 1 {
		return q.Scale[0]
	}
	return q.Scale[o]
}

func (q *QLinear) forward(kern *int8Kernel, dst, x []float32, batch, threads int) {
	rowsPer := max(1, (1<<18)/max(q.In*q.Out, 1)) // ~256K MACs per goroutine at least
	kv, ld := q.In&^(kern.step-1), q.In
	run := func(lo, hi int) {
		b := qrowBufs.Get().(*qrowBuf)
		defer qrowBufs.Put(b)
		if cap(b.xs) < q.In {
			b.xs, b.xu = make([]int8, q.In), make([]uint8, q.In)
		}
		xs, xu := b.xs[:q.In], b.xu[:q.In]
		var acc [4]int32
		for r := lo; r < hi; r++ {
			row := x[r*q.In : (r+1)*q.In]
			s := q.XScale
			if s == 0 {
				var m float32
				for _, v := range row {
					m = max32(m, abs32(v))
				}
				s = ScaleFor(m)
			}
			inv := 1 / s
			for k, v := range row {
				xs[k] = quant1(v, inv)
			}
			if kern.unsigned {
				for k, v := range xs[:kv] {
					xu[k] = uint8(int(v) + 128)
				}
			}
			out := dst[r*q.Out : (r+1)*q.Out]
			for o := 0; o < q.Out; o += 4 {
				nr := min(4, q.Out-o)
				acc = [4]int32{}
				if kv > 0 {
					if nr == 4 {
						kern.dot4(xs, xu, q.W[o*ld:], ld, kv, &acc)
					} else {
						// fewer than 4 rows left: one row at a time, read 4
						// times with stride 0 (rows are not padded)
						var one [4]int32
						for j := 0; j < nr; j++ {
							kern.dot4(xs, xu, q.W[(o+j)*ld:], 0, kv, &one)
							acc[j] = one[0]
						}
					}
					if kern.unsigned {
						for j := 0; j < nr; j++ {
							acc[j] -= 128 * q.wsum[o+j]
						}
					}
				}
				for j := 0; j < nr; j++ {
					w := q.W[(o+j)*ld+kv : (o+j+1)*ld]
					v := acc[j]
					for k, xv := range xs[kv:] {
						v += int32(xv) * int32(w[k])
					}
					y := float32(v) * s * q.channelScale(o+j)
					if q.Bias != nil {
						y += q.Bias[o+j]
					}
					out[o+j] = y
				}
			}
		}
	}
	par.For(threads, batch, rowsPer, run)
}

// U8S8Weights is a constant s8 weight matrix [K, N] packed for
// MatMulU8S8: panels of 16 columns, each 4 consecutive k values of a column
// together (VPDPBUSD's operand layout), K and N zero-padded to multiples of
// 4 and 16; ColSum[j] is column j's sum (for an activation zero point).
type U8S8Weights struct {
	K, N   int
	k4     int
	panels []int8
	ColSum []int32
}

// PackU8S8Weights packs b [k, n] (row major) for MatMulU8S8.
func PackU8S8Weights(b []int8, k, n int) (*U8S8Weights, error) {
	if k <= 0 || n <= 0 || len(b) < k*n {
		return nil, fmt.Errorf("%w: s8 weights [%d, %d] from %d values", ErrShape, k, n, len(b))
	}
	w := &U8S8Weights{K: k, N: n, k4: (k + 3) / 4, ColSum: make([]int32, n)}
	np := (n + 15) / 16
	w.panels = make([]int8, np*w.k4*64)
	for t := 0; t < k; t++ {
		for j := 0; j < n; j++ {
			v := b[t*n+j]
			w.panels[((j/16)*w.k4+t/4)*64+(j%16)*4+t%4] = v
			w.ColSum[j] += int32(v)
		}
	}
	return w, nil
}

// MatMulU8S8 sets acc[i*N+j] = sum_t a[i*K+t] * b[t, j] for u8 rows a
// [m, K], exactly (int32 sums; VPDPBUSD multiplies u8 by s8 with no
// saturation): the product of an ONNX MatMulInteger with u8 activations and
// s8 weights. On AVX-512 VNNI a 4x32 register tile (four rows' broadcast
// 4-byte groups against two 64-byte weight panel rows; 4x16 for an odd last
// panel); Go loops over the same layout elsewhere. scratch, when long enough (4*K+4*64 bytes), avoids an
// allocation for the padded row tail.
func (w *U8S8Weights) MatMulU8S8(acc []int32, a []uint8, m int, scratch []uint8) error {
	k, n := w.K, w.N
	if m < 0 || len(a) < m*k || len(acc) < m*n {
		return fmt.Errorf("%w: u8 x s8 product of [%d, %d] x [%d, %d] into %d values", ErrShape, m, k, k, n, len(acc))
	}
	k4, np := w.k4, (n+15)/16
	vnni := int8Kernels["vnni"] != nil
	var tile [64]int32
	kp := 4 * k4
	// rows whose 4*k4 bytes lie inside a, in groups of four
	full := m &^ 3
	if kp != k {
		full = 0 // every row through the padded buffer
	}
	if len(scratch) < 4*kp {
		scratch = make([]uint8, 4*kp)
	}
	for i := 0; i < m; i += 4 {
		rows, ar, lda := min(4, m-i), a[i*k:], k
		if i >= full {
			pad := scratch[:4*kp]
			clear(pad)
			for r := 0; r < rows; r++ {
				copy(pad[r*kp:r*kp+k], a[(i+r)*k:(i+r+1)*k])
			}
			ar, lda = pad, kp
		}
		p := 0
		if vnni {
			// two panels at a time: eight accumulators hide VPDPBUSD's latency
			var wide [128]int32
			for ; p+2 <= np; p += 2 {
				vnni4x32(&wide[0], &ar[0], lda, &w.panels[p*k4*64], k4*64, k4)
				cols := min(32, n-16*p)
				for r := 0; r < rows; r++ {
					copy(acc[(i+r)*n+16*p:(i+r)*n+16*p+cols], wide[r*32:r*32+cols])
				}
			}
		}
		for ; p < np; p++ {
			panel := w.panels[p*k4*64 : (p+1)*k4*64]
			if vnni {
				vnni4x16(&tile[0], &ar[0], lda, &panel[0], k4)
			} else {
				u8s8TileGo(&tile, ar, lda, panel, k4)
			}
			cols := min(16, n-16*p)
			for r := 0; r < rows; r++ {
				copy(acc[(i+r)*n+16*p:(i+r)*n+16*p+cols], tile[r*16:r*16+cols])
			}
		}
	}
	return nil
}

// u8s8TileGo is vnni4x16 in Go: tile[r*16+j] = sum over k4 groups of a's
// row r (lda apart) against the panel.
func u8s8TileGo(tile *[64]int32, a []uint8, lda int, panel []int8, k4 int) {
	*tile = [64]int32{}
	for r := 0; r < 4; r++ {
		row := a[r*lda : r*lda+4*k4]
		out := tile[r*16 : r*16+16]
		for t := 0; t < k4; t++ {
			pr := panel[t*64 : t*64+64]
			x0, x1, x2, x3 := int32(row[4*t]), int32(row[4*t+1]), int32(row[4*t+2]), int32(row[4*t+3])
			for j := range out {
				out[j] += x0*int32(pr[4*j]) + x1*int32(pr[4*j+1]) + x2*int32(pr[4*j+2]) + x3*int32(pr[4*j+3])
			}
		}
	}
}
