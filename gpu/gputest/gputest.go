// Package gputest is the conformance suite every gpu.Backend must pass. A
// backend's own test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) { gputest.Run(t, gpu.NewCPU) }
//
// Results are compared with straightforward reference implementations that
// accumulate in float64, within the tolerances documented below. Inputs come
// from fixed-seed generators, so a failure is reproducible; shapes include
// the odd sizes (1, 7, 33, 257) that expose edge handling in blocked and
// vectorised kernels.
package gputest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// Tolerances. A result r passes against the float64 reference w when
// |r - w| <= Atol + Rtol*scale, where scale is |w| for elementwise results
// and the sum of absolute terms for accumulations (so that cancellation in
// the exact result does not demand more than float32 can give).
const (
	// TolArith is the relative tolerance of +, -, *, /, max, min and the
	// exact unary ops: one float32 rounding is 6e-8; the rest is headroom for
	// backends that divide through a reciprocal.
	TolArith = 1e-6
	// TolTrans is the relative tolerance of exp, log, sqrt, pow, sigmoid and
	// tanh, whose float32 implementations may be off by a few ulp.
	TolTrans = 1e-5
	// AtolTrans is the absolute floor for transcendental results near zero
	// (e.g. tanh of a tiny argument, sigmoid of a very negative one).
	AtolTrans = 1e-6
	// TolMatMul is relative to sum_k |a_ik * b_kj|: float32 accumulation
	// over k terms errs by about sqrt(k) ulp typically and k ulp at worst;
	// 3e-5 allows k of a few thousand with blocked summation.
	TolMatMul = 3e-5
	// TolReduce is relative to sum |x| along the axis for sum and mean (max
	// and min must be exact).
	TolReduce = 1e-5
	// TolSoftmax bounds the absolute error of softmax probabilities and,
	// scaled by 1+|w|, of log-softmax values.
	TolSoftmax = 2e-6
	// TolLoss is the relative tolerance of loss values and gradients
	// (with AtolLoss as absolute floor).
	TolLoss  = 1e-5
	AtolLoss = 1e-6
	// TolNumGrad is the relative tolerance between a backend's gradient and
	// central finite differences of the float64 reference (step 1e-6), with
	// AtolNumGrad as floor: finite differences themselves err by ~1e-9 and
	// the float32 gradient by ~1e-7.
	TolNumGrad  = 1e-4
	AtolNumGrad = 1e-6
)

// Sizes are the dimension sizes property tests draw from.
var Sizes = []int{1, 2, 3, 7, 16, 33, 64, 100, 257}

// Run runs the whole suite; newBackend is called once per subtest.
func Run(t *testing.T, newBackend func() gpu.Backend) {
	tests := []struct {
		name string
		f    func(*H)
	}{
		{"Alloc", testAlloc},
		{"ReadWrite", testReadWrite},
		{"Reshape", testReshape},
		{"MatMulTable", testMatMulTable},
		{"MatMulRandom", testMatMulRandom},
		{"MatMulBig", testMatMulBig},
		{"Binary", testBinary},
		{"BinaryBroadcast", testBinaryBroadcast},
		{"Unary", testUnary},
		{"UnaryInPlace", testUnaryInPlace},
		{"UnaryGrad", testUnaryGrad},
		{"Axpy", testAxpy},
		{"Reduce", testReduce},
		{"Softmax", testSoftmax},
		{"ArgMax", testArgMax},
		{"LossSoftmaxCE", testLossSCE},
		{"LossBCE", testLossBCE},
		{"LossMSE", testLossMSE},
		{"BigElementwise", testBigElementwise},
		{"Errors", testErrors},
		{"FreeIdempotent", testFree},
		{"Concurrent", testConcurrent},
		{"QuantizerScales", testQuantScales},
		{"QuantizerMatMulInt8", testMatMulInt8},
		{"DistillerKL", testKLDistill},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend()
			tc.f(&H{T: t, B: be, R: rand.New(rand.NewPCG(uint64(len(tc.name)), 0x5eed))})
		})
	}
}

// H bundles a test, a backend and a seeded generator with helpers.
type H struct {
	T *testing.T
	B gpu.Backend
	R *rand.Rand
}

