package hostfuncs_test

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// env is one guest instance built from the forwarder module: every host
// function is exported as call_<module>_<name>, so tests can call it with
// any (hostile) arguments.
type env struct {
	t    testing.TB
	ctx  context.Context
	mod  api.Module
	host *hostfuncs.Instance
	fns  map[string]api.Function
}

var (
	sharedRT  wazero.Runtime
	forwarder wazero.CompiledModule
	backend   = gpu.NewCPU()
)

func imports() []wasmtest.Import {
	var im []wasmtest.Import
	for _, g := range hostfuncs.Builtin() {
		for _, f := range g.Funcs {
			im = append(im, wasmtest.Import{Module: g.Module, Name: f.Name, Sig: wasmtest.Sig{Params: f.Params, Results: f.Results}})
		}
	}
	return im
}

func setup(t testing.TB) {
	if sharedRT != nil {
		return
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(64))
	if err := hostfuncs.Register(ctx, r, hostfuncs.Builtin()); err != nil {
		t.Fatal(err)
	}
	c, err := r.CompileModule(ctx, wasmtest.Forwarder(2, imports()...))
	if err != nil {
		t.Fatal(err)
	}
	sharedRT, forwarder = r, c
}

func newEnv(t testing.TB, cfg hostfuncs.InstanceConfig) *env {
	t.Helper()
	setup(t)
	if cfg.Backend == nil {
		cfg.Backend = backend
	}
	host, err := hostfuncs.NewInstance(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := host.Attach(context.Background())
	mod, err := sharedRT.InstantiateModule(ctx, forwarder, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, mod: mod, host: host, fns: map[string]api.Function{}}
	t.Cleanup(func() { mod.Close(context.Background()); host.Close() })
	return e
}

// call calls fennec host function "module.name" with raw arguments.
func (e *env) call(name string, args ...uint64) int32 {
	e.t.Helper()
	fn, ok := e.fns[name]
	if !ok {
		fn = e.mod.ExportedFunction("call_" + name)
		if fn == nil {
			e.t.Fatalf("no host function %s", name)
		}
		e.fns[name] = fn
	}
	res, err := fn.Call(e.ctx, args...)
	if err != nil {
		e.t.Fatalf("%s%v trapped: %v", name, args, err)
	}
	return int32(res[0])
}

func u(v int32) uint64    { return uint64(uint32(v)) }
func fa(v float32) uint64 { return api.EncodeF32(v) }

// put writes bytes at an offset of guest memory.
func (e *env) put(off uint32, b []byte) {
	if !e.mod.Memory().Write(off, b) {
		e.t.Fatalf("write at %d failed", off)
	}
}

func (e *env) get(off, n uint32) []byte {
	b, ok := e.mod.Memory().Read(off, n)
	if !ok {
		e.t.Fatalf("read at %d failed", off)
	}
	return append([]byte(nil), b...)
}

func f32bytes(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

const (
	shapeAt = 1024
	dataAt  = 2048
	outAt   = 8192
)

// newF32 creates an f32 tensor with data through the ABI.
func (e *env) newF32(shape []int32, data ...float32) int32 {
	e.t.Helper()
	e.put(shapeAt, wasmtest.LE32(shape...))
	var n int32
	if data != nil {
		e.put(dataAt, f32bytes(data...))
		n = int32(4 * len(data))
	}
	h := e.call("fennec_tensor_new", 1, shapeAt, u(int32(len(shape))), dataAt, u(n))
	if h <= 0 {
		e.t.Fatalf("new %v: %d %s", shape, h, e.host.LastError())
	}
	return h
}

func (e *env) read(h int32) []float32 {
	e.t.Helper()
	n := e.call("fennec_tensor_read", u(h), outAt, 1<<16)
	if n < 0 {
		e.t.Fatalf("read %d: %d %s", h, n, e.host.LastError())
	}
	return floats(e.get(outAt, uint32(n)))
}

func TestRoundTripAndMetadata(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	if v := e.call("fennec_abi_version"); v != hostfuncs.ABIVersion {
		t.Fatalf("abi_version = %d", v)
	}
	h := e.newF32([]int32{2, 3}, 1, 2, 3, 4, 5, 6)
	if got := e.read(h); len(got) != 6 || got[5] != 6 {
		t.Fatalf("read = %v", got)
	}
	if r := e.call("fennec_tensor_rank", u(h)); r != 2 {
		t.Fatalf("rank = %d", r)
	}
	if d := e.call("fennec_tensor_dtype", u(h)); d != 1 {
		t.Fatalf("dtype = %d", d)
	}
	if r := e.call("fennec_tensor_shape", u(h), outAt, 8); r != 2 {
		t.Fatalf("shape = %d", r)
	}
	if dims := e.get(outAt, 8); binary.LittleEndian.Uint32(dims) != 2 || binary.LittleEndian.Uint32(dims[4:]) != 3 {
		t.Fatalf("dims = %v", dims)
	}
	e.put(shapeAt, wasmtest.LE32(3, 2))
	if c := e.call("fennec_tensor_reshape", u(h), shapeAt, 2); c != 0 {
		t.Fatalf("reshape = %d", c)
	}
	e.put(dataAt, f32bytes(9, 9, 9, 9, 9, 9))
	if c := e.call("fennec_tensor_write", u(h), dataAt, 24); c != 0 {
		t.Fatalf("write = %d", c)
	}
	if got := e.read(h); got[0] != 9 {
		t.Fatalf("after write %v", got)
	}
	if c := e.call("fennec_tensor_free", u(h)); c != 0 {
		t.Fatalf("free = %d", c)
	}
	if n, b := e.host.Stats(); n != 0 || b != 0 {
		t.Fatalf("after free: %d handles, %d bytes", n, b)
	}
}

func TestOpsThroughABI(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	a := e.newF32([]int32{2, 2}, 1, 2, 3, 4)
	b := e.newF32([]int32{2, 2}, 5, 6, 7, 8)
	c := e.call("fennec_tensor_matmul", u(a), u(b), 0, 0)
	if got := e.read(c); got[0] != 19 || got[1] != 22 || got[2] != 43 || got[3] != 50 {
		t.Fatalf("matmul = %v", got)
	}
	// out reuse returns the same handle
	if c2 := e.call("fennec_tensor_matmul", u(a), u(b), 2, u(c)); c2 != c {
		t.Fatalf("matmul into out = %d, want %d", c2, c)
	}
	if got := e.read(c); got[0] != 17 { // a x b^T: 1*5+2*6
		t.Fatalf("a x b^T = %v", got)
	}
	bias := e.newF32([]int32{2}, 10, 20)
	s := e.call("fennec_tensor_binary", 1, u(a), u(bias), 0)
	if got := e.read(s); got[0] != 11 || got[3] != 24 {
		t.Fatalf("broadcast add = %v", got)
	}
	r := e.call("fennec_tensor_unary", 9, u(e.newF32([]int32{3}, -1, 0, 2)), fa(0), 0)
	if got := e.read(r); got[0] != 0 || got[2] != 2 {
		t.Fatalf("relu = %v", got)
	}
	sum := e.call("fennec_tensor_reduce", 1, u(a), 0, 0, 0)
	if got := e.read(sum); got[0] != 4 || got[1] != 6 {
		t.Fatalf("sum axis 0 = %v", got)
	}
	am := e.call("fennec_tensor_argmax", u(a), u(-1), 0)
	if e.call("fennec_tensor_dtype", u(am)) != 3 {
		t.Fatal("argmax is not i32")
	}
	pred := e.newF32([]int32{2}, 1, 3)
	tgt := e.newF32([]int32{2}, 0, 1)
	g := e.call("fennec_tensor_loss", 3, u(pred), u(tgt), outAt, 0)
	if g <= 0 {
		t.Fatalf("loss = %d %s", g, e.host.LastError())
	}
	if loss := floats(e.get(outAt, 4))[0]; loss != 2.5 { // ((1-0)^2 + (3-1)^2)/2
		t.Fatalf("mse = %v", loss)
	}
	if got := e.read(g); got[0] != 1 || got[1] != 2 { // 2(p-t)/n
		t.Fatalf("mse grad = %v", got)
	}
	if c := e.call("fennec_tensor_axpy", u(pred), u(g), fa(-1)); c != 0 {
		t.Fatalf("axpy = %d", c)
	}
	if got := e.read(pred); got[0] != 0 || got[1] != 1 {
		t.Fatalf("axpy result %v", got)
	}
}

// TestHostileArguments calls every host function with out-of-range
// pointers, negative lengths, bad codes and forged handles. Each must
// return its error code, never trap or touch memory outside the guest's.
func TestHostileArguments(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "hostile"})
	h := e.newF32([]int32{2, 2}, 1, 2, 3, 4)
	v := e.newF32([]int32{2}, 1, 2)
	const far = 0xFFFFFFF0
	const edge = 2*65536 - 2 // two bytes before the end of memory
	ec := func(c hostfuncs.Code) int32 { return int32(c) }
	e.call("fennec_tensor_free", 5) // leave an error message for last_error to copy
	cases := []struct {
		name string
		fn   string
		args []uint64
		want hostfuncs.Code
	}{
		{"last_error far buffer", "fennec_last_error", []uint64{far, 64}, hostfuncs.EMEM},
		{"last_error negative cap", "fennec_last_error", []uint64{0, u(-1)}, hostfuncs.EMEM},
		{"input outside a call", "fennec_input", []uint64{0, 16}, hostfuncs.ESTATE},
		{"output outside a call", "fennec_output", []uint64{0, 16}, hostfuncs.ESTATE},
		{"fail far", "fennec_fail", []uint64{far, 16}, hostfuncs.EMEM},
		{"fail negative length", "fennec_fail", []uint64{0, u(-5)}, hostfuncs.EMEM},
		{"log far", "fennec_log", []uint64{0, far, 16}, hostfuncs.EMEM},
		{"log straddling the end", "fennec_log", []uint64{0, edge, 16}, hostfuncs.EMEM},
		{"new bad dtype", "fennec_tensor_new", []uint64{9, shapeAt, 1, 0, 0}, hostfuncs.EDTYPE},
		{"new negative dtype", "fennec_tensor_new", []uint64{u(-1), shapeAt, 1, 0, 0}, hostfuncs.EDTYPE},
		{"new far shape", "fennec_tensor_new", []uint64{1, far, 2, 0, 0}, hostfuncs.EMEM},
		{"new rank 9", "fennec_tensor_new", []uint64{1, shapeAt, 9, 0, 0}, hostfuncs.ESHAPE},
		{"new negative rank", "fennec_tensor_new", []uint64{1, shapeAt, u(-1), 0, 0}, hostfuncs.ESHAPE},
		{"new far data", "fennec_tensor_new", []uint64{1, 0, 0, far, 4}, hostfuncs.EMEM},
		{"new data length mismatch", "fennec_tensor_new", []uint64{1, 0, 0, dataAt, 8}, hostfuncs.EINVAL},
		{"free forged", "fennec_tensor_free", []uint64{u(12345)}, hostfuncs.EHANDLE},
		{"free zero", "fennec_tensor_free", []uint64{0}, hostfuncs.EHANDLE},
		{"free negative", "fennec_tensor_free", []uint64{u(-7)}, hostfuncs.EHANDLE},
		{"dtype forged", "fennec_tensor_dtype", []uint64{u(h + 1)}, hostfuncs.EHANDLE},
		{"rank forged", "fennec_tensor_rank", []uint64{u(h ^ 0x7fff)}, hostfuncs.EHANDLE},
		{"shape far", "fennec_tensor_shape", []uint64{u(h), far, 2}, hostfuncs.EMEM},
		{"shape negative cap", "fennec_tensor_shape", []uint64{u(h), 0, u(-1)}, hostfuncs.EMEM},
		{"read far", "fennec_tensor_read", []uint64{u(h), far, 16}, hostfuncs.EMEM},
		{"read straddling", "fennec_tensor_read", []uint64{u(h), edge, 16}, hostfuncs.EMEM},
		{"read short buffer", "fennec_tensor_read", []uint64{u(h), 0, 8}, hostfuncs.EINVAL},
		{"write far", "fennec_tensor_write", []uint64{u(h), far, 16}, hostfuncs.EMEM},
		{"write wrong size", "fennec_tensor_write", []uint64{u(h), 0, 12}, hostfuncs.EINVAL},
		{"reshape far", "fennec_tensor_reshape", []uint64{u(h), far, 2}, hostfuncs.EMEM},
		{"matmul bad flags", "fennec_tensor_matmul", []uint64{u(h), u(h), 4, 0}, hostfuncs.EINVAL},
		{"matmul forged", "fennec_tensor_matmul", []uint64{u(h), 99, 0, 0}, hostfuncs.EHANDLE},
		{"matmul shape mismatch", "fennec_tensor_matmul", []uint64{u(v), u(h), 0, 0}, hostfuncs.ESHAPE},
		{"matmul out aliases", "fennec_tensor_matmul", []uint64{u(h), u(h), 0, u(h)}, hostfuncs.EINVAL},
		{"matmul out wrong shape", "fennec_tensor_matmul", []uint64{u(h), u(h), 0, u(v)}, hostfuncs.ESHAPE},
		{"binary bad op", "fennec_tensor_binary", []uint64{99, u(h), u(h), 0}, hostfuncs.EINVAL},
		{"binary no broadcast", "fennec_tensor_binary", []uint64{1, u(h), u(e.newF32([]int32{3}, 1, 2, 3)), 0}, hostfuncs.ESHAPE},
		{"unary bad op", "fennec_tensor_unary", []uint64{0, u(h), fa(0), 0}, hostfuncs.EINVAL},
		{"unary NaN alpha", "fennec_tensor_unary", []uint64{1, u(h), fa(float32(math.NaN())), 0}, hostfuncs.EINVAL},
		{"unary_grad no grad", "fennec_tensor_unary_grad", []uint64{14, u(h), u(h), fa(0), 0}, hostfuncs.EINVAL},
		{"unary_grad shapes", "fennec_tensor_unary_grad", []uint64{9, u(h), u(v), fa(0), 0}, hostfuncs.ESHAPE},
		{"axpy shapes", "fennec_tensor_axpy", []uint64{u(h), u(v), fa(1)}, hostfuncs.ESHAPE},
		{"softmax bad axis", "fennec_tensor_softmax", []uint64{u(h), 5, 0, 0}, hostfuncs.EINVAL},
		{"reduce bad axis", "fennec_tensor_reduce", []uint64{1, u(h), u(-3), 0, 0}, hostfuncs.EINVAL},
		{"reduce bad op", "fennec_tensor_reduce", []uint64{7, u(h), 0, 0, 0}, hostfuncs.EINVAL},
		{"argmax bad axis", "fennec_tensor_argmax", []uint64{u(h), 2, 0}, hostfuncs.EINVAL},
		{"loss bad op", "fennec_tensor_loss", []uint64{0, u(h), u(h), 0, u(-1)}, hostfuncs.EINVAL},
		{"loss far loss_ptr", "fennec_tensor_loss", []uint64{3, u(h), u(h), far, u(-1)}, hostfuncs.EMEM},
		{"loss shape mismatch", "fennec_tensor_loss", []uint64{3, u(h), u(v), 0, u(-1)}, hostfuncs.ESHAPE},
		{"loss CE rank-1 logits", "fennec_tensor_loss", []uint64{1, u(v), u(v), 0, u(-1)}, hostfuncs.ESHAPE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			if got := e.call(c.fn, c.args...); got != ec(c.want) {
				t.Fatalf("%s%v = %d (%s), want %s", c.fn, c.args, got, e.host.LastError(), c.want)
			}
			if e.host.LastError() == "" {
				t.Fatal("no error message set")
			}
		})
	}
	e.t = t
	// The instance still works after all of that.
	if got := e.read(h); got[3] != 4 {
		t.Fatalf("tensor damaged: %v", got)
	}
}

