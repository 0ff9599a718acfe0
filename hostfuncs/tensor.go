package hostfuncs

import (
	"context"
	"encoding/binary"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/tetratelabs/wazero/api"
)

func tensorGroup() Group {
	return Group{
		Module:     ModuleTensor,
		Capability: CapTensor,
		Doc:        "tensors on the host backend (CPU or GPU), referenced by handles",
		Funcs: []Func{
			{"new", i32s(5), i32s(1), host(tensorNew)},
			{"free", i32s(1), i32s(1), host(tensorFree)},
			{"dtype", i32s(1), i32s(1), host(tensorDType)},
			{"rank", i32s(1), i32s(1), host(tensorRank)},
			{"shape", i32s(3), i32s(1), host(tensorShape)},
			{"read", i32s(3), i32s(1), host(tensorRead)},
			{"write", i32s(3), i32s(1), host(tensorWrite)},
			{"reshape", i32s(3), i32s(1), host(tensorReshape)},
			{"matmul", i32s(4), i32s(1), host(tensorMatMul)},
			{"binary", i32s(4), i32s(1), host(tensorBinary)},
			{"unary", []api.ValueType{i32, i32, f32, i32}, i32s(1), host(tensorUnary)},
			{"unary_grad", []api.ValueType{i32, i32, i32, f32, i32}, i32s(1), host(tensorUnaryGrad)},
			{"axpy", []api.ValueType{i32, i32, f32}, i32s(1), host(tensorAxpy)},
			{"adam", []api.ValueType{i32, i32, i32, i32, f32, f32, f32, f32, i32}, i32s(1), host(tensorAdam)},
			{"softmax", i32s(4), i32s(1), host(tensorSoftmax)},
			{"reduce", i32s(5), i32s(1), host(tensorReduce)},
			{"argmax", i32s(3), i32s(1), host(tensorArgMax)},
			{"loss", i32s(5), i32s(1), host(tensorLoss)},
			{"quant_scales", i32s(4), i32s(1), host(tensorQuantScales)},
			{"quantize", i32s(4), i32s(1), host(tensorQuantize)},
			{"dequantize", i32s(4), i32s(1), host(tensorDequantize)},
			{"matmul_i8", i32s(4), i32s(1), host(tensorMatMulI8)},
			{"kl_distill", []api.ValueType{i32, i32, f32, i32, i32}, i32s(1), host(tensorKLDistill)},
		},
	}
}

// tensor resolves a handle of this instance.
func (in *Instance) tensor(op string, h int32) (gpu.Tensor, uint64, bool) {
	t := in.tab.get(h)
	if t == nil {
		return nil, in.fail(EHANDLE, "%s: handle %d is not a live tensor of this instance", op, h), false
	}
	return t, 0, true
}

func (in *Instance) f32Tensor(op string, h int32) (gpu.Tensor, uint64, bool) {
	t, c, okh := in.tensor(op, h)
	if !okh {
		return nil, c, false
	}
	if t.DType() != gpu.F32 {
		return nil, in.fail(EDTYPE, "%s: handle %d is %s, want f32", op, h, t.DType()), false
	}
	return t, 0, true
}

// readShape reads rank i32 dimensions at ptr into buf.
func (in *Instance) readShape(op string, mod api.Module, ptr uint32, rank int32, buf *[gpu.MaxRank]int) ([]int, uint64, bool) {
	if rank < 0 || rank > gpu.MaxRank {
		return nil, in.fail(ESHAPE, "%s: rank %d is outside 0..%d", op, rank, gpu.MaxRank), false
	}
	raw, okm := mem(mod, ptr, rank*4)
	if !okm {
		return nil, in.fail(EMEM, "%s: shape [%d, +%d) is outside guest memory", op, ptr, rank*4), false
	}
	shape := buf[:rank]
	for i := range shape {
		d := int32(binary.LittleEndian.Uint32(raw[4*i:]))
		if d < 0 {
			return nil, in.fail(ESHAPE, "%s: dimension %d is negative (%d)", op, i, d), false
		}
		shape[i] = int(d)
	}
	return shape, 0, true
}