// F32 creates an f32 tensor holding data (zeros when data is nil).
func (h *H) F32(shape []int, data []float32) gpu.Tensor {
	h.T.Helper()
	t, err := h.B.New(gpu.F32, shape)
	if err != nil {
		h.T.Fatalf("New(f32, %v): %v", shape, err)
	}
	if data != nil {
		b := make([]byte, 4*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		if err := h.B.Write(t, b); err != nil {
			h.T.Fatalf("Write(f32 %v): %v", shape, err)
		}
	}
	return t
}

// I32 creates an i32 tensor holding data.
func (h *H) I32(shape []int, data []int32) gpu.Tensor {
	h.T.Helper()
	t, err := h.B.New(gpu.I32, shape)
	if err != nil {
		h.T.Fatalf("New(i32, %v): %v", shape, err)
	}
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	if err := h.B.Write(t, b); err != nil {
		h.T.Fatalf("Write(i32 %v): %v", shape, err)
	}
	return t
}

// ReadF32 reads an f32 tensor.
func (h *H) ReadF32(t gpu.Tensor) []float32 {
	h.T.Helper()
	b := make([]byte, t.Bytes())
	if err := h.B.Read(t, b); err != nil {
		h.T.Fatalf("Read: %v", err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// ReadI32 reads an i32 tensor.
func (h *H) ReadI32(t gpu.Tensor) []int32 {
	h.T.Helper()
	b := make([]byte, t.Bytes())
	if err := h.B.Read(t, b); err != nil {
		h.T.Fatalf("Read: %v", err)
	}
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// Rand returns n values uniform in [lo, hi).
func (h *H) Rand(n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*h.R.Float64())
	}
	return v
}

func (h *H) size() int { return Sizes[h.R.IntN(len(Sizes))] }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Close checks got against want elementwise: |g-w| <= atol + rtol*scale[i]
// (scale nil means |w|). It reports at most five mismatches.
func (h *H) Close(what string, got []float32, want, scale []float64, rtol, atol float64) {
	h.T.Helper()
	if len(got) != len(want) {
		h.T.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range want {
		s := math.Abs(want[i])
		if scale != nil {
			s = scale[i]
		}
		g := float64(got[i])
		if math.IsInf(want[i], 0) || math.IsNaN(want[i]) {
			if g == want[i] || (math.IsNaN(g) && math.IsNaN(want[i])) {
				continue
			}
		} else if math.Abs(g-want[i]) <= atol+rtol*s {
			continue
		}
		bad++
		if bad <= 5 {
			h.T.Errorf("%s: [%d] = %v, want %v (tolerance %g)", what, i, g, want[i], atol+rtol*s)
		}
	}
	if bad > 5 {
		h.T.Errorf("%s: %d mismatches in all", what, bad)
	}
}

func must(h *H, err error, what string) {
	h.T.Helper()
	if err != nil {
		h.T.Fatalf("%s: %v", what, err)
	}
}

// ---- allocation and I/O ----

func testAlloc(h *H) {
	for _, tc := range []struct {
		dt    gpu.DType
		shape []int
	}{
		{gpu.F32, []int{}}, {gpu.F32, []int{0}}, {gpu.F32, []int{3, 0, 2}}, {gpu.F32, []int{7, 33}},
		{gpu.I32, []int{5}}, {gpu.I8, []int{2, 3, 4}}, {gpu.I8, []int{1, 1, 1, 1, 1, 1, 1, 1}},
	} {
		t, err := h.B.New(tc.dt, tc.shape)
		must(h, err, fmt.Sprintf("New(%s, %v)", tc.dt, tc.shape))
		n := numel(tc.shape)
		if t.DType() != tc.dt || !gpu.EqualShape(t.Shape(), tc.shape) || t.Len() != n || t.Bytes() != int64(n*tc.dt.Size()) {
			h.T.Errorf("New(%s, %v) = %s %v len %d bytes %d", tc.dt, tc.shape, t.DType(), t.Shape(), t.Len(), t.Bytes())
		}
		b := make([]byte, t.Bytes())
		for i := range b {
			b[i] = 0xAA
		}
		must(h, h.B.Read(t, b), "Read")
		for i, v := range b {
			if v != 0 {
				h.T.Fatalf("New(%s, %v) byte %d = %#x, want zero", tc.dt, tc.shape, i, v)
			}
		}
		h.B.Free(t)
	}
	// the shape passed to New must be copied
	shape := []int{2, 3}
	t := h.F32(shape, nil)
	shape[0] = 9
	if !gpu.EqualShape(t.Shape(), []int{2, 3}) {
		h.T.Errorf("tensor shape follows the caller's slice: %v", t.Shape())
	}
}

func testReadWrite(h *H) {
	for _, dt := range []gpu.DType{gpu.F32, gpu.I32, gpu.I8} {
		for _, n := range []int{1, 7, 33, 4099} {
			t, err := h.B.New(dt, []int{n})
			must(h, err, "New")
			src := make([]byte, n*dt.Size())
			for i := range src {
				src[i] = byte(h.R.IntN(256))
			}
			if dt == gpu.F32 { // avoid NaN payloads, which a device may canonicalise
				for i := 0; i < n; i++ {
					binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(float32(h.R.NormFloat64())))
				}
			}
			must(h, h.B.Write(t, src), "Write")
			dst := make([]byte, len(src))
			must(h, h.B.Read(t, dst), "Read")
			for i := range src {
				if src[i] != dst[i] {
					h.T.Fatalf("%s[%d]: byte %d read %#x, wrote %#x", dt, n, i, dst[i], src[i])
				}
			}
		}
	}
	// f32 values keep their bit patterns (incl. -0, inf, subnormals)
	vals := []float32{0, float32(math.Copysign(0, -1)), 1.5, -2.25, float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, math.MaxFloat32}
	got := h.ReadF32(h.F32([]int{len(vals)}, vals))
	for i := range vals {
		if math.Float32bits(got[i]) != math.Float32bits(vals[i]) {
			h.T.Errorf("f32 %v read back as %v", vals[i], got[i])
		}
	}
}

func testReshape(h *H) {
	t := h.F32([]int{2, 3, 4}, h.Rand(24, -1, 1))
	before := h.ReadF32(t)
	must(h, h.B.Reshape(t, []int{6, 4}), "Reshape")
	if !gpu.EqualShape(t.Shape(), []int{6, 4}) || t.Len() != 24 {
		h.T.Fatalf("after Reshape shape %v len %d", t.Shape(), t.Len())
	}
	after := h.ReadF32(t)
	for i := range before {
		if before[i] != after[i] {
			h.T.Fatalf("Reshape changed element %d", i)
		}
	}
	must(h, h.B.Reshape(t, []int{24}), "Reshape to rank 1")
	must(h, h.B.Reshape(t, []int{1, 24, 1}), "Reshape with ones")
	if err := h.B.Reshape(t, []int{5, 5}); !errors.Is(err, gpu.ErrShape) {
		h.T.Errorf("Reshape to a different count: err = %v, want ErrShape", err)
	}
	if err := h.B.Reshape(t, []int{-24, -1}); !errors.Is(err, gpu.ErrShape) {
		h.T.Errorf("Reshape to negative dims: err = %v, want ErrShape", err)
	}
	if !gpu.EqualShape(t.Shape(), []int{1, 24, 1}) {
		h.T.Errorf("failed Reshape changed the shape to %v", t.Shape())
	}
	s := h.F32([]int{}, []float32{3})
	must(h, h.B.Reshape(s, []int{1, 1}), "Reshape scalar")
}

// ---- matmul ----

// refMatMul returns op(a) x op(b) in float64 and, per element, the sum of
// absolute products (the error scale).
func refMatMul(a []float32, ar, ac int, b []float32, br, bc int, ta, tb bool) (want, scale []float64, m, n int) {
	m, k := ar, ac
	if ta {
		m, k = ac, ar
	}
	n = bc
	if tb {
		n = br
	}
	at := func(i, p int) float64 {
		if ta {
			return float64(a[p*ac+i])
		}
		return float64(a[i*ac+p])
	}
	bt := func(p, j int) float64 {
		if tb {
			return float64(b[j*bc+p])
		}
		return float64(b[p*bc+j])
	}
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				v := at(i, p) * bt(p, j)
				s += v
				sa += math.Abs(v)
			}
			want[i*n+j] = s
			scale[i*n+j] = sa
		}
	}
	return want, scale, m, n
}

