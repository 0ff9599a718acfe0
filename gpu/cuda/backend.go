//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/fennec-edge/fennec/gpu"
	"gorgonia.org/cu"
	"gorgonia.org/cu/nvrtc"
)

// Config configures a CUDA backend. The zero value selects device 0 with
// the defaults.
type Config struct {
	// Device is the ordinal of the device to use.
	Device int
	// Streams is the number of streams (each with its own cuBLAS handle):
	// how many calls can be in flight on the device at once. Zero means
	// max(4, GOMAXPROCS).
	Streams int
	// MaxBytes caps the device bytes held by live tensors of this backend;
	// New returns gpu.ErrOutOfMemory beyond it. Zero means the device's
	// memory is the only limit.
	MaxBytes int64
	// TF32 lets MatMul use TF32 tensor cores: several times faster on
	// Ampere and later, with about 1e-3 relative error instead of float32's
	// 1e-7, outside gputest's TolMatMul. Off by default.
	TF32 bool
}

// ErrClosed is returned by calls on a closed backend.
var ErrClosed = errors.New("cuda: backend closed")

// ErrFreed is returned when a tensor is used after Free.
var ErrFreed = errors.New("cuda: tensor used after Free")

// scratchBytes is each stream's device scratch: partSlots float64 partial
// sums, then one uint64 flag.
const scratchBytes = partSlots*8 + 8

// Backend is the CUDA backend. Create it with New; it implements
// gpu.Backend and is safe for concurrent use on distinct tensors.
type Backend struct {
	cfg    Config
	dev    cu.Device
	ctx    cu.CUContext
	info   DeviceInfo
	sms    int
	arch   string
	pooled bool

	mod cu.Module
	fns map[string]cu.Function

	slots chan *slot
	all   []*slot
	live  atomic.Int64

	mu     sync.RWMutex // held for reading by calls, for writing by Close
	closed bool
}

// slot is one stream with its cuBLAS handle and scratch memory; a call
// holds a slot for its whole duration.
type slot struct {
	stream  cu.Stream
	handle  uintptr // CUstream
	blas    uintptr
	scratch cu.DevicePtr
}

var _ gpu.Backend = (*Backend)(nil)

// New starts a CUDA backend on cfg.Device: it initialises the driver,
// retains the device's primary context, compiles the kernels with NVRTC
// for the device and creates the streams. Its error says why CUDA cannot be
// used (no driver, no device, a library missing), so that callers can log
// it and fall back to the CPU.
func New(cfg Config) (b *Backend, err error) {
	if cfg.Streams < 0 {
		return nil, fmt.Errorf("cuda: Config.Streams is negative (%d)", cfg.Streams)
	}
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("cuda: Config.MaxBytes is negative (%d)", cfg.MaxBytes)
	}
	if cfg.Device < 0 {
		return nil, fmt.Errorf("cuda: Config.Device is negative (%d)", cfg.Device)
	}
	if cfg.Streams == 0 {
		cfg.Streams = max(4, goruntime.GOMAXPROCS(0))
	}
	if err := initDriver(); err != nil {
		return nil, fmt.Errorf("cuda: no usable driver: %w", err)
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if cfg.Device >= n {
		return nil, fmt.Errorf("cuda: device %d requested, the driver has %d", cfg.Device, n)
	}
	b = &Backend{cfg: cfg, fns: map[string]cu.Function{}}
	if b.dev, err = cu.GetDevice(cfg.Device); err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", cfg.Device, err)
	}
	if b.info, err = describe(b.dev, cfg.Device, false); err != nil {
		return nil, err
	}
	b.sms = b.info.Multiprocessors
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if b.ctx, err = b.dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: primary context of device %d: %w", cfg.Device, err)
	}
	defer func() {
		if err != nil {
			b.teardown()
		}
	}()
	if err = cu.SetCurrentContext(b.ctx); err != nil {
		return nil, fmt.Errorf("cuda: making the context current: %w", err)
	}
	if err = b.loadKernels(); err != nil {
		return nil, err
	}
	b.pooled = poolsSupported(b.dev)
	if b.pooled {
		if err = keepPool(b.dev); err != nil {
			return nil, fmt.Errorf("cuda: memory pool: %w", err)
		}
	}
	b.slots = make(chan *slot, cfg.Streams)
	for i := 0; i < cfg.Streams; i++ {
		s := &slot{}
		if s.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
			return nil, fmt.Errorf("cuda: creating stream %d: %w", i, err)
		}
		s.handle = streamHandle(s.stream)
		b.all = append(b.all, s)
		if s.blas, err = blasCreate(s.handle); err != nil {
			return nil, fmt.Errorf("cuda: cuBLAS: %w", err)
		}
		if err = blasMath(s.blas, cfg.TF32); err != nil {
			return nil, fmt.Errorf("cuda: cuBLAS: %w", err)
		}
		if s.scratch, err = cu.MemAlloc(scratchBytes); err != nil {
			return nil, fmt.Errorf("cuda: scratch memory: %w", err)
		}
		b.slots <- s
	}
	info, _ := describe(b.dev, cfg.Device, true)
	b.info.FreeBytes = info.FreeBytes
	return b, nil
}