// alloc creates a zeroed tensor within the quota and returns its handle.
func (in *Instance) alloc(op string, dt gpu.DType, shape []int) (gpu.Tensor, int32, uint64, bool) {
	size, err := gpu.ByteSize(dt, shape)
	if err != nil {
		return nil, 0, in.failErr(op, err), false
	}
	if in.tab.live >= in.cfg.MaxHandles {
		return nil, 0, in.fail(EQUOTA, "%s: handle quota of %d live tensors reached", op, in.cfg.MaxHandles), false
	}
	if in.bytes+size > in.cfg.MaxTensorBytes {
		return nil, 0, in.fail(EQUOTA, "%s: %d more bytes would exceed the tensor quota (%d of %d bytes in use)", op, size, in.bytes, in.cfg.MaxTensorBytes), false
	}
	t, err := in.cfg.Backend.New(dt, append([]int(nil), shape...))
	if err != nil {
		return nil, 0, in.failErr(op, err), false
	}
	h := in.tab.put(t)
	if h == 0 {
		in.cfg.Backend.Free(t)
		return nil, 0, in.fail(EQUOTA, "%s: handle space exhausted (over 2^31 tensors allocated; handle values are never reissued); the instance must be replaced", op), false
	}
	in.bytes += t.Bytes()
	return t, h, 0, true
}

// release frees a handle's tensor and its quota.
func (in *Instance) release(h int32) {
	if t := in.tab.remove(h); t != nil {
		in.bytes -= t.Bytes()
		in.unchargePack(t)
		in.cfg.Backend.Free(t)
	}
}

// result resolves an operation's output: out == 0 allocates a new tensor of
// dtype and shape; otherwise out must be a live tensor of exactly that dtype
// and shape, distinct from the inputs listed in noAlias.
func (in *Instance) result(op string, out int32, dt gpu.DType, shape []int, noAlias ...int32) (gpu.Tensor, int32, bool, uint64, bool) {
	if out == 0 {
		t, h, c, oka := in.alloc(op, dt, shape)
		return t, h, true, c, oka
	}
	for _, a := range noAlias {
		if a == out {
			return nil, 0, false, in.fail(EINVAL, "%s: out handle %d aliases an input", op, out), false
		}
	}
	t, c, okh := in.tensor(op, out)
	if !okh {
		return nil, 0, false, c, false
	}
	if t.DType() != dt || !gpu.EqualShape(t.Shape(), shape) {
		return nil, 0, false, in.fail(ESHAPE, "%s: out handle %d is %s%v, want %s%v", op, out, t.DType(), t.Shape(), dt, shape), false
	}
	return t, out, false, 0, true
}

// finish completes an operation: on error a freshly allocated result is
// released again.
func (in *Instance) finish(op string, h int32, fresh bool, err error) uint64 {
	if err != nil {
		if fresh {
			in.release(h)
		}
		return in.failErr(op, err)
	}
	return ok(h)
}

// new(dtype, shape_ptr, rank, data_ptr, data_len) -> handle
func tensorNew(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.new"
	dt := gpu.DType(0)
	if d := int32(stack[0]); d > 0 && d < 256 {
		dt = gpu.DType(d)
	}
	if !dt.Valid() {
		return in.fail(EDTYPE, "%s: unknown dtype %d", op, int32(stack[0]))
	}
	shape, c, oks := in.readShape(op, mod, uint32(stack[1]), int32(stack[2]), &in.scratch)
	if !oks {
		return c
	}
	dataPtr, dataLen := uint32(stack[3]), int32(stack[4])
	size, err := gpu.ByteSize(dt, shape)
	if err != nil {
		return in.failErr(op, err)
	}
	var data []byte
	if dataLen != 0 {
		if int64(dataLen) != size {
			return in.fail(EINVAL, "%s: data is %d bytes, a %s%v tensor needs %d", op, dataLen, dt, shape, size)
		}
		var okm bool
		if data, okm = mem(mod, dataPtr, dataLen); !okm {
			return in.fail(EMEM, "%s: data [%d, +%d) is outside guest memory", op, dataPtr, dataLen)
		}
	}
	t, h, c, oka := in.alloc(op, dt, shape)
	if !oka {
		return c
	}
	if data != nil {
		if err := in.cfg.Backend.Write(t, data); err != nil {
			in.release(h)
			return in.failErr(op, err)
		}
	}
	return ok(h)
}