func TestShapesThatOverflow(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxTensorBytes: 1 << 20})
	for _, shape := range [][]int32{
		{65536, 65536, 65536},          // 2^48 elements
		{1 << 30, 1 << 30},             // product overflows 32 bits
		{46341, 46341},                 // just above 2^31 elements
		{2, 2, 2, 2, 2, 2, 2, 1 << 30}, // overflow at the last dim
		{-1, 4},
	} {
		e.put(shapeAt, wasmtest.LE32(shape...))
		got := e.call("fennec_tensor_new", 1, shapeAt, u(int32(len(shape))), 0, 0)
		if got != int32(hostfuncs.ESHAPE) {
			t.Errorf("shape %v: %d (%s), want ESHAPE", shape, got, e.host.LastError())
		}
	}
	// Large but well-formed: refused by the quota, not allocated.
	e.put(shapeAt, wasmtest.LE32(1<<15, 1<<15))
	if got := e.call("fennec_tensor_new", 1, shapeAt, 2, 0, 0); got != int32(hostfuncs.EQUOTA) {
		t.Errorf("4 GiB tensor: %d (%s), want EQUOTA", got, e.host.LastError())
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxTensorBytes: 1024, MaxHandles: 4})
	var hs []int32
	for i := 0; i < 4; i++ {
		hs = append(hs, e.newF32([]int32{8}))
	}
	if got := e.call("fennec_tensor_new", 1, 0, 0, 0, 0); got != int32(hostfuncs.EQUOTA) {
		t.Fatalf("fifth handle: %d, want EQUOTA", got)
	}
	e.call("fennec_tensor_free", u(hs[0]))
	e.put(shapeAt, wasmtest.LE32(1024))
	if got := e.call("fennec_tensor_new", 1, shapeAt, 1, 0, 0); got != int32(hostfuncs.EQUOTA) {
		t.Fatalf("4 KiB tensor in a 1 KiB quota: %d, want EQUOTA", got)
	}
	// An op whose result would exceed the quota fails and leaks nothing.
	_, before := e.host.Stats()
	big := e.newF32([]int32{200})
	if got := e.call("fennec_tensor_unary", 14, u(big), fa(0), 0); got != int32(hostfuncs.EQUOTA) {
		t.Fatalf("copy over quota: %d, want EQUOTA", got)
	}
	e.call("fennec_tensor_free", u(big))
	if _, after := e.host.Stats(); after != before {
		t.Fatalf("bytes leaked: %d -> %d", before, after)
	}
}

