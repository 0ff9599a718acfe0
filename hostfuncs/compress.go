package hostfuncs

import (
	"context"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/tetratelabs/wazero/api"
)

// Model-compression functions of the fennec_tensor group (docs/ABI.md,
// "Model compression"): int8 quantization and int8 matmul on top of the
// backend's gpu.Quantizer extension, and the knowledge-distillation loss on
// top of gpu.Distiller. A backend without the extension answers EINVAL.

// quantizer returns the backend's gpu.Quantizer.
func (in *Instance) quantizer(op string) (gpu.Quantizer, uint64, bool) {
	q, okq := in.cfg.Backend.(gpu.Quantizer)
	if !okq {
		return nil, in.fail(EINVAL, "%s: not supported by backend %s", op, in.cfg.Backend.Name()), false
	}
	return q, 0, true
}

// scaleAxis checks a scale tensor against the shape it scales: one element
// is a per-tensor scale (axis ignored, returned as -1), otherwise scale must
// be [shape[axis]] (per channel; axis may count from the end).
func (in *Instance) scaleAxis(op string, hs int32, shape []int, axis int32) (gpu.Tensor, int, uint64, bool) {
	s, c, oks := in.f32Tensor(op, hs)
	if !oks {
		return nil, 0, c, false
	}
	if s.Len() == 1 {
		return s, -1, 0, true
	}
	ax, err := gpu.NormAxis(int(axis), len(shape))
	if err != nil {
		return nil, 0, in.fail(EINVAL, "%s: axis %d: %v", op, axis, err), false
	}
	if !gpu.EqualShape(s.Shape(), []int{shape[ax]}) {
		return nil, 0, in.fail(ESHAPE, "%s: scale %v does not fit %v: want one element or [%d] along axis %d", op, s.Shape(), shape, shape[ax], ax), false
	}
	return s, ax, 0, true
}

// quant_scales(a, axis, per_channel, out) -> handle
func tensorQuantScales(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.quant_scales"
	ha, axis, perChannel, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	q, c, okq := in.quantizer(op)
	if !okq {
		return c
	}
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	shape, ax := []int{1}, -1
	if perChannel != 0 {
		var err error
		if ax, err = gpu.NormAxis(int(axis), len(a.Shape())); err != nil {
			return in.fail(EINVAL, "%s: axis %d: %v", op, axis, err)
		}
		shape = []int{a.Shape()[ax]}
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, shape, ha)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, q.QuantScales(o, a, ax))
}

// quantize(a, scale, axis, out) -> handle of the i8 tensor
func tensorQuantize(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.quantize"
	ha, hs, axis, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	q, c, okq := in.quantizer(op)
	if !okq {
		return c
	}
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	s, ax, c, oks := in.scaleAxis(op, hs, a.Shape(), axis)
	if !oks {
		return c
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.I8, a.Shape(), ha, hs)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, q.Quantize(o, a, s, ax))
}

// dequantize(q, scale, axis, out) -> handle of the f32 tensor
func tensorDequantize(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.dequantize"
	hq, hs, axis, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	qz, c, okq := in.quantizer(op)
	if !okq {
		return c
	}
	qt, c, okt := in.tensor(op, hq)
	if !okt {
		return c
	}
	if qt.DType() != gpu.I8 {
		return in.fail(EDTYPE, "%s: handle %d is %s, want i8", op, hq, qt.DType())
	}
	s, ax, c, oks := in.scaleAxis(op, hs, qt.Shape(), axis)
	if !oks {
		return c
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, qt.Shape(), hs)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, qz.Dequantize(o, qt, s, ax))
}

// maxInt8Inner is the longest inner dimension of matmul_i8: the int32
// accumulators of 127*127 products cannot overflow below it.
const maxInt8Inner = 1 << 16