// archCandidates lists the virtual architectures to compile for: the
// device's own, then older ones the installed NVRTC may know when it
// predates the device (the driver JIT-compiles PTX forward).
func archCandidates(major, minor int) []string {
	out := []string{fmt.Sprintf("compute_%d%d", major, minor)}
	for _, a := range []int{120, 100, 90, 89, 87, 86, 80, 75, 70, 61, 60, 53, 52} {
		if a < major*10+minor {
			out = append(out, fmt.Sprintf("compute_%d", a))
		}
	}
	return out
}

// compilePTX compiles kernels.cu for the first architecture NVRTC accepts.
func compilePTX(major, minor int) (ptx, arch string, err error) {
	var logs []string
	for _, a := range archCandidates(major, minor) {
		prog, err := nvrtc.CreateProgram(kernelSource, "kernels.cu")
		if err != nil {
			return "", "", fmt.Errorf("cuda: NVRTC: %w", err)
		}
		cerr := prog.Compile("--gpu-architecture="+a, "--std=c++14")
		if cerr == nil {
			ptx, err = prog.GetPTX()
			prog.Destroy()
			if err != nil {
				return "", "", fmt.Errorf("cuda: NVRTC PTX: %w", err)
			}
			return ptx, a, nil
		}
		l, _ := prog.GetLog()
		prog.Destroy()
		logs = append(logs, a+": "+strings.TrimSpace(l))
		if !strings.Contains(l, "architecture") && !strings.Contains(l, "arch") {
			break // a real compile error: another architecture will not help
		}
	}
	return "", "", fmt.Errorf("cuda: NVRTC could not compile the kernels:\n%s", strings.Join(logs, "\n"))
}

func (b *Backend) loadKernels() error {
	var maj, min int
	fmt.Sscanf(b.info.ComputeCapability, "%d.%d", &maj, &min)
	ptx, arch, err := compilePTX(maj, min)
	if err != nil {
		return err
	}
	b.arch = arch
	if b.mod, err = cu.LoadData(ptx); err != nil {
		return fmt.Errorf("cuda: loading the kernels (%s PTX): %w", arch, err)
	}
	for _, s := range kernelSpecs {
		f, err := b.mod.Function(s.name)
		if err != nil {
			return fmt.Errorf("cuda: kernel %s: %w", s.name, err)
		}
		b.fns[s.name] = f
	}
	return nil
}

// teardown releases what New acquired; the context must be current.
func (b *Backend) teardown() {
	for _, s := range b.all {
		if s.blas != 0 {
			blasDestroy(s.blas)
		}
		if s.scratch != 0 {
			cu.MemFree(s.scratch)
		}
		s.stream.Destroy()
	}
	b.all = nil
	if b.mod != (cu.Module{}) {
		b.mod.Unload()
	}
	b.dev.ReleasePrimaryCtx()
}