func (h *H) checkMatMul(m, n, k int, ta, tb bool) {
	h.T.Helper()
	ashape := []int{m, k}
	if ta {
		ashape = []int{k, m}
	}
	bshape := []int{k, n}
	if tb {
		bshape = []int{n, k}
	}
	ad := h.Rand(m*k, -1, 1)
	bd := h.Rand(k*n, -1, 1)
	a := h.F32(ashape, ad)
	b := h.F32(bshape, bd)
	shape, err := gpu.MatMulShape(ashape, bshape, ta, tb)
	must(h, err, "MatMulShape")
	out := h.F32(shape, nil)
	// fill out with garbage: MatMul must overwrite, not accumulate
	if len(shape) == 2 && m*n > 0 {
		must(h, h.B.Write(out, float32Bytes(h.Rand(m*n, 100, 200))), "Write garbage")
	}
	must(h, h.B.MatMul(out, a, b, ta, tb), fmt.Sprintf("MatMul %dx%dx%d ta=%v tb=%v", m, n, k, ta, tb))
	want, scale, _, _ := refMatMul(ad, ashape[0], ashape[1], bd, bshape[0], bshape[1], ta, tb)
	h.Close(fmt.Sprintf("MatMul m=%d n=%d k=%d ta=%v tb=%v", m, n, k, ta, tb), h.ReadF32(out), want, scale, TolMatMul, 1e-7)
	h.B.Free(a)
	h.B.Free(b)
	h.B.Free(out)
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func testMatMulTable(h *H) {
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 1}, {7, 1, 33}, {2, 3, 4}, {16, 16, 16}, {33, 7, 257},
		{64, 16, 30}, {128, 16, 30}, {5, 257, 3}, {257, 1, 7}, {1, 300, 1},
		{3, 4, 0}, {0, 5, 3}, {4, 0, 3}, {100, 100, 100}, {65, 129, 97},
	}
	for _, s := range shapes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				h.checkMatMul(s[0], s[1], s[2], ta, tb)
			}
		}
	}
}

func testMatMulRandom(h *H) {
	for i := 0; i < 40; i++ {
		h.checkMatMul(h.size(), h.size(), h.size(), h.R.IntN(2) == 1, h.R.IntN(2) == 1)
	}
}

func testMatMulBig(h *H) {
	if testing.Short() {
		h.T.Skip("big matmul skipped in -short mode")
	}
	h.checkMatMul(300, 517, 401, false, false)
	h.checkMatMul(517, 300, 1100, true, true)
	h.checkMatMul(1024, 64, 256, false, true)
}

// ---- elementwise ----

func refBinary(op gpu.BinaryOp, a, b float64) float64 {
	switch op {
	case gpu.Add:
		return a + b
	case gpu.Sub:
		return a - b
	case gpu.Mul:
		return a * b
	case gpu.Div:
		return a / b
	case gpu.Max:
		return math.Max(a, b)
	case gpu.Min:
		return math.Min(a, b)
	}
	panic("unknown op")
}

var binaryOps = []gpu.BinaryOp{gpu.Add, gpu.Sub, gpu.Mul, gpu.Div, gpu.Max, gpu.Min}

// broadcastRef computes a op b with NumPy broadcasting in float64.
func broadcastRef(op gpu.BinaryOp, a []float32, as []int, b []float32, bs []int, out []int) []float64 {
	r := len(out)
	res := make([]float64, numel(out))
	idx := make([]int, r)
	off := func(shape []int) int {
		o := 0
		for i, d := range shape {
			j := idx[r-len(shape)+i]
			if d == 1 {
				j = 0
			}
			o = o*d + j
		}
		return o
	}
	for n := range res {
		rem := n
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % out[d]
			rem /= out[d]
		}
		res[n] = float64(float32(refBinary(op, float64(a[off(as)]), float64(b[off(bs)]))))
	}
	return res
}

func (h *H) checkBinary(op gpu.BinaryOp, as, bs []int) {
	h.T.Helper()
	ad := h.Rand(numel(as), -3, 3)
	bd := h.Rand(numel(bs), -3, 3)
	if op == gpu.Div {
		for i := range bd { // keep divisors away from zero
			if math.Abs(float64(bd[i])) < 0.5 {
				bd[i] += 1
			}
		}
	}
	os, err := gpu.BroadcastShape(as, bs)
	must(h, err, "BroadcastShape")
	a, b, out := h.F32(as, ad), h.F32(bs, bd), h.F32(os, nil)
	must(h, h.B.Binary(op, out, a, b), fmt.Sprintf("Binary(%d, %v, %v)", op, as, bs))
	h.Close(fmt.Sprintf("Binary op %d %v %v", op, as, bs), h.ReadF32(out), broadcastRef(op, ad, as, bd, bs, os), nil, TolArith, 0)
	h.B.Free(a)
	h.B.Free(b)
	h.B.Free(out)
}

func testBinary(h *H) {
	for _, op := range binaryOps {
		for _, n := range []int{1, 7, 33, 257, 4099} {
			h.checkBinary(op, []int{n}, []int{n})
		}
		h.checkBinary(op, []int{7, 33}, []int{7, 33})
		h.checkBinary(op, []int{}, []int{})
	}
}

func testBinaryBroadcast(h *H) {
	pairs := [][2][]int{
		{{7, 33}, {}}, {{}, {7, 33}}, {{7, 33}, {1}}, {{1}, {5}},
		{{7, 33}, {33}}, {{33}, {7, 33}}, {{7, 33}, {7, 1}}, {{7, 1}, {7, 33}},
		{{7, 1}, {1, 33}}, {{2, 1, 3}, {4, 1}}, {{4, 1}, {2, 1, 3}},
		{{2, 3, 4, 5}, {3, 1, 5}}, {{3, 1, 5}, {2, 3, 4, 5}}, {{1, 1, 257}, {16, 1}},
		{{5, 1, 7, 1}, {1, 6, 1, 9}}, {{64, 16}, {16}}, {{0, 3}, {3}}, {{2, 0}, {2, 1}},
	}
	for _, op := range binaryOps {
		for _, p := range pairs {
			h.checkBinary(op, p[0], p[1])
		}
	}
	// random broadcastable pairs
	for i := 0; i < 40; i++ {
		r := 1 + h.R.IntN(4)
		full := make([]int, r)
		for d := range full {
			full[d] = []int{1, 2, 3, 7, 16}[h.R.IntN(5)]
		}
		mask := func() []int {
			s := append([]int(nil), full[h.R.IntN(r):]...)
			for d := range s {
				if h.R.IntN(3) == 0 {
					s[d] = 1
				}
			}
			return s
		}
		h.checkBinary(binaryOps[h.R.IntN(len(binaryOps))], mask(), mask())
	}
}