// matmul_i8(x, w, scale, out) -> handle
func tensorMatMulI8(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.matmul_i8"
	hx, hw, hs, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	q, c, okq := in.quantizer(op)
	if !okq {
		return c
	}
	x, c, okx := in.f32Tensor(op, hx)
	if !okx {
		return c
	}
	w, c, okw := in.tensor(op, hw)
	if !okw {
		return c
	}
	if w.DType() != gpu.I8 {
		return in.fail(EDTYPE, "%s: weights handle %d is %s, want i8", op, hw, w.DType())
	}
	s, c, oks := in.f32Tensor(op, hs)
	if !oks {
		return c
	}
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[0] {
		return in.fail(ESHAPE, "%s: x %v and w %v are not [m, k] and [k, n]", op, xs, ws)
	}
	if xs[1] > maxInt8Inner {
		return in.fail(ESHAPE, "%s: inner dimension %d exceeds %d", op, xs[1], maxInt8Inner)
	}
	n := ws[1]
	if s.Len() != 1 && !gpu.EqualShape(s.Shape(), []int{n}) {
		return in.fail(ESHAPE, "%s: scale %v: want one element or [%d]", op, s.Shape(), n)
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, []int{xs[0], n}, hx, hs)
	if !okr {
		return c
	}
	if c, okp := in.chargePack(op, q, w); !okp {
		if fresh {
			in.release(h)
		}
		return c
	}
	return in.finish(op, h, fresh, in.int8Product(q, o, x, w, s))
}

// chargePack counts the kernel layout the backend caches on weights w
// (gpu.Quantizer.Int8PackBytes) against the tensor quota, before
// MatMulInt8 builds it. The charge is w's until w is freed (release) or a
// later call finds a different size; the backend drops the cache when w
// changes, so the charge may exceed what is held, never fall short of it.
func (in *Instance) chargePack(op string, q gpu.Quantizer, w gpu.Tensor) (uint64, bool) {
	need, err := q.Int8PackBytes(w)
	if err != nil {
		return in.failErr(op, err), false
	}
	prev := in.packs[w]
	if delta := need - prev; delta > 0 && in.bytes+delta > in.cfg.MaxTensorBytes {
		return in.fail(EQUOTA, "%s: caching the kernel layout of the weights (%d bytes) would exceed the tensor quota (%d of %d bytes in use)", op, need, in.bytes, in.cfg.MaxTensorBytes), false
	}
	in.bytes += need - prev
	switch {
	case need == 0:
		delete(in.packs, w)
	case in.packs == nil:
		in.packs = map[gpu.Tensor]int64{w: need}
	default:
		in.packs[w] = need
	}
	return 0, true
}

// unchargePack returns the quota charged for t's cached layout, when t is
// released.
func (in *Instance) unchargePack(t gpu.Tensor) {
	if b, okp := in.packs[t]; okp {
		in.bytes -= b
		delete(in.packs, t)
	}
}

// kl_distill(student, teacher, T, loss_ptr, grad_out) -> grad handle or 0
func tensorKLDistill(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.kl_distill"
	hs, ht, temp, lossPtr, gradOut := int32(stack[0]), int32(stack[1]), api.DecodeF32(stack[2]), uint32(stack[3]), int32(stack[4])
	d, okd := in.cfg.Backend.(gpu.Distiller)
	if !okd {
		return in.fail(EINVAL, "%s: not supported by backend %s", op, in.cfg.Backend.Name())
	}
	if !(temp > 0) || math.IsInf(float64(temp), 0) {
		return in.fail(EINVAL, "%s: temperature %v must be positive and finite", op, temp)
	}
	student, c, oks := in.f32Tensor(op, hs)
	if !oks {
		return c
	}
	teacher, c, okt := in.f32Tensor(op, ht)
	if !okt {
		return c
	}
	ss := student.Shape()
	if len(ss) != 2 || ss[0] == 0 || ss[1] == 0 {
		return in.fail(ESHAPE, "%s: student logits must be a non-empty [batch, classes], got %v", op, ss)
	}
	if !gpu.EqualShape(ss, teacher.Shape()) {
		return in.fail(ESHAPE, "%s: teacher logits %v do not match student %v", op, teacher.Shape(), ss)
	}
	lo, c, okl := in.lossOutputs(op, mod, lossPtr, gradOut, ss, hs, ht)
	if !okl {
		return c
	}
	loss, err := d.KLDistill(lo.grad, student, teacher, temp)
	return in.finishLoss(op, lo, loss, err)
}
