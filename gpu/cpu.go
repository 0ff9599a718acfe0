package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrFreed is returned when a tensor is used after Free. Hosts never pass a
// freed tensor (handles are checked first), so seeing it is a host bug.
var ErrFreed = errors.New("tensor used after Free")

// CPUConfig tunes the CPU backend. The zero value selects the defaults.
type CPUConfig struct {
	// Threads caps the goroutines one operation may use. Zero means
	// runtime.GOMAXPROCS(0), read at each call. Small operations always run
	// on the calling goroutine.
	Threads int
	// Kernel forces an SGEMM micro-kernel: "" or "auto" picks the fastest the
	// CPU supports ("avx512", then "avx2", then "go"); naming one the CPU
	// lacks is an error.
	Kernel string
	// MaxBytes caps the bytes held by live tensors of this backend; New
	// returns ErrOutOfMemory beyond it. Zero means no cap.
	MaxBytes int64
}

// CPU is the CPU backend. It implements Backend; create it with NewCPU or
// NewCPUWithConfig. Its methods are safe for concurrent use on distinct
// tensors.
type CPU struct {
	threads  int
	kern     *gemmKernel
	narrow   *gemmKernel // a 16-column kernel for narrow outputs, or nil
	maxBytes int64
	live     atomic.Int64
	spare    spares
}

// Freed buffers of at least spareMin bytes are kept, up to spareMax bytes
// in all, for New to reuse (zeroed): a guest that allocates and frees large
// tensors in a loop then reuses the same memory instead of leaving garbage
// for the collector, which lets the Go heap run ahead of the live bytes by
// up to its pacing target (GOGC) before it collects. The kept bytes are a
// fixed overhead of the backend, outside MaxBytes and the instances' quotas.
const (
	spareMin = 64 << 10
	spareMax = 32 << 20
)

type spareKey struct {
	dt DType
	n  int
}

// spares holds freed storage by dtype and length.
type spares struct {
	mu    sync.Mutex
	bytes int64
	bufs  map[spareKey][]any // []float32, []int32 or []int8
}