type unaryCase struct {
	op     gpu.UnaryOp
	lo, hi float64
	alpha  float32
	rtol   float64
	atol   float64
	ref    func(x, alpha float64) float64
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

var unaryCases = []unaryCase{
	{gpu.Scale, -3, 3, 2.5, TolArith, 0, func(x, a float64) float64 { return a * x }},
	{gpu.AddScalar, -3, 3, -0.75, TolArith, 0, func(x, a float64) float64 { return x + a }},
	{gpu.Neg, -3, 3, 0, 0, 0, func(x, a float64) float64 { return -x }},
	{gpu.Exp, -80, 80, 0, TolTrans, 0, func(x, a float64) float64 { return math.Exp(x) }},
	{gpu.Exp, -2, 2, 0, TolTrans, 0, func(x, a float64) float64 { return math.Exp(x) }},
	{gpu.Exp, -120, -80, 0, TolTrans, 1e-37, func(x, a float64) float64 { return math.Exp(x) }},
	{gpu.Log, 1e-6, 1e6, 0, TolTrans, AtolTrans, func(x, a float64) float64 { return math.Log(x) }},
	{gpu.Sqrt, 0, 100, 0, TolTrans, 0, func(x, a float64) float64 { return math.Sqrt(x) }},
	{gpu.Square, -30, 30, 0, TolArith, 0, func(x, a float64) float64 { return x * x }},
	{gpu.Abs, -3, 3, 0, 0, 0, func(x, a float64) float64 { return math.Abs(x) }},
	{gpu.ReLU, -3, 3, 0, 0, 0, func(x, a float64) float64 { return math.Max(x, 0) }},
	{gpu.Sigmoid, -50, 50, 0, TolTrans, AtolTrans, func(x, a float64) float64 { return sigmoid(x) }},
	{gpu.Sigmoid, -3, 3, 0, TolTrans, AtolTrans, func(x, a float64) float64 { return sigmoid(x) }},
	{gpu.Tanh, -20, 20, 0, TolTrans, AtolTrans, func(x, a float64) float64 { return math.Tanh(x) }},
	{gpu.Tanh, -0.2, 0.2, 0, TolTrans, AtolTrans, func(x, a float64) float64 { return math.Tanh(x) }},
	{gpu.Pow, 0.01, 10, 2, TolTrans, 0, func(x, a float64) float64 { return math.Pow(x, a) }},
	{gpu.Pow, 0.01, 10, 0.5, TolTrans, 0, func(x, a float64) float64 { return math.Pow(x, a) }},
	{gpu.Pow, 0.01, 10, -1.5, TolTrans, 0, func(x, a float64) float64 { return math.Pow(x, a) }},
	{gpu.Clamp, -3, 3, 0.5, 0, 0, func(x, a float64) float64 { return math.Min(math.Max(x, -a), a) }},
	{gpu.Copy, -3, 3, 0, 0, 0, func(x, a float64) float64 { return x }},
}

func testUnary(h *H) {
	for _, uc := range unaryCases {
		for _, shape := range [][]int{{}, {1}, {7}, {33, 7}, {257, 3}, {5, 1000}} {
			n := numel(shape)
			xd := h.Rand(n, uc.lo, uc.hi)
			x, out := h.F32(shape, xd), h.F32(shape, nil)
			must(h, h.B.Unary(uc.op, out, x, uc.alpha), fmt.Sprintf("Unary(%d)", uc.op))
			want := make([]float64, n)
			for i, v := range xd {
				want[i] = uc.ref(float64(v), float64(uc.alpha))
			}
			h.Close(fmt.Sprintf("Unary op %d alpha %v on [%v,%v] %v", uc.op, uc.alpha, uc.lo, uc.hi, shape), h.ReadF32(out), want, nil, uc.rtol, uc.atol)
			h.B.Free(x)
			h.B.Free(out)
		}
	}
	// special values
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), 100, -100, 89, -89}
	x, out := h.F32([]int{len(special)}, special), h.F32([]int{len(special)}, nil)
	must(h, h.B.Unary(gpu.Exp, out, x, 0), "Exp special")
	got := h.ReadF32(out)
	for i, v := range special {
		w := float32(math.Exp(float64(v)))
		if !(got[i] == w || math.Abs(float64(got[i]-w)) <= TolTrans*math.Abs(float64(w))) {
			h.T.Errorf("exp(%v) = %v, want %v", v, got[i], w)
		}
	}
	must(h, h.B.Unary(gpu.Sigmoid, out, x, 0), "Sigmoid special")
	for i, v := range h.ReadF32(out) {
		if math.IsNaN(float64(v)) || v < 0 || v > 1 {
			h.T.Errorf("sigmoid(%v) = %v, want within [0,1]", special[i], v)
		}
	}
	must(h, h.B.Unary(gpu.Tanh, out, x, 0), "Tanh special")
	for i, v := range h.ReadF32(out) {
		if math.IsNaN(float64(v)) || v < -1 || v > 1 {
			h.T.Errorf("tanh(%v) = %v, want within [-1,1]", special[i], v)
		}
	}
}

func testUnaryInPlace(h *H) {
	xd := h.Rand(1000, -2, 2)
	x := h.F32([]int{10, 100}, xd)
	must(h, h.B.Unary(gpu.Tanh, x, x, 0), "Tanh in place")
	want := make([]float64, len(xd))
	for i, v := range xd {
		want[i] = math.Tanh(float64(v))
	}
	h.Close("Tanh in place", h.ReadF32(x), want, nil, TolTrans, AtolTrans)
}

type gradCase struct {
	op     gpu.UnaryOp
	lo, hi float64
	alpha  float32
	f      func(x, a float64) float64
}

var gradCases = []gradCase{
	{gpu.Scale, -3, 3, -1.75, func(x, a float64) float64 { return a * x }},
	{gpu.Exp, -5, 5, 0, func(x, a float64) float64 { return math.Exp(x) }},
	{gpu.Log, 0.05, 20, 0, func(x, a float64) float64 { return math.Log(x) }},
	{gpu.Sqrt, 0.05, 20, 0, func(x, a float64) float64 { return math.Sqrt(x) }},
	{gpu.Square, -3, 3, 0, func(x, a float64) float64 { return x * x }},
	{gpu.Abs, -3, 3, 0, func(x, a float64) float64 { return math.Abs(x) }},
	{gpu.ReLU, -3, 3, 0, func(x, a float64) float64 { return math.Max(x, 0) }},
	{gpu.Sigmoid, -8, 8, 0, func(x, a float64) float64 { return sigmoid(x) }},
	{gpu.Tanh, -4, 4, 0, func(x, a float64) float64 { return math.Tanh(x) }},
}

// numDeriv is the central finite difference of f at x.
func numDeriv(f func(float64) float64, x float64) float64 {
	step := 1e-6 * math.Max(1, math.Abs(x))
	return (f(x+step) - f(x-step)) / (2 * step)
}

