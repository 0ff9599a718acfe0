package hostfuncs_test

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
)

// The test model: y0 = a + b, a f32[2,1,4], b f32[3,1] -> y0 f32[2,3,4].
var (
	modelsOnce sync.Once
	testModels *hostfuncs.ModelSet
)

func models(t testing.TB) *hostfuncs.ModelSet {
	t.Helper()
	modelsOnce.Do(func() {
		s := hostfuncs.NewModelSet(backend, onnx.Options{})
		for _, p := range []hostfuncs.Preload{
			{Name: "add", Encoding: "onnx", Target: "cpu", Path: "testdata/nn/add.onnx"},
			{Name: "cast", Encoding: "onnx", Target: "cpu", Path: "testdata/nn/cast_i64.onnx"},
		} {
			if err := s.Add(p); err != nil {
				t.Fatal(err)
			}
		}
		testModels = s
	})
	return testModels
}

func nnEnv(t testing.TB, cfg hostfuncs.InstanceConfig) *env {
	t.Helper()
	cfg.Services = &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: models(t)}}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NN.Models == nil {
		cfg.NN.Models = []string{"add", "cast", "unloaded"}
	}
	return newEnv(t, cfg)
}

// Guest memory layout of these tests.
const (
	nameAt    = 100
	graphAt   = 200
	ctxAt     = 204
	writtenAt = 208
	tensorAt  = 300
	dimsAt    = 400
	nnDataAt  = 2048
	nnOutAt   = 16384
)

func (e *env) u32(off uint32) uint32 { return binary.LittleEndian.Uint32(e.get(off, 4)) }

// loadByName returns the errno and graph id.
func (e *env) loadByName(name string) (int32, uint32) {
	e.put(nameAt, []byte(name))
	r := e.call("wasi_ephemeral_nn_load_by_name", nameAt, u(int32(len(name))), graphAt)
	return r, e.u32(graphAt)
}

func (e *env) initCtx(g uint32) (int32, uint32) {
	r := e.call("wasi_ephemeral_nn_init_execution_context", uint64(g), ctxAt)
	return r, e.u32(ctxAt)
}

// putTensor lays out a tensor struct at tensorAt with dims and data.
func (e *env) putTensor(typ uint8, dims []int32, data []byte, dataLen uint32) {
	e.put(dimsAt, wasmtest.LE32(dims...))
	e.put(nnDataAt, data)
	s := make([]byte, 20)
	binary.LittleEndian.PutUint32(s[0:], dimsAt)
	binary.LittleEndian.PutUint32(s[4:], uint32(len(dims)))
	s[8] = typ
	s[9], s[10], s[11] = 0xAA, 0xBB, 0xCC // padding the Rust crates leave undefined
	binary.LittleEndian.PutUint32(s[12:], nnDataAt)
	binary.LittleEndian.PutUint32(s[16:], dataLen)
	e.put(tensorAt, s)
}

func (e *env) setInput(c uint32, idx uint32, typ uint8, dims []int32, vals []float32) int32 {
	b := f32bytes(vals...)
	e.putTensor(typ, dims, b, uint32(len(b)))
	return e.call("wasi_ephemeral_nn_set_input", uint64(c), uint64(idx), tensorAt)
}

var (
	addA = []float32{1, 2, 3, 4, 5, 6, 7, 8}
	addB = []float32{10, 20, 30}
)

func addWant() []float32 {
	var w []float32
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				w = append(w, addA[4*i+k]+addB[j])
			}
		}
	}
	return w
}

const typF32 = 1 // in both ABIs

// readyContext loads "add", sets both inputs and computes.
func (e *env) readyContext() (graph, ctx uint32) {
	e.t.Helper()
	r, g := e.loadByName("add")
	if r != 0 {
		e.t.Fatalf("load_by_name = %d: %s", r, e.host.LastError())
	}
	r, c := e.initCtx(g)
	if r != 0 {
		e.t.Fatalf("init_execution_context = %d: %s", r, e.host.LastError())
	}
	if r := e.setInput(c, 0, typF32, []int32{2, 1, 4}, addA); r != 0 {
		e.t.Fatalf("set_input 0 = %d: %s", r, e.host.LastError())
	}
	if r := e.setInput(c, 1, typF32, []int32{3, 1}, addB); r != 0 {
		e.t.Fatalf("set_input 1 = %d: %s", r, e.host.LastError())
	}
	if r := e.call("wasi_ephemeral_nn_compute", uint64(c)); r != 0 {
		e.t.Fatalf("compute = %d: %s", r, e.host.LastError())
	}
	return g, c
}