// Close waits for calls in flight, then releases the streams, handles and
// kernels. Tensors not freed are released with the primary context once
// nothing else in the process holds it. Calls after Close return ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return err
	}
	b.teardown()
	return nil
}

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Device describes the device this backend runs on (free memory as of New).
func (b *Backend) Device() DeviceInfo { return b.info }

// Arch is the virtual architecture the kernels were compiled for.
func (b *Backend) Arch() string { return b.arch }

// LiveBytes returns the device bytes held by tensors not yet freed.
func (b *Backend) LiveBytes() int64 { return b.live.Load() }

// do runs f on a stream of its own with the context current on the calling
// thread, then waits for the stream, so that every call is complete when it
// returns. Calls from different goroutines use different streams.
func (b *Backend) do(f func(s *slot) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	s := <-b.slots
	defer func() { b.slots <- s }()
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: making the context current: %w", err)
	}
	err := f(s)
	if serr := s.stream.Synchronize(); err == nil && serr != nil {
		err = fmt.Errorf("cuda: %w", serr)
	}
	return mapErr(err)
}

// mapErr turns gorgonia's out-of-memory result into gpu.ErrOutOfMemory.
func mapErr(err error) error {
	if err == nil || errors.Is(err, gpu.ErrOutOfMemory) {
		return err
	}
	if errors.Is(err, cu.OutOfMemory) {
		return fmt.Errorf("%w: %v", gpu.ErrOutOfMemory, err)
	}
	return err
}

func (b *Backend) launch(s *slot, name string, grid, block int, args ...arg) error {
	slots, err := packArgs(name, args)
	if err != nil {
		return err
	}
	params := make([]unsafe.Pointer, len(slots))
	for i := range slots {
		params[i] = unsafe.Pointer(&slots[i])
	}
	if err := b.fns[name].Launch(grid, 1, 1, block, 1, 1, 0, s.stream, params); err != nil {
		return fmt.Errorf("cuda: launching %s: %w", name, err)
	}
	return nil
}

// elementwise launches an n-element grid-stride kernel.
func (b *Backend) elementwise(s *slot, name string, n int, args ...arg) error {
	if n == 0 {
		return nil
	}
	return b.launch(s, name, elemGrid(n, b.sms), elemThreads, args...)
}

// ---- tensors ----

type tensor struct {
	owner *Backend
	dt    gpu.DType
	shape []int
	n     int
	ptr   cu.DevicePtr // 0 for an empty tensor
	freed atomic.Bool
}

func (t *tensor) DType() gpu.DType { return t.dt }
func (t *tensor) Shape() []int     { return t.shape }
func (t *tensor) Len() int         { return t.n }
func (t *tensor) Bytes() int64     { return int64(t.n) * int64(t.dt.Size()) }
func (t *tensor) String() string   { return fmt.Sprintf("cuda %s%v", t.dt, t.shape) }
func (t *tensor) p() arg           { return ptrArg(uintptr(t.ptr)) }

// New allocates a zeroed tensor in device memory.
func (b *Backend) New(dt gpu.DType, shape []int) (gpu.Tensor, error) {
	size, err := gpu.ByteSize(dt, shape)
	if err != nil {
		return nil, err
	}
	if b.cfg.MaxBytes > 0 {
		if b.live.Add(size) > b.cfg.MaxBytes {
			b.live.Add(-size)
			return nil, fmt.Errorf("%w: %d bytes requested, %d of %d in use", gpu.ErrOutOfMemory, size, b.live.Load(), b.cfg.MaxBytes)
		}
	} else {
		b.live.Add(size)
	}
	t := &tensor{owner: b, dt: dt, shape: append([]int(nil), shape...), n: int(size) / dt.Size()}
	if size == 0 {
		return t, nil
	}
	err = b.do(func(s *slot) error {
		p, err := devAlloc(size, s.handle, b.pooled)
		if err != nil && errors.Is(err, gpu.ErrOutOfMemory) && b.pooled {
			// memory freed on other streams may still sit in the pool
			for _, o := range b.all {
				if o != s {
					o.stream.Synchronize()
				}
			}
			trimPool(b.dev)
			p, err = devAlloc(size, s.handle, b.pooled)
		}
		if err != nil {
			return err
		}
		t.ptr = p
		return cu.MemsetD8Async(p, 0, size, s.stream)
	})
	if err != nil {
		b.live.Add(-size)
		if t.ptr != 0 {
			b.do(func(s *slot) error { return devFree(t.ptr, s.handle, b.pooled) })
		}
		if errors.Is(err, gpu.ErrOutOfMemory) {
			return nil, fmt.Errorf("%w: %d bytes on %s: %v", gpu.ErrOutOfMemory, size, b.info.Name, err)
		}
		return nil, err
	}
	return t, nil
}