func testUnaryGrad(h *H) {
	for _, gc := range gradCases {
		for _, shape := range [][]int{{1}, {7}, {33, 9}, {3000}} {
			n := numel(shape)
			xd := h.Rand(n, gc.lo, gc.hi)
			for i := range xd { // keep away from the kinks of relu and abs
				if math.Abs(float64(xd[i])) < 1e-2 {
					xd[i] = 0.5
				}
			}
			gd := h.Rand(n, -2, 2)
			x, g, out := h.F32(shape, xd), h.F32(shape, gd), h.F32(shape, nil)
			must(h, h.B.UnaryGrad(gc.op, out, x, g, gc.alpha), fmt.Sprintf("UnaryGrad(%d)", gc.op))
			want := make([]float64, n)
			for i, v := range xd {
				alpha := float64(gc.alpha)
				want[i] = float64(gd[i]) * numDeriv(func(x float64) float64 { return gc.f(x, alpha) }, float64(v))
			}
			h.Close(fmt.Sprintf("UnaryGrad op %d %v", gc.op, shape), h.ReadF32(out), want, nil, TolNumGrad, AtolNumGrad)
		}
	}
	// ops without a gradient are refused
	x := h.F32([]int{3}, []float32{1, 2, 3})
	out := h.F32([]int{3}, nil)
	for _, op := range []gpu.UnaryOp{gpu.AddScalar, gpu.Neg, gpu.Pow, gpu.Clamp, gpu.Copy, 0, 99} {
		if err := h.B.UnaryGrad(op, out, x, x, 1); err == nil {
			h.T.Errorf("UnaryGrad(%d) succeeded, want an error", op)
		}
	}
}

func testAxpy(h *H) {
	for _, n := range []int{1, 7, 257, 100003} {
		yd, xd := h.Rand(n, -1, 1), h.Rand(n, -1, 1)
		y, x := h.F32([]int{n}, yd), h.F32([]int{n}, xd)
		must(h, h.B.Axpy(y, x, -0.3), "Axpy")
		want := make([]float64, n)
		scale := make([]float64, n)
		for i := range want {
			want[i] = float64(yd[i]) + float64(float32(-0.3))*float64(xd[i])
			scale[i] = math.Abs(float64(yd[i])) + math.Abs(0.3*float64(xd[i]))
		}
		h.Close("Axpy", h.ReadF32(y), want, scale, TolArith, 0)
	}
}

// ---- reductions and softmax ----

// layout views shape as [outer, length, inner] around axis.
func layout(shape []int, axis int) (outer, length, inner int) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return outer, shape[axis], inner
}

func (h *H) randShape() []int {
	r := 1 + h.R.IntN(4)
	s := make([]int, r)
	for i := range s {
		s[i] = []int{1, 2, 3, 7, 16, 33}[h.R.IntN(6)]
	}
	if h.R.IntN(4) == 0 {
		s[h.R.IntN(r)] = 257
	}
	return s
}

func testReduce(h *H) {
	shapes := [][]int{{1}, {7}, {257}, {4099}, {7, 33}, {33, 7}, {3, 257}, {2, 3, 4}, {7, 1, 33}, {2, 3, 5, 7}, {300, 300}}
	for i := 0; i < 30; i++ {
		shapes = append(shapes, h.randShape())
	}
	for _, shape := range shapes {
		xd := h.Rand(numel(shape), -2, 2)
		x := h.F32(shape, xd)
		for axis := -len(shape); axis < len(shape); axis++ {
			ax, _ := gpu.NormAxis(axis, len(shape))
			outer, L, inner := layout(shape, ax)
			for _, op := range []gpu.ReduceOp{gpu.Sum, gpu.Mean, gpu.RMax, gpu.RMin} {
				keep := h.R.IntN(2) == 1
				out := h.F32(gpu.ReduceShape(shape, ax, keep), nil)
				must(h, h.B.Reduce(op, out, x, axis), fmt.Sprintf("Reduce(%d, %v, axis %d)", op, shape, axis))
				want := make([]float64, outer*inner)
				scale := make([]float64, outer*inner)
				for o := 0; o < outer; o++ {
					for j := 0; j < inner; j++ {
						var s, sa float64
						mx, mn := math.Inf(-1), math.Inf(1)
						for k := 0; k < L; k++ {
							v := float64(xd[(o*L+k)*inner+j])
							s += v
							sa += math.Abs(v)
							mx, mn = math.Max(mx, v), math.Min(mn, v)
						}
						r := o*inner + j
						switch op {
						case gpu.Sum:
							want[r], scale[r] = s, sa
						case gpu.Mean:
							want[r], scale[r] = s/float64(L), sa/float64(L)
						case gpu.RMax:
							want[r] = mx
						case gpu.RMin:
							want[r] = mn
						}
					}
				}
				tol := TolReduce
				if op == gpu.RMax || op == gpu.RMin {
					tol = 0
				}
				h.Close(fmt.Sprintf("Reduce op %d %v axis %d", op, shape, axis), h.ReadF32(out), want, scale, tol, 0)
				h.B.Free(out)
			}
		}
		h.B.Free(x)
	}
}

func testSoftmax(h *H) {
	shapes := [][]int{{1}, {7}, {10}, {1000}, {7, 33}, {64, 10}, {3, 257}, {2, 3, 4}, {4, 1, 9}, {2, 7, 3, 5}}
	for i := 0; i < 20; i++ {
		shapes = append(shapes, h.randShape())
	}
	for si, shape := range shapes {
		lo, hi := -5.0, 5.0
		if si%3 == 2 { // huge logits: a naive exp overflows
			lo, hi = -1000, 1000
		}
		xd := h.Rand(numel(shape), lo, hi)
		x := h.F32(shape, xd)
		for axis := -1; axis < len(shape); axis++ {
			ax, _ := gpu.NormAxis(axis, len(shape))
			outer, L, inner := layout(shape, ax)
			for _, log := range []bool{false, true} {
				out := h.F32(shape, nil)
				must(h, h.B.Softmax(out, x, axis, log), "Softmax")
				want := make([]float64, len(xd))
				scale := make([]float64, len(xd))
				for o := 0; o < outer; o++ {
					for j := 0; j < inner; j++ {
						m := math.Inf(-1)
						for k := 0; k < L; k++ {
							m = math.Max(m, float64(xd[(o*L+k)*inner+j]))
						}
						var s float64
						for k := 0; k < L; k++ {
							s += math.Exp(float64(xd[(o*L+k)*inner+j]) - m)
						}
						for k := 0; k < L; k++ {
							i := (o*L+k)*inner + j
							v := float64(xd[i]) - m - math.Log(s)
							if log {
								want[i], scale[i] = v, 1+math.Abs(v)
							} else {
								want[i], scale[i] = math.Exp(v), 1
							}
						}
					}
				}
				h.Close(fmt.Sprintf("Softmax %v axis %d log %v", shape, axis, log), h.ReadF32(out), want, scale, TolSoftmax, 0)
				h.B.Free(out)
			}
		}
		h.B.Free(x)
	}
}