func TestStaleAndForeignHandles(t *testing.T) {
	a := newEnv(t, hostfuncs.InstanceConfig{Module: "a"})
	b := newEnv(t, hostfuncs.InstanceConfig{Module: "b"})
	ha := a.newF32([]int32{1}, 42)
	hb := b.newF32([]int32{1}, 7)
	// b's handle, used in a: slot 1 exists in both, but the tag differs.
	if got := a.call("fennec_tensor_rank", u(hb)); got != int32(hostfuncs.EHANDLE) {
		t.Fatalf("foreign handle accepted: %d", got)
	}
	if got := b.call("fennec_tensor_read", u(ha), outAt, 4); got != int32(hostfuncs.EHANDLE) {
		t.Fatalf("foreign read accepted: %d", got)
	}
	a.call("fennec_tensor_free", u(ha))
	if got := a.call("fennec_tensor_rank", u(ha)); got != int32(hostfuncs.EHANDLE) {
		t.Fatalf("freed handle accepted: %d", got)
	}
	ha2 := a.newF32([]int32{1}, 1) // reuses slot 1 with a new generation
	if ha2 == ha {
		t.Fatal("reused slot produced the same handle")
	}
	if got := a.call("fennec_tensor_free", u(ha)); got != int32(hostfuncs.EHANDLE) {
		t.Fatalf("stale handle freed the new tensor: %d", got)
	}
	if got := b.read(hb); got[0] != 7 {
		t.Fatalf("b's tensor changed: %v", got)
	}
}