// Free releases t; freeing twice, or a tensor of another backend, is a no-op.
func (b *Backend) Free(t gpu.Tensor) {
	ct, ok := t.(*tensor)
	if !ok || ct == nil || ct.owner != b || !ct.freed.CompareAndSwap(false, true) {
		return
	}
	b.live.Add(-ct.Bytes())
	if ct.ptr != 0 {
		p := ct.ptr
		ct.ptr = 0
		b.do(func(s *slot) error { return devFree(p, s.handle, b.pooled) })
	}
}

// tensor checks that t is a live tensor of this backend.
func (b *Backend) tensor(t gpu.Tensor, what string) (*tensor, error) {
	ct, ok := t.(*tensor)
	if !ok || ct == nil {
		return nil, fmt.Errorf("%w: %s is a %T, not a CUDA tensor", gpu.ErrUnsupported, what, t)
	}
	if ct.owner != b {
		return nil, fmt.Errorf("%w: %s belongs to another CUDA backend", gpu.ErrUnsupported, what)
	}
	if ct.freed.Load() {
		return nil, fmt.Errorf("%w: %s", ErrFreed, what)
	}
	return ct, nil
}

func (b *Backend) f32(t gpu.Tensor, what string) (*tensor, error) {
	ct, err := b.tensor(t, what)
	if err != nil {
		return nil, err
	}
	if ct.dt != gpu.F32 {
		return nil, fmt.Errorf("%w: %s is %s, want f32", gpu.ErrDType, what, ct.dt)
	}
	return ct, nil
}

func sameShape(t *tensor, want []int, what string) error {
	if !gpu.EqualShape(t.shape, want) {
		return fmt.Errorf("%w: %s has shape %v, want %v", gpu.ErrShape, what, t.shape, want)
	}
	return nil
}

// Write copies little-endian element bytes into t (device byte order is
// little endian too).
func (b *Backend) Write(t gpu.Tensor, src []byte) error {
	ct, err := b.tensor(t, "tensor")
	if err != nil {
		return err
	}
	if int64(len(src)) != ct.Bytes() {
		return fmt.Errorf("%w: write of %d bytes into a %s tensor of %d bytes", gpu.ErrShape, len(src), ct.dt, ct.Bytes())
	}
	if len(src) == 0 {
		return nil
	}
	var pin goruntime.Pinner
	pin.Pin(&src[0])
	defer pin.Unpin()
	return b.do(func(s *slot) error {
		return cu.MemcpyHtoDAsync(ct.ptr, unsafe.Pointer(&src[0]), int64(len(src)), s.stream)
	})
}

// Read copies t's elements into dst.
func (b *Backend) Read(t gpu.Tensor, dst []byte) error {
	ct, err := b.tensor(t, "tensor")
	if err != nil {
		return err
	}
	if int64(len(dst)) != ct.Bytes() {
		return fmt.Errorf("%w: read of a %s tensor of %d bytes into %d bytes", gpu.ErrShape, ct.dt, ct.Bytes(), len(dst))
	}
	if len(dst) == 0 {
		return nil
	}
	return b.do(func(s *slot) error { return readDevice(s, dst, ct.ptr) })
}