func testArgMax(h *H) {
	shapes := [][]int{{1}, {7}, {257}, {7, 33}, {33, 7}, {2, 3, 4}, {3, 1, 5}}
	for i := 0; i < 20; i++ {
		shapes = append(shapes, h.randShape())
	}
	for si, shape := range shapes {
		xd := h.Rand(numel(shape), -3, 3)
		if si%2 == 1 { // coarse values make ties, which go to the first index
			for i := range xd {
				xd[i] = float32(math.Round(float64(xd[i])))
			}
		}
		x := h.F32(shape, xd)
		for axis := -1; axis < len(shape); axis++ {
			ax, _ := gpu.NormAxis(axis, len(shape))
			outer, L, inner := layout(shape, ax)
			out, err := h.B.New(gpu.I32, gpu.ReduceShape(shape, ax, false))
			must(h, err, "New i32")
			must(h, h.B.ArgMax(out, x, axis), "ArgMax")
			got := h.ReadI32(out)
			for o := 0; o < outer; o++ {
				for j := 0; j < inner; j++ {
					best, bi := float32(math.Inf(-1)), -1
					for k := 0; k < L; k++ {
						if v := xd[(o*L+k)*inner+j]; bi < 0 || v > best {
							best, bi = v, k
						}
					}
					if g := got[o*inner+j]; int(g) != bi {
						h.T.Errorf("ArgMax %v axis %d at [%d,%d] = %d, want %d", shape, axis, o, j, g, bi)
					}
				}
			}
			h.B.Free(out)
		}
	}
}

// ---- losses ----

// checkLoss runs loss op on pred/target, compares the loss and gradient with
// the float64 reference ref, and the gradient with finite differences of ref.
func (h *H) checkLoss(op gpu.LossOp, pshape []int, pd []float32, target gpu.Tensor, ref func(p []float64) float64) {
	h.T.Helper()
	p := h.F32(pshape, pd)
	g := h.F32(pshape, nil)
	got, err := h.B.Loss(op, g, p, target)
	must(h, err, fmt.Sprintf("Loss(%d, %v)", op, pshape))
	p64 := make([]float64, len(pd))
	for i, v := range pd {
		p64[i] = float64(v)
	}
	want := ref(p64)
	h.Close(fmt.Sprintf("loss %d %v", op, pshape), []float32{got}, []float64{want}, nil, TolLoss, AtolLoss)
	// same loss without a gradient
	got2, err := h.B.Loss(op, nil, p, target)
	must(h, err, "Loss without grad")
	h.Close(fmt.Sprintf("loss %d %v without grad", op, pshape), []float32{got2}, []float64{want}, nil, TolLoss, AtolLoss)
	grad := make([]float64, len(pd))
	for i := range pd {
		x0 := p64[i]
		grad[i] = numDeriv(func(x float64) float64 { p64[i] = x; v := ref(p64); p64[i] = x0; return v }, x0)
	}
	h.Close(fmt.Sprintf("loss %d %v gradient", op, pshape), h.ReadF32(g), grad, nil, TolNumGrad, AtolNumGrad)
	h.B.Free(p)
	h.B.Free(g)
}

func logSumExp(row []float64) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, v)
	}
	var s float64
	for _, v := range row {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

func testLossSCE(h *H) {
	for _, bc := range [][2]int{{1, 1}, {1, 2}, {7, 10}, {64, 10}, {33, 3}, {5, 257}} {
		batch, classes := bc[0], bc[1]
		pd := h.Rand(batch*classes, -4, 4)
		// class-index targets
		idx := make([]int32, batch)
		for i := range idx {
			idx[i] = int32(h.R.IntN(classes))
		}
		ti := h.I32([]int{batch}, idx)
		h.checkLoss(gpu.SoftmaxCrossEntropy, []int{batch, classes}, pd, ti, func(p []float64) float64 {
			var s float64
			for r := 0; r < batch; r++ {
				row := p[r*classes : (r+1)*classes]
				s += logSumExp(row) - row[idx[r]]
			}
			return s / float64(batch)
		})
		// soft probability targets
		td := h.Rand(batch*classes, 0, 1)
		for r := 0; r < batch; r++ {
			var s float32
			for _, v := range td[r*classes : (r+1)*classes] {
				s += v
			}
			for j := range td[r*classes : (r+1)*classes] {
				td[r*classes+j] /= s
			}
		}
		tf := h.F32([]int{batch, classes}, td)
		h.checkLoss(gpu.SoftmaxCrossEntropy, []int{batch, classes}, pd, tf, func(p []float64) float64 {
			var s float64
			for r := 0; r < batch; r++ {
				row := p[r*classes : (r+1)*classes]
				lse := logSumExp(row)
				for j, v := range row {
					s += float64(td[r*classes+j]) * (lse - v)
				}
			}
			return s / float64(batch)
		})
	}
	// huge logits stay finite
	p := h.F32([]int{2, 3}, []float32{1000, -1000, 0, -1000, 1000, 500})
	tg := h.I32([]int{2}, []int32{1, 1})
	l, err := h.B.Loss(gpu.SoftmaxCrossEntropy, nil, p, tg)
	must(h, err, "Loss huge logits")
	if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) || math.Abs(float64(l)-1000) > 1e-2 {
		h.T.Errorf("softmax CE with huge logits = %v, want 1000", l)
	}
}

func testLossBCE(h *H) {
	for _, shape := range [][]int{{1}, {7}, {33, 1}, {16, 3}, {1000}} {
		n := numel(shape)
		pd := h.Rand(n, -6, 6)
		td := h.Rand(n, 0, 1)
		for i := range td {
			if i%2 == 0 {
				td[i] = float32(math.Round(float64(td[i])))
			}
		}
		tt := h.F32(shape, td)
		h.checkLoss(gpu.BinaryCrossEntropy, shape, pd, tt, func(p []float64) float64 {
			var s float64
			for i, z := range p {
				y := float64(td[i])
				s += -(y*math.Log(sigmoid(z)) + (1-y)*math.Log(1-sigmoid(z)))
			}
			return s / float64(n)
		})
	}
	// extreme logits: finite loss and gradient
	p := h.F32([]int{4}, []float32{100, -100, 100, -100})
	tt := h.F32([]int{4}, []float32{1, 0, 0, 1})
	g := h.F32([]int{4}, nil)
	l, err := h.B.Loss(gpu.BinaryCrossEntropy, g, p, tt)
	must(h, err, "BCE extreme")
	if math.Abs(float64(l)-50) > 1e-3 {
		h.T.Errorf("BCE on ±100 logits = %v, want 50", l)
	}
	h.Close("BCE extreme gradient", h.ReadF32(g), []float64{0, 0, 0.25, -0.25}, nil, TolLoss, AtolLoss)
}