// free(h) -> 0
func tensorFree(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	h := int32(stack[0])
	if in.tab.get(h) == nil {
		return in.fail(EHANDLE, "tensor.free: handle %d is not a live tensor of this instance", h)
	}
	in.release(h)
	return ok(0)
}

// dtype(h) -> dtype
func tensorDType(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	t, c, okh := in.tensor("tensor.dtype", int32(stack[0]))
	if !okh {
		return c
	}
	return ok(int32(t.DType()))
}

// rank(h) -> rank
func tensorRank(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	t, c, okh := in.tensor("tensor.rank", int32(stack[0]))
	if !okh {
		return c
	}
	return ok(int32(len(t.Shape())))
}

// shape(h, buf_ptr, buf_cap) -> rank
func tensorShape(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.shape"
	t, c, okh := in.tensor(op, int32(stack[0]))
	if !okh {
		return c
	}
	ptr, capacity := uint32(stack[1]), int32(stack[2])
	if capacity < 0 {
		return in.fail(EMEM, "%s: negative buffer capacity %d", op, capacity)
	}
	shape := t.Shape()
	n := min(int32(len(shape)), capacity)
	buf, okm := mem(mod, ptr, n*4)
	if !okm {
		return in.fail(EMEM, "%s: buffer [%d, +%d) is outside guest memory", op, ptr, n*4)
	}
	for i := int32(0); i < n; i++ {
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(shape[i]))
	}
	return ok(int32(len(shape)))
}

// read(h, buf_ptr, buf_len) -> bytes
func tensorRead(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.read"
	t, c, okh := in.tensor(op, int32(stack[0]))
	if !okh {
		return c
	}
	ptr, n := uint32(stack[1]), int32(stack[2])
	size := t.Bytes()
	if int64(n) < size {
		return in.fail(EINVAL, "%s: buffer of %d bytes is smaller than the tensor (%d bytes)", op, n, size)
	}
	buf, okm := mem(mod, ptr, int32(size))
	if !okm {
		return in.fail(EMEM, "%s: buffer [%d, +%d) is outside guest memory", op, ptr, size)
	}
	if err := in.cfg.Backend.Read(t, buf); err != nil {
		return in.failErr(op, err)
	}
	return ok(int32(size))
}

// write(h, ptr, len) -> 0
func tensorWrite(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.write"
	t, c, okh := in.tensor(op, int32(stack[0]))
	if !okh {
		return c
	}
	ptr, n := uint32(stack[1]), int32(stack[2])
	if int64(n) != t.Bytes() {
		return in.fail(EINVAL, "%s: %d bytes given, the tensor holds %d", op, n, t.Bytes())
	}
	buf, okm := mem(mod, ptr, n)
	if !okm {
		return in.fail(EMEM, "%s: range [%d, +%d) is outside guest memory", op, ptr, n)
	}
	if err := in.cfg.Backend.Write(t, buf); err != nil {
		return in.failErr(op, err)
	}
	return ok(0)
}

// reshape(h, shape_ptr, rank) -> 0
func tensorReshape(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.reshape"
	t, c, okh := in.tensor(op, int32(stack[0]))
	if !okh {
		return c
	}
	shape, c, oks := in.readShape(op, mod, uint32(stack[1]), int32(stack[2]), &in.scratch)
	if !oks {
		return c
	}
	n, err := gpu.NumElements(shape)
	if err != nil {
		return in.failErr(op, err)
	}
	if n != t.Len() {
		return in.fail(ESHAPE, "%s: %v has %d elements, the tensor %v has %d", op, shape, n, t.Shape(), t.Len())
	}
	if err := in.cfg.Backend.Reshape(t, append([]int(nil), shape...)); err != nil {
		return in.failErr(op, err)
	}
	return ok(0)
}