func TestLastErrorTruncates(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	e.call("fennec_tensor_free", 77)
	full := e.call("fennec_last_error", 0, 0)
	if full <= 10 {
		t.Fatalf("length %d", full)
	}
	if got := e.call("fennec_last_error", outAt, 5); got != full {
		t.Fatalf("truncated call returned %d, want %d", got, full)
	}
	if msg := string(e.get(outAt, 5)); msg != e.host.LastError()[:5] {
		t.Fatalf("copied %q", msg)
	}
}

func TestInputOutputDuringCall(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxOutputBytes: 16})
	e.host.Begin([]byte("hello"), hostfuncs.CallInfo{})
	if got := e.call("fennec_input", 0, 0); got != 5 {
		t.Fatalf("size query: %d", got)
	}
	if got := e.call("fennec_input", outAt, 4); got != int32(hostfuncs.EINVAL) {
		t.Fatalf("small buffer: %d", got)
	}
	if got := e.call("fennec_input", outAt, 64); got != 5 || string(e.get(outAt, 5)) != "hello" {
		t.Fatalf("input = %d", got)
	}
	e.put(dataAt, []byte("result"))
	if got := e.call("fennec_output", dataAt, 17); got != int32(hostfuncs.ETOOBIG) {
		t.Fatalf("oversized output: %d", got)
	}
	e.call("fennec_output", dataAt, 6)
	e.put(dataAt, []byte("failed"))
	e.call("fennec_fail", dataAt, 6)
	out, msg := e.host.End()
	if string(out) != "result" || msg != "failed" {
		t.Fatalf("End = %q, %q", out, msg)
	}
}