func testLossMSE(h *H) {
	for _, shape := range [][]int{{1}, {7}, {33, 2}, {4, 4, 4}, {1000}} {
		n := numel(shape)
		pd, td := h.Rand(n, -3, 3), h.Rand(n, -3, 3)
		tt := h.F32(shape, td)
		h.checkLoss(gpu.MSE, shape, pd, tt, func(p []float64) float64 {
			var s float64
			for i, v := range p {
				d := v - float64(td[i])
				s += d * d
			}
			return s / float64(n)
		})
	}
}

// ---- big tensors ----

func testBigElementwise(h *H) {
	n := 1<<22 + 3
	if testing.Short() {
		n = 1<<18 + 3
	}
	ad, bd := h.Rand(n, -2, 2), h.Rand(n, -2, 2)
	a, b, out := h.F32([]int{n}, ad), h.F32([]int{n}, bd), h.F32([]int{n}, nil)
	must(h, h.B.Binary(gpu.Mul, out, a, b), "big Mul")
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(ad[i]) * float64(bd[i])
	}
	h.Close("big Mul", h.ReadF32(out), want, nil, TolArith, 0)
	must(h, h.B.Unary(gpu.Exp, out, a, 0), "big Exp")
	for i := range want {
		want[i] = math.Exp(float64(ad[i]))
	}
	h.Close("big Exp", h.ReadF32(out), want, nil, TolTrans, 0)
	// broadcast a row over a big matrix
	rows, cols := n/1024, 1024
	must(h, h.B.Reshape(a, []int{n}), "reshape")
	m := h.F32([]int{rows, cols}, ad[:rows*cols])
	r := h.F32([]int{cols}, bd[:cols])
	o := h.F32([]int{rows, cols}, nil)
	must(h, h.B.Binary(gpu.Add, o, m, r), "big broadcast Add")
	want = want[:rows*cols]
	for i := range want {
		want[i] = float64(ad[i] + bd[i%cols])
	}
	h.Close("big broadcast Add", h.ReadF32(o), want, nil, TolArith, 0)
	s := h.F32([]int{cols}, nil)
	must(h, h.B.Reduce(gpu.Sum, s, m, 0), "big Reduce")
	ws, sc := make([]float64, cols), make([]float64, cols)
	for i := 0; i < rows*cols; i++ {
		ws[i%cols] += float64(ad[i])
		sc[i%cols] += math.Abs(float64(ad[i]))
	}
	h.Close("big Reduce axis 0", h.ReadF32(s), ws, sc, TolReduce, 0)
}

// ---- errors ----

// foreign is a Tensor of no backend.
type foreign struct{}

func (foreign) DType() gpu.DType { return gpu.F32 }
func (foreign) Shape() []int     { return []int{2, 2} }
func (foreign) Len() int         { return 4 }
func (foreign) Bytes() int64     { return 16 }