// take returns a kept buffer of dt and n elements, or nil.
func (s *spares) take(k spareKey, size int64) any {
	if size < spareMin {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.bufs[k]
	if len(l) == 0 {
		return nil
	}
	b := l[len(l)-1]
	l[len(l)-1] = nil
	if len(l) == 1 {
		delete(s.bufs, k)
	} else {
		s.bufs[k] = l[:len(l)-1]
	}
	s.bytes -= size
	return b
}

// keep keeps buf for reuse if there is room.
func (s *spares) keep(k spareKey, size int64, buf any) {
	if size < spareMin {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+size > spareMax {
		return
	}
	if s.bufs == nil {
		s.bufs = map[spareKey][]any{}
	}
	s.bufs[k] = append(s.bufs[k], buf)
	s.bytes += size
}

// SpareBytes returns the bytes of freed storage kept for reuse (at most
// 32 MiB).
func (c *CPU) SpareBytes() int64 {
	c.spare.mu.Lock()
	defer c.spare.mu.Unlock()
	return c.spare.bytes
}

// NewCPU returns a CPU backend with default settings.
func NewCPU() Backend {
	c, err := NewCPUWithConfig(CPUConfig{})
	if err != nil { // unreachable: the zero config is always valid
		panic(err)
	}
	return c
}

// NewCPUWithConfig returns a CPU backend configured by cfg.
func NewCPUWithConfig(cfg CPUConfig) (*CPU, error) {
	if cfg.Threads < 0 {
		return nil, fmt.Errorf("gpu: CPUConfig.Threads is negative (%d)", cfg.Threads)
	}
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("gpu: CPUConfig.MaxBytes is negative (%d)", cfg.MaxBytes)
	}
	k, err := selectKernel(cfg.Kernel)
	if err != nil {
		return nil, fmt.Errorf("gpu: CPUConfig.Kernel: %w", err)
	}
	c := &CPU{threads: cfg.Threads, kern: k, maxBytes: cfg.MaxBytes}
	if cfg.Kernel == "" || cfg.Kernel == "auto" {
		c.narrow = kernels["avx2"]
	}
	return c, nil
}

// Name returns "cpu".
func (c *CPU) Name() string { return "cpu" }

// Kernel names the SGEMM micro-kernel in use ("avx512", "avx2" or "go").
func (c *CPU) Kernel() string { return c.kern.name }

// Threads returns how many goroutines a large operation uses.
func (c *CPU) Threads() int {
	if c.threads > 0 {
		return c.threads
	}
	return runtime.GOMAXPROCS(0)
}

// LiveBytes returns the bytes held by tensors not yet freed.
func (c *CPU) LiveBytes() int64 { return c.live.Load() }

// cpuTensor is the CPU backend's tensor. Exactly one of f, i, b is set,
// matching dt; all are nil after Free.
type cpuTensor struct {
	owner *CPU
	dt    DType
	shape []int
	n     int
	f     []float32
	i     []int32
	b     []int8
	freed atomic.Bool
	// qpack caches the int8 kernel layout of an i8 weight tensor for
	// MatMulInt8 (counted in the owner's live bytes); anything that
	// changes the tensor drops it (dropPack).
	qpack atomic.Pointer[QLinear]
}

func (t *cpuTensor) DType() DType   { return t.dt }
func (t *cpuTensor) Shape() []int   { return t.shape }
func (t *cpuTensor) Len() int       { return t.n }
func (t *cpuTensor) Bytes() int64   { return int64(t.n) * int64(t.dt.Size()) }
func (t *cpuTensor) String() string { return fmt.Sprintf("cpu %s%v", t.dt, t.shape) }

// New allocates a zeroed tensor.
func (c *CPU) New(dt DType, shape []int) (Tensor, error) {
	size, err := ByteSize(dt, shape)
	if err != nil {
		return nil, err
	}
	if err := c.reserve(size); err != nil {
		return nil, err
	}
	n := int(size) / dt.Size()
	t := &cpuTensor{owner: c, dt: dt, shape: append([]int(nil), shape...), n: n}
	spare := c.spare.take(spareKey{dt, n}, size)
	switch dt {
	case F32:
		if b, ok := spare.([]float32); ok {
			clear(b)
			t.f = b
		} else {
			t.f = make([]float32, n)
		}
	case I32:
		if b, ok := spare.([]int32); ok {
			clear(b)
			t.i = b
		} else {
			t.i = make([]int32, n)
		}
	case I8:
		if b, ok := spare.([]int8); ok {
			clear(b)
			t.b = b
		} else {
			t.b = make([]int8, n)
		}
	}
	return t, nil
}

// reserve counts size more live bytes, within MaxBytes.
func (c *CPU) reserve(size int64) error {
	if c.maxBytes > 0 {
		if c.live.Add(size) > c.maxBytes {
			c.live.Add(-size)
			return fmt.Errorf("%w: %d bytes requested, %d of %d in use", ErrOutOfMemory, size, c.live.Load(), c.maxBytes)
		}
		return nil
	}
	c.live.Add(size)
	return nil
}

// dropPack discards the cached int8 kernel layout, if any, and its bytes.
func (t *cpuTensor) dropPack() {
	if p := t.qpack.Swap(nil); p != nil {
		t.owner.live.Add(-int8PackBytes(p.In, p.Out))
	}
}

// Free releases t; freeing twice, or freeing a tensor of another backend, is
// a no-op.
func (c *CPU) Free(t Tensor) {
	ct, ok := t.(*cpuTensor)
	if !ok || ct == nil || ct.owner != c {
		return
	}
	if ct.freed.CompareAndSwap(false, true) {
		c.live.Add(-ct.Bytes())
		k := spareKey{ct.dt, ct.n}
		switch {
		case ct.f != nil:
			c.spare.keep(k, ct.Bytes(), ct.f)
		case ct.i != nil:
			c.spare.keep(k, ct.Bytes(), ct.i)
		case ct.b != nil:
			c.spare.keep(k, ct.Bytes(), ct.b)
		}
		ct.f, ct.i, ct.b = nil, nil, nil
		ct.dropPack()
	}
}

// tensor checks that t is a live tensor of this backend.
func (c *CPU) tensor(t Tensor, what string) (*cpuTensor, error) {
	ct, ok := t.(*cpuTensor)
	if !ok || ct == nil {
		return nil, fmt.Errorf("%w: %s is a %T, not a CPU tensor", ErrUnsupported, what, t)
	}
	if ct.owner != c {
		return nil, fmt.Errorf("%w: %s belongs to another CPU backend", ErrUnsupported, what)
	}
	if ct.freed.Load() {
		return nil, fmt.Errorf("%w: %s", ErrFreed, what)
	}
	return ct, nil
}

// f32 checks that t is a live f32 tensor of this backend.
func (c *CPU) f32(t Tensor, what string) (*cpuTensor, error) {
	ct, err := c.tensor(t, what)
	if err != nil {
		return nil, err
	}
	if ct.dt != F32 {
		return nil, fmt.Errorf("%w: %s is %s, want f32", ErrDType, what, ct.dt)
	}
	return ct, nil
}

// Write copies little-endian element bytes into t.
func (c *CPU) Write(t Tensor, src []byte) error {
	ct, err := c.tensor(t, "tensor")
	if err != nil {
		return err
	}
	if int64(len(src)) != ct.Bytes() {
		return fmt.Errorf("%w: write of %d bytes into a %s tensor of %d bytes", ErrShape, len(src), ct.dt, ct.Bytes())
	}
	switch ct.dt {
	case F32:
		putF32(ct.f, src)
	case I32:
		putI32(ct.i, src)
	case I8:
		ct.dropPack()
		for i, v := range src {
			ct.b[i] = int8(v)
		}
	}
	return nil
}

// Read copies t's elements as little-endian bytes into dst.
func (c *CPU) Read(t Tensor, dst []byte) error {
	ct, err := c.tensor(t, "tensor")
	if err != nil {
		return err
	}
	if int64(len(dst)) != ct.Bytes() {
		return fmt.Errorf("%w: read of a %s tensor of %d bytes into %d bytes", ErrShape, ct.dt, ct.Bytes(), len(dst))
	}
	switch ct.dt {
	case F32:
		getF32(dst, ct.f)
	case I32:
		getI32(dst, ct.i)
	case I8:
		for i, v := range ct.b {
			dst[i] = byte(v)
		}
	}
	return nil
}

// Reshape changes t's shape in place.
func (c *CPU) Reshape(t Tensor, shape []int) error {
	ct, err := c.tensor(t, "tensor")
	if err != nil {
		return err
	}
	n, err := NumElements(shape)
	if err != nil {
		return err
	}
	if n != ct.n {
		return fmt.Errorf("%w: cannot reshape %v (%d elements) to %v (%d elements)", ErrShape, ct.shape, ct.n, shape, n)
	}
	ct.shape = append([]int(nil), shape...)
	ct.dropPack()
	return nil
}

// F32Data returns the float32 storage of a live f32 CPU tensor, for callers
// in this module (quantization, benchmarks) that compute on it directly.
func (c *CPU) F32Data(t Tensor) ([]float32, error) {
	ct, err := c.f32(t, "tensor")
	if err != nil {
		return nil, err
	}
	return ct.f, nil
}

func sameShape(out *cpuTensor, want []int, what string) error {
	if !EqualShape(out.shape, want) {
		return fmt.Errorf("%w: %s has shape %v, want %v", ErrShape, what, out.shape, want)
	}
	return nil
}