// readDevice copies len(dst) bytes at p into dst on s (the caller syncs).
func readDevice(s *slot, dst []byte, p cu.DevicePtr) error {
	var pin goruntime.Pinner
	pin.Pin(&dst[0])
	defer pin.Unpin()
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), p, int64(len(dst)), s.stream); err != nil {
		return err
	}
	return s.stream.Synchronize()
}

// Reshape changes t's shape in place.
func (b *Backend) Reshape(t gpu.Tensor, shape []int) error {
	ct, err := b.tensor(t, "tensor")
	if err != nil {
		return err
	}
	n, err := gpu.NumElements(shape)
	if err != nil {
		return err
	}
	if n != ct.n {
		return fmt.Errorf("%w: cannot reshape %v (%d elements) to %v (%d elements)", gpu.ErrShape, ct.shape, ct.n, shape, n)
	}
	ct.shape = append([]int(nil), shape...)
	return nil
}

// ---- compute ----

// MatMul computes out = op(a) x op(b) with cuBLAS SGEMM.
func (b *Backend) MatMul(out, a, bt gpu.Tensor, transA, transB bool) error {
	o, err := b.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := b.f32(a, "a")
	if err != nil {
		return err
	}
	y, err := b.f32(bt, "b")
	if err != nil {
		return err
	}
	want, err := gpu.MatMulShape(x.shape, y.shape, transA, transB)
	if err != nil {
		return err
	}
	if err := sameShape(o, want, "out"); err != nil {
		return err
	}
	m, n := want[0], want[1]
	k := x.shape[1]
	if transA {
		k = x.shape[0]
	}
	if m == 0 || n == 0 {
		return nil
	}
	if k == 0 {
		return b.do(func(s *slot) error { return cu.MemsetD8Async(o.ptr, 0, o.Bytes(), s.stream) })
	}
	call, err := gemmFor(m, n, k, transA, transB)
	if err != nil {
		return err
	}
	return b.do(func(s *slot) error { return sgemm(s.blas, call, y.ptr, x.ptr, o.ptr) })
}

// Binary computes out = a op b with NumPy broadcasting.
func (b *Backend) Binary(op gpu.BinaryOp, out, a, bt gpu.Tensor) error {
	if op < gpu.Add || op > gpu.Min {
		return fmt.Errorf("%w: binary op %d", gpu.ErrUnsupported, op)
	}
	o, err := b.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := b.f32(a, "a")
	if err != nil {
		return err
	}
	y, err := b.f32(bt, "b")
	if err != nil {
		return err
	}
	want, err := gpu.BroadcastShape(x.shape, y.shape)
	if err != nil {
		return err
	}
	if err := sameShape(o, want, "out"); err != nil {
		return err
	}
	n := o.n
	if n == 0 {
		return nil
	}
	if (x.n == n || x.n == 1) && (y.n == n || y.n == 1) {
		return b.do(func(s *slot) error {
			return b.elementwise(s, "binary", n, opArg(op), o.p(), x.p(), y.p(), i64Arg(n), boolArg(x.n != n), boolArg(y.n != n))
		})
	}
	plan, err := planBroadcast(want, x.shape, y.shape)
	if err != nil {
		return err
	}
	args := []arg{opArg(op), o.p(), x.p(), y.p(), i64Arg(n)}
	for _, v := range [][maxDims]int{plan.dims, plan.sa, plan.sb} {
		for _, d := range v {
			args = append(args, i64Arg(d))
		}
	}
	return b.do(func(s *slot) error { return b.elementwise(s, "binary_bcast", n, args...) })
}