func testErrors(h *H) {
	a := h.F32([]int{2, 3}, h.Rand(6, -1, 1))
	b := h.F32([]int{3, 4}, h.Rand(12, -1, 1))
	out := h.F32([]int{2, 4}, nil)
	wrong := h.F32([]int{4, 2}, nil)
	i32, err := h.B.New(gpu.I32, []int{2, 3})
	must(h, err, "New i32")
	i8, err := h.B.New(gpu.I8, []int{3, 4})
	must(h, err, "New i8")
	freed := h.F32([]int{2, 3}, nil)
	h.B.Free(freed)
	var f gpu.Tensor = foreign{}

	isShape := func(err error) bool { return errors.Is(err, gpu.ErrShape) }
	isDType := func(err error) bool { return errors.Is(err, gpu.ErrDType) }
	anyErr := func(err error) bool { return err != nil }
	cases := []struct {
		name string
		ok   func(error) bool
		call func() error
	}{
		{"New bad dtype", func(err error) bool { return errors.Is(err, gpu.ErrDType) }, func() error { _, err := h.B.New(0, []int{2}); return err }},
		{"New negative dim", isShape, func() error { _, err := h.B.New(gpu.F32, []int{2, -1}); return err }},
		{"New rank 9", isShape, func() error { _, err := h.B.New(gpu.F32, make([]int, 9)); return err }},
		{"New too many elements", isShape, func() error { _, err := h.B.New(gpu.F32, []int{1 << 16, 1 << 16}); return err }},
		{"Write short", anyErr, func() error { return h.B.Write(a, make([]byte, 23)) }},
		{"Write long", anyErr, func() error { return h.B.Write(a, make([]byte, 25)) }},
		{"Read short", anyErr, func() error { return h.B.Read(a, make([]byte, 4)) }},
		{"MatMul out shape", isShape, func() error { return h.B.MatMul(wrong, a, b, false, false) }},
		{"MatMul inner dims", isShape, func() error { return h.B.MatMul(out, a, b, true, false) }},
		{"MatMul rank 1", isShape, func() error {
			v := h.F32([]int{3}, nil)
			return h.B.MatMul(out, a, v, false, false)
		}},
		{"MatMul i32 input", isDType, func() error { return h.B.MatMul(out, i32, b, false, false) }},
		{"MatMul i8 input", isDType, func() error { return h.B.MatMul(out, a, i8, false, false) }},
		{"MatMul foreign", anyErr, func() error { return h.B.MatMul(out, a, f, false, false) }},
		{"MatMul freed", anyErr, func() error { return h.B.MatMul(out, freed, b, false, false) }},
		{"Binary no broadcast", isShape, func() error { return h.B.Binary(gpu.Add, out, a, b) }},
		{"Binary out shape", isShape, func() error { return h.B.Binary(gpu.Add, wrong, a, a) }},
		{"Binary dtype", isDType, func() error { return h.B.Binary(gpu.Add, a, a, i32) }},
		{"Binary unknown op", anyErr, func() error { return h.B.Binary(0, a, a, a) }},
		{"Binary op 7", anyErr, func() error { return h.B.Binary(7, a, a, a) }},
		{"Binary foreign", anyErr, func() error { return h.B.Binary(gpu.Add, f, a, a) }},
		{"Binary freed", anyErr, func() error { return h.B.Binary(gpu.Add, a, a, freed) }},
		{"Unary out shape", isShape, func() error { return h.B.Unary(gpu.Exp, out, a, 0) }},
		{"Unary dtype", isDType, func() error { return h.B.Unary(gpu.Exp, i32, i32, 0) }},
		{"Unary unknown op", anyErr, func() error { return h.B.Unary(15, a, a, 0) }},
		{"Unary op 0", anyErr, func() error { return h.B.Unary(0, a, a, 0) }},
		{"Unary foreign", anyErr, func() error { return h.B.Unary(gpu.Exp, a, f, 0) }},
		{"UnaryGrad g shape", isShape, func() error { return h.B.UnaryGrad(gpu.ReLU, a, a, out, 0) }},
		{"UnaryGrad dtype", isDType, func() error { return h.B.UnaryGrad(gpu.ReLU, a, a, i32, 0) }},
		{"Axpy shape", isShape, func() error { return h.B.Axpy(a, out, 1) }},
		{"Axpy dtype", isDType, func() error { return h.B.Axpy(a, i32, 1) }},
		{"Axpy freed", anyErr, func() error { return h.B.Axpy(freed, a, 1) }},
		{"Softmax axis", isShape, func() error { return h.B.Softmax(a, a, 2, false) }},
		{"Softmax axis -3", isShape, func() error { return h.B.Softmax(a, a, -3, false) }},
		{"Softmax out shape", isShape, func() error { return h.B.Softmax(out, a, 1, false) }},
		{"Softmax dtype", isDType, func() error { return h.B.Softmax(i32, i32, 1, false) }},
		{"Reduce axis", isShape, func() error { return h.B.Reduce(gpu.Sum, h.F32([]int{2}, nil), a, 5) }},
		{"Reduce out shape", isShape, func() error { return h.B.Reduce(gpu.Sum, h.F32([]int{3}, nil), a, 1) }},
		{"Reduce unknown op", anyErr, func() error { return h.B.Reduce(9, h.F32([]int{2}, nil), a, 1) }},
		{"Reduce dtype", isDType, func() error { return h.B.Reduce(gpu.Sum, h.F32([]int{2}, nil), i32, 1) }},
		{"ArgMax out f32", isDType, func() error { return h.B.ArgMax(h.F32([]int{2}, nil), a, 1) }},
		{"ArgMax out shape", isShape, func() error { return h.B.ArgMax(h.I32([]int{3}, []int32{0, 0, 0}), a, 1) }},
		{"ArgMax axis", isShape, func() error { return h.B.ArgMax(h.I32([]int{2}, []int32{0, 0}), a, 2) }},
		{"Loss unknown op", anyErr, func() error { _, err := h.B.Loss(0, nil, a, a); return err }},
		{"Loss SCE target shape", isShape, func() error {
			_, err := h.B.Loss(gpu.SoftmaxCrossEntropy, nil, a, h.I32([]int{3}, []int32{0, 0, 0}))
			return err
		}},
		{"Loss SCE class out of range", anyErr, func() error {
			_, err := h.B.Loss(gpu.SoftmaxCrossEntropy, nil, a, h.I32([]int{2}, []int32{0, 3}))
			return err
		}},
		{"Loss SCE negative class", anyErr, func() error {
			_, err := h.B.Loss(gpu.SoftmaxCrossEntropy, nil, a, h.I32([]int{2}, []int32{-1, 0}))
			return err
		}},
		{"Loss SCE i8 target", isDType, func() error {
			t, _ := h.B.New(gpu.I8, []int{2})
			_, err := h.B.Loss(gpu.SoftmaxCrossEntropy, nil, a, t)
			return err
		}},
		{"Loss SCE rank 3", isShape, func() error {
			_, err := h.B.Loss(gpu.SoftmaxCrossEntropy, nil, h.F32([]int{1, 2, 3}, nil), h.F32([]int{1, 2, 3}, nil))
			return err
		}},
		{"Loss MSE target shape", isShape, func() error { _, err := h.B.Loss(gpu.MSE, nil, a, out); return err }},
		{"Loss MSE i32 target", isDType, func() error { _, err := h.B.Loss(gpu.MSE, nil, a, i32); return err }},
		{"Loss BCE grad shape", isShape, func() error { _, err := h.B.Loss(gpu.BinaryCrossEntropy, out, a, a); return err }},
		{"Loss foreign pred", anyErr, func() error { _, err := h.B.Loss(gpu.MSE, nil, f, a); return err }},
		{"Loss freed target", anyErr, func() error { _, err := h.B.Loss(gpu.MSE, nil, a, freed); return err }},
		{"Reshape foreign", anyErr, func() error { return h.B.Reshape(f, []int{4}) }},
		{"Reshape freed", anyErr, func() error { return h.B.Reshape(freed, []int{6}) }},
		{"Write foreign", anyErr, func() error { return h.B.Write(f, make([]byte, 16)) }},
		{"Read freed", anyErr, func() error { return h.B.Read(freed, make([]byte, 24)) }},
	}
	for _, tc := range cases {
		func() {
			defer func() {
				if r := recover(); r != nil {
					h.T.Errorf("%s: panicked: %v", tc.name, r)
				}
			}()
			if err := tc.call(); !tc.ok(err) {
				h.T.Errorf("%s: err = %v, want an error of the right kind", tc.name, err)
			}
		}()
	}
}

func testFree(h *H) {
	a := h.F32([]int{3}, nil)
	h.B.Free(a)
	h.B.Free(a) // no-op
	h.B.Free(foreign{})
	b := h.F32([]int{3}, []float32{1, 2, 3})
	if got := h.ReadF32(b); got[2] != 3 {
		h.T.Errorf("a tensor allocated after a double Free reads %v", got)
	}
}

func testConcurrent(h *H) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		ad, bd := h.Rand(64*48, -1, 1), h.Rand(48*80, -1, 1)
		a, b, out := h.F32([]int{64, 48}, ad), h.F32([]int{48, 80}, bd), h.F32([]int{64, 80}, nil)
		want, scale, _, _ := refMatMul(ad, 64, 48, bd, 48, 80, false, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := h.B.MatMul(out, a, b, false, false); err != nil {
					errs <- err
					return
				}
				if err := h.B.Unary(gpu.Tanh, b, b, 0); err != nil {
					errs <- err
					return
				}
				src := h.F32Const(b, bd)
				err := h.B.Unary(gpu.Copy, b, src, 0)
				h.B.Free(src)
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		defer func() {
			h.Close("concurrent MatMul", h.ReadF32(out), want, scale, TolMatMul, 1e-7)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.T.Error(err)
	}
}

// F32Const returns a fresh tensor shaped like like holding data; it is safe
// to call from several goroutines (it reports failures with Error).
func (h *H) F32Const(like gpu.Tensor, data []float32) gpu.Tensor {
	t, err := h.B.New(gpu.F32, like.Shape())
	if err != nil {
		h.T.Error(err)
		return like
	}
	if err := h.B.Write(t, float32Bytes(data)); err != nil {
		h.T.Error(err)
	}
	return t
}
