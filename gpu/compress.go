package gpu

import (
	"fmt"
)

// Quantizer is an optional Backend extension for int8 quantization of
// tensors; callers type-assert a Backend to it. A scale tensor (f32) with one
// element means per-tensor scaling (axis ignored); a scale tensor of shape
// [a.shape[axis]] means per-channel scaling along axis (negative counts
// from the end).
type Quantizer interface {
	// QuantScales computes symmetric scales max|a|/127 (1 for an all-zero
	// range) into scale, per tensor or per channel as scale's shape says.
	QuantScales(scale, a Tensor, axis int) error
	// Quantize writes clamp(round(a/scale), -127, 127) into q (i8, shape of a).
	Quantize(q, a, scale Tensor, axis int) error
	// Dequantize writes q*scale into a (f32, shape of q).
	Dequantize(a, q, scale Tensor, axis int) error
	// MatMulInt8 computes out [m, n] (f32) = x [m, k] (f32) times the int8
	// weights w [k, n] (i8) scaled per output column by wScale ([n], or one
	// element). Each row of x is quantized with its own max|x|/127 scale and
	// the products accumulate exactly in int32.
	MatMulInt8(out, x, w, wScale Tensor) error
	// Int8PackBytes is the host memory MatMulInt8 keeps cached on w, for
	// its kernel layout at w's current shape, while w lives unchanged
	// (0 for a backend that caches nothing). Hosts count it against the
	// owner's quota before the first MatMulInt8 on w.
	Int8PackBytes(w Tensor) (int64, error)
}

// Distiller is an optional Backend extension for knowledge distillation.
type Distiller interface {
	// KLDistill returns the distillation loss of student against teacher
	// logits ([batch, classes], f32) at temperature T (see the KLDistill
	// function) and, when grad is not nil, writes its gradient with respect
	// to the student logits into grad.
	KLDistill(grad, student, teacher Tensor, T float32) (float32, error)
}

// RowRanger is an optional Backend extension that computes a product one
// block of output rows at a time: the host ABI splits products too large for
// one bounded step into row blocks, so it can stop a call whose deadline
// passes between two blocks. Rows outside [r0, r1) of out are left as they
// are; 0 <= r0 <= r1 <= rows of out.
type RowRanger interface {
	// MatMulRows computes rows [r0, r1) of out = op(a) x op(b) (see
	// Backend.MatMul).
	MatMulRows(out, a, b Tensor, transA, transB bool, r0, r1 int) error
	// MatMulInt8Rows computes rows [r0, r1) of out (see
	// Quantizer.MatMulInt8).
	MatMulInt8Rows(out, x, w, wScale Tensor, r0, r1 int) error
}

var (
	_ Quantizer = (*CPU)(nil)
	_ Distiller = (*CPU)(nil)
	_ RowRanger = (*CPU)(nil)
)

// scaleArgs checks a scale tensor against a's shape and returns the axis to
// use for the slice functions (-1 for per tensor).
func (cpu *CPU) scaleArgs(scale Tensor, shape []int, axis int) (*cpuTensor, int, error) {
	s, err := cpu.f32(scale, "scale")
	if err != nil {
		return nil, 0, err
	}
	if s.n == 1 { // per tensor, whatever axis says (one channel is the same thing)
		return s, -1, nil
	}
	ax, err := NormAxis(axis, len(shape))
	if err != nil {
		return nil, 0, err
	}
	if !EqualShape(s.shape, []int{shape[ax]}) {
		return nil, 0, fmt.Errorf("%w: scale has shape %v, want [] or [1] (per tensor) or [%d] (per channel along axis %d)", ErrShape, s.shape, shape[ax], ax)
	}
	return s, ax, nil
}

// QuantScales implements Quantizer.
func (cpu *CPU) QuantScales(scale, a Tensor, axis int) error {
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	s, ax, err := cpu.scaleArgs(scale, x.shape, axis)
	if err != nil {
		return err
	}
	if ax < 0 {
		return channelScalesInto(s.f[:1], x.f, x.shape, ax)
	}
	return channelScalesInto(s.f, x.f, x.shape, ax)
}