// Unary computes out = op(a); out may alias a.
func (b *Backend) Unary(op gpu.UnaryOp, out, a gpu.Tensor, alpha float32) error {
	if op < gpu.Scale || op > gpu.Copy {
		return fmt.Errorf("%w: unary op %d", gpu.ErrUnsupported, op)
	}
	o, err := b.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := b.f32(a, "a")
	if err != nil {
		return err
	}
	if err := sameShape(o, x.shape, "out"); err != nil {
		return err
	}
	if o.n == 0 {
		return nil
	}
	return b.do(func(s *slot) error {
		return b.elementwise(s, "unary", o.n, opArg(op), o.p(), x.p(), i64Arg(o.n), f32Arg(alpha))
	})
}

// UnaryGrad computes out = g * op'(x).
func (b *Backend) UnaryGrad(op gpu.UnaryOp, out, x, g gpu.Tensor, alpha float32) error {
	switch op {
	case gpu.Scale, gpu.Exp, gpu.Log, gpu.Sqrt, gpu.Square, gpu.Abs, gpu.ReLU, gpu.Sigmoid, gpu.Tanh:
	default:
		return fmt.Errorf("%w: no gradient for unary op %d", gpu.ErrUnsupported, op)
	}
	o, err := b.f32(out, "out")
	if err != nil {
		return err
	}
	xt, err := b.f32(x, "x")
	if err != nil {
		return err
	}
	gt, err := b.f32(g, "g")
	if err != nil {
		return err
	}
	if err := sameShape(gt, xt.shape, "g"); err != nil {
		return err
	}
	if err := sameShape(o, xt.shape, "out"); err != nil {
		return err
	}
	if o.n == 0 {
		return nil
	}
	return b.do(func(s *slot) error {
		return b.elementwise(s, "unary_grad", o.n, opArg(op), o.p(), xt.p(), gt.p(), i64Arg(o.n), f32Arg(alpha))
	})
}

// Axpy computes y += alpha * x.
func (b *Backend) Axpy(y, x gpu.Tensor, alpha float32) error {
	yt, err := b.f32(y, "y")
	if err != nil {
		return err
	}
	xt, err := b.f32(x, "x")
	if err != nil {
		return err
	}
	if err := sameShape(xt, yt.shape, "x"); err != nil {
		return err
	}
	if yt.n == 0 {
		return nil
	}
	return b.do(func(s *slot) error {
		return b.elementwise(s, "axpy", yt.n, yt.p(), xt.p(), i64Arg(yt.n), f32Arg(alpha))
	})
}

// reducedOut checks that out has the shape of in reduced along axis, with
// or without the kept size-1 dimension.
func reducedOut(out *tensor, in []int, axis int) error {
	if gpu.EqualShape(out.shape, gpu.ReduceShape(in, axis, false)) || gpu.EqualShape(out.shape, gpu.ReduceShape(in, axis, true)) {
		return nil
	}
	return fmt.Errorf("%w: out has shape %v, want %v (or keepdims %v)", gpu.ErrShape, out.shape, gpu.ReduceShape(in, axis, false), gpu.ReduceShape(in, axis, true))
}

// rowGridLimit caps the grid of row-per-block kernels (they loop over rows).
const rowGridLimit = 1 << 16

// Reduce reduces a along axis into out.
func (b *Backend) Reduce(op gpu.ReduceOp, out, a gpu.Tensor, axis int) error {
	if op < gpu.Sum || op > gpu.RMin {
		return fmt.Errorf("%w: reduce op %d", gpu.ErrUnsupported, op)
	}
	o, err := b.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := b.f32(a, "a")
	if err != nil {
		return err
	}
	ax, err := gpu.NormAxis(axis, len(x.shape))
	if err != nil {
		return err
	}
	if err := reducedOut(o, x.shape, ax); err != nil {
		return err
	}
	if o.n == 0 {
		return nil
	}
	outer, L, inner := axisLayout(x.shape, ax)
	return b.do(func(s *slot) error {
		if inner == 1 {
			return b.launch(s, "reduce_rows", rowGrid(outer, rowGridLimit), rowBlock(L), opArg(op), o.p(), x.p(), i64Arg(outer), i64Arg(L))
		}
		return b.elementwise(s, "reduce_cols", outer*inner, opArg(op), o.p(), x.p(), i64Arg(outer), i64Arg(L), i64Arg(inner))
	})
}