// TestCallAllocations checks that a handle lookup with its checks does not
// allocate (the host-call fast path).
func TestCallAllocations(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	h := e.newF32([]int32{4})
	fn := e.mod.ExportedFunction("call_fennec_tensor_rank")
	stack := make([]uint64, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		stack[0] = u(h)
		if err := fn.CallWithStack(e.ctx, stack); err != nil || stack[0] != 1 {
			t.Fatal(err, stack[0])
		}
	})
	if allocs != 0 {
		t.Fatalf("tensor.rank allocates %v times per call", allocs)
	}
}

func TestCloseFreesTensors(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t"})
	e.newF32([]int32{16})
	e.host.Close()
	if n, b := e.host.Stats(); n != 0 || b != 0 {
		t.Fatalf("after Close: %d handles, %d bytes", n, b)
	}
}

func FuzzTensorNew(f *testing.F) {
	f.Add(int32(1), []byte{2, 0, 0, 0, 3, 0, 0, 0}, int32(2), []byte{}, int32(0))
	f.Add(int32(3), []byte{0xff, 0xff, 0xff, 0x7f}, int32(1), []byte{1, 2, 3, 4}, int32(4))
	f.Add(int32(2), []byte{}, int32(0), []byte{7}, int32(1))
	f.Fuzz(func(t *testing.T, dtype int32, shape []byte, rank int32, data []byte, dataLen int32) {
		e := newEnv(t, hostfuncs.InstanceConfig{Module: "fuzz", MaxTensorBytes: 1 << 20})
		if len(shape) > 4096 || len(data) > 4096 {
			return
		}
		e.put(shapeAt, shape)
		e.put(dataAt, data)
		var want []byte
		if dataLen > 0 && dataLen < 1<<16 {
			want = e.get(dataAt, uint32(dataLen)) // what the guest's memory holds there
		}
		h := e.call("fennec_tensor_new", u(dtype), shapeAt, u(rank), dataAt, u(dataLen))
		if h > 0 {
			n := e.call("fennec_tensor_read", u(h), outAt, 1<<16)
			if n < 0 && n != int32(hostfuncs.EMEM) && n != int32(hostfuncs.EINVAL) {
				t.Fatalf("read of a fresh tensor failed: %d %s", n, e.host.LastError())
			}
			if want != nil && n > 0 && string(e.get(outAt, uint32(n))) != string(want) {
				t.Fatal("round trip mismatch")
			}
			if e.call("fennec_tensor_free", u(h)) != 0 {
				t.Fatal("free failed")
			}
		} else if e.host.LastError() == "" {
			t.Fatalf("error %d without a message", h)
		}
	})
}

// A negative quota or output limit is an error naming the field; zero
// takes the default (before, a negative value silently meant the default).
func TestInstanceConfigNegative(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   hostfuncs.InstanceConfig
	}{
		{"MaxTensorBytes", hostfuncs.InstanceConfig{MaxTensorBytes: -1}},
		{"MaxHandles", hostfuncs.InstanceConfig{MaxHandles: -1}},
		{"MaxOutputBytes", hostfuncs.InstanceConfig{MaxOutputBytes: -1}},
		{"LinesPerSecond", hostfuncs.InstanceConfig{Output: hostfuncs.OutputLimits{LinesPerSecond: -1}}},
		{"BurstBytes", hostfuncs.InstanceConfig{Output: hostfuncs.OutputLimits{BurstBytes: -1}}},
		{"Window", hostfuncs.InstanceConfig{Output: hostfuncs.OutputLimits{Window: -time.Second}}},
	} {
		if _, err := hostfuncs.NewInstance(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s negative: %v, want an error naming it", tc.field, err)
		}
	}
	in, err := hostfuncs.NewInstance(hostfuncs.InstanceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
}