// Quantize implements Quantizer.
func (cpu *CPU) Quantize(q, a, scale Tensor, axis int) error {
	qt, err := cpu.tensor(q, "q")
	if err != nil {
		return err
	}
	if qt.dt != I8 {
		return fmt.Errorf("%w: q is %s, want i8", ErrDType, qt.dt)
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	if err := sameShape(qt, x.shape, "q"); err != nil {
		return err
	}
	s, ax, err := cpu.scaleArgs(scale, x.shape, axis)
	if err != nil {
		return err
	}
	qt.dropPack()
	return Quantize(qt.b, x.f, x.shape, ax, s.f)
}

// Dequantize implements Quantizer.
func (cpu *CPU) Dequantize(a, q, scale Tensor, axis int) error {
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	qt, err := cpu.tensor(q, "q")
	if err != nil {
		return err
	}
	if qt.dt != I8 {
		return fmt.Errorf("%w: q is %s, want i8", ErrDType, qt.dt)
	}
	if err := sameShape(x, qt.shape, "a"); err != nil {
		return err
	}
	s, ax, err := cpu.scaleArgs(scale, qt.shape, axis)
	if err != nil {
		return err
	}
	return Dequantize(x.f, qt.b, qt.shape, ax, s.f)
}

// MatMulInt8 implements Quantizer. The transposed form of w that the
// kernels read (Int8PackBytes: k*n bytes, plus 4*n when k >= 64) is built on
// first use and cached on w until w is written, reshaped or freed; it counts
// towards the backend's live bytes and CPUConfig.MaxBytes.
func (cpu *CPU) MatMulInt8(out, x, w, wScale Tensor) error {
	return cpu.MatMulInt8Rows(out, x, w, wScale, 0, -1)
}

// MatMulInt8Rows implements RowRanger; r1 < 0 means all rows.
func (cpu *CPU) MatMulInt8Rows(out, x, w, wScale Tensor, r0, r1 int) error {
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	xt, err := cpu.f32(x, "x")
	if err != nil {
		return err
	}
	wt, err := cpu.tensor(w, "w")
	if err != nil {
		return err
	}
	if wt.dt != I8 {
		return fmt.Errorf("%w: w is %s, want i8", ErrDType, wt.dt)
	}
	st, err := cpu.f32(wScale, "wScale")
	if err != nil {
		return err
	}
	if len(xt.shape) != 2 || len(wt.shape) != 2 || xt.shape[1] != wt.shape[0] {
		return fmt.Errorf("%w: int8 matmul of x %v and w %v", ErrShape, xt.shape, wt.shape)
	}
	m, k, n := xt.shape[0], xt.shape[1], wt.shape[1]
	if err := sameShape(o, []int{m, n}, "out"); err != nil {
		return err
	}
	if st.n != 1 && !EqualShape(st.shape, []int{n}) {
		return fmt.Errorf("%w: wScale has shape %v, want [%d] or one element", ErrShape, st.shape, n)
	}
	if r1 < 0 {
		r1 = m
	}
	if r0 < 0 || r0 > r1 || r1 > m {
		return fmt.Errorf("%w: rows [%d, %d) of a %d-row product", ErrShape, r0, r1, m)
	}
	if r0 == r1 || n == 0 {
		return nil
	}
	if k == 0 {
		clear(o.f[r0*n : r1*n])
		return nil
	}
	if k > 1<<16 {
		return fmt.Errorf("%w: inner dimension %d exceeds the int8 kernels' limit of 65536", ErrShape, k)
	}
	pack, err := cpu.int8Pack(wt, k, n)
	if err != nil {
		return err
	}
	q := *pack
	q.Scale = st.f // one element or [n]: QLinear.channelScale reads either
	kern, err := lookupInt8Kernel("")
	if err != nil {
		return err
	}
	q.forward(kern, o.f[r0*n:r1*n], xt.f[r0*k:r1*k], r1-r0, cpu.Threads())
	return nil
}

// Int8PackBytes implements Quantizer.
func (cpu *CPU) Int8PackBytes(w Tensor) (int64, error) {
	wt, err := cpu.tensor(w, "w")
	if err != nil {
		return 0, err
	}
	if wt.dt != I8 || len(wt.shape) != 2 {
		return 0, nil // MatMulInt8 refuses it and caches nothing
	}
	return int8PackBytes(wt.shape[0], wt.shape[1]), nil
}

// int8Pack returns w's cached kernel layout for [k, n], building it (within
// the backend's byte cap) when there is none.
func (cpu *CPU) int8Pack(wt *cpuTensor, k, n int) (*QLinear, error) {
	if p := wt.qpack.Load(); p != nil && p.In == k && p.Out == n {
		return p, nil
	}
	size := int8PackBytes(k, n)
	if err := cpu.reserve(size); err != nil {
		return nil, fmt.Errorf("%w (caching the int8 layout of w %v)", err, wt.shape)
	}
	p := packInt8(wt.b, k, n)
	if old := wt.qpack.Swap(p); old != nil {
		cpu.live.Add(-int8PackBytes(old.In, old.Out))
	}
	return p, nil
}

// packInt8 builds the kernel layout of int8 weights w [k, n] (scales unset).
func packInt8(w []int8, k, n int) *QLinear {
	q := newQLinearLayout(k, n)
	for o := 0; o < n; o++ {
		row := q.W[o*k : (o+1)*k]
		for i := range row {
			row[i] = w[i*n+o]
		}
		q.setRowSum(o)
	}
	return q
}

// KLDistill implements Distiller.
func (cpu *CPU) KLDistill(grad, student, teacher Tensor, T float32) (float32, error) {
	s, err := cpu.f32(student, "student")
	if err != nil {
		return 0, err
	}
	t, err := cpu.f32(teacher, "teacher")
	if err != nil {
		return 0, err
	}
	if len(s.shape) != 2 {
		return 0, fmt.Errorf("%w: student logits must be [batch, classes], got %v", ErrShape, s.shape)
	}
	if err := sameShape(t, s.shape, "teacher"); err != nil {
		return 0, err
	}
	var gf []float32
	if !isNil(grad) {
		g, err := cpu.f32(grad, "grad")
		if err != nil {
			return 0, err
		}
		if err := sameShape(g, s.shape, "grad"); err != nil {
			return 0, err
		}
		gf = g.f
	}
	return KLDistill(gf, s.f, t.f, s.shape[0], s.shape[1], T)
}