// Softmax computes softmax (or log-softmax) of a along axis into out.
func (b *Backend) Softmax(out, a gpu.Tensor, axis int, log bool) error {
	o, err := b.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := b.f32(a, "a")
	if err != nil {
		return err
	}
	ax, err := gpu.NormAxis(axis, len(x.shape))
	if err != nil {
		return err
	}
	if err := sameShape(o, x.shape, "out"); err != nil {
		return err
	}
	if o.n == 0 {
		return nil
	}
	outer, L, inner := axisLayout(x.shape, ax)
	return b.do(func(s *slot) error {
		if inner == 1 {
			return b.launch(s, "softmax_rows", rowGrid(outer, rowGridLimit), rowBlock(L), o.p(), x.p(), i64Arg(outer), i64Arg(L), boolArg(log))
		}
		return b.elementwise(s, "softmax_cols", outer*inner, o.p(), x.p(), i64Arg(outer), i64Arg(L), i64Arg(inner), boolArg(log))
	})
}

// ArgMax writes the index of the first maximum along axis into out (i32).
func (b *Backend) ArgMax(out, a gpu.Tensor, axis int) error {
	o, err := b.tensor(out, "out")
	if err != nil {
		return err
	}
	if o.dt != gpu.I32 {
		return fmt.Errorf("%w: argmax out is %s, want i32", gpu.ErrDType, o.dt)
	}
	x, err := b.f32(a, "a")
	if err != nil {
		return err
	}
	ax, err := gpu.NormAxis(axis, len(x.shape))
	if err != nil {
		return err
	}
	if err := reducedOut(o, x.shape, ax); err != nil {
		return err
	}
	if o.n == 0 {
		return nil
	}
	outer, L, inner := axisLayout(x.shape, ax)
	if L == 0 {
		return fmt.Errorf("%w: argmax along an empty axis %d of %v", gpu.ErrShape, ax, x.shape)
	}
	return b.do(func(s *slot) error {
		if inner == 1 {
			return b.launch(s, "argmax_rows", rowGrid(outer, rowGridLimit), rowBlock(L), o.p(), x.p(), i64Arg(outer), i64Arg(L))
		}
		return b.elementwise(s, "argmax_cols", outer*inner, o.p(), x.p(), i64Arg(outer), i64Arg(L), i64Arg(inner))
	})
}

func isNil(t gpu.Tensor) bool {
	if t == nil {
		return true
	}
	ct, ok := t.(*tensor)
	return ok && ct == nil
}

// partialSum reads the first n partial sums of s's scratch and adds them.
func partialSum(s *slot, n int) (float64, error) {
	parts := make([]float64, n)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&parts[0])), 8*n)
	if err := readDevice(s, buf, s.scratch); err != nil {
		return 0, err
	}
	var total float64
	for _, v := range parts {
		total += v
	}
	return total, nil
}

// Loss computes the loss of pred against target and, when grad is not nil,
// its gradient into grad. Losses accumulate in float64.
func (b *Backend) Loss(op gpu.LossOp, grad, pred, target gpu.Tensor) (float32, error) {
	if op < gpu.SoftmaxCrossEntropy || op > gpu.MSE {
		return 0, fmt.Errorf("%w: loss op %d", gpu.ErrUnsupported, op)
	}
	p, err := b.f32(pred, "pred")
	if err != nil {
		return 0, err
	}
	t, err := b.tensor(target, "target")
	if err != nil {
		return 0, err
	}
	g := nilArg()
	if !isNil(grad) {
		gt, err := b.f32(grad, "grad")
		if err != nil {
			return 0, err
		}
		if err := sameShape(gt, p.shape, "grad"); err != nil {
			return 0, err
		}
		g = gt.p()
	}
	if op == gpu.SoftmaxCrossEntropy {
		return b.softmaxCE(g, p, t)
	}
	if t.dt != gpu.F32 {
		return 0, fmt.Errorf("%w: target is %s, want f32", gpu.ErrDType, t.dt)
	}
	if err := sameShape(t, p.shape, "target"); err != nil {
		return 0, err
	}
	n := p.n
	if n == 0 {
		return 0, nil
	}
	name := "loss_mse"
	if op == gpu.BinaryCrossEntropy {
		name = "loss_bce"
	}
	inv := 1 / float64(n)
	grid := min(elemGrid(n, b.sms), partSlots)
	var total float64
	err = b.do(func(s *slot) error {
		if err := b.launch(s, name, grid, elemThreads, ptrArg(uintptr(s.scratch)), g, p.p(), t.p(), i64Arg(n), f64Arg(inv)); err != nil {
			return err
		}
		var err error
		total, err = partialSum(s, grid)
		return err
	})
	return float32(total * inv), err
}