// matmul(a, b, flags, out) -> handle
func tensorMatMul(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.matmul"
	ha, hb, flags, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	if flags&^3 != 0 {
		return in.fail(EINVAL, "%s: unknown flags %#x", op, flags)
	}
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	b, c, okb := in.f32Tensor(op, hb)
	if !okb {
		return c
	}
	ta, tb := flags&1 != 0, flags&2 != 0
	shape, err := gpu.MatMulShape(a.Shape(), b.Shape(), ta, tb)
	if err != nil {
		return in.failErr(op, err)
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, shape, ha, hb)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.product(o, a, b, ta, tb))
}

// blockMACs bounds the multiply-adds of one block of a long product: tens
// of milliseconds on one CPU core. Between blocks the call's deadline is
// checked (checkpoint).
const blockMACs = 1 << 28

// rowBlocks runs f over the rows [0, m) of a product whose rows cost
// rowMACs multiply-adds each, in blocks of at most blockMACs (and at least
// one row), with a checkpoint before each block.
func (in *Instance) rowBlocks(m int, rowMACs int64, f func(r0, r1 int) error) error {
	rows := int(max(1, blockMACs/max(rowMACs, 1)))
	for r0 := 0; r0 < m; r0 += rows {
		in.checkpoint()
		if err := f(r0, min(m, r0+rows)); err != nil {
			return err
		}
	}
	return nil
}

// product computes o = op(a) x op(b), in row blocks when it is long and
// the backend can (gpu.RowRanger); a backend that cannot computes it in one
// call, bounded only by the tensor quota.
func (in *Instance) product(o, a, b gpu.Tensor, ta, tb bool) error {
	m, n := o.Shape()[0], o.Shape()[1]
	k := a.Shape()[1]
	if ta {
		k = a.Shape()[0]
	}
	rowMACs := int64(n) * int64(k)
	rr, okr := in.cfg.Backend.(gpu.RowRanger)
	if !okr || int64(m)*rowMACs <= blockMACs {
		return in.cfg.Backend.MatMul(o, a, b, ta, tb)
	}
	return in.rowBlocks(m, rowMACs, func(r0, r1 int) error { return rr.MatMulRows(o, a, b, ta, tb, r0, r1) })
}

// int8Product is product for matmul_i8: o = x [m, k] times w [k, n].
func (in *Instance) int8Product(q gpu.Quantizer, o, x, w, s gpu.Tensor) error {
	m, k, n := x.Shape()[0], x.Shape()[1], w.Shape()[1]
	rowMACs := int64(n) * int64(k)
	rr, okr := q.(gpu.RowRanger)
	if !okr || int64(m)*rowMACs <= blockMACs {
		return q.MatMulInt8(o, x, w, s)
	}
	return in.rowBlocks(m, rowMACs, func(r0, r1 int) error { return rr.MatMulInt8Rows(o, x, w, s, r0, r1) })
}

// binary(op, a, b, out) -> handle
func tensorBinary(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.binary"
	code, ha, hb, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	if code < int32(gpu.Add) || code > int32(gpu.Min) {
		return in.fail(EINVAL, "%s: unknown op %d", op, code)
	}
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	b, c, okb := in.f32Tensor(op, hb)
	if !okb {
		return c
	}
	shape, err := gpu.BroadcastShape(a.Shape(), b.Shape())
	if err != nil {
		return in.failErr(op, err)
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, shape, ha, hb)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.cfg.Backend.Binary(gpu.BinaryOp(code), o, a, b))
}

func validAlpha(in *Instance, op string, alpha float32) (uint64, bool) {
	if math.IsNaN(float64(alpha)) {
		return in.fail(EINVAL, "%s: alpha is NaN", op), false
	}
	return 0, true
}

// unary(op, a, alpha, out) -> handle
func tensorUnary(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.unary"
	code, ha, alpha, out := int32(stack[0]), int32(stack[1]), api.DecodeF32(stack[2]), int32(stack[3])
	if code < int32(gpu.Scale) || code > int32(gpu.Copy) {
		return in.fail(EINVAL, "%s: unknown op %d", op, code)
	}
	if c, okv := validAlpha(in, op, alpha); !okv {
		return c
	}
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, a.Shape())
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.cfg.Backend.Unary(gpu.UnaryOp(code), o, a, alpha))
}