func TestWASINNRoundTrip(t *testing.T) {
	for _, abi := range []string{"", hostfuncs.NNABIWasmEdge} {
		e := nnEnv(t, hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{ABI: abi}})
		_, c := e.readyContext()
		if r := e.call("wasi_ephemeral_nn_get_output", uint64(c), 0, nnOutAt, 96, writtenAt); r != 0 {
			t.Fatalf("get_output = %d: %s", r, e.host.LastError())
		}
		if n := e.u32(writtenAt); n != 96 {
			t.Fatalf("bytes written = %d, want 96", n)
		}
		got, want := floats(e.get(nnOutAt, 96)), addWant()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("abi %q: output[%d] = %v, want %v", abi, i, got[i], want[i])
			}
		}
	}
}

// TestWASINNHostile: every check of the group, each answered with its
// errno and a message, and the instance keeps serving.
func TestWASINNHostile(t *testing.T) {
	e := nnEnv(t, hostfuncs.InstanceConfig{})
	g, c := e.readyContext()
	const memSize = 2 * 65536
	sentinel := bytes.Repeat([]byte{0x5a}, 100)
	e.put(nnOutAt, sentinel)
	f32 := f32bytes(addA...)
	cases := []struct {
		name  string
		prep  func()
		fn    string
		args  []uint64
		errno hostfuncs.Errno
		msg   string
	}{
		{"get_output overrun", nil, "get_output", []uint64{uint64(c), 0, nnOutAt, 95, writtenAt}, hostfuncs.NNTooLarge, "is 96 bytes, the buffer holds 95"},
		{"get_output buffer past memory", nil, "get_output", []uint64{uint64(c), 0, memSize - 50, 96, writtenAt}, hostfuncs.NNInvalidArgument, "outside guest memory"},
		{"get_output written past memory", nil, "get_output", []uint64{uint64(c), 0, nnOutAt, 96, memSize - 2}, hostfuncs.NNInvalidArgument, "bytes-written pointer"},
		{"get_output bad index", nil, "get_output", []uint64{uint64(c), 1, nnOutAt, 96, writtenAt}, hostfuncs.NNInvalidArgument, "the model has 1 outputs"},
		{"forged context", nil, "compute", []uint64{uint64(c + 1)}, hostfuncs.NNInvalidArgument, "not an execution context"},
		{"context zero", nil, "compute", []uint64{0}, hostfuncs.NNInvalidArgument, "not an execution context"},
		{"context all ones", nil, "get_output", []uint64{0xffffffff, 0, nnOutAt, 96, writtenAt}, hostfuncs.NNInvalidArgument, "not an execution context"},
		{"graph id as context", nil, "compute", []uint64{uint64(g)}, hostfuncs.NNInvalidArgument, "not an execution context"},
		{"forged graph", nil, "init_execution_context", []uint64{uint64(g ^ 1), ctxAt}, hostfuncs.NNInvalidArgument, "not a loaded graph"},
		{"context pointer past memory", nil, "init_execution_context", []uint64{uint64(g), memSize - 3}, hostfuncs.NNInvalidArgument, "context pointer"},
		{"wrong dtype", func() { e.putTensor(4, []int32{2, 1, 4}, f32, 32) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "is f32, the tensor is i32"},
		{"unknown dtype", func() { e.putTensor(9, []int32{2, 1, 4}, f32, 32) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "tensor type 9"},
		{"f16", func() { e.putTensor(0, []int32{2, 1, 4}, f32, 16) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNUnsupportedOperation, "f16"},
		{"short data", func() { e.putTensor(typF32, []int32{2, 1, 4}, f32, 28) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "is 28 bytes"},
		{"wrong dims", func() { e.putTensor(typF32, []int32{1, 2, 4}, f32, 32) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "dimension 0 is 2"},
		{"wrong rank", func() { e.putTensor(typF32, []int32{8}, f32, 32) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "rank 3"},
		{"huge dims", func() { e.putTensor(typF32, []int32{-1, -1, -1}, f32, 32) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "dimension 0"},
		{"overflowing dims", func() { e.putTensor(typF32, []int32{1 << 30, 1 << 30, 1 << 30}, f32, 32) }, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNTooLarge, "tensor"},
		{"rank 1000", func() {
			e.putTensor(typF32, []int32{2, 1, 4}, f32, 32)
			e.put(tensorAt+4, wasmtest.LE32(1000))
		}, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "rank 1000"},
		{"data past memory", func() {
			e.putTensor(typF32, []int32{2, 1, 4}, f32, 32)
			e.put(tensorAt+12, wasmtest.LE32(memSize-16))
		}, "set_input", []uint64{uint64(c), 0, tensorAt}, hostfuncs.NNInvalidArgument, "outside guest memory"},
		{"struct past memory", nil, "set_input", []uint64{uint64(c), 0, memSize - 10}, hostfuncs.NNInvalidArgument, "tensor struct"},
		{"input index", func() { e.putTensor(typF32, []int32{2, 1, 4}, f32, 32) }, "set_input", []uint64{uint64(c), 2, tensorAt}, hostfuncs.NNInvalidArgument, "the model has 2 inputs"},
		{"ungranted model", func() { e.put(nameAt, []byte("secret")) }, "load_by_name", []uint64{nameAt, 6, graphAt}, hostfuncs.NNNotFound, "not granted"},
		{"granted, not loaded", func() { e.put(nameAt, []byte("unloaded")) }, "load_by_name", []uint64{nameAt, 8, graphAt}, hostfuncs.NNNotFound, "has not loaded it"},
		{"name past memory", nil, "load_by_name", []uint64{memSize - 2, 8, graphAt}, hostfuncs.NNInvalidArgument, "outside guest memory"},
		{"long name", nil, "load_by_name", []uint64{nameAt, 100000, graphAt}, hostfuncs.NNInvalidArgument, "longer than 256"},
		{"config past memory", nil, "load_by_name_with_config", []uint64{nameAt, 3, memSize - 2, 10, graphAt}, hostfuncs.NNInvalidArgument, "config"},
		{"encoding openvino", nil, "load", []uint64{nnDataAt, 1, 0, 0, graphAt}, hostfuncs.NNInvalidEncoding, "encoding 0"},
		{"encoding ggml", nil, "load", []uint64{nnDataAt, 1, 6, 0, graphAt}, hostfuncs.NNInvalidEncoding, "encoding 6"},
		{"target", nil, "load", []uint64{nnDataAt, 1, 1, 9, graphAt}, hostfuncs.NNInvalidArgument, "target 9"},
		{"two builders", nil, "load", []uint64{nnDataAt, 2, 1, 0, graphAt}, hostfuncs.NNInvalidArgument, "one builder"},
		{"builder past memory", func() { e.put(nnDataAt, wasmtest.LE32(memSize-4, 100)) }, "load", []uint64{nnDataAt, 1, 1, 0, graphAt}, hostfuncs.NNInvalidArgument, "builder 0"},
		{"hostile model bytes", func() {
			e.put(nnDataAt, wasmtest.LE32(nnDataAt+8, 64))
			e.put(nnDataAt+8, bytes.Repeat([]byte{0x0a, 0xff}, 32))
		}, "load", []uint64{nnDataAt, 1, 1, 0, graphAt}, hostfuncs.NNInvalidArgument, "guest model"},
		{"unload with contexts", nil, "unload", []uint64{uint64(g)}, hostfuncs.NNBusy, "live execution contexts"},
		{"fini forged", nil, "fini_single", []uint64{12345}, hostfuncs.NNInvalidArgument, "not an execution context"},
	}
	for _, tc := range cases {
		if tc.prep != nil {
			tc.prep()
		}
		got := e.call("wasi_ephemeral_nn_"+tc.fn, tc.args...)
		if hostfuncs.Errno(got) != tc.errno || !strings.Contains(e.host.LastError(), tc.msg) {
			t.Errorf("%s: %s = %d (%s), want %s saying %q", tc.name, tc.fn, got, e.host.LastError(), tc.errno, tc.msg)
		}
	}
	if !bytes.Equal(e.get(nnOutAt, 100), sentinel) {
		t.Fatal("a failed get_output wrote guest memory")
	}
	// The instance still serves, with its inputs intact.
	if r := e.call("wasi_ephemeral_nn_compute", uint64(c)); r != 0 {
		t.Fatalf("compute after the hostile calls = %d: %s", r, e.host.LastError())
	}
	if r := e.call("wasi_ephemeral_nn_get_output", uint64(c), 0, nnOutAt, 96, writtenAt); r != 0 || floats(e.get(nnOutAt, 96))[23] != addWant()[23] {
		t.Fatalf("get_output after the hostile calls = %d: %s", r, e.host.LastError())
	}
	// A freed context is stale.
	if r := e.call("wasi_ephemeral_nn_fini_single", uint64(c)); r != 0 {
		t.Fatalf("fini_single = %d: %s", r, e.host.LastError())
	}
	if r := e.call("wasi_ephemeral_nn_compute", uint64(c)); hostfuncs.Errno(r) != hostfuncs.NNInvalidArgument {
		t.Fatalf("compute on a freed context = %d", r)
	}
	if r := e.call("wasi_ephemeral_nn_unload", uint64(g)); r != 0 {
		t.Fatalf("unload = %d: %s", r, e.host.LastError())
	}
	if _, b := e.host.Stats(); b != 0 {
		t.Fatalf("%d bytes still counted after fini_single and unload", b)
	}
}

// TestWASINNThousandsOfContexts: contexts and graphs are bounded per
// instance, and the instance keeps working at the bound.
func TestWASINNThousandsOfContexts(t *testing.T) {
	e := nnEnv(t, hostfuncs.InstanceConfig{})
	_, g := e.loadByName("add")
	ok, busy := 0, 0
	for i := 0; i < 5000; i++ {
		switch r, _ := e.initCtx(g); hostfuncs.Errno(r) {
		case hostfuncs.NNSuccess:
			ok++
		case hostfuncs.NNBusy:
			busy++
		default:
			t.Fatalf("init_execution_context = %d: %s", r, e.host.LastError())
		}
	}
	if ok != hostfuncs.DefaultMaxNNContexts || busy != 5000-ok {
		t.Fatalf("%d contexts made, %d refused; want %d made", ok, busy, hostfuncs.DefaultMaxNNContexts)
	}
	graphs := 1
	for i := 0; i < 1000; i++ {
		if r, _ := e.loadByName("add"); r == 0 {
			graphs++
		}
	}
	if graphs != hostfuncs.DefaultMaxNNGraphs {
		t.Fatalf("%d graphs loaded, want the limit %d", graphs, hostfuncs.DefaultMaxNNGraphs)
	}
	// Freeing one context makes room for the next.
	_, c := e.initCtx(g) // refused: ctxAt keeps the last context made
	if r := e.call("wasi_ephemeral_nn_fini_single", uint64(c)); r != 0 {
		t.Fatalf("fini_single = %d: %s", r, e.host.LastError())
	}
	if r, _ := e.initCtx(g); r != 0 {
		t.Fatalf("init after fini_single = %d: %s", r, e.host.LastError())
	}
}

// TestWASINNQuota: graph memory and context buffers count against the
// tensor quota.
func TestWASINNQuota(t *testing.T) {
	fi, err := os.Stat("testdata/nn/add.onnx")
	if err != nil {
		t.Fatal(err)
	}
	// Room for the graph and the inputs (32 + 12 bytes), not the output (96).
	e := nnEnv(t, hostfuncs.InstanceConfig{MaxTensorBytes: fi.Size() + 44})
	_, g := e.loadByName("add")
	if _, b := e.host.Stats(); b != fi.Size() {
		t.Fatalf("graph counted as %d bytes, want the model's %d", b, fi.Size())
	}
	_, c := e.initCtx(g)
	if r := e.setInput(c, 0, typF32, []int32{2, 1, 4}, addA); r != 0 {
		t.Fatal(e.host.LastError())
	}
	if r := e.setInput(c, 1, typF32, []int32{3, 1}, addB); r != 0 {
		t.Fatal(e.host.LastError())
	}
	if r := e.call("wasi_ephemeral_nn_compute", uint64(c)); hostfuncs.Errno(r) != hostfuncs.NNTooLarge || !strings.Contains(e.host.LastError(), "quota") {
		t.Fatalf("compute over the quota = %d (%s), want too-large", r, e.host.LastError())
	}
	small := nnEnv(t, hostfuncs.InstanceConfig{MaxTensorBytes: fi.Size() - 1})
	if r, _ := small.loadByName("add"); hostfuncs.Errno(r) != hostfuncs.NNTooLarge {
		t.Fatalf("load over the quota = %d (%s), want too-large", r, small.host.LastError())
	}
	// Model bytes from the guest are counted too.
	model, _ := os.ReadFile("testdata/nn/add.onnx")
	small.put(nnDataAt, wasmtest.LE32(nnDataAt+8, int32(len(model))))
	small.put(nnDataAt+8, model)
	if r := small.call("wasi_ephemeral_nn_load", nnDataAt, 1, 1, 0, graphAt); hostfuncs.Errno(r) != hostfuncs.NNTooLarge {
		t.Fatalf("load of bytes over the quota = %d (%s)", r, small.host.LastError())
	}
	big := nnEnv(t, hostfuncs.InstanceConfig{})
	big.put(nnDataAt, wasmtest.LE32(nnDataAt+8, int32(len(model))))
	big.put(nnDataAt+8, model)
	if r := big.call("wasi_ephemeral_nn_load", nnDataAt, 1, 1, 0, graphAt); r != 0 {
		t.Fatalf("load of model bytes = %d (%s)", r, big.host.LastError())
	}
}

// TestNNTypeTables: the two ABIs' tensor-type codes.
func TestNNTypeTables(t *testing.T) {
	for _, c := range []struct {
		abi  string
		code uint8
		name string
		dt   nn.DType
	}{
		{hostfuncs.NNABIWasmtime, 1, "f32", nn.Float32},
		{hostfuncs.NNABIWasmtime, 2, "f64", 0},
		{hostfuncs.NNABIWasmtime, 3, "u8", nn.Uint8},
		{hostfuncs.NNABIWasmtime, 4, "i32", nn.Int32},
		{hostfuncs.NNABIWasmtime, 5, "i64", nn.Int64},
		{hostfuncs.NNABIWasmEdge, 1, "f32", nn.Float32},
		{hostfuncs.NNABIWasmEdge, 2, "u8", nn.Uint8},
		{hostfuncs.NNABIWasmEdge, 3, "i32", nn.Int32},
		{hostfuncs.NNABIWasmEdge, 4, "i64", nn.Int64},
	} {
		name, dt, ok := hostfuncs.NNType(c.abi, c.code)
		if !ok || name != c.name || dt != c.dt {
			t.Errorf("%s type %d = %s %v %v, want %s %v", c.abi, c.code, name, dt, ok, c.name, c.dt)
		}
	}
	if _, _, ok := hostfuncs.NNType(hostfuncs.NNABIWasmEdge, 5); ok {
		t.Error("wasmedge type 5 accepted")
	}
}

// byteMem is guest memory as a byte slice.
type byteMem []byte

func (m byteMem) Read(off, n uint32) ([]byte, bool) {
	if uint64(off)+uint64(n) > uint64(len(m)) {
		return nil, false
	}
	return m[off : off+n], true
}

// FuzzReadNNTensor: the tensor struct decoder never panics, never reads
// outside memory, and what it accepts is consistent.
func FuzzReadNNTensor(f *testing.F) {
	seed := make([]byte, 64)
	binary.LittleEndian.PutUint32(seed[0:], 20)
	binary.LittleEndian.PutUint32(seed[4:], 2)
	seed[8] = 1
	binary.LittleEndian.PutUint32(seed[12:], 28)
	binary.LittleEndian.PutUint32(seed[16:], 16)
	binary.LittleEndian.PutUint32(seed[20:], 2)
	binary.LittleEndian.PutUint32(seed[24:], 2)
	f.Add(seed, uint32(0), false)
	f.Add(seed, uint32(0), true)
	f.Add(seed[:19], uint32(0), false)
	f.Fuzz(func(t *testing.T, mem []byte, ptr uint32, wasmedge bool) {
		abi := hostfuncs.NNABIWasmtime
		if wasmedge {
			abi = hostfuncs.NNABIWasmEdge
		}
		got, e, err := hostfuncs.ReadNNTensor(byteMem(mem), ptr, abi, 1<<20)
		if (err == nil) != (e == hostfuncs.NNSuccess) {
			t.Fatalf("errno %v with error %v", e, err)
		}
		if err != nil {
			return
		}
		n, err := nn.Elements(got.Shape, 1<<20)
		if err != nil || n*got.DType.Size() != len(got.Data) {
			t.Fatalf("accepted %v %s with %d data bytes", got.Shape, got.TypeName, len(got.Data))
		}
	})
}