func (b *Backend) softmaxCE(g arg, p, t *tensor) (float32, error) {
	if len(p.shape) != 2 {
		return 0, fmt.Errorf("%w: softmax cross-entropy logits must be [batch, classes], got %v", gpu.ErrShape, p.shape)
	}
	batch, classes := p.shape[0], p.shape[1]
	ti, tf := nilArg(), nilArg()
	switch t.dt {
	case gpu.I32:
		if !gpu.EqualShape(t.shape, []int{batch}) {
			return 0, fmt.Errorf("%w: class-index target has shape %v, want [%d]", gpu.ErrShape, t.shape, batch)
		}
		ti = t.p()
	case gpu.F32:
		if !gpu.EqualShape(t.shape, p.shape) {
			return 0, fmt.Errorf("%w: probability target has shape %v, want %v", gpu.ErrShape, t.shape, p.shape)
		}
		tf = t.p()
	default:
		return 0, fmt.Errorf("%w: target is %s, want f32 or i32", gpu.ErrDType, t.dt)
	}
	if batch == 0 {
		return 0, nil
	}
	if classes == 0 {
		return 0, fmt.Errorf("%w: softmax cross-entropy with zero classes", gpu.ErrShape)
	}
	inv := 1 / float64(batch)
	grid := rowGrid(batch, partSlots)
	flag := s2flag
	var total float64
	var bad uint64 = math.MaxUint64
	var badClass int32
	err := b.do(func(s *slot) error {
		fp := s.scratch + flag
		if t.dt == gpu.I32 {
			if err := cu.MemsetD8Async(fp, 0xff, 8, s.stream); err != nil {
				return err
			}
			if err := b.elementwise(s, "sce_check", batch, ptrArg(uintptr(fp)), ti, i64Arg(batch), i64Arg(classes)); err != nil {
				return err
			}
		}
		if err := b.launch(s, "sce_rows", grid, rowBlock(classes), ptrArg(uintptr(s.scratch)), g, p.p(), ti, tf,
			i64Arg(batch), i64Arg(classes), f64Arg(inv), ptrArg(uintptr(fp))); err != nil {
			return err
		}
		if t.dt == gpu.I32 {
			fb := make([]byte, 8)
			if err := readDevice(s, fb, fp); err != nil {
				return err
			}
			bad = *(*uint64)(unsafe.Pointer(&fb[0]))
			if bad != math.MaxUint64 {
				cb := make([]byte, 4)
				if err := readDevice(s, cb, t.ptr+cu.DevicePtr(4*bad)); err != nil {
					return err
				}
				badClass = *(*int32)(unsafe.Pointer(&cb[0]))
				return nil
			}
		}
		var err error
		total, err = partialSum(s, grid)
		return err
	})
	if err != nil {
		return 0, err
	}
	if bad != math.MaxUint64 {
		return 0, fmt.Errorf("%w: target[%d] = %d is not a class in [0, %d)", gpu.ErrShape, bad, badClass, classes)
	}
	return float32(total * inv), nil
}

// s2flag is the offset of the flag word in a slot's scratch.
const s2flag = cu.DevicePtr(partSlots * 8)