// unary_grad(op, x, g, alpha, out) -> handle
func tensorUnaryGrad(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.unary_grad"
	code, hx, hg, alpha, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), api.DecodeF32(stack[3]), int32(stack[4])
	switch gpu.UnaryOp(code) {
	case gpu.Scale, gpu.Exp, gpu.Log, gpu.Sqrt, gpu.Square, gpu.Abs, gpu.ReLU, gpu.Sigmoid, gpu.Tanh:
	default:
		return in.fail(EINVAL, "%s: op %d has no gradient", op, code)
	}
	if c, okv := validAlpha(in, op, alpha); !okv {
		return c
	}
	x, c, okx := in.f32Tensor(op, hx)
	if !okx {
		return c
	}
	g, c, okg := in.f32Tensor(op, hg)
	if !okg {
		return c
	}
	if !gpu.EqualShape(x.Shape(), g.Shape()) {
		return in.fail(ESHAPE, "%s: x %v and g %v differ in shape", op, x.Shape(), g.Shape())
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, x.Shape(), hx, hg)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.cfg.Backend.UnaryGrad(gpu.UnaryOp(code), o, x, g, alpha))
}

// axpy(y, x, alpha) -> 0
func tensorAxpy(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.axpy"
	hy, hx, alpha := int32(stack[0]), int32(stack[1]), api.DecodeF32(stack[2])
	if c, okv := validAlpha(in, op, alpha); !okv {
		return c
	}
	y, c, oky := in.f32Tensor(op, hy)
	if !oky {
		return c
	}
	x, c, okx := in.f32Tensor(op, hx)
	if !okx {
		return c
	}
	if !gpu.EqualShape(x.Shape(), y.Shape()) {
		return in.fail(ESHAPE, "%s: y %v and x %v differ in shape", op, y.Shape(), x.Shape())
	}
	if err := in.cfg.Backend.Axpy(y, x, alpha); err != nil {
		return in.failErr(op, err)
	}
	return ok(0)
}

// softmax(a, axis, log, out) -> handle
func tensorSoftmax(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.softmax"
	ha, axis, logf, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3])
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	ax, err := gpu.NormAxis(int(axis), len(a.Shape()))
	if err != nil {
		return in.fail(EINVAL, "%s: axis %d: %v", op, axis, err)
	}
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, a.Shape(), ha)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.cfg.Backend.Softmax(o, a, ax, logf != 0))
}

// reduce(op, a, axis, keepdims, out) -> handle
func tensorReduce(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.reduce"
	code, ha, axis, keep, out := int32(stack[0]), int32(stack[1]), int32(stack[2]), int32(stack[3]), int32(stack[4])
	if code < int32(gpu.Sum) || code > int32(gpu.RMin) {
		return in.fail(EINVAL, "%s: unknown op %d", op, code)
	}
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	ax, err := gpu.NormAxis(int(axis), len(a.Shape()))
	if err != nil {
		return in.fail(EINVAL, "%s: axis %d: %v", op, axis, err)
	}
	if (code == int32(gpu.RMax) || code == int32(gpu.RMin)) && a.Shape()[ax] == 0 {
		return in.fail(ESHAPE, "%s: max/min over an empty axis", op)
	}
	shape := gpu.ReduceShape(a.Shape(), ax, keep != 0)
	o, h, fresh, c, okr := in.result(op, out, gpu.F32, shape, ha)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.cfg.Backend.Reduce(gpu.ReduceOp(code), o, a, ax))
}

// argmax(a, axis, out) -> handle
func tensorArgMax(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "tensor.argmax"
	ha, axis, out := int32(stack[0]), int32(stack[1]), int32(stack[2])
	a, c, oka := in.f32Tensor(op, ha)
	if !oka {
		return c
	}
	ax, err := gpu.NormAxis(int(axis), len(a.Shape()))
	if err != nil {
		return in.fail(EINVAL, "%s: axis %d: %v", op, axis, err)
	}
	if a.Shape()[ax] == 0 {
		return in.fail(ESHAPE, "%s: argmax over an empty axis", op)
	}
	shape := gpu.ReduceShape(a.Shape(), ax, false)
	o, h, fresh, c, okr := in.result(op, out, gpu.I32, shape, ha)
	if !okr {
		return c
	}
	return in.finish(op, h, fresh, in.cfg.Backend.ArgMax(o, a, ax))
}

// loss(op, pred, target, loss_ptr, grad_out) -> grad handle or 0
func tensorLoss(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "tensor.loss"
	code, hp, ht, lossPtr, gradOut := int32(stack[0]), int32(stack[1]), int32(stack[2]), uint32(stack[3]), int32(stack[4])
	if code < int32(gpu.SoftmaxCrossEntropy) || code > int32(gpu.MSE) {
		return in.fail(EINVAL, "%s: unknown op %d", op, code)
	}
	pred, c, okp := in.f32Tensor(op, hp)
	if !okp {
		return c
	}
	target, c, okt := in.tensor(op, ht)
	if !okt {
		return c
	}
	ps, ts := pred.Shape(), target.Shape()
	switch gpu.LossOp(code) {
	case gpu.SoftmaxCrossEntropy:
		if len(ps) != 2 || ps[0] == 0 || ps[1] == 0 {
			return in.fail(ESHAPE, "%s: cross-entropy logits must be a non-empty [batch, classes], got %v", op, ps)
		}
		switch target.DType() {
		case gpu.F32:
			if !gpu.EqualShape(ps, ts) {
				return in.fail(ESHAPE, "%s: targets %v do not match logits %v", op, ts, ps)
			}
		case gpu.I32:
			if len(ts) != 1 || ts[0] != ps[0] {
				return in.fail(ESHAPE, "%s: class-index targets %v do not match batch %d", op, ts, ps[0])
			}
		default:
			return in.fail(EDTYPE, "%s: targets are %s, want f32 or i32", op, target.DType())
		}
	default:
		if target.DType() != gpu.F32 {
			return in.fail(EDTYPE, "%s: targets are %s, want f32", op, target.DType())
		}
		if !gpu.EqualShape(ps, ts) {
			return in.fail(ESHAPE, "%s: targets %v do not match predictions %v", op, ts, ps)
		}
		if pred.Len() == 0 {
			return in.fail(ESHAPE, "%s: empty predictions", op)
		}
	}
	lo, c, okl := in.lossOutputs(op, mod, lossPtr, gradOut, ps, hp, ht)
	if !okl {
		return c
	}
	loss, err := in.cfg.Backend.Loss(gpu.LossOp(code), lo.grad, pred, target)
	return in.finishLoss(op, lo, loss, err)
}

// lossOut is where a loss function puts its results: the loss in guest
// memory (buf, nil to skip) and the gradient in grad (nil to skip).
type lossOut struct {
	buf   []byte
	grad  gpu.Tensor
	h     int32
	fresh bool
}

// lossOutputs resolves a loss function's loss_ptr (0 skips) and grad_out
// (-1 skips, 0 allocates a gradient of shape, else reuses that handle).
func (in *Instance) lossOutputs(op string, mod api.Module, lossPtr uint32, gradOut int32, shape []int, noAlias ...int32) (lossOut, uint64, bool) {
	var lo lossOut
	if lossPtr != 0 {
		var okm bool
		if lo.buf, okm = mem(mod, lossPtr, 4); !okm {
			return lo, in.fail(EMEM, "%s: loss_ptr %d is outside guest memory", op, lossPtr), false
		}
	}
	if gradOut != -1 {
		var (
			c   uint64
			okr bool
		)
		if lo.grad, lo.h, lo.fresh, c, okr = in.result(op, gradOut, gpu.F32, shape, noAlias...); !okr {
			return lo, c, false
		}
	}
	return lo, 0, true
}

// finishLoss writes the loss and returns the gradient's handle (0 when
// none was asked for); on error a fresh gradient is released again.
func (in *Instance) finishLoss(op string, lo lossOut, loss float32, err error) uint64 {
	if err != nil {
		return in.finish(op, lo.h, lo.fresh, err)
	}
	if lo.buf != nil {
		binary.LittleEndian.PutUint32(lo.buf, math.Float32bits(loss))
	}
	return ok(lo.h)
}
